"""The throwaway redis-server of the limiter and real-time steps (tests/redis_server.py's
RedisServer), started on first use and stopped at the end of a backend's run."""

import shutil
import sys

from .common import TESTS, log


class LazyRedis:
    """A throwaway redis-server (tests/redis_server.py) started on first use, on 127.0.0.1,
    in bench/.cache/run/<backend>/redis; stop() at the end of the backend's run."""

    def __init__(self, base):
        self.base = base
        self.server = None
        self.failed = None

    def get(self):
        """The started RedisServer, or None (with self.failed saying why)."""
        if self.server or self.failed:
            return self.server
        try:
            if TESTS not in sys.path:
                sys.path.insert(0, TESTS)
            import redis_server
            shutil.rmtree(self.base, ignore_errors=True)
            self.server = redis_server.RedisServer(self.base).start()
            log(f"redis-server pid {self.server.proc.pid} on {self.server.url}")
        except Exception as e:  # noqa: BLE001 - redis-server missing or not starting
            self.failed = str(e).splitlines()[0] if str(e) else type(e).__name__
            log(f"no Redis: {self.failed}")
        return self.server

    def fresh(self):
        r = self.get()
        if r:
            r.command("FLUSHALL")
            r.command("CONFIG", "RESETSTAT")
        return r

    def stop(self):
        if self.server:
            self.server.stop()
            self.server = None


def redis_script_calls(r):
    """EVAL + EVALSHA calls since the last CONFIG RESETSTAT (the limiter's Lua script)."""
    n = 0
    for k, v in r.info("commandstats").items():
        if k in ("cmdstat_eval", "cmdstat_evalsha"):
            n += int(dict(x.split("=", 1) for x in v.split(","))["calls"])
    return n


def redis_numsub(r, channel="tandem:events"):
    _name, n = r.command("PUBSUB", "NUMSUB", channel)
    return int(n)
