-- wrk script of the benchmark: POSTs one AdmissionReview body over and over and prints a
-- machine-readable summary line (BENCH {...}) at the end, with p99.9 which `wrk --latency`
-- does not print.
--
--   wrk ... -s bench/lua/post.lua URL -- BODY_FILE [rate=R | count=N]
--
-- BODY_FILE  the request body (sent with Content-Type: application/json)
-- rate=R     fixed rate: R requests/s in total, shared by wrk's threads; each thread hands
--            out send slots 1/(R/threads) s apart to whichever of its connections is free
--            (open-loop pacing as long as the latency stays under connections/R)
-- count=N    stop each thread after N responses (use with -t1 -c1 for an exact count)

local body_file, rate, count = nil, nil, nil

local function read_file(path)
   local f = assert(io.open(path, "rb"), "cannot open " .. tostring(path))
   local data = f:read("*a")
   f:close()
   return data
end

function init(args)
   body_file = args[1]
   wrk.method = "POST"
   wrk.body = read_file(body_file)
   wrk.headers["Content-Type"] = "application/json"
   for i = 2, #args do
      local k, v = string.match(args[i], "^(%a+)=([%d.]+)$")
      if k == "rate" then rate = tonumber(v)
      elseif k == "count" then count = tonumber(v)
      else error("post.lua: unknown argument " .. args[i]) end
   end

   if rate then
      local ffi = require("ffi")
      pcall(ffi.cdef, [[
         typedef struct { long tv_sec; long tv_nsec; } piw_timespec;
         int clock_gettime(int clk, piw_timespec *tp);
      ]])
      local ts = ffi.new("piw_timespec")
      local function now_ms()
         ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
         return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
      end
      local threads = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")
      local interval = 1000 * threads / rate -- ms between two sends of this thread
      local next_slot = nil
      -- Called before each request on a connection: the delay (ms) until its send slot.
      function delay()
         local now = now_ms()
         if next_slot == nil or next_slot < now - interval then
            next_slot = now -- start, or fell behind by more than a slot: do not burst
         end
         local d = next_slot - now
         next_slot = next_slot + interval
         if d < 0 then d = 0 end
         return d
      end
   end

   if count then
      local seen = 0
      function response(status, headers, body)
         seen = seen + 1
         if seen >= count then wrk.thread:stop() end
      end
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH {"requests":%d,"duration_us":%d,"bytes":%d,"rps":%.1f,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,' ..
      '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,' ..
      '"errors_timeout":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean,
      e.connect, e.read, e.write, e.status, e.timeout))
end
