-- wrk's end-of-run report as one JSON line for perf/runner.py (prefix
-- "WRKJSON "): requests, bytes, duration, every error kind, the latency
-- mean and percentiles in milliseconds (wrk measures microseconds).
done = function(summary, latency, requests)
  local pct = {}
  for _, p in ipairs({ 10, 25, 50, 75, 90, 95, 99, 99.9 }) do
    pct[#pct + 1] = string.format('"%s": %.4f', tostring(p), latency:percentile(p) / 1000)
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "bytes": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, "mean_ms": %.4f, "latency_ms": {%s}}\n',
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean / 1000, table.concat(pct, ", ")))
end
