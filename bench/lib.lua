-- lib.lua — shared by the wrk scripts (bench/*.lua): loads the users, tokens and ids that
-- bench/seed.py wrote, picks a user per request, and writes wrk's summary as JSON.
--
-- Environment: BENCH_DATA (the wrk-data.txt of the data set), BENCH_WRK_JSON (where done()
-- writes the summary). Each wrk thread runs its own copy of the script (its own Lua state).

local M = {}

local function load_users(path)
  local users, u = {}, nil
  local f = assert(io.open(path, "r"), "BENCH_DATA: cannot open " .. tostring(path))
  for line in f:lines() do
    local kind, a, b = line:match("^(%a) (%S+) ?(%S*)$")
    if kind == "u" then
      u = { auth = "Bearer " .. a, id = b, r = {}, w = {}, t = {}, e = {} }
      users[#users + 1] = u
    elseif kind and u then
      local list = u[kind]
      list[#list + 1] = a
    end
  end
  f:close()
  return users
end

-- Call from init(): loads the data and seeds this thread's random generator.
function M.init(thread_id)
  M.users = load_users(os.getenv("BENCH_DATA"))
  M.readers, M.writers = {}, {}
  for _, u in ipairs(M.users) do
    if #u.t > 0 and #u.r > 0 then M.readers[#M.readers + 1] = u end
    if #u.w > 0 and #u.e > 0 then M.writers[#M.writers + 1] = u end
  end
  assert(#M.readers > 0 and #M.writers > 0, "no users in BENCH_DATA")
  -- Fixed seeds per thread: the same run picks the same sequence of users and ids.
  math.randomseed(4242 + 7919 * (thread_id or 0))
  M.counter = 0
end

function M.pick(list) return list[math.random(#list)] end
function M.reader() return M.readers[math.random(#M.readers)] end
function M.writer() return M.writers[math.random(#M.writers)] end

function M.headers(u, json)
  if json then
    return { ["Authorization"] = u.auth, ["Content-Type"] = "application/json" }
  end
  return { ["Authorization"] = u.auth }
end

local STATUSES = { "todo", "in_progress", "done" }
local PRIORITIES = { "low", "medium", "high", "urgent" }

-- The five request kinds of the issue.
function M.get_task()
  local u = M.reader()
  return wrk.format("GET", "/v1/tasks/" .. M.pick(u.t), M.headers(u))
end

M.LIST_QUERY = "?limit=50&status=todo,in_progress&sort=-priority"
function M.list_tasks()
  local u = M.reader()
  return wrk.format("GET", "/v1/projects/" .. M.pick(u.r) .. "/tasks" .. M.LIST_QUERY,
                    M.headers(u))
end

function M.create_task()
  local u = M.writer()
  M.counter = M.counter + 1
  local body = string.format(
    '{"title":"bench task %d.%d","description":"created by the benchmark",' ..
    '"priority":"%s","status":"todo","assignee_id":"%s","due_date":"2025-03-01T12:00:00Z"}',
    M.thread_id or 0, M.counter, M.pick(PRIORITIES), u.id)
  return wrk.format("POST", "/v1/projects/" .. M.pick(u.w) .. "/tasks", M.headers(u, true), body)
end

function M.patch_task()
  local u = M.writer()
  M.counter = M.counter + 1
  -- A new title every time, so that every PATCH really writes (a no-op PATCH writes nothing).
  local body = string.format('{"title":"edited %d.%d","status":"%s"}', M.thread_id or 0,
                             M.counter, M.pick(STATUSES))
  return wrk.format("PATCH", "/v1/tasks/" .. M.pick(u.e), M.headers(u, true), body)
end

-- setup() runs in the main state once per thread: number the threads.
local next_id = 0
function M.setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
end

-- done() runs in the main state after the run: write the summary as JSON.
function M.done(summary, latency, requests)
  local path = os.getenv("BENCH_WRK_JSON")
  if not path or path == "" then return end
  local e = summary.errors
  local f = assert(io.open(path, "w"))
  f:write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"p50":%d,"p75":%d,"p90":%d,"p99":%d,' ..
    '"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency:percentile(50), latency:percentile(75),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))
  f:close()
end

return M
