-- PATCH /v1/tasks/{id} (new title and a status) on a task the user may edit
local lib = dofile((os.getenv("BENCH_DIR") or "bench") .. "/lib.lua")
setup = lib.setup
function init(args) lib.thread_id = thread_id; lib.init(thread_id) end
request = lib.patch_task
done = lib.done
