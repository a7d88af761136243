-- wrk script for bench/load/run-load.sh: POSTs an OpenAI chat completion request.
--   BODY_FILE  the JSON body (request.json or request-stream.json)
--   API_KEY    sent as "Authorization: Bearer ..." (the fake provider and the nginx hop ignore it)
--   UNIQUE=1   every in-flight request gets its own body: the last user message carries "(tN-k)", k cycling
--              over 4096 per thread, so no two concurrent requests are identical and the gateway's dedup never
--              coalesces them. The bodies are formatted once in init(): request() costs a table lookup.
-- done() prints one machine-readable "RESULT ..." line (latencies in microseconds) for run-load.sh.

local function read_body()
  local path = os.getenv("BODY_FILE") or error("BODY_FILE is not set")
  local f = assert(io.open(path, "rb"))
  local b = f:read("*a")
  f:close()
  return (b:gsub("%s+$", ""))
end

local body = read_body()
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("API_KEY") or "sk-tr-bench")

local unique = os.getenv("UNIQUE") == "1"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

if unique then
  local marker = "same cabin."
  local pool, n, i = {}, 4096, 0

  function init(args)
    local at = body:find(marker, 1, true) or error("marker not found in the body")
    local head, tail = body:sub(1, at + #marker - 1), body:sub(at + #marker)
    for k = 1, n do
      pool[k] = wrk.format(nil, nil, nil, head .. " (t" .. tostring(tid) .. "-" .. k .. ")" .. tail)
    end
  end

  function request()
    i = i % n + 1
    return pool[i]
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d bytes=%d err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d "
      .. "lat_mean=%.1f lat_stdev=%.1f lat_p50=%d lat_p90=%d lat_p99=%d lat_max=%d\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
