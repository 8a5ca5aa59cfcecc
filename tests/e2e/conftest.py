"""Fixtures for the end-to-end suite.

Every test that uses `backend` (directly or through `store`, `tandem_server`, `server`,
`api` or `tandem_cli`) runs once per backend: test_x[sqlite] and test_x[postgres].
TANDEM_E2E_BACKENDS=sqlite (comma-separated) narrows that, e.g. for the sanitizer run.

PostgreSQL is one throwaway cluster per session (tests/pg_cluster.py), started only when a
postgres test runs; each server gets a database of its own, so tests stay independent.

Environment knobs: TANDEM_BIN (the binary, default build/tandem), TANDEM_E2E_BACKENDS,
TANDEM_SANITIZER=1 (fail a test whose tandem process printed a sanitizer report).
"""

import itertools
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import (  # noqa: E402
    BACKENDS, SANITIZER, TANDEM_BIN, StoreTarget, TandemServer, base_env, run_tandem)
from pg_cluster import started_cluster  # noqa: E402
from redis_server import RedisServers  # noqa: E402

import contract  # noqa: E402
import requests  # noqa: E402

# Every response any test receives from a local server is checked against api/openapi.yaml
# (contract.py); a test that received one that does not conform fails (below).
contract.install(requests.Session)


def pytest_report_header(config):
    return [f"tandem binary: {TANDEM_BIN}", f"backends: {', '.join(BACKENDS)}",
            f"sanitizer checks: {'on' if SANITIZER else 'off'}"]


def pytest_sessionstart(session):
    if not os.access(TANDEM_BIN, os.X_OK):
        pytest.exit(f"{TANDEM_BIN} is not an executable; build first "
                    "(meson setup build && ninja -C build) or set TANDEM_BIN", returncode=4)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Fail the test phase during which a response that breaks the API document arrived."""
    outcome = yield
    report = outcome.get_result()
    found = contract.take_violations()
    if not found:
        return
    text = ("responses that do not match api/openapi.yaml (fix the server, or the document "
            "where API.md agrees):\n  " + "\n  ".join(found[:50]))
    if report.passed:
        report.outcome = "failed"
        report.longrepr = text
    else:
        report.sections.append(("API contract", text))


# Under pytest-xdist (scripts/test runs modules on several workers) each worker checks its own
# responses: it hands its count to the controller, which adds them up for the summary.
_worker_counts = []


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["contract_checked"] = contract.checked_count()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _worker_counts.append(getattr(node, "workeroutput", {}).get("contract_checked", 0))


def pytest_terminal_summary(terminalreporter):
    checked = contract.checked_count() + sum(_worker_counts)
    terminalreporter.write_line(
        f"API contract: {checked} responses checked against api/openapi.yaml")


@pytest.fixture(scope="session")
def pg_cluster():
    """The session's throwaway PostgreSQL cluster (Unix socket only)."""
    with started_cluster() as cluster:
        yield cluster


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


_db_counter = itertools.count(1)


def _store_factory(request, leased):
    """make(backend, data_dir) -> StoreTarget; on PostgreSQL with an empty database of its own
    from the cluster's pool, noted in `leased` for _release()."""

    def make(backend, data_dir):
        if backend == "postgres":
            cluster = request.getfixturevalue("pg_cluster")
            dbname = cluster.lease_database(f"t{os.getpid()}")
            leased.append((cluster, dbname))
            return StoreTarget(backend, data_dir, cluster, dbname)
        return StoreTarget(backend, data_dir)

    return make


def _release(leased):
    for cluster, dbname in leased:
        cluster.release_database(dbname)


@pytest.fixture
def new_store(backend, request, tmp_path):
    """Factory: a fresh StoreTarget (new data directory; on PostgreSQL an empty database of
    its own, from the cluster's pool: returned emptied when the test ends)."""
    counter = itertools.count(1)
    leased = []
    make = _store_factory(request, leased)
    yield lambda: make(backend, tmp_path / f"data{next(counter)}")
    _release(leased)


@pytest.fixture(scope="module")
def module_stores(request):
    """Factory for modules that keep one server per backend for all their tests:
    module_stores(backend, data_dir) -> StoreTarget, as new_store gives, its database
    returned emptied when the module ends (after the module's own fixtures stopped their
    servers)."""
    leased = []
    yield _store_factory(request, leased)
    _release(leased)


@pytest.fixture
def store(new_store):
    """The test's own fresh store."""
    return new_store()


@pytest.fixture
def tandem_server(new_store, tmp_path):
    """Factory: tandem_server(env={...}, args=[...], store=None, start=True) -> TandemServer.

    Each call gets a fresh store unless one is given (give the same store to two servers to
    share a database). At teardown every server still running gets SIGTERM and must exit 0.
    """
    servers = []

    def make(env=None, args=(), store=None, start=True):
        srv = TandemServer(store or new_store(), tmp_path, env=env, args=args,
                           name=f"tandem{len(servers) + 1}")
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make

    problems = []
    for srv in servers:
        if srv.proc is None:
            continue
        if srv.returncode is not None:
            continue  # the test stopped it and checked the outcome itself
        try:
            rc = srv.stop()
        except AssertionError as e:
            problems.append(str(e))
            continue
        if rc != 0:
            problems.append(f"{srv.log_path.name} exited with {rc} on SIGTERM:\n"
                            f"{srv.stderr_text()[-4000:]}")
    assert not problems, "\n\n".join(problems)


@pytest.fixture
def server(tandem_server):
    """A started server with default settings on a fresh store."""
    return tandem_server()


@pytest.fixture
def api(server):
    client = server.api()
    yield client
    client.close()


@pytest.fixture
def tandem_cli(new_store):
    """Run a tandem command to completion: tandem_cli("migrate", store=s, env={...}).

    The command sees the harness's base environment, the store's settings (one fresh store
    shared by the test's calls when none is given) and then `env` (a value of None removes a
    variable).
    """
    default = []

    def run(*args, store=None, env=None, timeout=60, input=None):
        if store is None:
            if not default:
                default.append(new_store())
            store = default[0]
        target = store
        full = base_env()
        full.update(target.env())
        full.update(env or {})
        full = {k: v for k, v in full.items() if v is not None}
        return run_tandem(list(args), full, cwd=target.data_dir, timeout=timeout, input=input)

    return run


@pytest.fixture
def redis_server(tmp_path):
    """Factory: redis_server(unix=False) -> a started redis-server of this test's own (TCP on
    127.0.0.1 or a Unix socket; tests/redis_server.py), stopped at teardown, its log left in
    tmp_path; .stop() / .start() for an outage."""
    servers = RedisServers(tmp_path)
    yield servers
    servers.close()
