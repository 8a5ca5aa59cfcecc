"""Step 10: the report, bench/results/<date>-<backend>[-<tag>].md (printed too) and the
.json with every number; render() makes the Markdown from the .json alone, so
`bench/run --report` can redo it after a change to the format."""

import datetime
import json
import os

from .common import RESULTS, env, log
from .settings import TIMEOUT, WARMUP, WRK_THREADS
from .wrk import WORKLOADS


def fmt_ms(v):
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def per_cpu(r):
    """Requests per second of tandem CPU: throughput with the contention factored out."""
    c = r["tandem_cpu_pct"] / 100
    return f"{r['rps'] / c:,.0f}" if c > 0.01 else "—"


def main_table(rows, backend):
    hdr = ("| workload | req/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx | socket errors "
           "(c/r/w/t) | tandem peak RSS MB | tandem CPU % | req per tandem CPU-s |"
           + (" postgres CPU % |" if backend == "postgres" else "")
           + " machine busy % | load avg before |")
    sep = "|" + "---|" * (hdr.count("|") - 1)
    out = [hdr, sep]
    for r in rows:
        if not r:
            continue
        l, s = r["latency_ms"], r["socket_errors"]
        out.append(
            f"| {WORKLOADS[r['workload']][1]} | {r['rps']:,.0f} | {fmt_ms(l['p50'])} | "
            f"{fmt_ms(l['p90'])} | {fmt_ms(l['p99'])} | {fmt_ms(l['max'])} | {r['non_2xx']} | "
            f"{sum(s.values())} ({s['connect']}/{s['read']}/{s['write']}/{s['timeout']}) | "
            f"{r['rss_peak_mb']:.0f} | {r['tandem_cpu_pct']:.0f} | {per_cpu(r)} |"
            + (f" {r['pg_cpu_pct']:.0f} |" if backend == "postgres" else "")
            + f" {r['machine_busy_pct']:.0f} | {r['loadavg_before'][0]:.2f} |")
    return "\n".join(out)


def pgbench_table(pgb, api):
    out = ["| SQL of | pgbench clients | pgbench tps | p50 ms | p99 ms | max ms | postgres CPU % |"
           " tandem req/s (same SQL + HTTP) | tandem / pgbench |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name, r in pgb.items():
        if not r:
            continue
        a = api.get(name)
        ratio = f"{a['rps'] / r['tps']:.2f}×" if a and r["tps"] else "—"
        l = r["latency_ms"]
        out.append(f"| {WORKLOADS[name][1]} | {r['clients']} | {r['tps']:,.0f} | "
                   f"{fmt_ms(l['p50'])} | {fmt_ms(l['p99'])} | {fmt_ms(l['max'])} | "
                   f"{r['pg_cpu_pct']:.0f} | {a['rps']:,.0f} | {ratio} |" if a else
                   f"| {WORKLOADS[name][1]} | {r['clients']} | {r['tps']:,.0f} | "
                   f"{fmt_ms(l['p50'])} | {fmt_ms(l['p99'])} | {fmt_ms(l['max'])} | "
                   f"{r['pg_cpu_pct']:.0f} | — | — |")
    return "\n".join(out)


def targets(rows, pgb, conns):
    by = {r["workload"]: r for r in rows if r}
    lines = []
    if not by:
        return "- (no API workloads ran)"
    errs = {k: r["non_2xx"] + sum(r["socket_errors"].values()) for k, r in by.items()}
    bad = {k: v for k, v in errs.items() if v}
    lines.append("- Zero errors at {} connections: {}".format(
        conns, "**met**" if not bad else "**missed** (" + ", ".join(
            f"{k}: {v}" for k, v in bad.items()) + ")"))
    for kind, limit in (("read", 50), ("write", 100)):
        ws = [k for k in by if WORKLOADS[k][2] == kind and k != "healthz"]
        over = [f"{k} {by[k]['latency_ms']['p99']:.0f} ms" for k in ws
                if by[k]["latency_ms"]["p99"] >= limit]
        lines.append(f"- p99 under {limit} ms for {kind}s ({', '.join(ws)}): "
                     + ("**met**" if not over else "**missed** (" + ", ".join(over) + ")"))
    if pgb:
        for name, want in (("get_task", 0.7), ("create_task", 0.5)):
            r, a = pgb.get(name), by.get(name)
            if r and a and r["tps"]:
                ratio = a["rps"] / r["tps"]
                lines.append(f"- {name} at least {want}× pgbench: {ratio:.2f}× — "
                             + ("**met**" if ratio >= want else "**missed**"))
    return "\n".join(lines)


def tune_table(tune):
    out = ["| variant | settings | workload | req/s | p50 ms | p99 ms | max ms | errors |"
           " tandem CPU % | req per tandem CPU-s | peak RSS MB | load avg |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for w in sorted({r["workload"] for v in tune for r in v["results"] if r},
                    key=list(WORKLOADS).index):
      for v in tune:
        for r in v["results"]:
            if not r or r["workload"] != w:
                continue
            l = r["latency_ms"]
            errs = r["non_2xx"] + sum(r["socket_errors"].values())
            out.append(f"| {v['name']} | {v['settings'] or '(defaults)'} | {r['workload']} | "
                       f"{r['rps']:,.0f} | {fmt_ms(l['p50'])} | {fmt_ms(l['p99'])} | "
                       f"{fmt_ms(l['max'])} | {errs} | {r['tandem_cpu_pct']:.0f} | "
                       f"{per_cpu(r)} | {r['rss_peak_mb']:.0f} | {r['loadavg_before'][0]:.2f} |")
    return "\n".join(out)


WS_TARGETS = {"single": 5.0, "redis": 10.0}   # p99 ms, POST sent -> event received


def fanout_rows(ws):
    """(setup label, mode, fan-out result) for every fan-out run in `ws`."""
    rows = []
    for label, mode, part in (("one instance", "single", ws),
                              ("two instances through Redis", "redis", ws.get("cluster") or {})):
        for key in ("fanout", "fanout_few"):
            if part.get(key):
                rows.append((label, mode, part[key]))
    return rows


def ws_section(ws):
    if not ws:
        return ""
    out = ["## Real-time (issue 8)", ""]
    if ws.get("idle"):
        i = ws["idle"]
        out.append(f"- {i['opened']:,} idle WebSockets (Bearer on the upgrade) of {i['wanted']:,}"
                   f" wanted, {i['failed']} failed: tandem RSS {i['rss_before_mb']:.0f} MB → "
                   f"{i['rss_after_mb']:.0f} MB, **{i['kb_per_conn']:.1f} KB per connection**; "
                   f"open took {i['open_s']:.1f} s.")
    rows = fanout_rows(ws)
    if rows and "s_p50_ms" not in rows[0][2]:
        # A report from before the two-instance mode: one fan-out line.
        f = rows[0][2]
        out.append(f"- {f['subscribers']:,} subscribers on one project, {f['writes']} task creations"
                   f" at {f['rate']}/s: {f['received']:,} of {f['expected']:,} events received; "
                   f"POST sent → event received p50 **{f['p50_ms']:.1f} ms**, p99 "
                   f"**{f['p99_ms']:.1f} ms**, max {f['max_ms']:.0f} ms (event created_at → "
                   f"received p50 {f['c_p50_ms']:.1f} ms, p99 {f['c_p99_ms']:.1f} ms; created_at"
                   " has ms resolution).")
        return "\n".join(out) + "\n"
    if rows:
        f0 = rows[0][2]
        out += ["", f"Fan-out: subscribers on one project (WebSocket), a writer creating tasks "
                f"in it at {f0['rate']}/s for {f0.get('duration_s', '?')} s; each title carries "
                "the time the POST was sent. *POST → received* is stamped when the receiver's "
                "select() returned with the socket readable, before recv() and parsing; "
                "*after recv()* is stamped after recv() of that socket, i.e. it also counts the "
                "Python receiver's work on the sockets handled before it in the same wake-up "
                "(2 receiver processes, which only read and stamp during the run and decode the "
                "JSON afterwards). The gap between the two is the receivers' own cost; their "
                "CPU % (100 = one core) near 100, or the machine near 100 % busy, means the "
                "receivers may be late themselves; the runs with fewer subscribers show how "
                "much of the latency grows with the fan-out. tandem CPU %: the instance of the "
                "subscribers (A + B: writer's and subscribers' instances) over the run. "
                "See bench/README.md, *Real-time*.",
                "",
                "| setup | subscribers | events received / expected | POST → received p50 ms "
                "| p99 ms | max ms | target p99 | after recv() p50 / p99 / max ms | created_at → "
                "received p50 / p99 ms | POST round trip p50 / p99 ms | tandem CPU % | receivers' CPU % "
                "| machine busy % | errors |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for label, mode, f in rows:
            t = WS_TARGETS[mode]
            errs = f.get("errors", 0) + f.get("write_errors", 0) + (
                f["subscribers"] - f["subscribed"])
            verdict = "**met**" if f["s_p99_ms"] <= t and f["received"] == f["expected"] \
                and f["expected"] else "**missed**"
            rc = " + ".join(f"{c:.0f}" for c in f.get("receiver_cpu_pct", [])) or "—"
            busy = f"{f['machine_busy_pct']:.0f}" if "machine_busy_pct" in f else "—"
            tc = f.get("tandem_cpu_pct") or {}
            tcpu = " + ".join(f"{k} {v:.0f}" if k != "tandem" else f"{v:.0f}"
                              for k, v in tc.items()) or "—"
            out.append(
                f"| {label} | {f['subscribed']:,} of {f['subscribers']:,} | {f['received']:,} / "
                f"{f['expected']:,} | {f['s_p50_ms']:.1f} | **{f['s_p99_ms']:.1f}** | "
                f"{f['s_max_ms']:.0f} | ≤ {t:.0f} ms: {verdict} | {f['p50_ms']:.1f} / "
                f"{f['p99_ms']:.1f} / {f['max_ms']:.0f} | {f['c_p50_ms']:.1f} / "
                f"{f['c_p99_ms']:.1f} | {f['post_p50_ms']:.1f} / {f['post_p99_ms']:.1f} | "
                f"{tcpu} | {rc} | {busy} | {errs} |")
    c = ws.get("cluster") or {}
    if c.get("skipped"):
        out += ["", f"- Two instances through Redis: not run ({c['skipped']})."]
    elif c.get("redis_cpu_s") is not None:
        out += ["", f"- Two instances: writer on instance A, subscribers on instance B, one "
                f"database, TANDEM_REDIS_URL on both (a throwaway redis-server); redis-server "
                f"used {c['redis_cpu_s']:.2f} CPU-s over the {c['redis_wall_s']:.0f} s of "
                "that run (set-up included)."]
    return "\n".join(out) + "\n"


def limiter_table(lim):
    runs = [r for r in lim["runs"] if r.get("result")]
    off = next((r["result"] for r in runs if r["name"] == "off"), None)

    def pcs(r):
        c = r["tandem_cpu_pct"] / 100
        return r["rps"] / c if c > 0.01 else 0

    def rel(a, b):
        return f"{100 * (a / b - 1):+.1f} %" if a and b else "—"

    out = [f"`{lim['workload']}` ({WORKLOADS[lim['workload']][1]}) on a fresh server per row, "
           f"same settings otherwise; limiter policies `{lim['policy']}` for users and "
           "anonymous callers (nothing may be refused: every row must show 0 non-2xx). "
           "*vs off*: the change in requests per tandem CPU-second, the throughput with "
           "the machine's contention factored out (negative = the limiter's cost).", "",
           "| limiter | req/s | p50 ms | p99 ms | max ms | non-2xx | socket errors | "
           "tandem CPU % | req per tandem CPU-s | vs off (per CPU-s) | req/s vs off | "
           "redis-server CPU % | req per (tandem + redis) CPU-s | load avg |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for run in lim["runs"]:
        if run.get("skipped"):
            notes.append(f"- {run['name']}: not run ({run['skipped']}).")
            continue
        r = run.get("result")
        if not r:
            notes.append(f"- {run['name']}: wrk wrote no summary.")
            continue
        l = r["latency_ms"]
        rc = run.get("redis_cpu_pct")
        both = (f"{r['rps'] / ((r['tandem_cpu_pct'] + rc) / 100):,.0f}"
                if rc is not None and r["tandem_cpu_pct"] + rc > 1 else "—")
        out.append(f"| {run['name']} | {r['rps']:,.0f} | {fmt_ms(l['p50'])} | "
                   f"{fmt_ms(l['p99'])} | {fmt_ms(l['max'])} | {r['non_2xx']} | "
                   f"{sum(r['socket_errors'].values())} | {r['tandem_cpu_pct']:.0f} | "
                   f"{per_cpu(r)} | {rel(pcs(r), pcs(off)) if off and r is not off else '—'} | "
                   f"{rel(r['rps'], off['rps']) if off and r is not off else '—'} | "
                   f"{'—' if rc is None else f'{rc:.0f}'} | {both} | "
                   f"{r['loadavg_before'][0]:.2f} |")
        if run.get("refused_429"):
            notes.append(f"- **{run['name']}: {run['refused_429']:,} requests refused with 429** "
                         "(warm-up included): the policy was not generous enough, and this row "
                         "measures refusals, not the limiter's cost.")
        elif r["non_2xx"] and run.get("refused_429") is None:
            notes.append(f"- {run['name']}: {r['non_2xx']} non-2xx answers (the access log is "
                         "off: whether they were 429 is unknown).")
        elif r["non_2xx"]:
            notes.append(f"- {run['name']}: {r['non_2xx']} non-2xx answers, none of them 429 "
                         "(see the server log in bench/.cache/run/).")
        calls = r.get("sampled", {}).get("redis_script_calls")
        if calls is not None:
            ratio = calls / r["requests"] if r["requests"] else 0
            notes.append(f"- {run['name']}: the limiter's Lua script ran {calls:,} times in Redis "
                         f"for {r['requests']:,} requests ({ratio:.2f} per request)"
                         + ("." if ratio >= 0.99 else
                            ": **fewer than the requests**, so some checks did not reach "
                            "Redis (it fails open when Redis errs: the row flatters Redis)."))
        if run.get("redis_warnings"):
            notes.append(f"- {run['name']}: {run['redis_warnings']} warnings or errors about "
                         "Redis in the server log (bench/.cache/run/).")
    return "\n".join(out + ([""] + notes if notes else []))


def write_report(backend, info, rows, pgb, tune, ws, lim=None):
    info = dict(info, date=datetime.date.today().isoformat(), warmup_s=WARMUP,
                timeout_s=TIMEOUT, wrk_threads=WRK_THREADS)
    tag = env("BENCH_TAG", "")
    name = f"{info['date']}-{backend}" + (f"-{tag}" if tag else "")
    d = {"backend": backend, "info": info, "api": rows, "pgbench": pgb, "tune": tune,
         "limiter": lim, "realtime": ws}
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, name + ".json"), "w") as f:
        json.dump(d, f, indent=1)
    render(d, name)


def render(d, name):
    """Write bench/results/<name>.md from the numbers (and <name>.notes.md, if present)."""
    backend, info, rows = d["backend"], d["info"], d["api"]
    pgb, tune, ws, lim = d["pgbench"], d["tune"], d["realtime"], d.get("limiter")
    facts = info["facts"]
    la = [r["loadavg_before"][0] for r in rows if r]
    contended = max(la or [0]) > info["ncpu"] * 0.5
    md = [f"# tandem benchmark — {backend} — {info['date']}", ""]
    md.append(f"- Build: {info['git']}, build-release/ (meson --buildtype=release).")
    md.append(f"- Server: TANDEM_THREADS={info['threads']}, access log "
              f"{info['access_log']} (to a file), rate limit {info['rate_limit']}, "
              + ("SQLite (WAL, group commit: a write is answered once flushed, as with "
                 "synchronous=FULL; the file is mapped with mmap_size=256 MiB, so peak RSS counts "
                 "the file's pages each connection touched: shared page cache, not tandem's own "
                 "memory)." if backend == "sqlite" else
                 "PostgreSQL 15 (fsync on, Unix socket, tests/pg_cluster.py settings: "
                 "shared_buffers 128 MB, max_connections 300)."))
    md.append(f"- Data set `{info['scale']}`: {facts['users']:,} users, {facts['projects']:,} "
              f"projects, {facts['memberships']:,} memberships ({facts['owner']:,} owner, "
              f"{facts['member']:,} member, {facts['viewer']:,} viewer), {facts['tasks']:,} "
              f"tasks (bench/seed.py, fixed seed; seeded rows wrote no events).")
    md.append(f"- Load: wrk {info['connections']} keep-alive connections, {info['wrk_threads']} "
              f"threads, {info['duration_s']} s per workload after {info['warmup_s']} s of "
              f"warm-up, timeout {info['timeout_s']} s (a request slower than that counts as a "
              "socket error); every request carries the bearer token of a user picked at "
              f"random among {facts['users']:,} (bench/*.lua). Workloads run in table order on "
              "one server, so writes of earlier rows are in the data of later ones.")
    md.append(f"- Machine: {info['ncpu']} cores ({info['cpu']}); wrk, tandem"
              + (" and PostgreSQL" if backend == "postgres" else "")
              + " share them. Load average before each workload: "
              + ", ".join(f"{x:.2f}" for x in la)
              + (". **Load above the core count**: a one-minute average, it carries the "
                 "previous workload's own load, and may include other processes; compare tandem CPU %" + (" + postgres CPU %" if backend == "postgres" else "")
                 + " with machine busy %, and use *req per tandem CPU-s* (throughput with the "
                 "contention factored out) to compare rows." if contended else "."))
    md.append("- Latency is wrk's (closed loop: a slow answer delays the next request on its "
              "connection, so tails are understated under overload). Peak RSS is VmHWM, reset "
              "before each workload; CPU % is utime+stime over the wall time "
              f"(100 % = one core of {info['ncpu']}).")
    md += ["", "## API", "", main_table(rows, backend), ""]
    if pgb:
        md += ["## The same SQL through pgbench (no HTTP, no JSON, no tandem)", "",
               "pgbench -M prepared on the same cluster and data, right after the API runs; "
               "the scripts are PGBENCH_SCRIPTS in bench/lib/pgbench.py. Clients = tandem's "
               "database connections (one per worker thread).", "",
               pgbench_table(pgb, {r['workload']: r for r in rows if r}), ""]
    md += ["## Targets (reported, not asserted)", "", targets(rows, pgb, info["connections"]), ""]
    if tune:
        md += ["## Tuning: before / after", "",
               "Each variant is a fresh server on a fresh copy of the data set, run right "
               "after the table above; *baseline* is the default configuration.", "",
               tune_table(tune), ""]
    if lim:
        md += ["## Rate limiter cost (issue 9)", "", limiter_table(lim), ""]
    if ws:
        md += [ws_section(ws)]
    notes = os.path.join(RESULTS, name + ".notes.md")
    if os.path.exists(notes):
        with open(notes) as f:
            md += ["", f.read()]
    text = "\n".join(md)
    with open(os.path.join(RESULTS, name + ".md"), "w") as f:
        f.write(text)
    print(text)
    print()
    log(f"wrote bench/results/{name}.md")
