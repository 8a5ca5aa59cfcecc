"""Clients for the real-time suites (test_09_realtime*.py): WebSocket, SSE and long poll.

- `Ws` wraps websocket-client (python3-websocket), a real RFC 6455 client: it masks, answers
  pings with pongs and answers a close frame with a close frame. Every read has an overall
  deadline (the server's own pings must not keep a read alive forever).
- `RawWs` speaks the protocol by hand over a plain socket, so that a test can send what no
  well-behaved client would (unmasked frames, bad opcodes, fragment floods, lies about the
  length) and read exactly what the server answered, close frames included.
- `Sse` reads a text/event-stream over plain HTTP/1.1 (http.client) record by record.
- `long_poll` runs GET /v1/projects/{id}/events?after=&wait= in a thread of its own.

Timeouts here only keep a broken server from hanging the suite; no test measures time.
"""

import base64
import http.client
import json
import os
import socket
import struct
import threading
import time
import urllib.parse
from types import SimpleNamespace

import pytest
import websocket

from harness import HTTP_TIMEOUT

# How long a read waits for something the server must send. Generous: the sanitizer build is
# slow, and a test that waits this long has failed anyway.
RECV_TIMEOUT = 20

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Closed(Exception):
    """The server closed the WebSocket: `code` from its close frame (None: no close frame,
    the TCP connection just ended)."""

    def __init__(self, code, reason=b""):
        super().__init__(f"closed by the server: code {code} {reason!r}")
        self.code = code
        self.reason = reason


_open = []  # every client made by the running test, closed at its end


def close_open_clients():
    """Close every client the running test made (Ws, RawWs, Sse)."""
    while _open:
        _open.pop().close()


@pytest.fixture(autouse=True)
def close_clients(tandem_server):
    """Close the test's clients before its servers stop (import this into a test module).
    A WebSocket still open at SIGTERM costs the server's close handshake timeout."""
    yield
    close_open_clients()


def close_code(payload):
    """The status code of a close frame's payload; 1005 (no status received) when it has
    none, as RFC 6455 7.1.5 reports it."""
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


def ws_url(server, query=""):
    return f"ws://127.0.0.1:{server.port}/v1/realtime" + (f"?{query}" if query else "")


# ---------------------------------------------------------------------------------------
# websocket-client


class Ws:
    """One WebSocket connection through websocket-client.

    Ws(server, token) authenticates with the upgrade's Authorization header;
    Ws(server, token, first_message=True) upgrades anonymously and sends
    {"type":"auth","token":...} first; Ws(server) stays anonymous; Ws(server, ticket=T)
    upgrades with ?ticket=T.
    """

    def __init__(self, server, token=None, first_message=False, ticket=None):
        header = [f"Authorization: Bearer {token}"] if token and not first_message else []
        query = urllib.parse.urlencode({"ticket": ticket}) if ticket is not None else ""
        self.ws = websocket.create_connection(ws_url(server, query), header=header,
                                              timeout=RECV_TIMEOUT)
        self.pings = 0  # server pings seen (and answered) so far
        _open.append(self)
        if token and first_message:
            self.send({"type": "auth", "token": token})
            msg = self.recv()
            assert msg["type"] == "authenticated", msg

    def send(self, obj):
        self.ws.send(json.dumps(obj))

    def send_raw(self, text):
        self.ws.send(text)

    def frame(self, timeout=RECV_TIMEOUT):
        """The next frame (opcode, payload bytes), control frames included. Pings are
        answered by websocket-client before they are returned; a close frame is answered too
        and raises Closed."""
        deadline = time.monotonic() + timeout
        left = max(0.05, deadline - time.monotonic())
        self.ws.settimeout(left)
        try:
            op, fr = self.ws.recv_data_frame(control_frame=True)
        except websocket.WebSocketConnectionClosedException:
            raise Closed(None) from None
        data = fr.data if isinstance(fr.data, bytes) else fr.data.encode()
        if op == OP_CLOSE:
            raise Closed(close_code(data), data[2:])
        if op == OP_PING:
            self.pings += 1
        return op, data

    def recv(self, timeout=RECV_TIMEOUT):
        """The next text message, parsed (server pings in between are answered and
        skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no message within {timeout}s")
            op, data = self.frame(left)
            if op == OP_TEXT:
                return json.loads(data)
            assert op in (OP_PING, OP_PONG), f"unexpected frame opcode {op}: {data!r}"

    def expect(self, type_, timeout=RECV_TIMEOUT):
        msg = self.recv(timeout)
        assert msg.get("type") == type_, f"expected a {type_!r} message, got {msg}"
        return msg

    def subscribe(self, pid, after=None):
        self.send({"type": "subscribe", "project_id": pid, "after": after})
        msg = self.recv()
        assert msg["type"] == "subscribed", msg
        assert msg["project_id"] == pid, msg
        return msg

    def events(self, n, timeout=RECV_TIMEOUT):
        """The next n messages, each of which must be an event; the event objects."""
        out = []
        for _ in range(n):
            msg = self.recv(timeout)
            assert msg["type"] == "event", f"expected an event, got {msg}"
            assert set(msg) == {"type", "event"}, msg
            out.append(msg["event"])
        return out

    def events_through(self, seq, timeout=RECV_TIMEOUT):
        """Events up to and including `seq` (nothing else may arrive in between)."""
        out = []
        while not out or out[-1]["seq"] < seq:
            out.extend(self.events(1, timeout))
        return out

    def sync(self):
        """Round trip a ping: every message the server queued before it read our ping has
        been received when the pong arrives, and none of them may be skipped silently, so
        the caller gets them back."""
        self.send({"type": "ping"})
        before = []
        while True:
            msg = self.recv()
            if msg["type"] == "pong":
                return before
            before.append(msg)

    def close_code(self, timeout=RECV_TIMEOUT):
        """Read until the server closes; its close code (None: no close frame). Any message
        still in flight is returned too: (code, messages). The close frame's reason is left
        in self.close_reason (text)."""
        msgs = []
        try:
            while True:
                op, data = self.frame(timeout)
                if op == OP_TEXT:
                    msgs.append(json.loads(data))
        except Closed as c:
            self.close_reason = c.reason.decode()
            return c.code, msgs
        except (ConnectionError, OSError):
            return None, msgs

    def close(self):
        try:
            self.ws.close(timeout=2)
        except Exception:  # noqa: BLE001 - the server may be gone already
            self.ws.abort()


# ---------------------------------------------------------------------------------------
# a WebSocket client written by hand


class RawWs:
    """A WebSocket over a plain socket; every byte is the test's choice.

    RawWs(server, token) performs the opening handshake (with a bearer header when token is
    given); `status` and `headers` hold the answer. `early` bytes are sent in the same write
    as the handshake (a client that does not wait for the 101).
    """

    def __init__(self, server, token=None, headers=None, early=b"", rcvbuf=None,
                 handshake=True, target="/v1/realtime"):
        self.target = target  # the request target of the handshake
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(RECV_TIMEOUT)
        self.sock.connect(("127.0.0.1", server.port))
        _open.append(self)
        self.buf = b""
        self.status = None
        self.headers = {}
        self.body = b""
        if handshake:
            self.handshake(token, headers, early)

    def handshake(self, token=None, headers=None, early=b""):
        key = base64.b64encode(os.urandom(16)).decode()
        h = {"Host": "127.0.0.1", "Upgrade": "websocket", "Connection": "Upgrade",
             "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
        if token:
            h["Authorization"] = f"Bearer {token}"
        for k, v in (headers or {}).items():
            if v is None:
                h.pop(k, None)
            else:
                h[k] = v
        req = f"GET {self.target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
        self.sock.sendall(req.encode() + b"\r\n" + early)
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed during the handshake: {self.buf!r}")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        if self.status == 101:
            import hashlib
            want = base64.b64encode(hashlib.sha1(
                (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            assert self.headers.get("sec-websocket-accept") == want, self.headers
        else:
            n = int(self.headers.get("content-length", "0"))
            while len(self.buf) < n:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
            self.body, self.buf = self.buf[:n], self.buf[n:]
        return self.status

    # -- sending ---------------------------------------------------------------------

    @staticmethod
    def encode(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None):
        """One frame. `length` overrides the length field (a lie about the payload)."""
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload) if length is None else length
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        mbit = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            head = struct.pack("!BBQ", b0, mbit | 127, n)
        if not mask:
            return head + payload
        key = os.urandom(4)
        masked = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        return head + key + masked

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(self.encode(opcode, payload, **kw))

    def send_bytes(self, data):
        self.sock.sendall(data)

    def send_json(self, obj):
        self.send_frame(OP_TEXT, json.dumps(obj))

    # -- receiving -------------------------------------------------------------------

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no complete frame in time")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed(None)
            self.buf += chunk

    def frame(self, timeout=RECV_TIMEOUT):
        """The next frame from the server: (fin, opcode, payload). Server frames are never
        masked. EOF raises Closed(None); a close frame is returned like any other."""
        deadline = time.monotonic() + timeout
        try:
            self._need(2, deadline)
        except (ConnectionResetError, BrokenPipeError):
            raise Closed(None) from None
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "the server masked a frame"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10, deadline)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(off + n, deadline)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv(self, timeout=RECV_TIMEOUT):
        """The next text message, parsed; pings are skipped; a close frame raises Closed."""
        deadline = time.monotonic() + timeout
        while True:
            _fin, op, payload = self.frame(max(0.05, deadline - time.monotonic()))
            if op == OP_TEXT:
                return json.loads(payload)
            if op == OP_CLOSE:
                raise Closed(close_code(payload), payload[2:])
            assert op in (OP_PING, OP_PONG), (op, payload)

    def expect_close(self, timeout=RECV_TIMEOUT):
        """Read until the server closes: (close code or None for a bare EOF, the text
        messages before it). The close frame's reason is left in self.close_reason (text)."""
        msgs = []
        try:
            while True:
                msgs.append(self.recv(timeout))
        except Closed as c:
            self.close_reason = c.reason.decode()
            return c.code, msgs
        except (ConnectionResetError, BrokenPipeError):
            return None, msgs

    def at_eof(self, timeout=RECV_TIMEOUT):
        """True once the server has closed the TCP connection (everything before is
        discarded)."""
        deadline = time.monotonic() + timeout
        self.buf = b""
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return True
            except socket.timeout:
                return False
            if not chunk:
                return True
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------------------
# Server-Sent Events


class Sse:
    """GET /v1/projects/{pid}/events/stream over plain HTTP/1.1 (`query`: a dict for the
    query string, ?after= or ?ticket=)."""

    def __init__(self, server, token, pid, last_event_id=None, headers=None, rcvbuf=None,
                 query=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=RECV_TIMEOUT)
        _open.append(self)
        if rcvbuf:  # a small receive window: the server's writes block sooner
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(RECV_TIMEOUT)
            sock.connect(("127.0.0.1", server.port))
            self.conn.sock = sock
        h = {"Accept": "text/event-stream"}
        if token:
            h["Authorization"] = f"Bearer {token}"
        if last_event_id is not None:
            h["Last-Event-ID"] = str(last_event_id)
        h.update(headers or {})
        path = f"/v1/projects/{pid}/events/stream"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        self.conn.request("GET", path, headers=h)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status

    def json(self):
        return json.loads(self.resp.read())

    def record(self):
        """The next record (lines up to a blank line) as a dict: 'comments' (list), and
        'id', 'event', 'data', 'retry' when present; None at the end of the stream."""
        rec = {"comments": []}
        data = []
        while True:
            line = self.resp.readline()
            if not line:
                return None
            line = line.decode()
            assert line.endswith("\n"), f"unterminated line {line!r}"
            line = line[:-1]
            if line == "":
                if data:
                    rec["data"] = "\n".join(data)
                if len(rec) > 1 or rec["comments"]:
                    return rec
                continue
            if line.startswith(":"):
                rec["comments"].append(line[1:].strip())
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            assert field in ("id", "event", "data", "retry"), f"unknown field {line!r}"
            if field == "data":
                data.append(value)
            else:
                assert field not in rec, f"{field} twice in one record"
                rec[field] = value

    def event(self):
        """The next record that carries data: (id, event type, parsed data)."""
        while True:
            rec = self.record()
            assert rec is not None, "the stream ended"
            if "data" in rec:
                return rec.get("id"), rec.get("event"), json.loads(rec["data"])

    def events_through(self, seq):
        out = []
        while not out or out[-1]["seq"] < seq:
            rid, kind, ev = self.event()
            assert kind == ev["type"] and rid == str(ev["seq"]), (rid, kind, ev)
            out.append(ev)
        return out

    def close(self):
        self.conn.close()


# ---------------------------------------------------------------------------------------
# long poll


class LongPoll(threading.Thread):
    """GET /v1/projects/{pid}/events?after=&wait= in a thread; .result() is the response."""

    def __init__(self, client, pid, after, wait, **params):
        super().__init__(daemon=True)
        self.client = client
        self.params = {"after": after, "wait": wait, **params}
        self.path = f"/v1/projects/{pid}/events"
        self.resp = None
        self.error = None
        self.start()

    def run(self):
        try:
            self.resp = self.client.get(self.path, params=self.params,
                                        timeout=HTTP_TIMEOUT + 30)
        except BaseException as e:  # noqa: BLE001 - handed to the test's thread
            self.error = e

    def result(self, timeout=HTTP_TIMEOUT + 40):
        self.join(timeout)
        assert not self.is_alive(), "the long poll never answered"
        if self.error:
            raise self.error
        return self.resp


def server_side_state(server, client_sock):
    """The TCP state of the server's end of `client_sock`'s connection, read from
    /proc/net/tcp: "ESTABLISHED", "FIN_WAIT1", ... or None once it is gone. It tells whether
    the server has closed a connection whose client has not read the bytes before the FIN."""
    states = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
              6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
              11: "CLOSING"}
    cport = client_sock.getsockname()[1]
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            local, remote, st = cols[1], cols[2], int(cols[3], 16)
            if (int(local.split(":")[1], 16) == server.port and
                    int(remote.split(":")[1], 16) == cport):
                return states.get(st, str(st))
    return None


def wait_until(predicate, timeout=RECV_TIMEOUT, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        time.sleep(0.02)


# ---------------------------------------------------------------------------------------
# checks shared by the real-time suites


def check_events(events, feed, after):
    """`events` are exactly the feed's events after `after`: same objects, every seq once,
    contiguous."""
    from taskkit import EVENT_KEYS
    seqs = [e["seq"] for e in events]
    want = [e for e in feed if e["seq"] > after][:len(events)]
    assert seqs == list(range(after + 1, after + 1 + len(events))), seqs
    for e in events:
        assert set(e) == EVENT_KEYS, e
    assert events == want


def authed_raw(team, **kw):
    """A RawWs authenticated as the team's owner by the upgrade's bearer header."""
    raw = RawWs(team.server, team.owner.token, **kw)
    assert raw.status == 101, (raw.status, raw.body)
    return raw


def assert_healthy(team):
    """The server still answers HTTP, and a new WebSocket works end to end."""
    assert team.anon.get("/healthz").status_code == 200
    ws = Ws(team.server, team.owner.token)
    ws.send({"type": "ping"})
    assert ws.recv() == {"type": "pong"}
    ws.close()


# A server started with these settings writes the log lines the checks below wait on.
DEBUG_LOG = {"TANDEM_LOG_LEVEL": "debug"}


def parked_polls(server, pid):
    """How many long polls on `pid` the server has parked so far (needs DEBUG_LOG)."""
    return sum(1 for e in server.logs()
               if e.get("msg") == "long poll parked" and e.get("project_id") == pid)


def wait_parked(server, pid, n=1):
    """Wait until the server has parked n long polls on `pid`: they are waiting for news
    now, not still being read or answered (needs DEBUG_LOG)."""
    wait_until(lambda: parked_polls(server, pid) >= n, what=f"{n} long poll(s) parked")


def slow_consumer_closed(server):
    """The server has decided to close a WebSocket as a slow consumer (4008)."""
    return any(e.get("msg") == "websocket closed as a slow consumer" for e in server.logs())


def sse_stream_fell_behind(server, pid):
    """The server has ended an SSE stream of `pid` whose reader fell behind."""
    return any(e.get("msg") == "sse stream ended: its reader fell behind" and
               e.get("project_id") == pid for e in server.logs())


# ---------------------------------------------------------------------------------------
# several instances joined through Redis

BUS_CHANNEL = "tandem:events"


def bus_subscribers(redis):
    """How many instances listen on the event bus's Redis channel."""
    _name, n = redis.command("PUBSUB", "NUMSUB", BUS_CHANNEL)
    return int(n)


def bus_publishes(redis):
    """How many PUBLISH commands Redis has run."""
    stat = redis.info("commandstats").get("cmdstat_publish", "calls=0")
    return int(stat.split(",")[0].split("=")[1])


def instance_pair(tandem_server, store, redis_server, env=None):
    """Two instances on one database, joined through a new Redis, both subscribed:
    (a, b, redis, team made on a)."""
    from taskkit import Team
    redis = redis_server()
    env = dict(env or {}, TANDEM_REDIS_URL=redis.url)
    a = tandem_server(env=env, store=store)
    b = tandem_server(env=env, store=store)
    wait_until(lambda: bus_subscribers(redis) == 2, what="both instances subscribing to Redis")
    return SimpleNamespace(a=a, b=b, redis=redis, team=Team(a))
