#!/usr/bin/env bash
# Boot test of the x86_64 image: builds hearth-init (static, musl), hearthd and
# hearth-imager, builds the image from imager/recipes/x86_64-uefi.toml (unless IMG=path is
# given), boots it under qemu TCG with OVMF, and waits until hearthd answers
# `server.echo` on a forwarded port (prints the power-on-to-answer time); completes setup,
# presses Ctrl-Alt-Del (hearth-init: stop hearthd, sync, unmount, reboot), waits for the
# second boot and checks that setup persisted on the data partition, which was created on
# the first boot only; then wipes the data partition's superblock and checks that the next
# boot reports it, runs on volatile state and does not format it. Then kills qemu. Needs root only for mmdebstrap.
# KVM does not work on the CI machines: always TCG, always under `timeout`.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/env.sh
export CARGO_TARGET_DIR="${IMAGER_TARGET_DIR:-$CARGO_TARGET_DIR}"
T="$CARGO_TARGET_DIR"
tmp="$(mktemp -d)"
qpid=""
# The serial log is kept for inspection (VM_TEST_LOG).
cleanup() {
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null || true
  [ -f "$tmp/serial.log" ] && cp "$tmp/serial.log" "${VM_TEST_LOG:-/tmp/hearth-vm-test-serial.log}"
  rm -rf "$tmp"
}
trap cleanup EXIT

if [ -z "${IMG:-}" ]; then
  echo "== building hearth-init (static), hearthd, hearth-imager"
  rustup target list --installed | grep -qx x86_64-unknown-linux-musl ||
    rustup target add x86_64-unknown-linux-musl
  cargo build -q --release -p hearth-init --target x86_64-unknown-linux-musl
  cargo build -q --release -p hearthd
  cargo build -q -p hearth-imager
  out="${IMAGER_OUT:-$tmp/out}"
  echo "== building the image"
  timeout 900 "$T/debug/hearth-imager" build --recipe imager/recipes/x86_64-uefi.toml \
    --out "$out" --hearth-init "$T/x86_64-unknown-linux-musl/release/hearth-init" \
    --hearthd "$T/release/hearthd" \
    --extra-cmdline "hearth.net=static:10.0.2.15/24,10.0.2.2"
  IMG="$(ls "$out"/hearth-*-x86_64-uefi.img)"
fi

# A copy with 512 MiB of free space after the slots: room for the data partition.
cp --sparse=always "$IMG" "$tmp/disk.img"
truncate -s +512M "$tmp/disk.img"
cp /usr/share/OVMF/OVMF_VARS.fd "$tmp/vars.fd"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
log="$tmp/serial.log"

echo "== booting under qemu (TCG), hearthd forwarded to 127.0.0.1:$port"
boot_vm() {
  rm -f "$tmp/monitor"
  timeout 300 qemu-system-x86_64 -machine q35 -accel tcg -m 1024 -smp 2 \
    -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd \
    -drive if=pflash,format=raw,file="$tmp/vars.fd" \
    -drive file="$tmp/disk.img",format=raw,if=virtio \
    -netdev user,id=n,hostfwd=tcp:127.0.0.1:"$port"-:80 -device virtio-net-pci,netdev=n \
    -display none -serial file:"$log" -monitor unix:"$tmp/monitor",server,nowait &
  qpid=$!
}
start=$(date +%s.%N)
boot_vm

rpc() { # BODY [TIMEOUT]
  curl -s -m "${2:-2}" "http://127.0.0.1:$port/rpc/v1" -H 'content-type: application/json' -d "$1" || true
}
wait_for_hearthd() {
  local answer="" t0
  t0=$(date +%s.%N)
  for _ in $(seq 1 200); do
    answer="$(rpc '{"jsonrpc":"2.0","id":1,"method":"server.echo","params":{"message":"hello"}}')"
    case "$answer" in *'"result":"hello"'*) break ;; esac
    kill -0 "$qpid" 2>/dev/null || { echo "vm-test: qemu exited" >&2; tail -80 "$log" >&2; exit 1; }
    sleep 1
  done
  case "$answer" in
    *'"result":"hello"'*) ;;
    *) echo "vm-test: hearthd did not answer; serial log:" >&2; tail -80 "$log" >&2; exit 1 ;;
  esac
  printf 'vm-test: %s: hearthd answered server.echo after %.1f s (TCG)\n' "$1" \
    "$(echo "$(date +%s.%N) - ${2:-$t0}" | bc)"
}
wait_for_hearthd "first boot, power-on to answer" "$start"

# State written now must survive a clean reboot (data partition + hearthd's store).
# Password hashing (argon2id) is slow under TCG: allow a minute.
out="$(rpc '{"method":"setup.complete","params":{"password":"vm-test-password","hostname":"hearth"}}' 60)"
case "$out" in *'"result"'*) ;; *) echo "vm-test: setup.complete failed: $out" >&2; exit 1 ;; esac

# Ctrl-Alt-Del: hearth-init gets SIGINT, stops hearthd, syncs, unmounts, reboots.
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"sendkey ctrl-alt-delete\n"); s.recv(4096)' "$tmp/monitor"
for _ in $(seq 1 60); do grep -aq 'hearth-init: Reboot' "$log" && break; sleep 0.5; done
grep -aq 'hearth-init: Reboot' "$log" || { echo "vm-test: no clean reboot after Ctrl-Alt-Del" >&2; tail -40 "$log" >&2; exit 1; }
wait_for_hearthd "second boot, Ctrl-Alt-Del to answer"
status="$(rpc '{"method":"setup.status"}')"
case "$status" in *'"setupComplete":true'*) ;; *) echo "vm-test: setup not persisted: $status" >&2; exit 1 ;; esac
[ "$(grep -ac 'hearth-init: data partition /dev/vda4 mounted' "$log")" = 2 ] ||
  { echo "vm-test: data partition not mounted on both boots" >&2; grep -a hearth-init "$log" >&2; exit 1; }
[ "$(grep -ac 'hearth-init: first boot: data partition /dev/vda4 created' "$log")" = 1 ] ||
  { echo "vm-test: data partition not created exactly once" >&2; grep -a hearth-init "$log" >&2; exit 1; }
grep -aq 'hearth-init: service stopped' "$log" || { echo "vm-test: hearthd not stopped" >&2; exit 1; }
grep -a 'hearth-init:' "$log" | tr -d '\r' | sed 's/^/    /'

# A data partition that exists but does not mount must never be formatted: wipe its ext4
# superblock area (first 2 MiB), boot, expect the report, hearthd answering on volatile
# state, and the rest of the partition unchanged.
kill "$qpid"; wait "$qpid" 2>/dev/null || true; qpid=""
dstart="$(sfdisk --dump "$tmp/disk.img" | sed -n 's/.*start= *\([0-9]*\),.*name="data".*/\1/p')"
[ -n "$dstart" ] || { echo "vm-test: no data partition in the image after boot" >&2; exit 1; }
dd if=/dev/zero of="$tmp/disk.img" bs=512 seek="$dstart" count=4096 conv=notrunc status=none
region() { dd if="$tmp/disk.img" bs=1M skip=$((dstart / 2048 + 2)) count=64 status=none | sha256sum; }
before="$(region)"
: >"$log"
boot_vm
wait_for_hearthd "boot with a corrupted data partition"
grep -aq 'hearth-init: data partition /dev/vda4 exists but does not mount' "$log" ||
  { echo "vm-test: corrupted data partition not reported" >&2; grep -a hearth-init "$log" >&2; exit 1; }
grep -aq 'hearth-init: run: mkfs' "$log" && { echo "vm-test: mkfs ran on existing data" >&2; exit 1; }
kill "$qpid"; wait "$qpid" 2>/dev/null || true; qpid=""
[ "$(region)" = "$before" ] || { echo "vm-test: data partition content changed" >&2; exit 1; }
grep -a 'hearth-init:.*\(slot \|does not mount\|volatile\|tmpfs\)' "$log" | tr -d '\r' | sed 's/^/    /'
echo "vm-test: ok"
