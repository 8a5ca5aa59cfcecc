#!/usr/bin/python3
"""The real-time benchmark of issue 8 (bench/run runs it with BENCH_WS=1).

1. Idle: open --idle WebSockets to GET /v1/realtime (Upgrade handshake with
   `Authorization: Bearer`), hold them, and read tandem's RSS before and after: RSS per
   connection. tandem needs TANDEM_MAX_CONNECTIONS above --idle (bench/run uses 11000).
2. Fan-out: --subscribers WebSockets subscribe to one project (tokens of its members), a
   writer creates tasks in it at --rate per second for --duration seconds, each title
   carrying the send time; every receiver notes when each task.created event arrives.
   Reported: POST sent -> event received, and event created_at -> received.

Plain sockets and selectors (Debian python3 only); receivers run in two processes so that
parsing 1,000 x rate frames per second in Python is not what is measured.
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
    lat, clat, errors = [], [], 0

    def pump(timeout):
        nonlocal subscribed, errors
        for key, _ in sel.select(timeout=timeout):
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
                    continue
                if op != 0x1:
                    continue
                m = json.loads(payload)
                if m.get("type") == "subscribed":
                    subscribed += 1
                elif m.get("type") == "event":
                    ev = m["event"]
                    title = ev.get("data", {}).get("title", "")
                    if title.startswith("ws "):
                        lat.append(now_ms - int(title.split()[1]) / 1e6)
                        clat.append(now_ms - rfc3339_ms(ev["created_at"]))
                elif m.get("type") == "error":
                    errors += 1

    deadline = time.monotonic() + 60
    while subscribed < len(socks) and time.monotonic() < deadline:
        pump(0.5)
    ready.put((len(socks), subscribed, failed))
    while not stop.is_set():
        pump(0.2)
    pump(0.5)
    results.put({"lat": lat, "clat": clat, "errors": errors + failed})
    for s in socks:
        s.close()


def pct(vals, p):
    if not vals:
        return 0.0
    vals = sorted(vals)
    return vals[min(len(vals) - 1, max(0, int(round(p / 100 * len(vals) + 0.5)) - 1))]


def fanout_test(args, users):
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
        n = args.subscribers // nproc + (1 if k < args.subscribers % nproc else 0)
        p = ctx.Process(target=receiver, args=(args.port, tokens, n, project, ready, stop,
                                               results))
        p.start()
        procs.append(p)
    opened = subscribed = failed = 0
    for _ in procs:
        o, s, f = ready.get(timeout=180)
        opened, subscribed, failed = opened + o, subscribed + s, failed + f
    log(f"fan-out: {subscribed} of {args.subscribers} subscribed to {project} "
        f"({len(members[project])} members)")
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
    hdrs = {"Authorization": "Bearer " + writers[0]["token"], "Content-Type": "application/json"}
    writes, bad = 0, 0
    interval = 1.0 / args.rate
    t_next = time.monotonic()
    end = t_next + args.duration
    while time.monotonic() < end:
        body = json.dumps({"title": f"ws {time.time_ns()}"})
        conn.request("POST", f"/v1/projects/{project}/tasks", body=body, headers=hdrs)
        r = conn.getresponse()
        r.read()
        writes += 1
        bad += r.status != 201
        t_next += interval
        time.sleep(max(0, t_next - time.monotonic()))
    time.sleep(3)
    stop.set()
    lat, clat, errors = [], [], 0
    for _ in procs:
        r = results.get(timeout=120)
        lat += r["lat"]
        clat += r["clat"]
        errors += r["errors"]
    for p in procs:
        p.join(30)
    out = {"subscribers": args.subscribers, "subscribed": subscribed, "writes": writes,
           "write_errors": bad, "rate": args.rate, "expected": writes * subscribed,
           "received": len(lat), "errors": errors,
           "p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90), "p99_ms": pct(lat, 99),
           "max_ms": max(lat) if lat else 0.0,
           "c_p50_ms": pct(clat, 50), "c_p99_ms": pct(clat, 99)}
    log(f"fan-out: {out['received']} of {out['expected']} events; send->receive p50 "
        f"{out['p50_ms']:.1f} p99 {out['p99_ms']:.1f} max {out['max_ms']:.0f} ms")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--subscribers", type=int, default=1000)
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
    if args.subscribers > 0:
        res["fanout"] = fanout_test(args, users)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
