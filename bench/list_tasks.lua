-- GET /v1/projects/{id}/tasks?limit=50&status=todo,in_progress&sort=-priority on a project of the user
local lib = dofile((os.getenv("BENCH_DIR") or "bench") .. "/lib.lua")
setup = lib.setup
function init(args) lib.thread_id = thread_id; lib.init(thread_id) end
request = lib.list_tasks
done = lib.done
