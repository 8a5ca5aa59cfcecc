#!/usr/bin/python3
"""Seed a repeatable benchmark data set into a tandem database (bench/run drives this).

Two steps, because users need real password hashes and tokens while 200,000 tasks through
the API would take far too long:

  seed.py register --base-url URL --scale S --out DIR
      Registers every bench user through the API (POST /v1/auth/register) and logs each in
      once (POST /v1/auth/login). Writes DIR/users.tsv: index, user id, username, access
      token. The server must run with TANDEM_RATE_LIMIT=off (and a low TANDEM_BCRYPT_COST
      so that this takes seconds) and a long TANDEM_ACCESS_TOKEN_TTL.

  seed.py load --backend sqlite --db PATH --scale S --dir DIR
  seed.py load --backend postgres --psql 'psql -h ... -d ...' --scale S --dir DIR
      Writes projects, memberships and tasks straight into the database with SQL (the
      server stopped for SQLite; for PostgreSQL it does not matter), then the files the load
      generators read: DIR/wrk-data.txt for the wrk Lua scripts and, for PostgreSQL, the
      bench.pick_read / bench.pick_write tables for pgbench.

Seeded rows bypass the service layer, so they write no events: projects.event_seq stays 0
and the events table starts empty; the benchmark's own writes then number their events
1, 2, 3, ... as usual. Everything is derived from a fixed random seed: the same scale gives
the same projects, memberships and tasks (user ids come from the server, so they differ
between seedings, but which user index owns, joins and is assigned what does not).

Debian python3 only (no third-party modules); PostgreSQL is loaded through psql's COPY.
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import random
import shlex
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse

SEED = 20240607
# A fixed "now" for generated timestamps, so the data set does not depend on the day it is
# seeded: 2025-01-01T00:00:00Z in ms since the epoch.
BASE_MS = 1735689600000
DAY_MS = 86400000

SCALES = {
    #        users  projects  tasks    extra members per project (min, max)
    "small": (100, 200, 20000, (1, 6)),
    "full": (1000, 2000, 200000, (2, 12)),
}
PASSWORD = "bench-password-1"
STATUSES = (("todo", 40), ("in_progress", 25), ("done", 35))
PRIORITIES = ((0, 20), (1, 45), (2, 25), (3, 10))  # low, medium, high, urgent
# How many task ids each user gets in wrk-data.txt (per kind).
SAMPLE_TASKS = 48
WORDS = ("api design review fix bug release deploy write docs test refactor login page "
         "mobile sync cache search index query invoice report export import billing "
         "onboarding email webhook settings profile avatar upload download metrics alert "
         "dashboard chart backup restore migrate schema audit security token session").split()


def log(msg):
    print(f"seed: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- step 1: users via the API


class Client:
    def __init__(self, base_url):
        u = urllib.parse.urlsplit(base_url)
        self.host, self.port = u.hostname, u.port or 80
        self.conn = None

    def post(self, path, body):
        for attempt in range(5):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                data = json.dumps(body).encode()
                self.conn.request("POST", path, body=data,
                                  headers={"Content-Type": "application/json"})
                r = self.conn.getresponse()
                payload = r.read()
                return r.status, json.loads(payload) if payload else None
            except (OSError, http.client.HTTPException):
                if self.conn:
                    self.conn.close()
                self.conn = None
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))


def register_one(client, i):
    username = f"bench_user_{i:05d}"
    st, body = client.post("/v1/auth/register", {
        "email": f"{username}@bench.example", "username": username,
        "password": PASSWORD, "display_name": f"Bench User {i}"})
    if st not in (201, 409):
        raise RuntimeError(f"register {username}: {st} {body}")
    # Log each user in once; this is the token the load generators carry.
    st, body = client.post("/v1/auth/login", {"login": username, "password": PASSWORD})
    if st != 200:
        raise RuntimeError(f"login {username}: {st} {body}")
    return i, body["user"]["id"], username, body["access_token"]


def cmd_register(args):
    nusers = SCALES[args.scale][0]
    os.makedirs(args.out, exist_ok=True)
    t0 = time.monotonic()
    local = threading.local()

    def one(i):
        if not hasattr(local, "client"):
            local.client = Client(args.base_url)  # one keep-alive connection per thread
        return register_one(local.client, i)

    rows = [None] * nusers
    with concurrent.futures.ThreadPoolExecutor(args.workers) as ex:
        for f in [ex.submit(one, i) for i in range(nusers)]:
            i, uid, name, tok = f.result()
            rows[i] = (i, uid, name, tok)
    with open(os.path.join(args.out, "users.tsv"), "w") as f:
        for r in rows:
            f.write("\t".join(str(x) for x in r) + "\n")
    log(f"registered and logged in {nusers} users in {time.monotonic() - t0:.1f}s")


# ---------------------------------------------------------------- step 2: the data set


def uuid7(rng, ms):
    """A UUIDv7 string for the millisecond `ms`, its random bits from `rng`."""
    r = rng.getrandbits(74)
    hi = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | ((r >> 62) & 0xFFF) << 64
    lo = 0x2 << 62 | (r & ((1 << 62) - 1))
    h = f"{hi | lo:032x}"
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def weighted(rng, pairs):
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def sentence(rng, lo, hi):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def generate(scale, user_ids):
    """Projects, memberships and tasks for `scale`; user references are real ids."""
    nusers, nprojects, ntasks, (mlo, mhi) = SCALES[scale]
    if len(user_ids) != nusers:
        raise SystemExit(f"seed: users.tsv has {len(user_ids)} users, scale {scale} wants {nusers}")
    rng = random.Random(SEED)
    projects, members = [], []
    proj_members = []  # per project: [(user index, role)]
    for p in range(nprojects):
        created = BASE_MS - rng.randint(30, 730) * DAY_MS + rng.randint(0, DAY_MS - 1)
        owner = rng.randrange(nusers)
        pid = uuid7(rng, created)
        projects.append((pid, f"Project {p}: {sentence(rng, 1, 3)}",
                         sentence(rng, 0, 12), user_ids[owner], created, created))
        ms = [(owner, "owner")]
        others = rng.sample([u for u in range(nusers) if u != owner],
                            min(nusers - 1, rng.randint(mlo, mhi)))
        for u in others:
            ms.append((u, "member" if rng.random() < 0.7 else "viewer"))
        proj_members.append(ms)
        for u, role in ms:
            members.append((pid, user_ids[u], role, created + rng.randint(0, 20) * DAY_MS))

    # Skewed project sizes: a few big projects, many small ones (log-normal weights).
    weights = [rng.lognormvariate(0, 1) for _ in range(nprojects)]
    total = sum(weights)
    counts = [int(w / total * ntasks) for w in weights]
    for i in rng.sample(range(nprojects), ntasks - sum(counts)):
        counts[i] += 1

    tasks = []
    task_owner = []  # (project index) per task
    n = 0
    for p, cnt in enumerate(counts):
        pcreated = projects[p][4]
        ms = proj_members[p]
        writers = [u for u, role in ms if role != "viewer"]
        span = max(1, BASE_MS - pcreated)
        for _ in range(cnt):
            created = pcreated + rng.randrange(span)
            updated = min(BASE_MS, created + rng.randint(0, 30) * DAY_MS)
            tid = uuid7(rng, created)
            status = weighted(rng, STATUSES)
            prio = weighted(rng, PRIORITIES)
            assignee = user_ids[rng.choice(ms)[0]] if rng.random() < 0.7 else None
            due = created + rng.randint(1, 90) * DAY_MS if rng.random() < 0.6 else None
            tasks.append((tid, projects[p][0], f"Task {n}: {sentence(rng, 2, 6)}",
                          sentence(rng, 0, 30), status, prio, assignee, due,
                          user_ids[rng.choice(writers)], created, updated))
            task_owner.append(p)
            n += 1
    return projects, members, proj_members, tasks, task_owner


def workload_file(path, rng, users, projects, proj_members, tasks, task_owner):
    """wrk-data.txt: per user its token and samples of what it may read and write.

    u <token> <user id>   starts a user
    r <project id>        a project the user may read (any role)
    w <project id>        a project the user may write tasks in (owner or member)
    t <task id>           a task the user may read
    e <task id>           a task the user may edit
    """
    nusers = len(users)
    readable = [[] for _ in range(nusers)]
    writable = [[] for _ in range(nusers)]
    for p, ms in enumerate(proj_members):
        for u, role in ms:
            readable[u].append(p)
            if role != "viewer":
                writable[u].append(p)
    by_project = [[] for _ in projects]
    for t, p in enumerate(task_owner):
        by_project[p].append(t)
    picks_r, picks_w = [], []
    with open(path, "w") as f:
        for u in range(nusers):
            _, uid, _, token = users[u]
            f.write(f"u {token} {uid}\n")
            for p in readable[u]:
                f.write(f"r {projects[p][0]}\n")
            for p in writable[u]:
                f.write(f"w {projects[p][0]}\n")
                picks_w.append((uid, projects[p][0]))
            vis = [t for p in readable[u] for t in by_project[p]]
            edit = [t for p in writable[u] for t in by_project[p]]
            for t in rng.sample(vis, min(SAMPLE_TASKS, len(vis))):
                f.write(f"t {tasks[t][0]}\n")
                picks_r.append((uid, tasks[t][0]))
            for t in rng.sample(edit, min(SAMPLE_TASKS, len(edit))):
                f.write(f"e {tasks[t][0]}\n")
    return picks_r, picks_w


def load_sqlite(db, projects, members, tasks):
    con = sqlite3.connect(db)
    con.execute("PRAGMA foreign_keys=ON")
    con.execute("PRAGMA synchronous=NORMAL")
    with con:
        con.executemany(
            "INSERT INTO projects (id, name, description, owner_id, event_seq, created_at,"
            " updated_at, version) VALUES (?, ?, ?, ?, 0, ?, ?, 1)", projects)
        con.executemany("INSERT INTO memberships (project_id, user_id, role, joined_at)"
                        " VALUES (?, ?, ?, ?)", members)
        con.executemany(
            "INSERT INTO tasks (id, project_id, title, description, status, priority_rank,"
            " assignee_id, due_date, created_by, created_at, updated_at, version)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)", tasks)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def copy_text(rows):
    def field(v):
        if v is None:
            return "\\N"
        return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return "".join("\t".join(field(v) for v in r) + "\n" for r in rows)


def psql(cmd, sql, stdin_text=None):
    argv = shlex.split(cmd) + ["-X", "-q", "-v", "ON_ERROR_STOP=1"]
    p = subprocess.run(argv + ["-c", sql], input=stdin_text or "", text=True,
                       capture_output=True)
    if p.returncode != 0:
        raise SystemExit(f"seed: psql failed: {p.stderr.strip()}\n  SQL: {sql[:200]}")
    return p.stdout


def load_postgres(cmd, projects, members, tasks, picks_r, picks_w):
    psql(cmd, "COPY projects (id, name, description, owner_id, created_at, updated_at)"
              " FROM STDIN", copy_text(projects))
    psql(cmd, "COPY memberships (project_id, user_id, role, joined_at) FROM STDIN",
         copy_text(members))
    psql(cmd, "COPY tasks (id, project_id, title, description, status, priority_rank,"
              " assignee_id, due_date, created_by, created_at, updated_at) FROM STDIN",
         copy_text(tasks))
    # What pgbench picks from: (n, user, task) pairs the user may read, (n, user, project)
    # pairs the user may write in. A separate schema, so tandem never sees them.
    psql(cmd, "DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench;"
              " CREATE TABLE bench.pick_read (n int PRIMARY KEY, user_id uuid, task_id uuid);"
              " CREATE TABLE bench.pick_write (n int PRIMARY KEY, user_id uuid,"
              " project_id uuid);")
    psql(cmd, "COPY bench.pick_read FROM STDIN",
         copy_text((i + 1, u, t) for i, (u, t) in enumerate(picks_r)))
    psql(cmd, "COPY bench.pick_write FROM STDIN",
         copy_text((i + 1, u, p) for i, (u, p) in enumerate(picks_w)))
    psql(cmd, "VACUUM ANALYZE")


def cmd_load(args):
    users = []
    with open(os.path.join(args.dir, "users.tsv")) as f:
        for line in f:
            i, uid, name, tok = line.rstrip("\n").split("\t")
            users.append((int(i), uid, name, tok))
    t0 = time.monotonic()
    projects, members, proj_members, tasks, task_owner = generate(
        args.scale, [u[1] for u in users])
    log(f"generated {len(projects)} projects, {len(members)} memberships,"
        f" {len(tasks)} tasks in {time.monotonic() - t0:.1f}s")
    rng = random.Random(SEED + 1)
    picks_r, picks_w = workload_file(os.path.join(args.dir, "wrk-data.txt"), rng, users,
                                     projects, proj_members, tasks, task_owner)
    t0 = time.monotonic()
    if args.backend == "sqlite":
        load_sqlite(args.db, projects, members, tasks)
    else:
        load_postgres(args.psql, projects, members, tasks, picks_r, picks_w)
        with open(os.path.join(args.dir, "pgbench-picks"), "w") as f:
            f.write(f"{len(picks_r)} {len(picks_w)}\n")
    log(f"loaded into {args.backend} in {time.monotonic() - t0:.1f}s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("register")
    r.add_argument("--base-url", required=True)
    r.add_argument("--scale", choices=SCALES, default="full")
    r.add_argument("--out", required=True)
    r.add_argument("--workers", type=int, default=8)
    ld = sub.add_parser("load")
    ld.add_argument("--backend", choices=("sqlite", "postgres"), required=True)
    ld.add_argument("--db")
    ld.add_argument("--psql")
    ld.add_argument("--scale", choices=SCALES, default="full")
    ld.add_argument("--dir", required=True)
    args = ap.parse_args()
    if args.cmd == "register":
        cmd_register(args)
    else:
        if args.backend == "sqlite" and not args.db:
            ap.error("--db is needed for sqlite")
        if args.backend == "postgres" and not args.psql:
            ap.error("--psql is needed for postgres")
        cmd_load(args)


if __name__ == "__main__":
    main()
