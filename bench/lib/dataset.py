"""Step 2: the seeded data set, one per scale and backend, cached in bench/.cache/<scale>/
and rebuilt when bench/seed.py, the migrations or the bench JWT secret change, after
TOKEN_REUSE_S, or with BENCH_RESEED=1. bench/seed.py does the seeding."""

import hashlib
import json
import os
import shutil
import subprocess
import time

from .common import BENCH, CACHE, PYTHON, ROOT, env, log
from .postgres import BENCH_DB, SEED_DB
from .server import Tandem, jwt_secret

TOKEN_TTL_S = 30 * 86400          # tokens minted at seeding stay valid this long
TOKEN_REUSE_S = 25 * 86400        # ... and the cache is rebuilt after this


def files_hash(paths):
    h = hashlib.sha256()
    for p in sorted(paths):
        with open(p, "rb") as f:
            h.update(p.encode() + b"\0" + f.read())
    return h.hexdigest()[:16]


def seed_stamp(scale):
    migrations = os.path.join(ROOT, "src", "store", "migrations")
    paths = [os.path.join(BENCH, "seed.py")]
    for d in ("sqlite", "postgres"):
        dd = os.path.join(migrations, d)
        paths += [os.path.join(dd, f) for f in os.listdir(dd) if f.endswith(".sql")]
    return {"scale": scale, "inputs": files_hash(paths),
            "secret": hashlib.sha256(jwt_secret().encode()).hexdigest()[:16]}


def cache_valid(d, scale):
    try:
        with open(os.path.join(d, "stamp.json")) as f:
            st = json.load(f)
    except (OSError, ValueError):
        return False
    want = seed_stamp(scale)
    if env("BENCH_RESEED", "0") == "1":
        return False
    return (all(st.get(k) == v for k, v in want.items())
            and time.time() - st.get("created", 0) < TOKEN_REUSE_S)


def write_stamp(d, scale):
    st = seed_stamp(scale)
    st["created"] = time.time()
    with open(os.path.join(d, "stamp.json"), "w") as f:
        json.dump(st, f)


SEED_ENV = {"TANDEM_BCRYPT_COST": "4", "TANDEM_RATE_LIMIT": "off",
            "TANDEM_ACCESS_LOG": "false", "TANDEM_ACCESS_TOKEN_TTL": str(TOKEN_TTL_S)}


def seed_py(*args):
    subprocess.run([PYTHON, os.path.join(BENCH, "seed.py"), *args], check=True, timeout=3600)


def seed_sqlite(scale):
    d = os.path.join(CACHE, scale, "sqlite")
    if cache_valid(d, scale):
        log(f"sqlite: using the cached {scale} data set ({d})")
        return d
    log(f"sqlite: seeding the {scale} data set into {d}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    db = os.path.join(d, "seed.db")
    t = Tandem(d, f"sqlite:{db}", SEED_ENV, os.path.join(d, "seed-server.log"))
    try:
        seed_py("register", "--base-url", t.url, "--scale", scale, "--out", d)
    finally:
        t.stop()
    seed_py("load", "--backend", "sqlite", "--db", db, "--scale", scale, "--dir", d)
    write_stamp(d, scale)
    return d


def seed_postgres(scale, pg):
    d = os.path.join(CACHE, scale, "pg-seed")
    exists = pg.psql(f"SELECT 1 FROM pg_database WHERE datname = '{SEED_DB}'")
    if exists and cache_valid(d, scale):
        log(f"postgres: using the cached {scale} data set")
        return d
    log(f"postgres: seeding the {scale} data set")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    pg.psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    pg.psql(f"DROP DATABASE IF EXISTS {SEED_DB} WITH (FORCE)")
    pg.psql(f"CREATE DATABASE {SEED_DB}")
    t = Tandem(d, pg.url(SEED_DB), SEED_ENV, os.path.join(d, "seed-server.log"))
    try:
        seed_py("register", "--base-url", t.url, "--scale", scale, "--out", d)
    finally:
        t.stop()
    seed_py("load", "--backend", "postgres", "--psql", pg.psql_cmd(SEED_DB), "--scale", scale,
            "--dir", d)
    pg.psql("CHECKPOINT")
    write_stamp(d, scale)
    return d


def dataset_facts(count_sql):
    """{users, projects, memberships, owner, member, viewer, tasks} from a SQL runner."""
    out = {}
    for k, sql in (("users", "SELECT count(*) FROM users"),
                   ("projects", "SELECT count(*) FROM projects"),
                   ("memberships", "SELECT count(*) FROM memberships"),
                   ("tasks", "SELECT count(*) FROM tasks")):
        out[k] = int(count_sql(sql))
    for role in ("owner", "member", "viewer"):
        out[role] = int(count_sql(f"SELECT count(*) FROM memberships WHERE role = '{role}'"))
    return out


def sqlite_count(db):
    import sqlite3
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return lambda sql: con.execute(sql).fetchone()[0]
    finally:
        pass
