"""Step 9 (issue 8, BENCH_WS=1): bench/ws_bench.py on one instance (idle connections and
fan-out), then the fan-out across two instances whose events cross Redis pub/sub."""

import json
import os
import shutil
import subprocess
import time

from .common import BENCH, PYTHON, env, log
from .procfs import proc_cpu_s
from .redis import redis_numsub
from .server import Tandem, server_env, trim_log
from .settings import DURATION


def ws_runs(backend, fresh_server, seed_dir, run_dir, redis):
    """Issue 8: ws_bench.py on one instance (idle + fan-out), then the fan-out with the writer
    on instance A and the subscribers on instance B, events crossing Redis pub/sub."""
    subs = env("BENCH_WS_SUBSCRIBERS", "1000")
    few = env("BENCH_WS_FEW", "100")
    # The second, smaller run only when it is smaller.
    counts = subs + ("," + few if 0 < int(few) < int(subs) else "")
    # Thousands of sockets of a few users from one address: the live-channel caps (issue 14)
    # are lifted for the benchmark.
    maxc = {"TANDEM_MAX_CONNECTIONS": "11000", "TANDEM_MAX_STREAMS_PER_USER": "0",
            "TANDEM_MAX_STREAMS_PER_IP": "0"}
    s, d = fresh_server(server_env(maxc), "ws")
    try:
        ws = ws_bench(s, None, seed_dir, run_dir, "ws-single", env("BENCH_WS_IDLE", "10000"),
                      counts) or {}
    finally:
        s.stop()
        trim_log(s.log_path)
        if backend == "sqlite":
            shutil.rmtree(d, ignore_errors=True)
    if env("BENCH_WS_CLUSTER", "1") == "0":
        return ws
    r = redis.fresh()
    if not r:
        ws["cluster"] = {"skipped": f"no Redis ({redis.failed})"}
        return ws
    # Both instances on one database (PostgreSQL: one database; SQLite: one file, which two
    # processes may share, as tests/e2e/test_09_realtime_cluster.py does).
    e = server_env(dict(maxc, TANDEM_REDIS_URL=r.url))
    a, d = fresh_server(e, "ws-a")
    b = None
    try:
        b = Tandem(d, a.db_url, e, os.path.join(run_dir, "tandem-ws-b.log"))
        deadline = time.monotonic() + 30
        while redis_numsub(r) < 2:
            if time.monotonic() > deadline:
                log("the two instances did not both subscribe to tandem:events in Redis")
                break
            time.sleep(0.05)
        log(f"{backend}: two instances through Redis: writer -> {a.url}, subscribers -> {b.url}")
        rcpu0, t0 = proc_cpu_s(r.proc.pid), time.monotonic()
        c = ws_bench(b, a, seed_dir, run_dir, "ws-cluster", "0", counts)
        if c:
            c["redis_cpu_s"] = proc_cpu_s(r.proc.pid) - rcpu0
            c["redis_wall_s"] = time.monotonic() - t0
        ws["cluster"] = c or {"skipped": "ws_bench.py failed"}
    finally:
        for t in (b, a):
            if t:
                t.stop()
                trim_log(t.log_path)
        if backend == "sqlite":
            shutil.rmtree(d, ignore_errors=True)
    return ws


def ws_bench(server, writer, seed_dir, run_dir, label, idle, subscribers):
    """ws_bench.py: subscribers on `server`, the writer on `writer` (None: the same)."""
    out = os.path.join(run_dir, label + ".json")
    args = [PYTHON, os.path.join(BENCH, "ws_bench.py"), "--port", str(server.port),
            "--pid", str(server.pid), "--data", os.path.join(seed_dir, "wrk-data.txt"),
            "--idle", idle, "--subscribers", subscribers,
            "--rate", env("BENCH_WS_RATE", "20"), "--duration", str(min(DURATION, 20)),
            "--out", out]
    if writer:
        args += ["--write-port", str(writer.port), "--write-pid", str(writer.pid)]
    p = subprocess.run(args, timeout=1800)
    if p.returncode != 0:
        log(f"the WebSocket benchmark failed ({label})")
        return None
    with open(out) as f:
        return json.load(f)
