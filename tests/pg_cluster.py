#!/usr/bin/python3
"""A throwaway PostgreSQL cluster for tests: initdb into a directory, serve on a Unix socket.

Used by the e2e harness (tests/e2e/conftest.py) as a module, and by the test script as a
command so that the C unit tests get a server too:

    /usr/bin/python3 tests/pg_cluster.py start DIR   # prints a libpq URL, leaves it running
    /usr/bin/python3 tests/pg_cluster.py stop DIR    # stops it (DIR stays; remove it yourself)

The cluster listens on a Unix socket only (listen_addresses = ''), so nothing is reachable
from the network and no TCP port can clash. fsync stays on: the server behaves as in
production. PostgreSQL refuses to run as root; when we are root, initdb and postgres run as
the `postgres` user (runuser) in directories that user owns. Clients (psql, tandem) connect
as the database superuser `postgres` with trust authentication over the socket.
"""

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

PG_BINDIR = Path(os.environ.get("TANDEM_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "postgres"
STATE_FILE = "pg_cluster.json"
# sun_path is 108 bytes; ".s.PGSQL.NNNNN" needs 15 of them.
MAX_SOCKET_DIR_LEN = 90


class PgClusterError(RuntimeError):
    pass


def _is_root():
    return os.geteuid() == 0


class PgCluster:
    """One PostgreSQL cluster in `base_dir` (a new temporary directory when None).

    Layout: base_dir/data (PGDATA), base_dir/postgres.log, and the socket directory
    (base_dir/sock, or a short temporary directory when that path is too long for a socket).
    """

    def __init__(self, base_dir=None, port=5432, bindir=PG_BINDIR, run_as=None):
        self.bindir = Path(bindir)
        self.port = int(port)
        self._own_base = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="tandem-pg-")).resolve()
        self.data_dir = self.base_dir / "data"
        self.log_file = self.base_dir / "postgres.log"
        self._own_socket_dir = False
        self.socket_dir = self.base_dir / "sock"
        if len(str(self.socket_dir)) > MAX_SOCKET_DIR_LEN:
            self.socket_dir = Path(tempfile.mkdtemp(prefix="tandem-pgs-"))
            self._own_socket_dir = True
        # Run the server binaries as this OS user (None: as ourselves).
        self.run_as = run_as if run_as is not None else (SUPERUSER if _is_root() else None)

    # -- process helpers -------------------------------------------------------------

    def _server_cmd(self, *argv):
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        if self.run_as:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        return cmd

    def _run_server_tool(self, *argv, timeout=120):
        cmd = self._server_cmd(*argv)
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout)
        if p.returncode != 0:
            raise PgClusterError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}"
                                 f"{self._log_tail()}")
        return p.stdout

    def _log_tail(self, n=30):
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n--- postgres.log ---\n" + "\n".join(lines[-n:])

    def _give_to_run_as(self, path):
        if not self.run_as:
            return
        pw = pwd.getpwnam(self.run_as)
        os.chown(path, pw.pw_uid, pw.pw_gid)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def initialized(self):
        return (self.data_dir / "PG_VERSION").exists()

    def init(self):
        """initdb, unless the data directory already holds a cluster."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        for d in (self.base_dir, self.socket_dir):
            self._give_to_run_as(d)
        if self.initialized:
            return
        # --no-sync only skips flushing initdb's own files; the server keeps fsync on.
        self._run_server_tool("initdb", "-D", str(self.data_dir), "-U", SUPERUSER,
                              "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# tandem test cluster\n"
                       "listen_addresses = ''\n"
                       f"unix_socket_directories = '{self.socket_dir}'\n"
                       f"port = {self.port}\n"
                       "max_connections = 300\n"
                       "fsync = on\n")

    def start(self):
        """Initialise if needed, start, and wait until it accepts connections."""
        self.init()
        if self.is_running():
            return self
        self._run_server_tool("pg_ctl", "start", "-D", str(self.data_dir), "-l",
                              str(self.log_file), "-w", "-t", "60")
        self.wait_ready()
        return self

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            p = subprocess.run([str(self.bindir / "pg_isready"), "-q", "-h",
                                str(self.socket_dir), "-p", str(self.port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if p.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise PgClusterError(f"postgres did not become ready{self._log_tail()}")
            time.sleep(0.05)

    def is_running(self):
        if not self.initialized:
            return False
        p = subprocess.run(self._server_cmd("pg_ctl", "status", "-D", str(self.data_dir)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return p.returncode == 0

    def stop(self, mode="fast"):
        """Stop the server (mode: smart, fast or immediate). A stopped server is fine."""
        if self.is_running():
            self._run_server_tool("pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode,
                                  "-w", "-t", "60")

    def restart(self, mode="fast"):
        self.stop(mode)
        return self.start()

    def destroy(self):
        """Stop at once and remove every file this object created."""
        try:
            self.stop("immediate")
        finally:
            if self._own_socket_dir:
                shutil.rmtree(self.socket_dir, ignore_errors=True)
            if self._own_base:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    # -- clients ---------------------------------------------------------------------

    def url_for(self, dbname="postgres"):
        """A libpq URL for `dbname` over the Unix socket."""
        q = urllib.parse.urlencode({"host": str(self.socket_dir), "port": self.port})
        return f"postgresql://{SUPERUSER}@/{urllib.parse.quote(dbname)}?{q}"

    def psql(self, sql, dbname="postgres", timeout=60):
        """Run SQL with psql; return its unaligned, tuples-only output."""
        cmd = [str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
               "-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER,
               "-d", dbname, "-c", sql]
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        if p.returncode != 0:
            raise PgClusterError(f"psql {sql!r} on {dbname} failed: {p.stderr.strip()}")
        return p.stdout

    def create_database(self, name):
        """CREATE DATABASE `name` (a plain identifier); return its URL."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"unsafe database name {name!r}")
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop_database(self, name):
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # -- a pool of empty databases ---------------------------------------------------
    #
    # Every e2e test on PostgreSQL wants a database of its own. CREATE DATABASE copies the
    # template (~11 MB, ~300 files) and DROP DATABASE forces a checkpoint, so a database per
    # test cost ~0.3 s to create, and a worker's hundreds of them (GBs, tens of thousands of
    # files) took minutes to delete at the end of the run. A released database is emptied
    # instead (its connections ended, every schema dropped and `public` made again as initdb
    # makes it, database settings reset) and handed to the next test: to tandem it is as new
    # as a created one. One that cannot be shown empty is dropped, never reused.

    _RESET_SQL = (
        "DO $$DECLARE s text; BEGIN FOR s IN SELECT nspname FROM pg_namespace WHERE nspname"
        " NOT IN ('public', 'pg_catalog', 'information_schema', 'pg_toast') AND nspname NOT"
        " LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%' LOOP"
        " EXECUTE format('DROP SCHEMA %I CASCADE', s); END LOOP; END$$;"
        " DROP SCHEMA public CASCADE;"
        " CREATE SCHEMA public AUTHORIZATION pg_database_owner;"
        " GRANT USAGE ON SCHEMA public TO PUBLIC;"
        " SELECT count(*) FROM pg_namespace WHERE nspname NOT IN"
        " ('public', 'pg_catalog', 'information_schema', 'pg_toast')"
        " AND nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%';")

    def lease_database(self, prefix):
        """The name of an empty database: a released one, or a new one named prefix_N."""
        pool = self.__dict__.setdefault("_free_databases", [])
        if pool:
            return pool.pop()
        n = self.__dict__.get("_leased", 0) + 1
        self._leased = n
        name = f"{prefix}_{n}"
        self.create_database(name)
        return name

    def release_database(self, name):
        """Empty `name` for the next lease_database(), or drop it if it cannot be emptied."""
        pool = self.__dict__.setdefault("_free_databases", [])
        try:
            self.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                      f" WHERE datname = '{name}' AND pid <> pg_backend_pid();"
                      f' ALTER DATABASE "{name}" RESET ALL;')
            others = self.psql(self._RESET_SQL, dbname=name).strip()
            if others == "0":
                pool.append(name)
                return
        except (PgClusterError, subprocess.TimeoutExpired):
            pass
        try:
            self.drop_database(name)
        except (PgClusterError, subprocess.TimeoutExpired):
            pass

    # -- state for the command-line use ------------------------------------------------

    def save_state(self):
        state = {"port": self.port, "socket_dir": str(self.socket_dir),
                 "own_socket_dir": self._own_socket_dir, "run_as": self.run_as}
        (self.base_dir / STATE_FILE).write_text(json.dumps(state) + "\n")

    @classmethod
    def from_dir(cls, base_dir):
        base = Path(base_dir)
        state_path = base / STATE_FILE
        c = cls(base_dir=base)
        if state_path.exists():
            state = json.loads(state_path.read_text())
            if c._own_socket_dir and c.socket_dir != Path(state["socket_dir"]):
                shutil.rmtree(c.socket_dir, ignore_errors=True)
            c.port = state["port"]
            c.socket_dir = Path(state["socket_dir"])
            c._own_socket_dir = state["own_socket_dir"]
            c.run_as = state["run_as"]
        return c


@contextlib.contextmanager
def started_cluster():
    """A new cluster, started; destroyed (stopped, its directory removed) on the way out."""
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


def main(argv):
    usage = "usage: pg_cluster.py start DIR | stop DIR | url DIR [DBNAME]"
    if len(argv) < 3 or argv[1] not in ("start", "stop", "url"):
        print(usage, file=sys.stderr)
        return 2
    cmd, base = argv[1], Path(argv[2])
    try:
        if cmd == "start":
            base.mkdir(parents=True, exist_ok=True)
            c = PgCluster.from_dir(base)
            c.start()
            c.save_state()
            print(c.url_for("postgres"))
        elif cmd == "stop":
            c = PgCluster.from_dir(base)
            c.stop("fast")
            if c._own_socket_dir:
                shutil.rmtree(c.socket_dir, ignore_errors=True)
        else:
            c = PgCluster.from_dir(base)
            print(c.url_for(argv[3] if len(argv) > 3 else "postgres"))
    except PgClusterError as e:
        print(f"pg_cluster: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
