#!/usr/bin/env bash
# hearth-container resident memory (run by `make bench`): builds the release binary
# (static musl if that target is installed, else glibc), runs it with one idle daemon
# (`sleep infinity`) plus a connected client that asked for `status`, and compares its
# VmRSS with an idle Node.js process measured in the same run. Target: <= 1/10.
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh
command -v node >/dev/null || { echo "container-rss: needs node (the Node.js baseline); apt-get install nodejs" >&2; exit 1; }
command -v python3 >/dev/null || { echo "container-rss: needs python3 (the RPC client)" >&2; exit 1; }

target_args=()
bin_dir="$CARGO_TARGET_DIR/release"
if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  target_args=(--target x86_64-unknown-linux-musl)
  bin_dir="$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release"
  kind="static musl"
else
  kind="glibc (x86_64-unknown-linux-musl not installed)"
fi
cargo build --release -q -p hearth-container "${target_args[@]}"
bin="$bin_dir/hearth-container"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo '{"daemons":[{"id":"idle","image":"main","command":["sleep","infinity"]}]}' >"$work/spec.json"
"$bin" --spec "$work/spec.json" --rpc-dir "$work/rpc" --log-dir "$work/logs" \
  --subreaper --autostart 2>"$work/container.log" &
pids+=($!)
container=$!

node -e 'setInterval(()=>{},1e9)' &
pids+=($!)
node_pid=$!

for _ in $(seq 100); do [ -S "$work/rpc/service.sock" ] && break; sleep 0.05; done
# Keep a client connected (it gets status.changed pushes) after one status call.
python3 - "$work/rpc/service.sock" <<'PY' &
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"status"}\n')
lines = s.makefile()
reply = json.loads(lines.readline())
while "method" in reply:  # status.changed notifications
    reply = json.loads(lines.readline())
assert reply["result"]["daemons"][0]["state"] == "running", reply
time.sleep(30)
PY
pids+=($!)
sleep 2

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
container_kb=$(rss_kb "$container")
node_kb=$(rss_kb "$node_pid")
threads=$(awk '/^Threads:/ {print $2}' "/proc/$container/status")
size=$(stat -c %s "$bin")
echo "hearth-container ($kind, ${size} bytes on disk, ${threads} threads): VmRSS ${container_kb} kB"
echo "idle node ($(node --version)): VmRSS ${node_kb} kB"
awk -v c="$container_kb" -v n="$node_kb" 'BEGIN {
  r = c / n
  printf "ratio: %.3f (target <= 0.100): %s\n", r, (r <= 0.1 ? "ok" : "OVER TARGET")
  exit (r <= 0.1 ? 0 : 1)
}'
