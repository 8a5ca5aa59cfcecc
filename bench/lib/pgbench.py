"""Step 6 (PostgreSQL): pgbench runs the SQL tandem sends for the read-by-id and the create
(PGBENCH_SCRIPTS), so that the cost tandem adds above the database is visible."""

import json
import os
import shutil
import subprocess
import time

from .common import PG_BINDIR, log
from .postgres import BENCH_DB
from .procfs import loadavg, machine_cpu, pg_tree_cpu_s


USER_COLS = ("id, username, email, display_name, password_hash, is_active, is_admin, "
             "token_version, created_at, updated_at, version")
TASK_COLS = ("t.id, t.project_id, t.title, t.description, t.status, t.priority_rank, "
             "t.assignee_id, t.due_date, t.created_by, t.created_at, t.updated_at, t.version")
NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
# A UUIDv7-shaped id (time-ordered like tandem's), so the tasks primary key sees the same
# append-mostly insert pattern.
UUID7 = (f"(lpad(to_hex({NOW_MS}), 12, '0') || '7' || "
         "substr(md5(random()::text), 1, 19))::uuid")
EVENT_DATA = json.dumps({
    "id": "0190f0e2-7a3b-7c1d-9e2f-3a4b5c6d7e8f", "project_id": "0190f0e2-7a3b-7c1d-9e2f-3a4b5c6d7e90",
    "title": "bench task 1.1", "description": "created by the benchmark", "status": "todo",
    "priority": "high", "assignee_id": "0190f0e2-7a3b-7c1d-9e2f-3a4b5c6d7e91",
    "due_date": "2025-03-01T12:00:00.000Z", "created_by": "0190f0e2-7a3b-7c1d-9e2f-3a4b5c6d7e91",
    "created_at": "2025-01-01T00:00:00.000Z", "updated_at": "2025-01-01T00:00:00.000Z",
    "version": 1}, separators=(",", ":"))

PGBENCH_SCRIPTS = {
    # Per request, what tandem sends for GET /v1/tasks/{id}: the token's user, then the task
    # joined with the caller's membership (src/store/users.c, store_task_get_for). The ids
    # come from bench.pick_read by a scalar subquery (a primary-key probe on a small table;
    # it makes pgbench slightly slower than the bare SQL, i.e. the ratio is conservative).
    "get_task": f"""\\set n random(1, {{nread}})
SELECT {USER_COLS} FROM users WHERE id = (SELECT user_id FROM bench.pick_read WHERE n = :n);
SELECT {TASK_COLS}, m.role FROM tasks t LEFT JOIN memberships m ON m.project_id = t.project_id AND m.user_id = (SELECT user_id FROM bench.pick_read WHERE n = :n) WHERE t.id = (SELECT task_id FROM bench.pick_read WHERE n = :n);
""",
    # POST /v1/projects/{id}/tasks: the user lookup, the role check, then the transaction:
    # assignee check, INSERT task, bump the project's event counter, INSERT the event.
    "create_task": f"""\\set n random(1, {{nwrite}})
SELECT {USER_COLS} FROM users WHERE id = (SELECT user_id FROM bench.pick_write WHERE n = :n);
SELECT role FROM memberships WHERE project_id = (SELECT project_id FROM bench.pick_write WHERE n = :n) AND user_id = (SELECT user_id FROM bench.pick_write WHERE n = :n);
BEGIN;
SELECT role FROM memberships WHERE project_id = (SELECT project_id FROM bench.pick_write WHERE n = :n) AND user_id = (SELECT user_id FROM bench.pick_write WHERE n = :n);
INSERT INTO tasks (id, project_id, title, description, status, priority_rank, assignee_id, due_date, created_by, created_at, updated_at, version) SELECT {UUID7}, project_id, 'bench task', 'created by pgbench', 'todo', 2, user_id, 1740830400000, user_id, {NOW_MS}, {NOW_MS}, 1 FROM bench.pick_write WHERE n = :n;
UPDATE projects SET event_seq = event_seq + 1 WHERE id = (SELECT project_id FROM bench.pick_write WHERE n = :n) RETURNING event_seq \\gset
INSERT INTO events (project_id, seq, type, actor_id, created_at, data) SELECT project_id, :event_seq, 'task.created', user_id, {NOW_MS}, '{EVENT_DATA}' FROM bench.pick_write WHERE n = :n;
COMMIT;
""",
}


def percentile(sorted_vals, p):
    if not sorted_vals:
        return 0
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def pgbench_run(pg, name, seed_dir, run_dir, duration, clients):
    with open(os.path.join(seed_dir, "pgbench-picks")) as f:
        nread, nwrite = (int(x) for x in f.read().split())
    script = os.path.join(run_dir, f"pgbench-{name}.sql")
    with open(script, "w") as f:
        f.write(PGBENCH_SCRIPTS[name].replace("{nread}", str(nread)).replace("{nwrite}", str(nwrite)))
    logdir = os.path.join(run_dir, f"pgbench-{name}-log")
    shutil.rmtree(logdir, ignore_errors=True)
    os.makedirs(logdir)
    la = loadavg()
    pg0, m0, t0 = pg_tree_cpu_s(pg.postmaster_pid()), machine_cpu(), time.monotonic()
    p = subprocess.run([f"{PG_BINDIR}/pgbench", "-n", "-M", "prepared", "-c", str(clients),
                        "-j", str(min(2, clients)), "-T", str(duration), "-f", script,
                        "-l", "--log-prefix", os.path.join(logdir, "tx"),
                        "-h", pg.sock, "-p", str(pg.port), "-U", "postgres", BENCH_DB],
                       capture_output=True, text=True, timeout=duration + 120)
    wall = time.monotonic() - t0
    pg1, m1 = pg_tree_cpu_s(pg.postmaster_pid()), machine_cpu()
    with open(os.path.join(run_dir, f"pgbench-{name}.txt"), "w") as f:
        f.write(p.stdout + p.stderr)
    if p.returncode != 0:
        log(f"pgbench {name} failed:\n{p.stderr[-2000:]}")
        return None
    tps = 0.0
    failed = 0
    for line in p.stdout.splitlines():
        if line.startswith("tps = "):
            tps = float(line.split()[2])
        if line.startswith("number of failed transactions"):
            failed = int(line.split(":")[1].split()[0])
    lat = []
    for fn in os.listdir(logdir):
        with open(os.path.join(logdir, fn)) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    lat.append(int(parts[2]))
    lat.sort()
    shutil.rmtree(logdir, ignore_errors=True)
    res = {"script": name, "clients": clients, "tps": tps, "transactions": len(lat),
           "failed": failed,
           "latency_ms": {"p50": percentile(lat, 50) / 1000, "p90": percentile(lat, 90) / 1000,
                          "p99": percentile(lat, 99) / 1000,
                          "max": (lat[-1] if lat else 0) / 1000},
           "pg_cpu_pct": 100 * (pg1 - pg0) / wall,
           "machine_busy_pct": 100 * (m1[0] - m0[0]) / max(1, m1[1] - m0[1]),
           "loadavg_before": la}
    log(f"pgbench {name:12s} {tps:9.0f} tps   p50 {res['latency_ms']['p50']:.1f} "
        f"p99 {res['latency_ms']['p99']:.1f} ms  ({clients} clients)  load {la[0]:.1f}")
    return res
