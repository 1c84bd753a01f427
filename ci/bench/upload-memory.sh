#!/usr/bin/env bash
# hearthd memory during a large package upload (run by `make bench`).
#
# Packs a ~1 GiB package (sdk/examples/hello-oci with a static busybox and
# BENCH_UPLOAD_MIB, default 1024, MiB of random data in its rootfs, so squashfs cannot
# compress it), starts a release hearthd, completes setup, resets hearthd's peak RSS
# counter (/proc/PID/clear_refs, so argon2id's 64 MiB during setup is not counted), then
# uploads the package with curl (POST /rest/package/upload: streamed to disk, verified,
# copied and unpacked by hearthd) while sampling VmRSS every 50 ms. Prints idle RSS,
# hearthd's VmHWM (kernel peak RSS) over the upload + install, the sampled maximum, the
# growth over idle, and the peak against the 64 MiB target (exit 1 over target).
# Needs mksquashfs, busybox (static), curl, python3; root for clear_refs (without it the
# peak includes setup and is reported as such). Needs ~5 x BENCH_UPLOAD_MIB of disk.
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh
MIB="${BENCH_UPLOAD_MIB:-1024}"
TARGET_KB=$((64 * 1024))
for tool in mksquashfs busybox curl python3; do
  command -v "$tool" >/dev/null || { echo "upload-memory: needs $tool" >&2; exit 1; }
done

cargo build --release -q -p hearthd -p hearth-cli
BIN="$CARGO_TARGET_DIR/release"

WORK="$(mktemp -d)"
HEARTHD_PID=""
SAMPLER_PID=""
cleanup() {
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
  if [ -n "$HEARTHD_PID" ]; then kill "$HEARTHD_PID" 2>/dev/null || true; wait "$HEARTHD_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "-- packing a package with ${MIB} MiB of random data in its rootfs"
cp -r sdk/examples/hello-oci "$WORK/proj"
mkdir -p "$WORK/proj/rootfs/bin" "$WORK/proj/rootfs/var/blob"
cp "$(command -v busybox)" "$WORK/proj/rootfs/bin/busybox"
head -c "$((MIB * 1024 * 1024))" /dev/urandom >"$WORK/proj/rootfs/var/blob/random.bin"
python3 - "$WORK/proj/hearth.toml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace('oci = "image"', 'rootfs = "rootfs"')
s = s.replace('[[service.daemons]]\nid = "httpd"\nimage = "main"\n',
              '[[service.daemons]]\nid = "httpd"\nimage = "main"\n'
              'command = ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/srv/www"]\n')
open(p, "w").write(s)
PY
"$BIN/hearth" key generate --out "$WORK/key.pem" >/dev/null
started=$(date +%s.%N)
"$BIN/hearth" s9pk pack "$WORK/proj" --key "$WORK/key.pem" -o "$WORK/big.s9pk" 2>"$WORK/pack.err" \
  || { cat "$WORK/pack.err" >&2; exit 1; }
rm -rf "$WORK/proj"
SIZE=$(stat -c %s "$WORK/big.s9pk")
awk -v s="$SIZE" -v t0="$started" -v t1="$(date +%s.%N)" \
  'BEGIN { printf "package: %.1f MiB (packed in %.1f s)\n", s / 1048576, t1 - t0 }'

"$BIN/hearthd" --data-dir "$WORK/data" --listen 127.0.0.1:0 --log warn \
  >"$WORK/hearthd.out" 2>"$WORK/hearthd.err" &
HEARTHD_PID=$!
URL=""
for _ in $(seq 1 200); do
  URL="$(sed -n 's/^hearthd listening on \(http:[^ ]*\).*/\1/p' "$WORK/hearthd.out" | head -n 1)"
  [ -n "$URL" ] && break
  sleep 0.05
done
[ -n "$URL" ] || { echo "upload-memory: hearthd did not start" >&2; cat "$WORK/hearthd.err" >&2; exit 1; }
AUTH="x-hearth-local-auth: $(cat "$WORK/data/run/local.cookie")"
curl -sf "$URL/rpc/v1" -H 'content-type: application/json' -H "$AUTH" \
  -d '{"method":"setup.complete","params":{"password":"password123","hostname":"hearth"}}' >/dev/null
sleep 1

status_kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$HEARTHD_PID/status"; }
IDLE_KB=$(status_kb VmRSS)
if echo 5 >"/proc/$HEARTHD_PID/clear_refs" 2>/dev/null; then
  HWM_NOTE="peak reset after setup"
else
  HWM_NOTE="peak since start, includes setup's argon2id (clear_refs needs root)"
fi

# Sample VmRSS every 50 ms while the upload runs.
(
  max=0
  while kill -0 "$HEARTHD_PID" 2>/dev/null && [ ! -e "$WORK/done" ]; do
    kb=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$HEARTHD_PID/status" 2>/dev/null || echo 0)
    [ "${kb:-0}" -gt "$max" ] && max=$kb && echo "$max" >"$WORK/sampled"
    sleep 0.05
  done
) &
SAMPLER_PID=$!

echo "-- uploading with curl"
started=$(date +%s.%N)
# -T streams the file (--data-binary @FILE would read it all into curl's memory).
curl -sS -H "$AUTH" -H 'expect:' -H 'content-type: application/octet-stream' -X POST \
  -T "$WORK/big.s9pk" "$URL/rest/package/upload?allowUntrusted=true" >"$WORK/upload.json"
ended=$(date +%s.%N)
touch "$WORK/done"
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""
python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))
assert r.get("result", {}).get("id") == "hello-oci", r' "$WORK/upload.json" \
  || { echo "upload-memory: install failed: $(cat "$WORK/upload.json")" >&2; exit 1; }
HWM_KB=$(status_kb VmHWM)
NOW_KB=$(status_kb VmRSS)
SAMPLED_KB=$(cat "$WORK/sampled" 2>/dev/null || echo 0)

awk -v s="$SIZE" -v t0="$started" -v t1="$ended" \
  'BEGIN { printf "upload + install: %.1f s (%.0f MiB/s)\n", t1 - t0, s / 1048576 / (t1 - t0) }'
echo "hearthd idle VmRSS after setup: ${IDLE_KB} kB"
echo "hearthd VmHWM over the upload (${HWM_NOTE}): ${HWM_KB} kB; sampled max VmRSS: ${SAMPLED_KB} kB; after: ${NOW_KB} kB"
awk -v h="$HWM_KB" -v i="$IDLE_KB" -v t="$TARGET_KB" -v s="$SIZE" 'BEGIN {
  printf "growth over idle: %.1f MiB for a %.0f MiB package; peak/idle: %.2f\n", (h - i) / 1024, s / 1048576, h / i
  printf "peak %.1f MiB vs target 64 MiB: ratio %.2f: %s\n", h / 1024, h / t, (h <= t ? "ok" : "OVER TARGET")
  exit (h <= t ? 0 : 1)
}'
