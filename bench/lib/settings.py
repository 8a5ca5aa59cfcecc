"""The BENCH_* numbers every step shares, read once from the environment (the settings are
documented in bench/run's docstring, `bench/run --help`)."""

from .common import die, env

SCALE = env("BENCH_SCALE", "full")
if SCALE not in ("full", "small"):
    die("BENCH_SCALE must be full or small")
DURATION = int(float(env("BENCH_DURATION", "30" if SCALE == "full" else "10").rstrip("s")))
WARMUP = int(float(env("BENCH_WARMUP", "3").rstrip("s")))
CONNS = int(env("BENCH_CONNECTIONS", "1000"))
WRK_THREADS = int(env("BENCH_WRK_THREADS", "2"))
TIMEOUT = int(float(env("BENCH_TIMEOUT", "10").rstrip("s")))
