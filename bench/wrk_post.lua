-- wrk script for bench/run.py: POST the body in $WAYPORT_BENCH_BODY (headers come from wrk -H).
-- No response() callback, so wrk stays on its fast path; it counts status >= 400 in errors.status
-- and prints "Non-2xx or 3xx responses" itself. done() prints one machine-readable line
-- "WAYPORT_WRK {json}" with latencies in microseconds.

wrk.method = "POST"
wrk.body = os.getenv("WAYPORT_BENCH_BODY") or "{}"

function done(summary, latency, requests)
  local e = summary.errors
  local fields = {
    string.format('"requests":%d', summary.requests),
    string.format('"duration_us":%d', summary.duration),
    string.format('"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d',
      e.connect, e.read, e.write, e.status, e.timeout),
    string.format('"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d',
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max),
  }
  io.write("WAYPORT_WRK {" .. table.concat(fields, ",") .. "}\n")
end
