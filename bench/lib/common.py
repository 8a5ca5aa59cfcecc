"""Paths, environment and messages shared by every step of bench/run."""

import os
import sys

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(BENCH)
CACHE = os.path.join(BENCH, ".cache")
RESULTS = os.path.join(BENCH, "results")
BUILD = os.path.join(ROOT, "build-release")
TANDEM = os.path.join(BUILD, "tandem")
PG_BINDIR = os.environ.get("TANDEM_PG_BINDIR", "/usr/lib/postgresql/15/bin")
PG_CLUSTER = os.path.join(ROOT, "tests", "pg_cluster.py")
TESTS = os.path.join(ROOT, "tests")          # tests/redis_server.py: the throwaway Redis
PYTHON = "/usr/bin/python3"


def env(name, default):
    v = os.environ.get(name)
    return default if v is None or v == "" else v


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(1)
