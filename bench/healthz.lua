-- GET /healthz: no authentication, no database. The HTTP layer's own cost.
local lib = dofile((os.getenv("BENCH_DIR") or "bench") .. "/lib.lua")
wrk.method = "GET"
wrk.path = "/healthz"
setup = lib.setup
done = lib.done
