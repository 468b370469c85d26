-- Shared by every bench/run measurement: one machine-readable line at the end,
--   RESULT <requests> <seconds> <non-2xx> <socket errors> <p50 µs> <p99 µs>
-- (wrk's own "Requests/sec" counts failures too; bench/run counts 2xx only).
function report(summary, latency)
   local errors = summary.errors
   local socket = errors.connect + errors.read + errors.write + errors.timeout
   io.write(string.format("RESULT %d %.3f %d %d %d %d\n", summary.requests, summary.duration / 1e6,
      errors.status, socket, latency:percentile(50), latency:percentile(99)))
end

done = function(summary, latency, requests)
   report(summary, latency)
end
