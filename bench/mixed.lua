-- A mixed workload over every user: 80 % reads (60 % GET /v1/tasks/{id}, 20 % task lists),
-- 20 % writes (10 % POST /v1/projects/{id}/tasks, 10 % PATCH /v1/tasks/{id}).
local lib = dofile((os.getenv("BENCH_DIR") or "bench") .. "/lib.lua")
setup = lib.setup
function init(args) lib.thread_id = thread_id; lib.init(thread_id) end
function request()
  local x = math.random(100)
  if x <= 60 then return lib.get_task() end
  if x <= 80 then return lib.list_tasks() end
  if x <= 90 then return lib.create_task() end
  return lib.patch_task()
end
done = lib.done
