-- POST /v1/projects/{id}/tasks in a project where the user is owner or member (assignee: the user)
local lib = dofile((os.getenv("BENCH_DIR") or "bench") .. "/lib.lua")
setup = lib.setup
function init(args) lib.thread_id = thread_id; lib.init(thread_id) end
request = lib.create_task
done = lib.done
