#!/usr/bin/env bash
# Boot tests of the x86_64 image under qemu TCG + OVMF (KVM does not work on the CI
# machines: always TCG, always under `timeout`). Builds hearth-init (static, musl), hearthd
# and hearth-imager, builds the image from imager/recipes/x86_64-uefi.toml once (unless
# IMG=path is given) and boots copies of it:
#
# 1. Normal boots (DHCP, slot marking, reboot, power off):
#    - first boot: the address comes from DHCP (dhcpcd; qemu's user network hands out
#      10.0.2.15, the address the port forward reaches) and hearthd answers `server.echo`
#      on a forwarded port (prints the power-on-to-answer time);
#    - setup, login, `server.info` reports slot `a` marked `good` (hearth-init renamed
#      `hearth-a+3.conf`'s successor to `hearth-a.conf` after hearthd's READY=1);
#    - a service runs on the image: hearthd chose the LXC runtime (its log on the
#      console), the hello-oci example (busybox httpd, packed here by ci/systest/lib.sh's
#      mkpkg, its key trusted through package.trust.add) is uploaded over the forwarded
#      port, started, and its statusInfo shows `running` with health check `http` =
#      `success` (within 180 s; each step's time printed);
#    - Ctrl-Alt-Del (hearth-init: stop hearthd, sync, unmount, reboot); the second boot
#      has the setup (data partition created on the first boot only) and the service
#      running and healthy again (hearthd starts it from its desired state);
#    - `server.shutdown` powers the machine off (qemu exits by itself); the ESP then holds
#      `hearth-a.conf` (good, no counter) and `hearth-b+3.conf` (untouched).
# 2. Corrupted data partition: its superblock wiped, the next boot reports it, runs on
#    volatile state, hearthd answers, and the partition's content is unchanged (no mkfs).
# 3. Fallback: a fresh copy whose slot A entry gets the test-only `hearth.test.hearthd=
#    /bin/false` (hearthd never becomes ready): hearth-init reboots after 3 deaths, A uses
#    its 3 tries, systemd-boot then boots slot B, which answers and is marked good; the
#    ESP holds `hearth-a+0-3.conf` and `hearth-b.conf`.
#
# Environment: IMG (an image to use instead of building one), HEARTHD_PROFILE (release,
# the default, or debug: reuse the debug build of `make test`), IMAGE_CACHE (a directory:
# the image is kept there under the SHA-256 of its inputs — recipe, imager, debian/,
# overlays/, hearth-init, hearth-container, hearth, hearthd — and reused while they are unchanged; the build is reproducible, so this is
# the image a rebuild would give), VM_TEST_LOG (where the serial logs are copied),
# IMAGER_TARGET_DIR. Needs root for mmdebstrap, qemu-system-x86,
# ovmf, mtools, curl, python3, bc, and busybox (static) + mksquashfs for the package.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/env.sh
# For gen_key and mkpkg (the hello-oci package on a static busybox); its fail, rpc and
# upload are replaced below by this script's own (session cookie, forwarded port).
. ci/systest/lib.sh
export CARGO_TARGET_DIR="${IMAGER_TARGET_DIR:-$CARGO_TARGET_DIR}"
T="$CARGO_TARGET_DIR"
PROFILE="${HEARTHD_PROFILE:-release}"
tmp="$(mktemp -d)"
qpid=""
log="$tmp/serial.log"
# Serial logs are kept for inspection (VM_TEST_LOG, one file per scenario).
keep_log() { [ -f "$log" ] && cp "$log" "${VM_TEST_LOG:-/tmp/hearth-vm-test}-$1.log" || true; }
cleanup() {
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null || true
  keep_log last
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "vm-test: $*" >&2; [ -f "$log" ] && tail -60 "$log" >&2; exit 1; }
t_all=$(date +%s)

if [ -z "${IMG:-}" ]; then
  echo "== building hearth-init (static), hearthd ($PROFILE), hearth-imager"
  rustup target list --installed | grep -x x86_64-unknown-linux-musl >/dev/null ||
    rustup target add x86_64-unknown-linux-musl
  cargo build -q --release -p hearth-init -p hearth-container --target x86_64-unknown-linux-musl
  if [ "$PROFILE" = release ]; then
    cargo build -q --release -p hearthd -p hearth-cli
  else
    cargo build -q -p hearthd -p hearth-cli
  fi
  cargo build -q -p hearth-imager
  # Debug info is of no use in the image and makes the debug build 6x larger.
  strip -o "$tmp/hearthd" "$T/$PROFILE/hearthd"
  strip -o "$tmp/hearth" "$T/$PROFILE/hearth"
  MUSL_REL="$T/x86_64-unknown-linux-musl/release"
  . ci/image-cache.sh
  key="$(image_cache_key imager/recipes/x86_64-uefi.toml "$T/debug/hearth-imager" \
    "$MUSL_REL/hearth-init" "$MUSL_REL/hearth-container" "$tmp/hearthd" "$tmp/hearth")"
  image_cache_build "${IMAGE_CACHE:-}" "$key" "${IMAGER_OUT:-$tmp/out}" x86_64-uefi \
    "$T/debug/hearth-imager" build --recipe imager/recipes/x86_64-uefi.toml \
    --hearth-init "$MUSL_REL/hearth-init" --hearth-container "$MUSL_REL/hearth-container" \
    --hearth "$tmp/hearth" --hearthd "$tmp/hearthd"
  out="$IMAGE_DIR"
  IMG="$(ls "$out"/hearth-*-x86_64-uefi.img)"
fi

# The service package, made on this host for x86_64 (lib.sh's mkpkg needs BIN, WORK).
BIN="$T/$PROFILE" WORK="$tmp/pkg"
if [ ! -x "$BIN/hearth" ]; then
  if [ "$PROFILE" = release ]; then cargo build -q --release -p hearth-cli; else cargo build -q -p hearth-cli; fi
fi
mkdir -p "$WORK"
gen_key
mkpkg hello-oci "$WORK/hello.s9pk"
echo "vm-test: hello-oci package: $(stat -c %s "$WORK/hello.s9pk") bytes"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"

# A copy of the image with 512 MiB of free space after the slots (room for the data
# partition) and fresh UEFI variables.
new_disk() {
  cp --sparse=always "$IMG" "$tmp/disk.img"
  truncate -s +512M "$tmp/disk.img"
  cp /usr/share/OVMF/OVMF_VARS.fd "$tmp/vars.fd"
}
VM_NAME=vm-test
. ci/qemu-x86.sh
# Polls server.info until .slot matches a pattern.
wait_for_slot() { # PATTERN
  local info=""
  for _ in $(seq 1 30); do
    info="$(rpc '{"method":"server.info"}' 10)"
    case "$info" in *"$1"*) echo "vm-test: server.info slot: $(echo "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["slot"])')"; return 0 ;; esac
    sleep 1
  done
  fail "server.info never showed $1: $info"
}
setup_and_login() {
  # Password hashing (argon2id) is slow under TCG: allow a minute.
  local out
  # The setup code as a person reads it on the console (hearthd prints it once).
  local code
  code="$(grep -ao 'hearthd: setup code [A-Z2-7-]*' "$log" | tail -n 1 | cut -d' ' -f4)"
  [ -n "$code" ] || fail "no setup code on the console"
  out="$(rpc '{"method":"setup.complete","params":{"password":"vm-test-password","hostname":"hearth","setupCode":"'"$code"'"}}' 60)"
  case "$out" in *'"result"'*) ;; *) fail "setup.complete failed: $out" ;; esac
  login
}
login() {
  local out
  out="$(rpc '{"method":"auth.login","params":{"password":"vm-test-password"}}' 60)"
  case "$out" in *'"result"'*) ;; *) fail "auth.login failed: $out" ;; esac
}
# statusInfo field of hello-oci (JSON pointer below it), via db.dump.
pkg_status() {
  rpc '{"method":"db.dump","params":{"pointer":"/packageData/hello-oci/statusInfo"}}' 10 |
    field "/result/value/$1" 2>/dev/null || echo "?"
}
# Waits (at most LIMIT s of wall time) until hello-oci is running with its health check passing;
# prints the time taken since T0.
wait_service() { # WHAT T0 LIMIT
  local state="" health="" end=$(( $(date +%s) + $3 ))
  while :; do
    state="$(pkg_status state)" health="$(pkg_status health/http/result)"
    [ "$state" = running ] && [ "$health" = success ] && break
    [ "$(date +%s)" -ge "$end" ] && break
    kill -0 "$qpid" 2>/dev/null || fail "qemu exited"
    sleep 1
  done
  [ "$state" = running ] && [ "$health" = success ] ||
    fail "$1: hello-oci is $state, health $health (lastError: $(pkg_status lastError))"
  printf 'vm-test: %s: hello-oci running, health check success after %.1f s\n' "$1" \
    "$(echo "$(date +%s.%N) - $2" | bc)"
}
# Trusts the package's key, uploads and starts it, waits for it to be healthy.
install_service() {
  local t pem out
  t=$(date +%s.%N)
  pem="$(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$WORK/pub.pem")"
  out="$(rpc "{\"method\":\"package.trust.add\",\"params\":{\"publicKey\":$pem}}" 10)"
  case "$out" in *fingerprint*) ;; *) fail "package.trust.add: $out" ;; esac
  out="$(curl -sS -m 300 -b "$cookies" -H 'content-type: application/octet-stream' -H 'expect:' \
    -X POST -T "$WORK/hello.s9pk" "http://127.0.0.1:$port/rest/package/upload" || true)"
  case "$out" in *'"signerTrusted":true'*) ;; *) fail "upload of hello-oci: $out" ;; esac
  printf 'vm-test: hello-oci uploaded and installed in %.1f s\n' "$(echo "$(date +%s.%N) - $t" | bc)"
  t=$(date +%s.%N)
  out="$(rpc '{"method":"package.start","params":{"id":"hello-oci"}}' 30)"
  case "$out" in *'"result"'*) ;; *) fail "package.start: $out" ;; esac
  wait_service "started" "$t" 180
}
# Lists the boot entries on the image's ESP (mtools, no mount).
esp_entries() {
  local start
  start="$(sfdisk --dump "$tmp/disk.img" 2>/dev/null | sed -n 's/.*start= *\([0-9]*\),.*name="esp".*/\1/p')"
  MTOOLS_SKIP_CHECK=1 mdir -b -i "$tmp/disk.img@@$((start * 512))" ::loader/entries |
    sed 's|.*/||' | sort | tr '\n' ' '
}

echo "== 1. normal boots: DHCP, slot marked good, reboot, power off"
new_disk
[ "$(esp_entries)" = "hearth-a+3.conf hearth-b+3.conf " ] || fail "new image entries: $(esp_entries)"
start=$(date +%s.%N)
boot_vm 600
wait_for_hearthd "first boot, power-on to answer" "$start"
grep -a 'hearth-init: network: DHCP' "$log" >/dev/null || fail "hearth-init did not start DHCP"
grep -a 'leased 10.0.2.15' "$log" >/dev/null || fail "dhcpcd did not lease 10.0.2.15"
grep -a 'hearth-init: run: ip addr' "$log" >/dev/null && fail "a static address was configured"
setup_and_login
wait_for_slot '"slot":{"slot":"a","state":"good"}'
grep -a 'hearth-init: slot A marked good (hearth-a+2-1.conf -> hearth-a.conf)' "$log" >/dev/null ||
  fail "no 'slot A marked good' on the console"
grep -a 'hearth-init: cgroup2 on /sys/fs/cgroup, controllers for containers: cpu io memory pids' "$log" >/dev/null ||
  fail "cgroup2 or its controllers missing"
grep -a 'containers run with LXC' "$log" >/dev/null || fail "hearthd did not pick the LXC runtime"
install_service
monitor_cmd "sendkey ctrl-alt-delete"
t_reboot=$(date +%s.%N)
# Up to 15 s for hearthd, 3 s for dhcpcd, 30 s for the containers (REST_STOP in boot.rs).
for _ in $(seq 1 120); do grep -a 'hearth-init: Reboot' "$log" >/dev/null && break; sleep 0.5; done
grep -a 'hearth-init: Reboot' "$log" >/dev/null || fail "no clean reboot after Ctrl-Alt-Del"
wait_for_hearthd "second boot, Ctrl-Alt-Del to answer"
status="$(rpc '{"method":"setup.status"}')"
case "$status" in *'"setupComplete":true'*) ;; *) fail "setup not persisted: $status" ;; esac
login
wait_service "after the reboot (Ctrl-Alt-Del to healthy)" "$t_reboot" 180
wait_for_slot '"slot":{"slot":"a","state":"good"}'
# The serial log holds both boots (one qemu process).
[ "$(grep -ac 'hearth-init: data partition /dev/vda4 mounted' "$log")" = 2 ] ||
  fail "data partition not mounted on both boots"
[ "$(grep -ac 'hearth-init: first boot: data partition /dev/vda4 created' "$log")" = 1 ] ||
  fail "data partition not created exactly once"
grep -a 'hearth-init: hearthd stopped' "$log" >/dev/null || fail "hearthd not stopped before the reboot"
out="$(rpc '{"method":"server.shutdown"}' 10)"
case "$out" in *'"result":null'*) ;; *) fail "server.shutdown: $out" ;; esac
wait_poweroff
grep -a 'hearth-init: PowerOff' "$log" >/dev/null || fail "no clean power off"
hearth_lines
keep_log normal
entries="$(esp_entries)"
[ "$entries" = "hearth-a.conf hearth-b+3.conf " ] || fail "ESP entries after the good boots: $entries"
echo "vm-test: ESP entries: $entries"

echo "== 2. corrupted data partition"
# A data partition that exists but does not mount must never be formatted: wipe its ext4
# superblock area (first 2 MiB), boot, expect the report, hearthd answering on volatile
# state, and the rest of the partition unchanged.
dstart="$(sfdisk --dump "$tmp/disk.img" 2>/dev/null | sed -n 's/.*start= *\([0-9]*\),.*name="data".*/\1/p')"
[ -n "$dstart" ] || fail "no data partition in the image after boot"
dd if=/dev/zero of="$tmp/disk.img" bs=512 seek="$dstart" count=4096 conv=notrunc status=none
region() { dd if="$tmp/disk.img" bs=1M skip=$((dstart / 2048 + 2)) count=64 status=none | sha256sum; }
before="$(region)"
boot_vm 300
wait_for_hearthd "boot with a corrupted data partition"
grep -a 'hearth-init: data partition /dev/vda4 exists but does not mount' "$log" >/dev/null ||
  fail "corrupted data partition not reported"
grep -a 'hearth-init: run: mkfs' "$log" >/dev/null && fail "mkfs ran on existing data"
stop_vm
[ "$(region)" = "$before" ] || fail "data partition content changed"
grep -a 'hearth-init:.*\(does not mount\|volatile\|tmpfs\)' "$log" | tr -d '\r' | sed 's/^/    /'
keep_log corrupt

echo "== 3. fallback: slot A's hearthd never becomes ready"
new_disk
rm -f "$cookies"
espoff=$(( $(sfdisk --dump "$tmp/disk.img" 2>/dev/null | sed -n 's/.*start= *\([0-9]*\),.*name="esp".*/\1/p') * 512 ))
MTOOLS_SKIP_CHECK=1 mtype -i "$tmp/disk.img@@$espoff" ::loader/entries/hearth-a+3.conf |
  sed 's|^options .*|& hearth.test.hearthd=/bin/false|' >"$tmp/a.conf"
grep 'hearth.test.hearthd=/bin/false' "$tmp/a.conf" >/dev/null || fail "could not edit slot A's entry"
MTOOLS_SKIP_CHECK=1 mcopy -o -i "$tmp/disk.img@@$espoff" "$tmp/a.conf" ::loader/entries/hearth-a+3.conf
start=$(date +%s.%N)
boot_vm 900
wait_for_hearthd "fallback, power-on to answer from slot B" "$start" 700
[ "$(grep -ac 'hearth-init: TEST: hearth.test.hearthd=/bin/false' "$log")" = 3 ] ||
  fail "slot A was not tried exactly 3 times"
[ "$(grep -ac 'hearth-init: slot B: on trial' "$log")" = 1 ] || fail "slot B did not boot once"
grep -a 'hearth-init: slot A has no tries left: rebooting so systemd-boot falls back to slot B' "$log" >/dev/null ||
  fail "no fallback reboot after the last try"
setup_and_login
wait_for_slot '"slot":{"slot":"b","state":"good"}'
rpc '{"method":"server.shutdown"}' 10 >/dev/null
wait_poweroff
grep -a 'hearth-init:.*\(slot \|died\|TEST\)' "$log" | tr -d '\r' | sed 's/^/    /'
keep_log fallback
entries="$(esp_entries)"
[ "$entries" = "hearth-a+0-3.conf hearth-b.conf " ] || fail "ESP entries after the fallback: $entries"
echo "vm-test: ESP entries: $entries"
echo "vm-test: ok ($(( $(date +%s) - t_all )) s)"
