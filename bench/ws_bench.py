#!/usr/bin/python3
"""The real-time benchmark of issue 8 (bench/run runs it with BENCH_WS=1).

1. Idle: open --idle WebSockets to GET /v1/realtime (Upgrade handshake with
   `Authorization: Bearer`), hold them, and read tandem's RSS before and after: RSS per
   connection. tandem needs TANDEM_MAX_CONNECTIONS above --idle (bench/run uses 11000).
2. Fan-out: --subscribers WebSockets subscribe to one project (tokens of its members), a
   writer creates tasks in it at --rate per second for --duration seconds, each title
   carrying the send time; every receiver notes when each task.created event arrives.
   --subscribers 1000,100 runs the fan-out once per count (fresh subscribers each time).
   With --write-port, the writer POSTs to that instance (A) while the subscribers are on
   --port (B): two instances on one database, events crossing Redis pub/sub.
   Reported: POST sent -> event received, stamped two ways: when select() returned with the
   socket readable (before recv() and parsing: "s_*"), and after recv() of that socket (so
   also the Python work on the sockets handled before it in the same wake-up: "p*");
   event created_at -> received ("c_*", created_at has ms resolution); the POST's round
   trip ("post_*").

Plain sockets and selectors (Debian python3 only); receivers run in two processes, and
during the measurement they only recv(), stamp and split frames: the JSON is decoded after
the run. Each receiver's CPU % over the run is reported (near 100 %, or a machine near
100 % busy, means the receivers may be what delays the stamps).
"""

import argparse
import base64
import datetime
import http.client
import json
import multiprocessing
import os
import resource
import selectors
import socket
import sys
import time


def log(msg):
    print(f"ws_bench: {msg}", file=sys.stderr, flush=True)


def machine_cpu():
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def proc_cpu_s(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def load_users(path):
    users, u = [], None
    with open(path) as f:
        for line in f:
            kind, _, rest = line.rstrip("\n").partition(" ")
            if kind == "u":
                tok, uid = rest.split(" ")
                u = {"token": tok, "id": uid, "r": [], "w": []}
                users.append(u)
            elif kind in ("r", "w") and u is not None:
                u[kind].append(rest)
    return users


def handshake(token, port):
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET /v1/realtime HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n").encode()


def client_frame(text, opcode=0x1):
    payload = text.encode() if isinstance(text, str) else text
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        hdr = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        hdr = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        hdr = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return hdr + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))


def parse_frames(buf):
    """Complete server frames at the start of `buf` (a bytearray, consumed)."""
    out = []
    while len(buf) >= 2:
        op, ln, off = buf[0] & 0x0F, buf[1] & 0x7F, 2
        if ln == 126:
            if len(buf) < 4:
                break
            ln, off = int.from_bytes(buf[2:4], "big"), 4
        elif ln == 127:
            if len(buf) < 10:
                break
            ln, off = int.from_bytes(buf[2:10], "big"), 10
        if len(buf) < off + ln:
            break
        out.append((op, bytes(buf[off:off + ln])))
        del buf[:off + ln]
    return out


def open_many(port, tokens, n, max_inflight=256, timeout=120):
    """Open n upgraded WebSockets (token i % len). Returns (socks, leftovers, failed)."""
    sel = selectors.DefaultSelector()
    done, leftovers, failed = [], {}, 0
    pending = 0
    i = 0
    deadline = time.monotonic() + timeout
    while (i < n or pending) and time.monotonic() < deadline:
        while i < n and pending < max_inflight:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            sel.register(s, selectors.EVENT_WRITE, {"i": i, "buf": b"", "sent": False})
            i += 1
            pending += 1
        for key, ev in sel.select(timeout=1):
            s, st = key.fileobj, key.data
            try:
                if not st["sent"]:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    s.sendall(handshake(tokens[st["i"] % len(tokens)], port))
                    st["sent"] = True
                    sel.modify(s, selectors.EVENT_READ, st)
                    continue
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError("closed")
                st["buf"] += chunk
                if b"\r\n\r\n" in st["buf"]:
                    head, _, rest = st["buf"].partition(b"\r\n\r\n")
                    sel.unregister(s)
                    pending -= 1
                    if head.startswith(b"HTTP/1.1 101"):
                        done.append(s)
                        leftovers[s] = bytearray(rest)
                    else:
                        failed += 1
                        if failed <= 3:
                            log(f"upgrade refused: {head.splitlines()[0].decode(errors='replace')}")
                        s.close()
            except OSError as e:
                sel.unregister(s)
                pending -= 1
                failed += 1
                if failed <= 3:
                    log(f"connection failed: {e}")
                s.close()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
        failed += 1
    sel.close()
    return done, leftovers, failed


def idle_test(args, users):
    tokens = [u["token"] for u in users]
    before = rss_kb(args.pid)
    t0 = time.monotonic()
    socks, _, failed = open_many(args.port, tokens, args.idle)
    open_s = time.monotonic() - t0
    time.sleep(2)
    after = rss_kb(args.pid)
    log(f"idle: {len(socks)} open ({failed} failed) in {open_s:.1f}s; RSS {before / 1024:.0f} MB"
        f" -> {after / 1024:.0f} MB")
    for s in socks:
        s.close()
    time.sleep(2)
    return {"wanted": args.idle, "opened": len(socks), "failed": failed,
            "rss_before_mb": before / 1024, "rss_after_mb": after / 1024,
            "kb_per_conn": (after - before) / max(1, len(socks)), "open_s": open_s}


def rfc3339_ms(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000


def receiver(port, tokens, n, project, ready, stop, results):
    socks, bufs, failed = open_many(port, tokens, n)
    sel = selectors.DefaultSelector()
    sub = client_frame(json.dumps({"type": "subscribe", "project_id": project, "after": None}))
    for s in socks:
        s.setblocking(True)
        s.sendall(sub)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    subscribed = 0
    errors = 0
    # During the measurement a receiver only reads: (select stamp, recv stamp, payload) of
    # every text frame is kept and decoded after the run, so that Python's JSON decoding of
    # 1,000 x rate frames per second neither delays the stamps nor builds a backlog.
    raw = []
    measuring = False

    def pump(timeout):
        nonlocal subscribed, errors
        ready = sel.select(timeout=timeout)
        # Every socket of this wake-up was readable by now: the event reached it no later.
        sel_ms = time.time_ns() / 1e6
        for key, _ in ready:
            s = key.fileobj
            try:
                chunk = s.recv(262144)
            except OSError:
                chunk = b""
            if not chunk:
                sel.unregister(s)
                errors += 1
                continue
            now_ms = time.time_ns() / 1e6
            buf = bufs[s]
            buf += chunk
            for op, payload in parse_frames(buf):
                if op == 0x9:
                    s.sendall(client_frame(payload, 0xA))
                elif op != 0x1:
                    continue
                elif measuring:
                    raw.append((sel_ms, now_ms, payload))
                else:
                    m = json.loads(payload)
                    if m.get("type") == "subscribed":
                        subscribed += 1
                    elif m.get("type") == "error":
                        errors += 1

    deadline = time.monotonic() + 60
    while subscribed < len(socks) and time.monotonic() < deadline:
        pump(0.5)
    ready.put((len(socks), subscribed, failed))
    measuring = True
    ru0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    while not stop.is_set():
        pump(0.2)
    pump(0.5)
    ru1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    cpu_pct = 100 * ((ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)) / (t1 - t0)
    lat, slat, clat = [], [], []
    for sel_ms, now_ms, payload in raw:
        m = json.loads(payload)
        if m.get("type") == "event":
            ev = m["event"]
            title = ev.get("data", {}).get("title", "")
            if title.startswith("ws "):
                sent_ms = int(title.split()[1]) / 1e6
                lat.append(now_ms - sent_ms)
                slat.append(sel_ms - sent_ms)
                clat.append(now_ms - rfc3339_ms(ev["created_at"]))
        elif m.get("type") == "error":
            errors += 1
    results.put({"lat": lat, "slat": slat, "clat": clat, "errors": errors + failed,
                 "cpu_pct": cpu_pct})
    for s in socks:
        s.close()


def pct(vals, p):
    if not vals:
        return 0.0
    vals = sorted(vals)
    return vals[min(len(vals) - 1, max(0, int(round(p / 100 * len(vals) + 0.5)) - 1))]


def fanout_test(args, users, nsubs):
    # The project with the most members; subscribers use its members' tokens.
    members = {}
    for u in users:
        for p in u["r"]:
            members.setdefault(p, []).append(u)
    project = max(members, key=lambda p: (len(members[p]), p))
    writers = [u for u in members[project] if project in u["w"]]
    tokens = [u["token"] for u in members[project]]
    ctx = multiprocessing.get_context("fork")
    ready, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    nproc = 2
    procs = []
    for k in range(nproc):
        n = nsubs // nproc + (1 if k < nsubs % nproc else 0)
        p = ctx.Process(target=receiver, args=(args.port, tokens, n, project, ready, stop,
                                               results))
        p.start()
        procs.append(p)
    opened = subscribed = failed = 0
    for _ in procs:
        o, s, f = ready.get(timeout=180)
        opened, subscribed, failed = opened + o, subscribed + s, failed + f
    wport = args.write_port or args.port
    log(f"fan-out: {subscribed} of {nsubs} subscribed to {project} on port {args.port} "
        f"({len(members[project])} members); writer on port {wport}")
    conn = http.client.HTTPConnection("127.0.0.1", wport, timeout=30)
    hdrs = {"Authorization": "Bearer " + writers[0]["token"], "Content-Type": "application/json"}
    writes, bad, post = 0, 0, []
    pids = {"A": args.write_pid, "B": args.pid} if args.write_pid else {"tandem": args.pid}
    m0, c0, w0 = machine_cpu(), {k: proc_cpu_s(p) for k, p in pids.items()}, time.monotonic()
    interval = 1.0 / args.rate
    t_next = time.monotonic()
    end = t_next + args.duration
    while time.monotonic() < end:
        t0 = time.time_ns()
        body = json.dumps({"title": f"ws {t0}"})
        conn.request("POST", f"/v1/projects/{project}/tasks", body=body, headers=hdrs)
        r = conn.getresponse()
        r.read()
        post.append((time.time_ns() - t0) / 1e6)
        writes += 1
        bad += r.status != 201
        t_next += interval
        time.sleep(max(0, t_next - time.monotonic()))
    time.sleep(3)
    stop.set()
    m1, c1, w1 = machine_cpu(), {k: proc_cpu_s(p) for k, p in pids.items()}, time.monotonic()
    lat, slat, clat, errors, rcpu = [], [], [], 0, []
    for _ in procs:
        r = results.get(timeout=120)
        lat += r["lat"]
        slat += r["slat"]
        clat += r["clat"]
        errors += r["errors"]
        rcpu.append(r["cpu_pct"])
    for p in procs:
        p.join(30)
    out = {"mode": "redis" if args.write_port else "single",
           "subscribers": nsubs, "subscribed": subscribed, "writes": writes,
           "write_errors": bad, "rate": args.rate, "duration_s": args.duration,
           "expected": writes * subscribed,
           "received": len(lat), "errors": errors,
           "p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90), "p99_ms": pct(lat, 99),
           "max_ms": max(lat) if lat else 0.0,
           "s_p50_ms": pct(slat, 50), "s_p90_ms": pct(slat, 90), "s_p99_ms": pct(slat, 99),
           "s_max_ms": max(slat) if slat else 0.0,
           "c_p50_ms": pct(clat, 50), "c_p99_ms": pct(clat, 99),
           "post_p50_ms": pct(post, 50), "post_p99_ms": pct(post, 99),
           "receiver_cpu_pct": rcpu,
           "tandem_cpu_pct": {k: 100 * (c1[k] - c0[k]) / (w1 - w0) for k in pids}, "machine_busy_pct": 100 * (m1[0] - m0[0]) /
           max(1, m1[1] - m0[1]), "ncpu": os.cpu_count()}
    log(f"fan-out ({nsubs} subscribers): {out['received']} of {out['expected']} events; "
        f"send->readable p50 {out['s_p50_ms']:.1f} p99 {out['s_p99_ms']:.1f} max "
        f"{out['s_max_ms']:.0f} ms; send->recv'd p50 {out['p50_ms']:.1f} p99 "
        f"{out['p99_ms']:.1f} max {out['max_ms']:.0f} ms; POST p50 {out['post_p50_ms']:.1f} "
        f"p99 {out['post_p99_ms']:.1f} ms; tandem CPU "
        f"{', '.join(f'{k} {v:.0f}%' for k, v in out['tandem_cpu_pct'].items())}; receivers' CPU "
        f"{', '.join(f'{c:.0f}%' for c in rcpu)}; machine busy {out['machine_busy_pct']:.0f}%")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True, help="the subscribers' instance")
    ap.add_argument("--write-port", type=int, default=0,
                    help="the writer's instance (default: --port)")
    ap.add_argument("--write-pid", type=int, default=0, help="its pid (for its CPU)")
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--subscribers", default="1000",
                    help="subscriber count, or counts separated by commas (one run each)")
    ap.add_argument("--rate", type=float, default=20)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    users = load_users(args.data)
    res = {}
    if args.idle > 0:
        res["idle"] = idle_test(args, users)
    counts = [int(x) for x in str(args.subscribers).split(",") if x.strip()]
    for key, n in zip(("fanout", "fanout_few"), [c for c in counts if c > 0]):
        res[key] = fanout_test(args, users, n)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
