#!/usr/bin/env bash
# Boot test of the aarch64 image: cross-builds hearth-init and hearth-container (static,
# aarch64 musl) and hearthd (aarch64 gnu; ci/aarch64-bins.sh), builds hearth-imager and the
# image from imager/recipes/aarch64-uefi.toml (mmdebstrap through qemu-user-static; unless
# IMG=path is given), boots it on qemu `virt` (cortex-a72, TCG) with AAVMF, checks that
# the address came from DHCP, waits until hearthd answers `server.echo` on a forwarded
# loopback port (prints the power-on-to-answer time), completes setup, logs in and checks
# that `server.info` reports arch aarch64. Prints the time of each phase. Needs root
# (mmdebstrap). KVM does not work on the CI machines: always TCG, always under `timeout`.
#
# Environment: IMG (an image to use instead of building one), HEARTHD_PROFILE (release, the
# default, or debug), IMAGE_CACHE (a directory: the image is kept there under the hash of
# its inputs — recipe, imager, debian/, overlays/, the binaries — and reused while they are
# unchanged, ci/image-cache.sh), AARCH64_BINS (a directory that already holds the binaries
# ci/aarch64-bins.sh makes; then nothing is cross-built), VM_TEST_LOG, IMAGER_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/env.sh
. ci/aarch64-bins.sh
. ci/image-cache.sh
export CARGO_TARGET_DIR="${IMAGER_TARGET_DIR:-$CARGO_TARGET_DIR}"
T="$CARGO_TARGET_DIR"
tmp="$(mktemp -d)"
qpid=""
cleanup() {
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null || true
  [ -f "$tmp/serial.log" ] && cp "$tmp/serial.log" "${VM_TEST_LOG:-/tmp/hearth-vm-test-aarch64-serial.log}"
  rm -rf "$tmp"
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

for f in /usr/share/AAVMF/AAVMF_CODE.fd /usr/share/AAVMF/AAVMF_VARS.fd; do
  [ -f "$f" ] || { echo "vm-test-aarch64: $f missing (run ci/deps.sh: qemu-efi-aarch64)" >&2; exit 1; }
done

if [ -z "${IMG:-}" ]; then
  bins="${AARCH64_BINS:-}"
  if [ -z "$bins" ]; then
    bins="$tmp/bins"
    aarch64_bins "${HEARTHD_PROFILE:-release}" "$bins"
  fi
  cargo build -q -p hearth-imager
  key="$(image_cache_key imager/recipes/aarch64-uefi.toml "$T/debug/hearth-imager" \
    "$bins/hearth-init" "$bins/hearth-container" "$bins/hearthd")"
  image_cache_build "${IMAGE_CACHE:-}" "$key" "${IMAGER_OUT:-$tmp/out}" aarch64-uefi \
    "$T/debug/hearth-imager" build --recipe imager/recipes/aarch64-uefi.toml \
    --hearth-init "$bins/hearth-init" --hearth-container "$bins/hearth-container" \
    --hearthd "$bins/hearthd"
  IMG="$(ls "$IMAGE_DIR"/hearth-*-aarch64-uefi.img)"
fi

# A copy with 512 MiB of free space after the slots: room for the data partition.
cp --sparse=always "$IMG" "$tmp/disk.img"
truncate -s +512M "$tmp/disk.img"
cp /usr/share/AAVMF/AAVMF_VARS.fd "$tmp/vars.fd"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
log="$tmp/serial.log"

echo "== booting on qemu virt (cortex-a72, TCG, AAVMF), hearthd forwarded to 127.0.0.1:$port"
start=$(now)
timeout 900 qemu-system-aarch64 -machine virt -cpu cortex-a72 -accel tcg -m 1024 -smp 2 \
  -drive if=pflash,format=raw,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd \
  -drive if=pflash,format=raw,file="$tmp/vars.fd" \
  -drive file="$tmp/disk.img",format=raw,if=none,id=disk -device virtio-blk-pci,drive=disk \
  -netdev user,id=n,hostfwd=tcp:127.0.0.1:"$port"-:80 -device virtio-net-pci,netdev=n \
  -display none -serial file:"$log" &
qpid=$!

url="http://127.0.0.1:$port/rpc/v1"
rpc() { # BODY [TIMEOUT] [CURL ARGS…]
  local body="$1" t="${2:-2}"
  shift 2 || shift $#
  curl -s -m "$t" "$url" -H 'content-type: application/json' -d "$body" "$@" || true
}
answer=""
for _ in $(seq 1 600); do
  answer="$(rpc '{"jsonrpc":"2.0","id":1,"method":"server.echo","params":{"message":"hello"}}')"
  case "$answer" in *'"result":"hello"'*) break ;; esac
  kill -0 "$qpid" 2>/dev/null || { echo "vm-test-aarch64: qemu exited" >&2; tail -80 "$log" >&2; exit 1; }
  sleep 1
done
case "$answer" in
  *'"result":"hello"'*) ;;
  *) echo "vm-test-aarch64: hearthd did not answer; serial log:" >&2; tail -80 "$log" >&2; exit 1 ;;
esac
printf 'vm-test-aarch64: power-on to server.echo answer: %.1f s (TCG)\n' "$(since "$start")"

# server.info needs a session: finish setup (argon2id under aarch64 TCG is slow), log in.
code="$(grep -ao 'hearthd: setup code [A-Z2-7-]*' "$log" | tail -n 1 | cut -d' ' -f4)"
[ -n "$code" ] || { echo "vm-test-aarch64: no setup code on the console" >&2; exit 1; }
out="$(rpc '{"method":"setup.complete","params":{"password":"vm-test-password","hostname":"hearth","setupCode":"'"$code"'"}}' 180)"
case "$out" in *'"result"'*) ;; *) echo "vm-test-aarch64: setup.complete failed: $out" >&2; exit 1 ;; esac
rpc '{"method":"auth.login","params":{"password":"vm-test-password"}}' 180 -c "$tmp/cookies" >/dev/null
info="$(rpc '{"jsonrpc":"2.0","id":2,"method":"server.info"}' 30 -b "$tmp/cookies")"
echo "$info" | jq -e '.result.arch == "aarch64"' >/dev/null ||
  { echo "vm-test-aarch64: server.info did not report aarch64: $info" >&2; exit 1; }
printf 'vm-test-aarch64: server.info answered after %.1f s: %s\n' "$(since "$start")" \
  "$(echo "$info" | jq -c '.result | {version, arch, hostname}')"
grep -a 'hearth-init:' "$log" | tr -d '\r' | sed 's/^/    /'
grep -a 'hearth-init: network: DHCP' "$log" >/dev/null ||
  { echo "vm-test-aarch64: hearth-init did not start DHCP" >&2; exit 1; }
grep -a 'leased 10.0.2.15' "$log" >/dev/null ||
  { echo "vm-test-aarch64: dhcpcd did not lease 10.0.2.15" >&2; exit 1; }
grep -a 'hearth-init: data partition /dev/vda4 mounted' "$log" >/dev/null ||
  { echo "vm-test-aarch64: data partition not mounted" >&2; exit 1; }
echo "vm-test-aarch64: ok"
