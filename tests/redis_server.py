"""A throwaway redis-server for tests, and a tiny client to look inside it.

    from redis_server import RedisServer
    r = RedisServer(base_dir).start()      # 127.0.0.1 on a free port (unix=True: a socket)
    env = {"TANDEM_REDIS_URL": r.url}
    r.stop(); ...; r.start()               # an outage mid-test; same port, same URL
    r.command("KEYS", "*")

    r = RedisServer(base_dir, acl_user=("tandem", "secret")).start()
    r.url                                  # redis://tandem:secret@127.0.0.1:PORT
    sub = r.subscribe("tandem:events"); sub.message()   # a pub/sub client of the test's own

With acl_user=(name, password) the server has that ACL user (every key, channel and
command) and the `default` user is disabled, so only `AUTH name password` logs in; the
test's own client (command(), subscribe()) logs in that way too.

Nothing is persisted (--save '' --appendonly no), so a restarted server starts empty, and
nothing listens beyond the loopback interface (or the socket in the test's own directory).
The `redis_server` fixture (tests/e2e/conftest.py) is a factory of them, built on
RedisServers: servers stopped at teardown, their logs left in the test's tmp_path. No
pytest here, so bench/run imports this module too. Needs the Debian package redis-server
(redis-server on PATH, or $TANDEM_REDIS_SERVER).
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


REDIS_SERVER = os.environ.get("TANDEM_REDIS_SERVER") or shutil.which("redis-server")
START_TIMEOUT = 30
# sun_path is 108 bytes.
MAX_SOCKET_PATH_LEN = 100


class RedisError(RuntimeError):
    pass


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RedisError("redis closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exactly(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RedisError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exactly(n).decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RedisError(f"unexpected reply {line!r}")


class RedisServer:
    """One redis-server process in `base_dir` (a new temporary directory when None)."""

    def __init__(self, base_dir=None, unix=False, acl_user=None):
        if not REDIS_SERVER:
            raise RedisError("redis-server not found (install the Debian package redis-server)")
        self._own_base = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="tandem-redis-")).resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.log_file = self.base_dir / "redis.log"
        self.unix = unix
        self.acl_user = acl_user  # (name, password) or None
        self.port = None
        self.socket_path = None
        self._own_socket_dir = None
        if unix:
            path = self.base_dir / "redis.sock"
            if len(str(path)) > MAX_SOCKET_PATH_LEN:
                self._own_socket_dir = Path(tempfile.mkdtemp(prefix="tandem-rs-"))
                path = self._own_socket_dir / "redis.sock"
            self.socket_path = path
        self.proc = None

    @property
    def url(self):
        """What TANDEM_REDIS_URL takes: redis://127.0.0.1:PORT or unix:///path, with
        `user:password@` in front of the host (or of the path) for an ACL user."""
        return self.url_with(*self.acl_user) if self.acl_user else self.url_with()

    def url_with(self, user=None, password=None):
        """The URL with this userinfo (user None and password None: none)."""
        info = ""
        if password is not None:
            info = f"{user or ''}:{password}@"
        if self.unix:
            return f"unix://{info}{self.socket_path}"
        return f"redis://{info}127.0.0.1:{self.port}"

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=START_TIMEOUT):
        """Start (or start again, on the same port or socket) and wait for PING."""
        if self.running:
            return self
        fresh_port = self.port is None
        for _attempt in range(5):
            if not self.unix and fresh_port:
                self.port = _free_port()
            self._spawn()
            try:
                self.wait_ready(timeout)
                return self
            except RedisError:
                self.proc.kill()
                self.proc.wait()
                if not self.unix and fresh_port and "Address already in use" in self.log_tail():
                    continue  # someone took the port between _free_port() and bind
                raise
        raise RedisError("could not find a free port for redis-server")

    def _spawn(self):
        args = [REDIS_SERVER, "--save", "", "--appendonly", "no", "--dir", str(self.base_dir),
                "--logfile", str(self.log_file), "--daemonize", "no", "--protected-mode", "no"]
        if self.unix:
            args += ["--port", "0", "--unixsocket", str(self.socket_path),
                     "--unixsocketperm", "700"]
        else:
            args += ["--port", str(self.port), "--bind", "127.0.0.1"]
        if self.acl_user:
            name, password = self.acl_user
            args += ["--user", "default", "off", "--user", name, "on", f">{password}", "~*",
                     "&*", "+@all"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, cwd=self.base_dir)

    def wait_ready(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RedisError(f"redis-server exited with {self.proc.returncode}:\n"
                                 f"{self.log_tail()}")
            try:
                if self.command("PING") == "PONG":
                    return
            except (OSError, RedisError):
                pass
            if time.monotonic() > deadline:
                raise RedisError(f"redis-server did not answer within {timeout}s:\n"
                                 f"{self.log_tail()}")
            time.sleep(0.02)

    def stop(self, timeout=30):
        """Stop at once (SIGKILL: an outage, not a clean shutdown); a stopped server is fine.
        Returns when the port or socket no longer accepts connections."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=timeout)
        if self.unix and self.socket_path.exists():
            self.socket_path.unlink()

    def restart(self):
        self.stop()
        return self.start()

    def destroy(self):
        try:
            self.stop()
        finally:
            if self._own_socket_dir:
                shutil.rmtree(self._own_socket_dir, ignore_errors=True)
            if self._own_base:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def log_tail(self, n=30):
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "--- redis.log ---\n" + "\n".join(lines[-n:])

    # -- client ------------------------------------------------------------------------

    def _connect(self, timeout):
        if self.unix:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(str(self.socket_path))
        else:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return s

    def _login(self, s, reader):
        if self.acl_user:
            s.sendall(_encode(("AUTH",) + tuple(self.acl_user)))
            reader.reply()

    def command(self, *args, timeout=10):
        """Run one command on a new connection; return the decoded reply (str, int, list or
        None). An error reply raises RedisError."""
        with self._connect(timeout) as s:
            reader = _Reader(s)
            self._login(s, reader)
            s.sendall(_encode(args))
            return reader.reply()

    def subscribe(self, *channels, timeout=10):
        """A connection SUBSCRIBEd to `channels` (logged in like command()); close() it."""
        s = self._connect(timeout)
        try:
            reader = _Reader(s)
            self._login(s, reader)
            s.sendall(_encode(("SUBSCRIBE",) + channels))
            for _ in channels:
                reply = reader.reply()
                if not (isinstance(reply, list) and reply[0] == "subscribe"):
                    raise RedisError(f"SUBSCRIBE answered {reply!r}")
        except BaseException:
            s.close()
            raise
        return Subscription(s, reader)

    def keys(self, pattern="*"):
        return sorted(self.command("KEYS", pattern))

    def info(self, section):
        """INFO `section` as a dict of strings."""
        out = {}
        for line in self.command("INFO", section).splitlines():
            if ":" in line and not line.startswith("#"):
                k, _, v = line.partition(":")
                out[k] = v
        return out


class Subscription:
    """A subscribed connection: message() -> (channel, payload) of the next message."""

    def __init__(self, sock, reader):
        self.sock = sock
        self.reader = reader

    def message(self, timeout=20):
        self.sock.settimeout(timeout)
        while True:
            reply = self.reader.reply()
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == "message":
                return reply[1], reply[2]

    def close(self):
        self.sock.close()


class RedisServers:
    """A factory for one test: servers(unix=False, acl_user=None) -> a started RedisServer
    in base_dir/redisN; close() destroys every one of them."""

    def __init__(self, base_dir):
        self.base_dir = Path(base_dir)
        self.servers = []

    def __call__(self, unix=False, acl_user=None):
        r = RedisServer(self.base_dir / f"redis{len(self.servers) + 1}", unix=unix,
                        acl_user=acl_user)
        self.servers.append(r)
        return r.start()

    def close(self):
        for r in self.servers:
            r.destroy()
