-- post.lua — wrk script of bench/httpd/run: POST a small JSON object, with
-- "Connection: close" when BENCH_CLOSE=1 (keep-alive off), and print one
-- JSON summary line (rps, p50/p95/p99 in ms, errors) at the end.
wrk.method = "POST"
wrk.body = '{"user_id":"u1","text":"I am so happy today"}'
wrk.headers["Content-Type"] = "application/json"
if os.getenv("BENCH_CLOSE") == "1" then
	wrk.headers["Connection"] = "close"
end

done = function(summary, latency, requests)
	local e = summary.errors
	local secs = summary.duration / 1e6
	io.write(string.format(
		'{"requests":%d,"rps":%.1f,"p50_ms":%.3f,"p95_ms":%.3f,"p99_ms":%.3f,' ..
		'"errors":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"non2xx":%d}\n',
		summary.requests, summary.requests / secs,
		latency:percentile(50) / 1000, latency:percentile(95) / 1000,
		latency:percentile(99) / 1000,
		e.connect + e.read + e.write + e.timeout, e.connect, e.read, e.write, e.timeout,
		e.status))
end
