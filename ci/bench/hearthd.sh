#!/usr/bin/env bash
# hearthd benchmarks (run by `make bench`), figures and ratios measured in this run:
#  1. server.echo requests/s over keep-alive HTTP, 64 connections (wrk + Lua POST body),
#     against a minimal hyper hello-world built from the same workspace (target >= 0.7).
#  2. idle RSS of hearthd after setup (target <= 20 MB), and after a login.
#  3. RSS and patch latency (p50/p99) with 1,000 /ws/db subscribers while 100 mutations/s
#     are applied (supervisor/api/examples/ws_load.rs).
# BENCH_SECONDS (default 10) sets the length of each measurement.
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh
SECS="${BENCH_SECONDS:-10}"
SUBSCRIBERS="${BENCH_SUBSCRIBERS:-1000}"
RATE="${BENCH_RATE:-100}"

cargo build --release -q -p hearthd
cargo build --release -q -p hearth-api --example hello --example ws_load
BIN="$CARGO_TARGET_DIR/release"
EX="$CARGO_TARGET_DIR/release/examples"

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

# start NAME CMD... : runs CMD in the background, waits for its "listening on http://" line,
# sets ADDR and PID.
start() {
  local name="$1"; shift
  "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  PID=$!
  pids+=("$PID")
  for _ in $(seq 1 200); do
    ADDR="$(sed -n 's|.*listening on http://\([^ ]*\).*|\1|p' "$tmp/$name.out" | head -1)"
    [ -n "$ADDR" ] && return 0
    sleep 0.05
  done
  echo "bench: $name did not start" >&2; cat "$tmp/$name.err" >&2; exit 1
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
rpc() { curl -sf "http://$1/rpc/v1" -H 'content-type: application/json' "${@:3}" -d "$2"; }
rps() { awk '/^Requests\/sec:/ {print $2}'; }

cat >"$tmp/echo.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"server.echo","params":{"message":"hello"}}'
LUA

echo "-- 1. server.echo over keep-alive HTTP, 64 connections (3 alternating rounds of ${SECS}s)"
start hello "$EX/hello" 127.0.0.1:0
HELLO="$ADDR"; HELLO_PID="$PID"
rpc "$HELLO" '{}' >/dev/null
mkdir -p "$tmp/d1"
start hearthd "$BIN/hearthd" --data-dir "$tmp/d1" --listen 127.0.0.1:0 --log warn
echo_out="$(rpc "$ADDR" '{"jsonrpc":"2.0","id":1,"method":"server.echo","params":{"message":"hello"}}')"
[ "$(echo "$echo_out" | jq -r .result)" = hello ] || { echo "bench: echo failed: $echo_out" >&2; exit 1; }
ratios=()
for round in 1 2 3; do
  # Alternate so that load from other processes hits both servers alike; compare within
  # a round, then take the median round.
  b="$(wrk -t2 -c64 -d"${SECS}s" -s "$tmp/echo.lua" "http://$HELLO/" | rps)"
  wrk -t2 -c64 -d"${SECS}s" -s "$tmp/echo.lua" "http://$ADDR/rpc/v1" >"$tmp/wrk-hearthd.txt"
  if grep -q 'Non-2xx' "$tmp/wrk-hearthd.txt"; then echo "bench: hearthd answered errors" >&2; cat "$tmp/wrk-hearthd.txt" >&2; exit 1; fi
  o="$(rps <"$tmp/wrk-hearthd.txt")"
  r="$(awk -v a="$o" -v b="$b" 'BEGIN { printf "%.3f", a / b }')"
  ratios+=("$r")
  echo "round $round: hyper hello-world $b req/s, hearthd server.echo $o req/s, ratio $r"
done
kill "$HELLO_PID"
median="$(printf '%s\n' "${ratios[@]}" | sort -n | sed -n 2p)"
awk -v r="$median" 'BEGIN { printf "ratio hearthd/hello (median of 3 rounds): %.2f (target >= 0.70) %s\n", r, (r >= 0.7 ? "OK" : "BELOW TARGET") }'

echo "-- 2. idle RSS"
kill "$PID"; wait "$PID" 2>/dev/null || true
mkdir -p "$tmp/d2"
start hearthd2 "$BIN/hearthd" --data-dir "$tmp/d2" --listen 127.0.0.1:0 --log warn
rpc "$ADDR" '{"method":"setup.complete","params":{"password":"bench-password","hostname":"bench"}}' -H "x-hearth-local-auth: $(cat "$tmp/d2/run/local.cookie")" >/dev/null
sleep 2
idle="$(rss_kb "$PID")"
rpc "$ADDR" '{"method":"auth.login","params":{"password":"bench-password"}}' >/dev/null
sleep 2
after_login="$(rss_kb "$PID")"
awk -v a="$idle" 'BEGIN { printf "hearthd idle RSS after setup: %.1f MB (target <= 20 MB) %s\n", a / 1024, (a <= 20480 ? "OK" : "ABOVE TARGET") }'
awk -v a="$after_login" 'BEGIN { printf "hearthd idle RSS after a login: %.1f MB\n", a / 1024 }'
kill "$PID"; wait "$PID" 2>/dev/null || true

echo "-- 3. $SUBSCRIBERS /ws/db subscribers, $RATE mutations/s for ${SECS}s"
mkdir -p "$tmp/d3"
start hearthd3 "$BIN/hearthd" --data-dir "$tmp/d3" --listen 127.0.0.1:0 --log warn
HPID="$PID"
rpc "$ADDR" '{"method":"setup.complete","params":{"password":"bench-password","hostname":"bench"}}' -H "x-hearth-local-auth: $(cat "$tmp/d3/run/local.cookie")" >/dev/null
sleep 1
before_ws="$(rss_kb "$HPID")"
# Baseline in the same run: the mutation round trip with no subscribers.
"$EX/ws_load" "$ADDR" "$tmp/d3/run/local.cookie" 0 "$RATE" 3 >"$tmp/ws0.out"
base_rtt="$(sed -n 's/^rpc round trip ms: p50 \([0-9.]*\).*/\1/p' "$tmp/ws0.out")"
echo "baseline without subscribers: $(grep '^rpc round trip' "$tmp/ws0.out")"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
cpu0="$(cpu_ticks "$HPID")"; t0="$(date +%s.%N)"
"$EX/ws_load" "$ADDR" "$tmp/d3/run/local.cookie" "$SUBSCRIBERS" "$RATE" "$SECS" >"$tmp/ws.out" &
LPID=$!
pids+=("$LPID")
peak=0
while kill -0 "$LPID" 2>/dev/null; do
  r="$(rss_kb "$HPID")"; [ "$r" -gt "$peak" ] && peak="$r"
  sleep 0.25
done
wait "$LPID"
cpu1="$(cpu_ticks "$HPID")"; t1="$(date +%s.%N)"
cat "$tmp/ws.out"
p50="$(sed -n 's/^patch latency ms: p50 \([0-9.]*\).*/\1/p' "$tmp/ws.out")"
awk -v p="$p50" -v b="$base_rtt" 'BEGIN { printf "ratio patch p50 with subscribers / mutation round trip without: %.1f\n", p / b }'
awk -v c="$((cpu1 - cpu0))" -v hz="$(getconf CLK_TCK)" -v t0="$t0" -v t1="$t1" -v n="$(nproc)" 'BEGIN {
  printf "hearthd CPU during the run: %.0f%% of one core (machine has %d cores; load from other processes is not controlled)\n", 100 * c / hz / (t1 - t0), n }'
awk -v a="$before_ws" -v p="$peak" -v n="$SUBSCRIBERS" 'BEGIN {
  printf "hearthd RSS: %.1f MB before, %.1f MB peak with %d subscribers (ratio %.2f, %.1f KB per subscriber)\n",
    a / 1024, p / 1024, n, p / a, (p - a) / n }'
