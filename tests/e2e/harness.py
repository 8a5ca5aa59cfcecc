"""Helpers for the e2e suite: run the built `tandem` binary, talk to it, read its logs.

The fixtures in conftest.py wire these together; tests import the helpers they need
(`from harness import assert_problem`). Nothing here builds anything: the binary comes from
$TANDEM_BIN (default <repo>/build/tandem).

Every server runs on 127.0.0.1 with its own port, data directory and database, so tests are
independent. Its stderr (JSON log lines, plus sanitizer reports in a sanitizer build) goes to
a file that the test can read while the server runs.
"""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
TANDEM_BIN = Path(os.environ.get("TANDEM_BIN", REPO / "build" / "tandem")).resolve()
SANITIZER = os.environ.get("TANDEM_SANITIZER") == "1"
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")
MIGRATIONS_DIR = REPO / "src" / "store" / "migrations"
ALL_BACKENDS = ("sqlite", "postgres")

# Generous limits that only exist so that a broken server fails a test instead of hanging it.
START_TIMEOUT = 60
STOP_TIMEOUT = 60
CLI_TIMEOUT = 60
HTTP_TIMEOUT = 30


def _backends():
    """The backends to test: $TANDEM_E2E_BACKENDS (comma/space separated), default all."""
    raw = os.environ.get("TANDEM_E2E_BACKENDS", "").replace(",", " ").split()
    if not raw:
        return list(ALL_BACKENDS)
    unknown = set(raw) - set(ALL_BACKENDS)
    if unknown:
        raise SystemExit(f"TANDEM_E2E_BACKENDS: unknown backend(s) {sorted(unknown)}")
    return [b for b in ALL_BACKENDS if b in raw]


BACKENDS = _backends()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env():
    """The environment every tandem process starts from.

    Inherited TANDEM_* variables are dropped so that a developer's own settings cannot leak
    into a test; the harness's own knobs (TANDEM_BIN, TANDEM_SANITIZER, ...) are not server
    settings anyway.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
    env.update({
        "TANDEM_RATE_LIMIT": "off",  # future setting; unknown variables are ignored
        "TANDEM_BCRYPT_COST": "4",
    })
    if SANITIZER:
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return env


def parse_log_lines(text):
    """The JSON objects among `text`'s lines (other lines, e.g. sanitizer reports, skipped)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def non_json_lines(text):
    """Lines of `text` that are not a JSON object (a log that is not machine-readable)."""
    bad = []
    for line in text.splitlines():
        try:
            if isinstance(json.loads(line), dict):
                continue
        except ValueError:
            pass
        bad.append(line)
    return bad


def sanitizer_findings(text):
    return [m for m in SANITIZER_MARKERS if m in text]


def check_sanitizer(text, what):
    """In a sanitizer run, fail when `text` (a process's stderr) holds a sanitizer report."""
    if not SANITIZER:
        return
    found = sanitizer_findings(text)
    assert not found, f"{what}: sanitizer reported {found}:\n{text[-8000:]}"


def expected_migrations(backend):
    """[(version, name)] of the migration files the binary embeds for `backend`."""
    dialect = "postgres" if backend == "postgres" else "sqlite"
    out = []
    for f in sorted((MIGRATIONS_DIR / dialect).glob("*.sql")):
        num, _, name = f.stem.partition("_")
        out.append((int(num), name))
    return out


class StoreTarget:
    """Where a tandem process keeps its data: a data directory plus, for PostgreSQL, a
    database of its own in the shared throwaway cluster. Several processes given the same
    target share one database."""

    def __init__(self, backend, data_dir, cluster=None, dbname=None):
        self.backend = backend
        self.data_dir = Path(data_dir)
        self.cluster = cluster
        self.dbname = dbname
        self.data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def database_url(self):
        return self.cluster.url_for(self.dbname) if self.backend == "postgres" else None

    @property
    def sqlite_path(self):
        return self.data_dir / "tandem.db"

    def env(self):
        env = {"TANDEM_DATA_DIR": str(self.data_dir)}
        if self.backend == "postgres":
            env["TANDEM_DATABASE_URL"] = self.database_url
        return env

    def query(self, sql):
        """Rows of `sql` as a list of dicts, read directly from the database (not through
        tandem), so a test can check what was really stored."""
        if self.backend == "postgres":
            out = self.cluster.psql(
                f"SELECT coalesce(json_agg(t), '[]'::json) FROM ({sql}) t", dbname=self.dbname)
            return json.loads(out)
        con = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=30)
        try:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute(sql).fetchall()]
        finally:
            con.close()

    def query_many(self, queries):
        """{name: rows} for {name: sql}: what query() gives for each, read in one go -- one
        psql run (one statement, so one snapshot) on PostgreSQL instead of one per query,
        which is what a test's before/after comparison of several tables costs."""
        if self.backend == "postgres":
            for name in queries:
                assert name.isidentifier(), name
            parts = ", ".join(f"'{name}', (SELECT coalesce(json_agg(t), '[]'::json) "
                              f"FROM ({sql}) t)" for name, sql in queries.items())
            return json.loads(self.cluster.psql(f"SELECT json_build_object({parts})",
                                                dbname=self.dbname))
        con = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=30)
        try:
            con.row_factory = sqlite3.Row
            con.execute("BEGIN")  # one read transaction: one snapshot, as on PostgreSQL
            return {name: [dict(r) for r in con.execute(sql).fetchall()]
                    for name, sql in queries.items()}
        finally:
            con.close()


class Api:
    """A small HTTP client for one server: a requests.Session with the base URL and an
    optional bearer token. Paths are relative ("/v1/projects")."""

    def __init__(self, base_url, token=None):
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.token = token

    def with_token(self, token):
        """Another client for the same server that authenticates as `token`."""
        return Api(self.base_url, token)

    def request(self, method, path, *, headers=None, **kw):
        h = dict(headers or {})
        if self.token and "Authorization" not in h:
            h["Authorization"] = f"Bearer {self.token}"
        kw.setdefault("timeout", HTTP_TIMEOUT)
        kw.setdefault("allow_redirects", False)
        return self.session.request(method, self.base_url + path, headers=h, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def head(self, path, **kw):
        return self.request("HEAD", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def patch(self, path, json=None, **kw):
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def close(self):
        self.session.close()


PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "code"}


def assert_problem(resp, status, code):
    """Assert `resp` is an RFC 9457 problem with this status and code; return its body."""
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text}"
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip() == "application/problem+json", ctype
    body = resp.json()
    missing = PROBLEM_KEYS - body.keys()
    assert not missing, f"problem lacks {missing}: {body}"
    assert body["status"] == status
    assert body["code"] == code, body
    assert body["type"] == f"/problems/{code}"
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["instance"] == resp.headers.get("X-Request-Id"), \
        "instance must be the request id"
    return body


class ServerExited(RuntimeError):
    pass


class TandemServer:
    """One `tandem serve` process. Use through the `tandem_server` fixture, which stops it
    (SIGTERM, expecting exit status 0) at teardown."""

    def __init__(self, store, log_dir, env=None, args=(), name="tandem"):
        self.store = store
        self.backend = store.backend
        self.extra_env = dict(env or {})
        self.args = list(args)
        self.log_path = Path(log_dir) / f"{name}.stderr"
        self.proc = None
        self.port = None
        self.returncode = None

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def env(self):
        env = base_env()
        env.update(self.store.env())
        env["TANDEM_LISTEN"] = f"127.0.0.1:{self.port}"
        env.update(self.extra_env)  # a test's own settings win, even TANDEM_LISTEN
        return {k: v for k, v in env.items() if v is not None}

    def start(self, wait=True):
        """Start the server; with `wait`, return once /healthz answers 200."""
        for _attempt in range(5):
            self.port = free_port()
            self._spawn()
            if not wait:
                return self
            try:
                self.wait_healthy()
                return self
            except ServerExited:
                if "cannot listen" in self.stderr_text():
                    continue  # someone took the port between free_port() and bind
                raise
        raise AssertionError("could not find a free port for tandem")

    def _spawn(self):
        self.returncode = None
        with open(self.log_path, "ab") as errf:
            self.proc = subprocess.Popen([str(TANDEM_BIN), "serve", *self.args],
                                         env=self.env(), stdin=subprocess.DEVNULL,
                                         stdout=errf, stderr=errf, cwd=self.store.data_dir)

    def wait_healthy(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                raise ServerExited(f"tandem exited with {rc} during start-up:\n"
                                   f"{self.stderr_text()[-4000:]}")
            try:
                r = requests.get(self.base_url + "/healthz", timeout=2)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"tandem did not answer /healthz within {timeout}s:\n"
                                     f"{self.stderr_text()[-4000:]}")
            time.sleep(0.02)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT):
        """Wait for the process to end; fail (after killing it) if it does not."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"tandem did not exit within {timeout}s:\n"
                                 f"{self.stderr_text()[-4000:]}")
        check_sanitizer(self.stderr_text(), "tandem serve")
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Send `sig` and wait; return the exit status. Stopping a stopped server is a no-op."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        if self.returncode is None:
            self.wait(timeout)
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    # -- logs --------------------------------------------------------------------------

    def stderr_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def logs(self):
        """Every JSON log line written so far, parsed."""
        return parse_log_lines(self.stderr_text())

    def access_log(self):
        return [e for e in self.logs() if e.get("type") == "access"]

    def wait_for_log(self, predicate, timeout=10):
        """The first log entry matching `predicate`, waiting for it to be written (the
        access line is written after the response is sent, so it may lag the client)."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.logs():
                if predicate(e):
                    return e
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line matched within {timeout}s:\n"
                                     f"{self.stderr_text()[-4000:]}")
            time.sleep(0.02)

    def access_entry(self, request_id, timeout=10):
        return self.wait_for_log(
            lambda e: e.get("type") == "access" and e.get("request_id") == request_id, timeout)

    def api(self, token=None):
        return Api(self.base_url, token)


def run_tandem(args, env, cwd, timeout=CLI_TIMEOUT, input=None):
    """Run `tandem ARGS` to completion; return the CompletedProcess (text mode)."""
    p = subprocess.run([str(TANDEM_BIN), *args], env=env, cwd=cwd, input=input,
                       stdin=subprocess.DEVNULL if input is None else None,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    check_sanitizer(p.stderr, f"tandem {' '.join(args)}")
    return p
