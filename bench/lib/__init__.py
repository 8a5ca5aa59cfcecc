"""bench/run's modules, one per step of a run (bench/README.md, *Files*).

common (paths, env, log), settings (the BENCH_* numbers every step shares), procfs (what is
read from /proc), build, server (one tandem process and its environment), postgres (the
throwaway cluster), redis (the throwaway redis-server), dataset (seeding and its cache),
wrk, pgbench, limiter, ws (the real-time benchmark), report. bench/run wires them.
Standard library only; imported by bench/run, never run on their own.
"""
