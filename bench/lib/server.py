"""One tandem process on a free loopback port, the environment bench/run gives it, and its
log (counted, trimmed). Stopped by the step that started it."""

import http.client
import os
import secrets
import signal
import socket
import subprocess
import time

from .common import CACHE, TANDEM, die, env


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listeners(port):
    """Listening TCP sockets on `port` (IPv4 and IPv6)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        n += 1
        except OSError:
            pass
    return n


def http_get(port, path, timeout=2):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


class Tandem:
    """One tandem process on a free loopback port."""

    def __init__(self, data_dir, db_url, extra_env, log_path):
        self.port = free_port()
        self.log_path = log_path
        self.data_dir, self.db_url = data_dir, db_url
        e = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
        e.update({
            "TANDEM_LISTEN": f"127.0.0.1:{self.port}",
            "TANDEM_DATA_DIR": data_dir,
            "TANDEM_DATABASE_URL": db_url,
            "TANDEM_JWT_SECRET": jwt_secret(),
            "TANDEM_LOG_LEVEL": "info",
        })
        e.update(extra_env)
        self.env = e
        os.makedirs(data_dir, exist_ok=True)
        self.logf = open(log_path, "ab")
        self.proc = subprocess.Popen([TANDEM, "serve"], env=e, stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 120  # migrations on a big database may take a moment
        while True:
            if self.proc.poll() is not None:
                die(f"tandem exited at start ({self.proc.returncode}); see {log_path}")
            try:
                if http_get(self.port, "/healthz") == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                die(f"tandem did not answer /healthz; see {log_path}")
            time.sleep(0.05)

        # libmicrohttpd listens with SO_REUSEPORT (MHD_OPTION_LISTENING_ADDRESS_REUSE), so a
        # second server on the same port starts fine and the kernel splits connections
        # between them. Make sure ours is the only listener.
        n = listeners(self.port)
        if n != 1:
            self.stop()
            die(f"port {self.port} has {n} listeners (another process shares it); retry")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


def jwt_secret():
    path = os.path.join(CACHE, "jwt.secret")
    if not os.path.exists(path):
        os.makedirs(CACHE, exist_ok=True)
        with open(path, "w") as f:
            f.write(secrets.token_hex(32))
        os.chmod(path, 0o600)
    with open(path) as f:
        return f.read().strip()


def server_env(extra=None):
    # The load generator is one client with 1,000 connections: the per-client connection
    # limit (default 64) would refuse most of them.
    e = {"TANDEM_RATE_LIMIT": env("BENCH_RATE_LIMIT", "off"),
         "TANDEM_ACCESS_LOG": env("BENCH_ACCESS_LOG", "true"),
         "TANDEM_MAX_CONNECTIONS_PER_IP": "0"}
    if env("BENCH_TANDEM_THREADS", ""):
        e["TANDEM_THREADS"] = env("BENCH_TANDEM_THREADS", "")
    e.update(extra or {})
    return e


def effective_threads(e):
    t = int(e.get("TANDEM_THREADS", "0") or 0)
    if t == 0:
        t = min(64, 4 * (os.cpu_count() or 1))
    return t


def count_in_log(path, *needles):
    """Lines of `path` holding every one of `needles` (bytes)."""
    n = 0
    try:
        with open(path, "rb") as f:
            for line in f:
                if all(x in line for x in needles):
                    n += 1
    except OSError:
        pass
    return n


def trim_log(path, keep=200_000):
    try:
        size = os.path.getsize(path)
        if size <= keep:
            return
        with open(path, "rb") as f:
            f.seek(size - keep)
            tail = f.read()
        with open(path, "r+b") as f:  # the server may still append: truncate in place
            f.seek(0)
            f.write(b"[... trimmed by bench/run ...]\n" + tail)
            f.truncate()
    except OSError:
        pass
