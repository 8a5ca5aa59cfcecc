"""Steps 4 and 5: the wrk workloads (bench/<workload>.lua) and one measured run of one of
them against a running server, with tandem's CPU and memory and the machine's load."""

import json
import os
import subprocess
import threading
import time

from .common import BENCH, log
from .procfs import (loadavg, machine_cpu, pg_tree_cpu_s, proc_cpu_s, proc_status_kb,
                     reset_peak_rss)
from .settings import TIMEOUT

WORKLOADS = {
    # name: (Lua script, what it does, read or write)
    "healthz": ("healthz.lua", "GET /healthz", "read"),
    "get_task": ("get_task.lua", "GET /v1/tasks/{id}", "read"),
    "list_tasks": ("list_tasks.lua",
                   "GET /v1/projects/{id}/tasks?limit=50&status=todo,in_progress&sort=-priority",
                   "read"),
    "create_task": ("create_task.lua", "POST /v1/projects/{id}/tasks", "write"),
    "patch_task": ("patch_task.lua", "PATCH /v1/tasks/{id}", "write"),
    "mixed": ("mixed.lua", "mixed: 60% get, 20% list, 10% create, 10% patch", "write"),
}


def wrk_run(server, workload, data_file, run_dir, duration, warmup, conns, threads, pg=None,
            perf=False, sample=None):
    """One measured wrk run (after `warmup` s of unmeasured load). `sample`: a callable
    returning a dict of counters, read right before and after the measured run; the
    differences go to the result's "sampled"."""
    script = os.path.join(BENCH, WORKLOADS[workload][0])
    base = ["wrk", "-t", str(threads), "-c", str(conns), "--timeout", f"{TIMEOUT}s", "-s", script,
            server.url]
    e = dict(os.environ, BENCH_DATA=data_file, BENCH_DIR=BENCH)
    if warmup > 0:
        subprocess.run(base[:1] + ["-d", f"{warmup}s"] + base[1:], env=dict(e, BENCH_WRK_JSON=""),
                       capture_output=True, timeout=warmup + 60)
    out_json = os.path.join(run_dir, f"wrk-{workload}.json")
    if os.path.exists(out_json):
        os.remove(out_json)
    la = loadavg()
    reset_ok = reset_peak_rss(server.pid)
    rss0 = proc_status_kb(server.pid, "VmRSS")
    s0 = sample() if sample else {}
    cpu0, m0, pg0 = proc_cpu_s(server.pid), machine_cpu(), pg_tree_cpu_s(pg)
    peak_sample = [rss0]
    stop = threading.Event()

    def sampler():
        while not stop.wait(0.25):
            try:
                peak_sample.append(proc_status_kb(server.pid, "VmRSS"))
            except OSError:
                return
    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    perf_proc = None
    if perf:
        perf_data = os.path.join(run_dir, f"perf-{workload}.data")
        perf_proc = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-o", perf_data,
                                      "-p", str(server.pid), "--", "sleep",
                                      str(max(1, duration - 1))],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    p = subprocess.run(base[:1] + ["-d", f"{duration}s", "--latency"] + base[1:],
                       env=dict(e, BENCH_WRK_JSON=out_json), capture_output=True, text=True,
                       timeout=duration + 120)
    wall = time.monotonic() - t0
    cpu1, m1, pg1 = proc_cpu_s(server.pid), machine_cpu(), pg_tree_cpu_s(pg)
    s1 = sample() if sample else {}
    stop.set()
    th.join()
    hwm = proc_status_kb(server.pid, "VmHWM")
    la_after = loadavg()
    with open(os.path.join(run_dir, f"wrk-{workload}.txt"), "w") as f:
        f.write(p.stdout + p.stderr)
    if perf_proc:
        perf_proc.wait(timeout=duration + 60)
        rep = subprocess.run(["perf", "report", "-i", perf_data, "--stdio", "--no-children",
                              "--percent-limit", "0.7", "--sort", "dso,symbol", "-g", "none"],
                             capture_output=True, text=True)
        with open(os.path.join(run_dir, f"perf-{workload}.txt"), "w") as f:
            f.write(rep.stdout)
    try:
        with open(out_json) as f:
            w = json.load(f)
    except (OSError, ValueError):
        log(f"{workload}: wrk wrote no summary:\n{p.stdout}{p.stderr}")
        return None
    secs = w["duration_us"] / 1e6
    er = w["errors"]
    ncpu = os.cpu_count()
    res = {
        "workload": workload,
        "requests": w["requests"],
        "rps": w["requests"] / secs if secs else 0,
        "latency_ms": {k: v / 1000 for k, v in w["latency_us"].items()},
        "non_2xx": er["status"],
        "socket_errors": {k: er[k] for k in ("connect", "read", "write", "timeout")},
        "rss_peak_mb": (hwm if reset_ok else max(peak_sample)) / 1024,
        "rss_peak_source": "VmHWM" if reset_ok else "sampled VmRSS",
        "rss_start_mb": rss0 / 1024,
        "tandem_cpu_pct": 100 * (cpu1 - cpu0) / wall,
        "pg_cpu_pct": 100 * (pg1 - pg0) / wall if pg else None,
        "machine_busy_pct": 100 * (m1[0] - m0[0]) / max(1, m1[1] - m0[1]),
        "ncpu": ncpu,
        "loadavg_before": la,
        "loadavg_after": la_after,
        "duration_s": secs,
        "wall_s": wall,
        "sampled": {k: s1[k] - s0[k] for k in s0},
    }
    sock = sum(res["socket_errors"].values())
    log(f"{workload:12s} {res['rps']:9.0f} req/s  p50 {res['latency_ms']['p50']:.1f} "
        f"p99 {res['latency_ms']['p99']:.1f} max {res['latency_ms']['max']:.0f} ms  "
        f"non-2xx {res['non_2xx']}  socket errors {sock}  tandem CPU "
        f"{res['tandem_cpu_pct']:.0f}%  RSS {res['rss_peak_mb']:.0f} MB  load {la[0]:.1f}")
    return res
