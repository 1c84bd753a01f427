#!/usr/bin/env bash
# Boot test of hearth-init's Raspberry Pi (MBR) code on x86_64 under qemu TCG + OVMF: no Pi
# and no Pi firmware here, so the test rebuilds the x86_64 image (built by ci/vm-test.sh,
# cached in /var/cache/hearth/vm-image) in the Raspberry Pi image's MBR layout
# (imager/src/disk.rs mbr_layout): 1 `autoboot` FAT16 with the imager's autoboot.txt,
# 2 `boot-a` (here the x86 ESP with systemd-boot, type ef), 3 `boot-b` (FAT32), 4 extended
# with 5 `root-a` and 6 `root-b` (the image's root squashfs), and 512 MiB free for `data`.
# The boot entries name the root as the Pi's cmdline.txt does: root=PARTUUID=<id>-05|06.
#
# systemd-boot stands in for the Pi firmware's one-shot tryboot: slot B's entry has one
# try (`hearth-b+1.conf`, sorted first) and slot A's none (`hearth-a.conf`), so B boots
# once and any later boot is A — as after `reboot "0 tryboot"` with `[all]
# boot_partition=2` (A committed) and `[tryboot] boot_partition=3` (B). There is no
# /proc/device-tree on x86, so hearth-init sees no tryboot flag and trusts autoboot.txt.
#
# 1. Trial succeeds: slot B is found by PARTUUID, the data partition is created as logical
#    partition 7 (/dev/vda7) after growing the extended partition, hearthd answers, and B is
#    marked good: autoboot.txt now reads `[all] boot_partition=3`, `[tryboot]
#    boot_partition=2`. Booting B as the committed slot then finds it good and mounts
#    partition 7 without creating anything.
# 2. Trial fails (B's hearthd is /bin/false): hearth-init reboots after 3 deaths, slot A
#    boots (committed, good), hearthd answers, autoboot.txt is unchanged.
#
# Usage: init/tests/mbr-boot.sh [IMAGE_DIR] (default: the newest directory in
# /var/cache/hearth/vm-image). Needs qemu-system-x86, ovmf, mtools, fdisk, dosfstools, curl,
# python3 (no root). Run it under the systest lock (it uses most of the CPU).
set -euo pipefail
cd "$(dirname "$0")/../.."
src="${1:-$(ls -dt /var/cache/hearth/vm-image/*/ | head -1)}"
img="$(ls "$src"/hearth-*-x86_64-uefi.img)"
sq="$(ls "$src"/hearth-*-x86_64-uefi.root.squashfs)"
tmp="$(mktemp -d)"
qpid=""
log="$tmp/serial.log"
cleanup() {
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null || true
  [ -f "$log" ] && cp "$log" /tmp/hearth-mbr-boot-last.log || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "mbr-boot: $*" >&2; [ -f "$log" ] && tail -60 "$log" >&2; exit 1; }
export MTOOLS_SKIP_CHECK=1
t_all=$(date +%s)

# The layout in MiB, as disk::mbr_layout(16, 128, 160) computes it.
MIB=2048 # sectors
ab_start=1 ab_mib=16 boot_mib=128 slot_mib=160
a_start=$((ab_start + ab_mib)) b_start=$((a_start + boot_mib))
ext_start=$((b_start + boot_mib)) ext_mib=$((2 * (1 + slot_mib)))
ra_start=$((ext_start + 1)) rb_start=$((ext_start + 2 + slot_mib))
total_mib=$((ext_start + ext_mib))
disk_id=5eed1234
[ "$(stat -c %s "$sq")" -le $((slot_mib << 20)) ] || fail "root squashfs larger than $slot_mib MiB"
esp_start="$(sfdisk --dump "$img" | sed -n 's/.*start= *\([0-9]*\),.*name="esp".*/\1/p')"
esp_size="$(sfdisk --dump "$img" | sed -n 's/.*size= *\([0-9]*\),.*name="esp".*/\1/p')"
[ "$esp_size" -le $((boot_mib * MIB)) ] || fail "ESP larger than $boot_mib MiB"

# autoboot.txt as imager/src/rpi.rs writes it (A committed) and with B committed (the file
# ends with a newline; $(…) drops it when comparing).
AUTOBOOT_A=$'[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3'
AUTOBOOT_B=$'[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2'

put() { # FILE START_MIB
  dd if="$1" of="$tmp/disk.img" bs=1M seek="$2" conv=notrunc,sparse status=none
}
# entry SLOT NAME SORT_KEY [EXTRA_OPTIONS]: a boot entry on the ESP (partition 2).
entry() {
  local n=$([ "$1" = a ] && echo 05 || echo 06)
  printf 'title Hearth (slot %s, MBR test)\nsort-key %s\nlinux /hearth/%s/vmlinuz\ninitrd /hearth/%s/initrd.img\noptions console=ttyS0,115200 loglevel=4 root=PARTUUID=%s-%s hearth.slot=%s %s\n' \
    "$1" "$3" "$1" "$1" "$disk_id" "$n" "$1" "${4:-}" >"$tmp/$2"
  mcopy -o -i "$tmp/disk.img@@$((a_start << 20))" "$tmp/$2" "::loader/entries/$2"
}
esp_entries() {
  mdir -b -i "$tmp/disk.img@@$((a_start << 20))" ::loader/entries | sed 's|.*/||' | sort | tr '\n' ' '
}
autoboot() { mtype -i "$tmp/disk.img@@$((ab_start << 20))" ::autoboot.txt; }

new_disk() { # [EXTRA_OPTIONS for slot B]
  rm -f "$tmp/disk.img"
  truncate -s $(((total_mib + 512) << 20)) "$tmp/disk.img"
  sfdisk -q "$tmp/disk.img" <<EOF
label: dos
label-id: 0x$disk_id
unit: sectors

start=$((ab_start * MIB)), size=$((ab_mib * MIB)), type=e
start=$((a_start * MIB)), size=$((boot_mib * MIB)), type=ef
start=$((b_start * MIB)), size=$((boot_mib * MIB)), type=c
start=$((ext_start * MIB)), size=$((ext_mib * MIB)), type=f
start=$((ra_start * MIB)), size=$((slot_mib * MIB)), type=83
start=$((rb_start * MIB)), size=$((slot_mib * MIB)), type=83
EOF
  rm -f "$tmp/ab.img" "$tmp/bb.img"
  mkfs.vfat -F 16 -n HEARTH-AB -C "$tmp/ab.img" $((ab_mib * 1024)) >/dev/null
  printf '%s\n' "$AUTOBOOT_A" >"$tmp/autoboot.txt"
  mcopy -i "$tmp/ab.img" "$tmp/autoboot.txt" ::autoboot.txt
  put "$tmp/ab.img" "$ab_start"
  dd if="$img" of="$tmp/disk.img" bs=512 skip="$esp_start" seek=$((a_start * MIB)) \
    count="$esp_size" conv=notrunc,sparse status=none
  mkfs.vfat -F 32 -n HEARTH-B -C "$tmp/bb.img" $((boot_mib * 1024)) >/dev/null
  put "$tmp/bb.img" "$b_start"
  put "$sq" "$ra_start"
  put "$sq" "$rb_start"
  mdel -i "$tmp/disk.img@@$((a_start << 20))" '::loader/entries/*.conf'
  entry a hearth-a.conf hearth-1-committed
  entry b hearth-b+1.conf hearth-0-trial "${1:-}"
  [ "$(esp_entries)" = "hearth-a.conf hearth-b+1.conf " ] || fail "entries: $(esp_entries)"
  [ "$(autoboot)" = "$AUTOBOOT_A" ] || fail "autoboot.txt: $(autoboot)"
  cp /usr/share/OVMF/OVMF_VARS.fd "$tmp/vars.fd"
}

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
VM_NAME=mbr-boot
. ci/qemu-x86.sh
wait_for_line() { # PATTERN TRIES
  for _ in $(seq 1 "$2"); do grep -a "$1" "$log" >/dev/null && return 0; sleep 1; done
  fail "no console line matching: $1"
}
has() { grep -a "$1" "$log" >/dev/null || fail "no console line matching: $1"; }

echo "== 1. trial of slot B succeeds: B committed in autoboot.txt, data = logical partition 7"
new_disk
boot_vm 600
wait_for_hearthd "slot B on trial" "" 400
wait_for_line 'hearth-init: slot B marked good (autoboot.txt: \[all\] boot_partition=3)' 30
has "hearth-init: slot B: root squashfs /dev/vda6 on /dev/vda (MBR $disk_id)"
has 'hearth-init: run: sfdisk -N 4 '
has 'hearth-init: first boot: data partition /dev/vda7 created'
has 'hearth-init: data partition /dev/vda7 mounted on /media/hearth/data'
has 'hearth-init: slot B: on trial (0 tries left, 1 done); other slot A: good'
stop_vm
hearth_lines
[ "$(autoboot)" = "$AUTOBOOT_B" ] || fail "autoboot.txt after marking B good: $(autoboot)"
mdir -b -i "$tmp/disk.img@@$((ab_start << 20))" :: | grep -v autoboot.txt >/dev/null &&
  fail "files besides autoboot.txt on the autoboot partition"
dump="$(sfdisk --dump "$tmp/disk.img")"
echo "$dump" | grep "label-id: 0x$disk_id" >/dev/null || fail "disk id changed: $dump"
echo "$dump" | grep -E "img4 : start= *$((ext_start * MIB)), size= *$(((total_mib + 512 - ext_start) * MIB)), type=f" >/dev/null ||
  fail "extended partition not grown to the end: $dump"
echo "$dump" | grep -E "img7 : start= *$(((rb_start + slot_mib + 1) * MIB)), size= *$(((total_mib + 512 - rb_start - slot_mib - 1) * MIB)), type=83" >/dev/null ||
  fail "no data partition 7 up to the end: $dump"
echo "mbr-boot: autoboot.txt: $(autoboot | tr '\n' ' ')"

# The firmware would now boot B as the committed slot: make B the entry systemd-boot picks.
mren -i "$tmp/disk.img@@$((a_start << 20))" '::loader/entries/hearth-b+0-1.conf' '::loader/entries/hearth-b.conf' ||
  fail "slot B's entry was not counted down: $(esp_entries)"
boot_vm 600
wait_for_hearthd "slot B committed" "" 400
wait_for_line 'hearth-init: slot B: good; other slot A:' 10
has 'hearth-init: data partition /dev/vda7 mounted on /media/hearth/data'
grep -a 'hearth-init: first boot' "$log" >/dev/null && fail "data partition created again"
grep -a 'hearth-init: slot B marked good' "$log" >/dev/null && fail "a good slot was committed again"
stop_vm
[ "$(autoboot)" = "$AUTOBOOT_B" ] || fail "autoboot.txt changed on a good boot: $(autoboot)"

echo "== 2. trial of slot B fails: reboot, slot A (committed) boots, autoboot.txt unchanged"
new_disk hearth.test.hearthd=/bin/false
boot_vm 900
wait_for_hearthd "slot A after B's failed trial" "" 700
has 'hearth-init: slot B failed its trial: rebooting; the firmware boots the committed slot A'
[ "$(grep -ac 'hearth-init: TEST: hearth.test.hearthd=/bin/false' "$log")" = 1 ] ||
  fail "slot B was not tried exactly once"
wait_for_line 'hearth-init: slot A: good; other slot B:' 10
has 'hearth-init: slot A: root squashfs /dev/vda5 on /dev/vda (MBR'
grep -a 'marked good' "$log" >/dev/null && fail "a slot was marked good"
stop_vm
grep -a 'hearth-init:.*\(slot \|died\|TEST\|data partition\)' "$log" | tr -d '\r' | sed 's/^/    /'
[ "$(autoboot)" = "$AUTOBOOT_A" ] || fail "autoboot.txt changed by a failed trial: $(autoboot)"
echo "mbr-boot: ok ($(($(date +%s) - t_all)) s)"
