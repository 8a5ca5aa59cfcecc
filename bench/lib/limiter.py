"""Step 8 (issue 9): the rate limiter's cost, one workload on three fresh servers (limiter
off, in-process, in Redis) with policies too generous to refuse anything."""

import shutil

from .common import die, env, log
from .procfs import proc_cpu_s
from .redis import redis_script_calls
from .server import count_in_log, server_env, trim_log
from .settings import CONNS, DURATION, WARMUP, WRK_THREADS
from .wrk import WORKLOADS, wrk_run

# A policy no benchmark reaches: the bucket refills at one request per ms (the limiter's
# finest interval) and holds 10^9 of them (11 days' worth at that rate).
GENEROUS = "1000000000/s,burst=1000000000"


def limiter_runs(backend, fresh_server, data_file, run_dir, pm, redis):
    """Issue 9: BENCH_LIMITER_WORKLOAD (get_task) three times, each on a fresh server: rate
    limit off, the in-process limiter, the Redis limiter; policies too generous to refuse."""
    w = env("BENCH_LIMITER_WORKLOAD", "get_task")
    if w not in WORKLOADS:
        die(f"BENCH_LIMITER_WORKLOAD: unknown workload {w}")
    policy = env("BENCH_LIMITER_POLICY", GENEROUS)
    on = {"TANDEM_RATE_LIMIT": "on", "TANDEM_RATE_LIMIT_USER": policy,
          "TANDEM_RATE_LIMIT_ANON": policy}
    out = {"workload": w, "policy": policy, "runs": []}
    for name, kv in (("off", {"TANDEM_RATE_LIMIT": "off"}), ("in-process", on),
                     ("redis", on)):
        kv = dict(kv)
        sample, r = None, None
        if name == "redis":
            r = redis.fresh()
            if not r:
                out["runs"].append({"name": name, "skipped": redis.failed})
                continue
            kv["TANDEM_REDIS_URL"] = r.url
            rpid = r.proc.pid
            sample = lambda: {"redis_cpu_s": proc_cpu_s(rpid),  # noqa: E731
                              "redis_script_calls": redis_script_calls(r)}
        se = server_env(kv)
        s, d = fresh_server(se, "limiter-" + name)
        log(f"{backend}: rate limiter {name}: {w} on a fresh server")
        try:
            res = wrk_run(s, w, data_file, run_dir, DURATION, WARMUP, CONNS, WRK_THREADS, pm,
                          sample=sample)
        finally:
            s.stop()
        run = {"name": name, "settings": " ".join(f"{k}={v}" for k, v in kv.items()
                                                   if k != "TANDEM_REDIS_URL"), "result": res}
        if res:
            # The access log (trimmed below) has each answer's status: count the refusals
            # (warm-up included) and the limiter's Redis trouble, if any.
            access_log = se["TANDEM_ACCESS_LOG"] in ("true", "on", "1")
            run["refused_429"] = (count_in_log(s.log_path, b'"status":429') if access_log
                                  else None)
            run["redis_warnings"] = sum(count_in_log(s.log_path, b'"level":"' + lvl + b'"',
                                                     b"redis") for lvl in (b"warn", b"error"))
            if r:
                run["redis_cpu_pct"] = 100 * res["sampled"]["redis_cpu_s"] / res["wall_s"]
        trim_log(s.log_path)
        if backend == "sqlite":
            shutil.rmtree(d, ignore_errors=True)
        out["runs"].append(run)
    return out
