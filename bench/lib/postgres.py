"""The throwaway PostgreSQL cluster (tests/pg_cluster.py), kept in bench/.cache between
runs: the seeded template database and a fresh copy of it per server start."""

import json
import os
import shlex
import subprocess

from .common import PG_BINDIR, PG_CLUSTER, PYTHON, die

SEED_DB = "tandem_seed"           # PostgreSQL: the seeded template database
BENCH_DB = "tandem_bench"         # PostgreSQL: a fresh copy of it per server start


class Pg:
    """The throwaway cluster (tests/pg_cluster.py), kept in bench/.cache between runs."""

    def __init__(self, base):
        self.base = base
        os.makedirs(base, exist_ok=True)
        p = subprocess.run([PYTHON, PG_CLUSTER, "start", base], capture_output=True, text=True,
                           timeout=300)
        if p.returncode != 0:
            die(f"cannot start PostgreSQL: {p.stderr.strip()}")
        with open(os.path.join(base, "pg_cluster.json")) as f:
            st = json.load(f)
        self.sock, self.port = st["socket_dir"], st["port"]

    def url(self, db):
        return f"postgresql://postgres@/{db}?host={self.sock}&port={self.port}"

    def psql_cmd(self, db):
        return (f"{PG_BINDIR}/psql -h {shlex.quote(self.sock)} -p {self.port} -U postgres "
                f"-d {db}")

    def psql(self, sql, db="postgres", timeout=600):
        p = subprocess.run(shlex.split(self.psql_cmd(db)) + ["-X", "-q", "-A", "-t", "-v",
                           "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True,
                           timeout=timeout)
        if p.returncode != 0:
            die(f"psql failed: {p.stderr.strip()}\n  SQL: {sql}")
        return p.stdout.strip()

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.base, "data", "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return 0

    def fresh_bench_db(self):
        self.psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        self.psql(f"CREATE DATABASE {BENCH_DB} TEMPLATE {SEED_DB} STRATEGY FILE_COPY")
        return self.url(BENCH_DB)

    def stop(self):
        subprocess.run([PYTHON, PG_CLUSTER, "stop", self.base], capture_output=True,
                       timeout=120)
