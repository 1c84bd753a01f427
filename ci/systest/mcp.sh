#!/usr/bin/env bash
# System test: hearthd's MCP server at /mcp, driven by the official MCP Python SDK
# (`mcp` from PyPI) as a real client. Starts hearthd on a free loopback port with a
# temporary data dir, completes setup, gets an API token over JSON-RPC, checks that /mcp
# refuses anonymous requests, accepts the session cookie and binds the session to it,
# then runs ci/systest/mcp_client.py (tools and their hints, server.info, subscribe,
# update notification, a read-scoped token).
# Needs PyPI the first time (the venv is kept under $CARGO_TARGET_DIR/py-mcp).
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh

venv="$CARGO_TARGET_DIR/py-mcp"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# mcp 2.x: the Client API used by mcp_client.py.
"$venv/bin/python" -c 'import importlib.metadata as m; assert m.version("mcp").split(".")[0] == "2"' \
  2>/dev/null || "$venv/bin/pip" install -q 'mcp>=2.3,<3'

cargo build -q -p hearthd

work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "mcp systest: $*" >&2
  echo "--- hearthd stderr (tail)" >&2
  tail -n 30 "$work/stderr" >&2 || true
  exit 1
}

: >"$work/stdout"
"$CARGO_TARGET_DIR/debug/hearthd" --data-dir "$work/data" --listen 127.0.0.1:0 \
  >"$work/stdout" 2>"$work/stderr" &
pid=$!
base=""
for _ in $(seq 200); do
  base="$(sed -n 's#^hearthd listening on \(http://[^ ]*\).*#\1#p' "$work/stdout" | head -n 1)"
  [ -n "$base" ] && break
  kill -0 "$pid" 2>/dev/null || fail "hearthd exited during start-up"
  sleep 0.05
done
[ -n "$base" ] || fail "hearthd did not announce its address"
echo "hearthd at $base (pid $pid)"

# rpc METHOD PARAMS [curl args...]: prints the JSON-RPC result, fails on an error.
rpc() {
  local method="$1" params="$2"
  shift 2
  local reply
  reply="$(curl -sS "$base/rpc/v1" -H 'content-type: application/json' "$@" \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$method\",\"params\":$params}")"
  if [ "$(jq -r 'has("error")' <<<"$reply")" = true ]; then
    fail "$method: $reply"
  fi
  jq -c '.result' <<<"$reply"
}

password="mcp-systest-password"
# The setup code, read from its file as a person with access to the machine would.
code="$(cat "$work/data/setup-code")"
rpc setup.complete "{\"password\":\"$password\",\"hostname\":\"mcp-systest\",\"setupCode\":\"$code\"}" >/dev/null
curl -sS -D "$work/login.headers" -o /dev/null "$base/rpc/v1" -H 'content-type: application/json' \
  -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"auth.login\",\"params\":{\"password\":\"$password\"}}"
cookie="$(sed -n 's/^[Ss]et-[Cc]ookie: \(session=[^;]*\).*/\1/p' "$work/login.headers" | head -n 1)"
[ -n "$cookie" ] || fail "auth.login set no session cookie"
token="$(rpc auth.token.create '{"name":"mcp-systest","scope":"admin"}' -H "Cookie: $cookie" | jq -r '.token')"
[ -n "$token" ] && [ "$token" != null ] || fail "auth.token.create returned no token"
read_token="$(rpc auth.token.create '{"name":"mcp-reader","scope":"read"}' -H "Cookie: $cookie" | jq -r '.token')"
[ -n "$read_token" ] && [ "$read_token" != null ] || fail "auth.token.create (read) returned no token"

init='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"curl","version":"0"}}}'
mcp_post() {
  curl -sS -o "$work/mcp.body" -D "$work/mcp.headers" -w '%{http_code}' "$base/mcp" \
    -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
    "$@" -d "$init"
}
status="$(mcp_post)"
[ "$status" = 401 ] || fail "anonymous MCP initialize gave HTTP $status, want 401"
status="$(mcp_post -H 'Authorization: Bearer not-a-token')"
[ "$status" = 401 ] || fail "MCP initialize with a bad token gave HTTP $status, want 401"
status="$(mcp_post -H "Cookie: $cookie")"
[ "$status" = 200 ] || fail "MCP initialize with the session cookie gave HTTP $status"
grep -qi '^mcp-session-id: ' "$work/mcp.headers" || fail "initialize returned no Mcp-Session-Id"
grep -q '"protocolVersion":"2025-03-26"' "$work/mcp.body" || fail "2025-03-26 not negotiated: $(cat "$work/mcp.body")"
session_id="$(sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: *\([^[:space:]]*\).*/\1/p' "$work/mcp.headers" | head -n 1)"
# The session is bound to the cookie's principal: the API token may not use it.
status="$(curl -sS -o "$work/mcp.body" -w '%{http_code}' "$base/mcp" \
  -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
  -H "Authorization: Bearer $token" -H "Mcp-Session-Id: $session_id" \
  -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}')"
[ "$status" = 403 ] || fail "another principal on the session gave HTTP $status, want 403"
grep -q sessionOwner "$work/mcp.body" || fail "no sessionOwner reason: $(cat "$work/mcp.body")"
echo "auth: anonymous and bad token refused, session cookie accepted, session bound to it"

"$venv/bin/python" ci/systest/mcp_client.py "$base" "$token" "$read_token" || fail "MCP Python client failed"

kill "$pid"
wait "$pid" || fail "hearthd did not exit cleanly on SIGTERM"
pid=""
echo "mcp systest passed"
