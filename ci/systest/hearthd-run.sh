#!/usr/bin/env bash
# System test of `make run` (ci/run.sh): starts on 127.0.0.1, prints the URL and how to
# finish setup, following those instructions works, Ctrl-C (SIGINT) stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh
tmp="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

HEARTH_DATA_DIR="$tmp/data" HEARTH_LISTEN=127.0.0.1:0 setsid ./ci/run.sh >"$tmp/out" 2>"$tmp/err" &
pid=$!
url=""
for _ in $(seq 1 600); do
  url="$(sed -n 's|^hearthd listening on \(http://[^ ]*\)$|\1|p' "$tmp/out")"
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "hearthd-run: make run exited early" >&2; cat "$tmp/err" >&2; exit 1; }
  sleep 0.5
done
[ -n "$url" ] || { echo "hearthd-run: no URL printed" >&2; cat "$tmp/out" "$tmp/err" >&2; exit 1; }
grep -q 'setup mode' "$tmp/out" || { echo "hearthd-run: no setup instructions" >&2; exit 1; }
grep -Eq 'Setup code: [A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}\.' "$tmp/out" || { echo "hearthd-run: no setup code next to the URL" >&2; exit 1; }
# Follow the printed instructions (with a real password).
cmd="$(grep -o "curl -s .*setup.complete.*" "$tmp/out" | sed 's/<at least 8 chars>/systest-password/')"
out="$(eval "$cmd")"
echo "$out" | jq -e '.revision > 0' >/dev/null || { echo "hearthd-run: setup failed: $out" >&2; exit 1; }
login="$(curl -s -i "$url/rpc/v1" -H 'content-type: application/json' \
  -d '{"method":"auth.login","params":{"password":"systest-password"}}')"
echo "$login" | grep -i '^set-cookie: session=.*HttpOnly' >/dev/null || { echo "hearthd-run: login failed: $login" >&2; exit 1; }
# Ctrl-C: SIGINT to the process group, as a terminal does.
kill -INT -- "-$pid"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then echo "hearthd-run: still running 10 s after Ctrl-C" >&2; exit 1; fi
wait "$pid" && status=0 || status=$?
pid=""
[ "$status" -eq 0 ] || { echo "hearthd-run: exit status $status after Ctrl-C" >&2; cat "$tmp/err" >&2; exit 1; }
grep -q 'hearthd stopped' "$tmp/err" || { echo "hearthd-run: no clean shutdown in the log" >&2; exit 1; }
echo "hearthd-run: ok ($url)"
