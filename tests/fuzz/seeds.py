#!/usr/bin/python3
"""Write the seed corpus of the fuzz harnesses (tests/fuzz/corpus/<harness>/).

The seeds are committed; this script says where they come from and rewrites them (run it
from anywhere: `/usr/bin/python3 tests/fuzz/seeds.py`). Files are named by content, so a
rerun changes nothing that did not change. Crash reproducers that a fuzzer found are kept
beside them as regress-<what>, by hand: this script never deletes a file.
"""
import base64
import hashlib
import hmac
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = "01900000-0000-7000-8000-000000000001"
USER = "01900000-0000-7000-8000-000000000003"
# fuzz_cursor.c signs with this secret (cursor_set_key), so seeds can hold valid cursors.
CURSOR_SECRET = b"fuzz-secret-fuzz-secret-fuzz-secret"


def write(harness, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(HERE, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def compact(o):
    return json.dumps(o, separators=(",", ":"), ensure_ascii=False)


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def cursor(lst, query, keys):
    """A cursor as core/cursor.c makes it (v2): bound to the list and the query's digest."""
    key = hmac.new(CURSOR_SECRET, b"tandem cursor v1", hashlib.sha256).digest()
    digest = b64url(hashlib.sha256(query.encode()).digest()[:12])
    doc = compact({"v": 2, "l": lst, "q": digest, "k": keys}).encode()
    tag = hmac.new(key, doc, hashlib.sha256).digest()[:16]
    return b64url(doc) + "." + b64url(tag)


def task_query(sort="-created_at", **f):
    """The canonical text of a task list's query (services/tasks.c, query_text)."""
    names = ("project_id", "status", "priority", "assignee_id", "due_before", "due_after",
             "updated_since", "q")
    return "&".join(f"{n}={f.get(n, '')}" for n in names) + f"&sort={sort}"


def frame(opcode, payload, fin=True, mask=b"\x11\x22\x33\x44"):
    """A client frame (masked, as RFC 6455 requires of clients)."""
    if isinstance(payload, str):
        payload = payload.encode()
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def device_token(user, iat, nonce=b"0123456789abcdef"):
    """A device token (services/token.c) signed with CURSOR_SECRET, as fuzz_cursor.c's key."""
    key = hmac.new(CURSOR_SECRET, b"tandem device token v1", hashlib.sha256).digest()
    payload = f"{user}.{b64url(nonce)}.{iat}"
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{b64url(mac)}"


def bodies():
    seeds = [
        {"email": "alice@example.com", "username": "alice", "password": "correct horse battery"},
        {"email": "Bob@Example.COM", "username": "bob.b-2", "password": "12345678",
         "display_name": "Bob B."},
        {"login": "alice", "password": "correct horse battery"},
        {"login": "alice@example.com", "password": "x"},
        {"login": "alice", "password": "x", "device_token": device_token(USER, 1765000000)},
        {"login": "alice", "password": "x", "device_token": 7},
        {"refresh_token": "rt_" + "A" * 43},
        {"current_password": "correct horse battery", "new_password": "another long one"},
        {"display_name": None, "username": "alice2"},
        {"email": "new@example.org"},
        {"name": "Launch", "description": "Q3 launch plan"},
        {"name": "x" * 100, "description": None},
        {"user_id": USER, "role": "viewer"},
        {"email": "carol@example.com", "role": "member"},
        {"username": "dave"},
        {"role": "owner"},
        {"title": "Fix login", "description": "see #12", "status": "in_progress",
         "priority": "urgent", "assignee_id": USER, "due_date": "2026-12-31T23:59:59Z"},
        {"title": "t", "due_date": "0001-01-01T00:30:00+01:00"},
        {"status": "done", "assignee_id": None, "due_date": None},
        {"priority": "lowest", "unknown": 1, "id": "x", "version": 3, "is_admin": True},
        {"title": "\u00e9\u00e8\U0001F600" * 10, "due_date": "2026-02-30T00:00:00Z"},
        {"title": 5, "status": ["todo"], "assignee_id": "not-a-uuid"},
    ]
    for s in seeds:
        write("bodies", compact(s))
    write("bodies", '{"title":"a","title":"b"}')
    write("bodies", "[1,2,3]")


def cursors():
    c = cursor("tasks:all:x", "status=&priority=&sort=-created_at", [1765000000000, PROJECT])
    write("cursor", b"\x04" + c.encode())  # mode 0, two keys
    write("cursor", b"\x00" + cursor("members:x", "", [USER]).encode())
    write("cursor", b"\x00" + c[:-2].encode() + b"AA")
    # A version 1 cursor (bound to the sort only), as servers before issue 15 made them.
    key = hmac.new(CURSOR_SECRET, b"tandem cursor v1", hashlib.sha256).digest()
    v1 = compact({"v": 1, "s": "members:x", "k": [USER]}).encode()
    write("cursor", b"\x00" + (b64url(v1) + "." +
                                b64url(hmac.new(key, v1, hashlib.sha256).digest()[:16])).encode())
    write("cursor", b"\x01" + compact([1765000000000, None, "x", PROJECT]).encode())
    write("cursor", b"\x01" + b"status=todo,done&sort=priority\n" +
          compact([1765000000000, None, "x", PROJECT]).encode())
    write("cursor", b"\x01" + compact(["\u00e9", -1, 9007199254740993]).encode())
    write("cursor", b"\x02" + bytes(range(0, 40)))
    write("cursor", b"\x03" + b64url(b"hello, cursor").encode())
    write("cursor", b"\x03" + b"ab_-Zz09")
    write("cursor", b"\x03" + device_token(USER, 1765000000).encode())  # valid
    write("cursor", b"\x03" + device_token(USER, 1765000000)[:-1].encode() + b"A")


def queries():
    seeds = [
        "GET /v1/tasks\nstatus=todo,done&priority=high,urgent&sort=-due_date,priority&limit=20",
        "GET /v1/tasks\nassignee_id=me&due_before=2026-12-31T00:00:00Z&due_after=2026-01-01T00:00:00%2B02:00",
        "GET /v1/tasks\nq=fix login bug&updated_since=2026-06-01T12:00:00.123Z&project_id=" + PROJECT,
        "GET /v1/tasks\nassignee_id=none&sort=created_at,updated_at,due_date,priority&limit=200",
        "GET /v1/tasks\nsort=-created_at&cursor=" + cursor("tasks:all:" + USER, task_query(),
                                                           [1765000000000, PROJECT]),
        "GET /v1/tasks\nstatus=done&status=todo&sort=priority&cursor=" +
        cursor("tasks:all:" + USER, task_query("priority", status="todo,done"), [1, PROJECT]),
        "GET /v1/projects/" + PROJECT + "/tasks\nstatus=todo&status=done&priority=high&"
        "priority=low,urgent&sort=due_date&sort=-priority&limit=3",
        "GET /v1/tasks\npriorty=high&per_page=2&order=desc&Status=todo&limit=1&limit=2",
        "GET /v1/tasks\ndue_before=2026-01-15T09:00:00 01:00&q=a\xffb&assignee_id&cursor",
        "GET /v1/projects/" + PROJECT + "/tasks\nlimit=0&sort=priority,priority&status=todo,todo",
        "GET /v1/projects\nq=launch&limit=5&cursor=" + cursor("projects:" + USER, "q=launch",
                                                              [PROJECT]),
        "GET /v1/projects/" + PROJECT + "/members\nlimit=2&cursor=" + cursor("members:" + PROJECT,
                                                                            "", [USER]),
        "GET /v1/projects/" + PROJECT + "/members\nlimit=2&cursor=" + cursor("projects:" + USER,
                                                                            "", [PROJECT]),
        "HEAD /v1/projects/" + PROJECT + "/members/" + USER,
        "DELETE /v1/tasks",
        "PUT /v1/users/me/password",
        "GET /v1/projects/" + PROJECT + "/events/stream",
        "GET /v1/projects//tasks",
        "PATCH /v1/projects/a/b/c",
    ]
    for s in seeds:
        write("query", s)


def ratelimits():
    seeds = [
        "120/min,burst=60\n10.0.0.0/8, 192.168.1.1 ::1 fd00::/8\n10.0.0.1\n203.0.113.9, 10.0.0.2",
        "10/s\n127.0.0.1\n127.0.0.1\n 198.51.100.7 ,127.0.0.1,\t127.0.0.1",
        "5/3600,burst=1\n2001:db8::/32\n2001:db8::1\n2001:db8::2, 2001:db8:ffff::1, ::ffff:1.2.3.4",
        "1000000000/86400\n0.0.0.0/0\n1.2.3.4\n,,,",
        "60/hour,burst=0\n\n\n",
        "7/m\n10.0.0.0/33\n10.0.0.1\nx",
    ]
    for s in seeds:
        write("ratelimit", s)


def settings():
    urls = [
        "redis://localhost",
        "redis://:s3cret-pass@redis.internal:6380/2",
        "redis://tandem:p@ss@word@[::1]:6379/15",
        "redis://[fe80::1%25eth0]",
        "unix://user:secret-pass@/run/redis/redis.sock?db=3",
        "unix:///run/redis.sock",
        "rediss://user:secret-pass@host",
    ]
    for u in urls:
        write("settings", b"\x00" + u.encode())
    lines = [
        ["--listen", "127.0.0.1:9090", "--threads", "4", "--log-level", "debug"],
        ["--listen=[::1]:8080", "--database-url", "postgres://u:p@localhost/tandem"],
        ["--rate-limit-anon=60/min", "--trusted-proxies", "10.0.0.0/8", "--access-log=false"],
        ["--max-body-bytes", "1048576", "--bcrypt-cost", "31", "--jwt-secret", "short"],
        ["--database-url", "mysql://x", "extra"],
    ]
    for l in lines:
        write("settings", b"\x01" + "\n".join(l).encode())


def websockets():
    auth = frame(1, compact({"type": "auth", "token": "eyJhbGciOiJIUzI1NiJ9.e30.sig"}))
    sub = frame(1, compact({"type": "subscribe", "project_id": PROJECT, "after": 0}))
    sub_now = frame(1, compact({"type": "subscribe", "project_id": PROJECT.upper()}))
    unsub = frame(1, compact({"type": "unsubscribe", "project_id": PROJECT}))
    ping_msg = frame(1, compact({"type": "ping"}))
    ping = frame(9, b"hi")
    close = frame(8, struct.pack(">H", 1000) + b"bye")
    # scene byte: bit 0 authed at upgrade, bit 1 auth ok, bits 2-3 subscribe outcome
    write("websocket", b"\x02" + auth + sub + ping_msg + unsub + close)
    write("websocket", b"\x01" + sub_now + sub + ping + unsub + unsub)
    write("websocket", b"\x00" + auth + sub)
    write("websocket", b"\x09" + sub + frame(1, '{"type":"subscribe","project_id":"x","after":-1}'))
    write("websocket", b"\x0d" + sub + frame(1, "not json") + frame(2, b"\x00\x01"))
    # A text message in three fragments with a ping between them.
    write("websocket", b"\x01" + frame(1, '{"type":', fin=False) + ping +
          frame(0, '"ping"', fin=False) + frame(0, "}"))
    # A 16-bit length, then a 64-bit one whose payload never comes.
    write("websocket", b"\x01" + frame(1, "x" * 300) + b"\x81\xff" + struct.pack(">Q", 70000) +
          b"\x11\x22\x33\x44" + b"yyyy")
    write("websocket", b"\x03" + auth[:5])
    # Message ids (issue 15): echoed when a string <= 64 characters or an integer.
    write("websocket", b"\x02" + frame(1, compact({"type": "auth", "token": "a.b.c", "id": 1})) +
          frame(1, compact({"type": "subscribe", "project_id": PROJECT, "id": "s\u00e9"})) +
          frame(1, compact({"type": "ping", "id": "x" * 65})) +
          frame(1, compact({"type": "ping", "id": {"a": [1]}})) +
          frame(1, compact({"type": "unsubscribe", "project_id": "nope", "id": -7})))
    write("websocket", b"\x09" + frame(1, compact({"type": "subscribe", "project_id": PROJECT,
                                                    "after": 99, "id": 2 ** 70})))
    # A refused ticket: the error, then 4001; whatever the client sends meanwhile.
    write("websocket", b"\x10" + auth + ping_msg)


def requests():
    seeds = [
        "H Content-Type: application/json; charset=utf-8\nH If-Match: \"3\"\nP /v1/tasks/x\n"
        'B{"title":"x"}',
        "H content-type: Application/JSON;charset=\"UTF8\"\nH If-None-Match: W/\"2\", \"3\"\n"
        "B[1]",
        "H Content-Type: text/plain\nH If-Match: *\nB{}",
        "H Content-Type: application/json\nH If-Match: \"0\"\nB{\"a\":1,\"a\":2}",
        "H Content-Type: application/jsonx\nH If-Match: \"99999999999999999999\"\nB",
        # If-Match lists: weak and "*" inside a list never match, empty elements are skipped.
        "H If-Match: W/\"2\", \"3\" ,, \"02\", *\nH If-None-Match: ,W/\"3\",\nB{}",
        "P /v1/projects/" + PROJECT + "/tasks\nQ status=todo,done\nQ q=fix login\nQ cursor=old\n"
        "Q flag\nQ \u00e9=\u00fc&x",
        "P /v1/a%2Fb c\nQ limit=5",
        "P /v1/projects/" + PROJECT + "/tasks\nQ status=todo\nQ status=done\nQ sort=priority\n"
        "Q limit=2\nQ limit=3\nQ priorty=high",
        "P /healthz\nQ probe=1",
        "P /v1/projects/" + PROJECT + "/events/stream\nQ after=3\nQ ticket=t",
        "A 10.0.0.1\nH X-Forwarded-For: 203.0.113.9, 10.0.0.2\nH X-Forwarded-For: 10.0.0.3",
        "A ::1\nH X-Forwarded-For: 2001:db8::1,  fd00::5 ,::1",
        "A 127.0.0.1\nH X-Forwarded-For: ,,, \nH x-forwarded-for: 127.0.0.1",
        "A 198.51.100.1\nH X-Forwarded-For: 1.2.3.4",
    ]
    for s in seeds:
        write("request", s)


if __name__ == "__main__":
    bodies()
    cursors()
    queries()
    ratelimits()
    settings()
    websockets()
    requests()
