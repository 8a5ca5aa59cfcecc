-- GET /v1/tasks/{id} — a task the token's user can see (user lookup + membership-checked read)
local lib = dofile((os.getenv("BENCH_DIR") or "bench") .. "/lib.lua")
setup = lib.setup
function init(args) lib.thread_id = thread_id; lib.init(thread_id) end
request = lib.get_task
done = lib.done
