-- wrk script for benches/load.sh: POST a Responses-API request body.
--
--   wrk ... -s benches/lua/responses.lua <url> -- <keys-file> <mode> <body-bytes> <stream> [count-statuses]
--
--   keys-file       one consumer key per line (the 1,000 keys of the generated decK config)
--   mode            good: send the keys of the file, rotated; bad: send keys no consumer has
--   body-bytes      approximate size of the JSON body (~200 for scenario a, 102400 for d)
--   stream          1: add "stream":true and the header x-bench-stream: 1 (the upstream then answers SSE)
--   count-statuses  1: count every response status (a response() hook; costs wrk some CPU)
--
-- Requests are built once in init() (a ring of up to 1,000 per thread, fewer for big bodies so a
-- thread holds at most ~16 MB), so the per-request Lua cost is one table lookup.
-- done() prints one machine-readable line that load.sh parses:
--   BENCH requests=N duration_us=N bytes=N p50_us=N p99_us=N max_us=N connect=N read=N write=N timeout=N status=N
-- and, with count-statuses, one line per status:  BENCH_STATUS <code> <count>

local threads = {}
local next_id = 0

function setup(thread)
   next_id = next_id + 1
   thread:set("tid", next_id)
   table.insert(threads, thread)
end

local reqs = {}
local nreqs = 0
local idx = 0
statuses = {}

local function count_status(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

local function json_body(size, stream)
   local head = '{"model":"gpt-4o","instructions":"Answer in one short sentence.",' ..
      '"max_output_tokens":256,"temperature":0.7,"user":"bench-user","stream":' ..
      (stream and "true" or "false") .. ',"input":"'
   local text = "How many requests per second can a gateway on two cores proxy?"
   local tail = '"}'
   local pad = size - #head - #text - #tail
   if pad > 0 then
      -- plain ASCII filler, no escaping needed
      local chunk = " lorem ipsum dolor sit amet"
      text = text .. string.rep(chunk, math.floor(pad / #chunk)) .. string.rep("x", pad % #chunk)
   end
   return head .. text .. tail
end

function init(args)
   local keys_file = args[1]
   local mode = args[2] or "good"
   local size = tonumber(args[3] or "200")
   local stream = (args[4] == "1")
   local count = (args[5] == "1")
   local tid = tid or 1

   local keys = {}
   local f = assert(io.open(keys_file, "r"), "cannot open keys file " .. tostring(keys_file))
   for line in f:lines() do
      if #line > 0 then keys[#keys + 1] = line end
   end
   f:close()
   assert(#keys > 0, "no keys in " .. keys_file)

   local body = json_body(size, stream)
   local limit = math.max(8, math.floor(16 * 1024 * 1024 / (#body + 300)))
   nreqs = math.min(#keys, limit)
   -- different threads start at different keys
   local start = ((tid - 1) * 7919) % #keys
   for i = 1, nreqs do
      local key = keys[((start + i - 1) % #keys) + 1]
      if mode == "bad" then
         key = "wrong-" .. tid .. "-" .. i .. "-" .. string.sub(key, -8)
      end
      local headers = {
         ["Content-Type"] = "application/json",
         ["apikey"] = key,
      }
      if stream then
         headers["x-bench-stream"] = "1"
         headers["Accept"] = "text/event-stream"
      end
      reqs[i] = wrk.format("POST", nil, headers, body)
   end
   if count then
      response = count_status
   end
end

function request()
   idx = idx + 1
   if idx > nreqs then idx = 1 end
   return reqs[idx]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d max_us=%d connect=%d read=%d write=%d timeout=%d status=%d\n",
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.timeout, e.status))
   local total = {}
   for _, t in ipairs(threads) do
      local s = t:get("statuses")
      if type(s) == "table" then
         for code, n in pairs(s) do total[code] = (total[code] or 0) + n end
      end
   end
   for code, n in pairs(total) do
      io.write(string.format("BENCH_STATUS %s %d\n", tostring(code), n))
   end
end
