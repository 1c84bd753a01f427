#!/usr/bin/env bash
# Image benchmark (run by `make bench`, needs root for mmdebstrap): for the x86_64 recipe,
#  - Hearth: image build time (hearth-imager build, warm .deb cache), sizes of the disk
#    image, root squashfs, initramfs, .deb and signed OTA bundle, time of `bundle verify`,
#    and boot-to-`server.echo` under qemu TCG + OVMF, once through systemd-boot from the
#    disk (what a user gets) and once with the kernel and initramfs given to qemu;
#  - reference, built in the same run: the same Debian packages plus systemd-sysv, udev,
#    dbus and busybox (systemd as PID 1, Debian's own initramfs-tools initrd, a plain ext4
#    root, systemd-networkd with the same static address, a `busybox httpd` unit): build
#    time (mmdebstrap + mkfs.ext4 -d), root size, and boot to the first HTTP answer with the
#    same firmware and the same direct kernel boot.
#  - aarch64-uefi, in the same run: image build time (through qemu-user; ratio to the x86_64
#    build above), sizes, and under qemu `virt` (cortex-a72, TCG) + AAVMF the time from
#    power-on to `server.echo` and to `server.info` (after setup and login).
# Prints the figures and the ratios Hearth / reference and aarch64 / x86_64.
# Knobs: IMG_BENCH_DIR (work dir, default /var/tmp), HEARTH_CACHE_DIR (.deb cache, shared
# with the image build), BOOT_TIMEOUT (s, default 300), BINS (a directory with prebuilt
# hearth-init, hearth-container (both static), hearthd and hearth instead of building them),
# AARCH64_BINS (likewise for aarch64: hearth-init, hearth-container, hearthd, as
# ci/aarch64-bins.sh leaves them; default: cross-built now, release).
# KVM does not work on the CI machines: TCG only, every qemu under `timeout`.
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh
export CARGO_TARGET_DIR="${IMAGER_TARGET_DIR:-$CARGO_TARGET_DIR}"
T="$CARGO_TARGET_DIR"
[ "$(id -u)" = 0 ] || { echo "image bench: needs root (mmdebstrap --mode=root)" >&2; exit 1; }
RECIPE=imager/recipes/x86_64-uefi.toml
BOOT_TIMEOUT="${BOOT_TIMEOUT:-300}"
CACHE="${HEARTH_CACHE_DIR:-/var/cache/hearth/imager-debs}"
NET="hearth.net=static:10.0.2.15/24,10.0.2.2"

work="$(mktemp -d "${IMG_BENCH_DIR:-/var/tmp}/image-bench.XXXXXX")"
qpid=""
cleanup() {
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
mib() { echo "scale=1; $1 / 1048576" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }

if [ -n "${BINS:-}" ]; then
  # Prebuilt binaries (hearth-init and hearth-container static) in one directory.
  MUSL="$BINS" GLIBC="$BINS"
else
  echo "== building hearth-init, hearth-container (static), hearthd, hearth"
  rustup target list --installed | grep -qx x86_64-unknown-linux-musl ||
    rustup target add x86_64-unknown-linux-musl
  cargo build -q --release --target x86_64-unknown-linux-musl -p hearth-init -p hearth-container
  cargo build -q --release -p hearthd -p hearth-cli
  MUSL="$T/x86_64-unknown-linux-musl/release" GLIBC="$T/release"
fi
cargo build -q -p hearth-imager
"$GLIBC/hearth" key generate --out "$work/ota.pem" >"$work/ota.pub"

echo "== Hearth image build ($RECIPE)"
t0=$(now)
timeout 1800 "$T/debug/hearth-imager" build --recipe "$RECIPE" --out "$work/out" \
  --hearth-init "$MUSL/hearth-init" --hearth-container "$MUSL/hearth-container" \
  --hearthd "$GLIBC/hearthd" --hearth "$GLIBC/hearth" \
  --signing-key "$work/ota.pem" --extra-cmdline "$NET" >"$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log" >&2; exit 1; }
hearth_build_s=$(since "$t0")
img="$(ls "$work"/out/hearth-*-x86_64-uefi.img)"
sq="$(ls "$work"/out/hearth-*-x86_64-uefi.root.squashfs)"
ota="$(ls "$work"/out/hearth-*-x86_64-uefi.ota)"
deb="$(ls "$work"/out/hearth_*.deb)"
t0=$(now)
"$T/debug/hearth-imager" bundle verify --key "$work/ota.pub" "$ota" >/dev/null
verify_s=$(since "$t0")

echo "== reference image build (same packages + systemd-sysv, udev, dbus, busybox; ext4 root)"
pkgs="$(python3 -c 'import sys, tomllib; print(",".join(tomllib.load(open(sys.argv[1], "rb"))["packages"]))' "$RECIPE")"
cmdline="$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb")).get("cmdline", ""))' "$RECIPE")"
ref="$work/ref-root"
cdir="$CACHE/amd64"
[ -d "$cdir" ] || cdir="$CACHE"
t0=$(now)
timeout 1800 mmdebstrap --variant=minbase --mode=root --format=directory \
  --include="$pkgs,systemd-sysv,udev,dbus,busybox" \
  --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
  --skip=download/empty \
  --setup-hook="sync-in '$cdir' /var/cache/apt/archives/" \
  --customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
  --customize-hook='mkdir -p "$1"/srv/www && echo hello >"$1"/srv/www/index.html' \
  --customize-hook='printf "[Match]\nName=en*\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\n" >"$1"/etc/systemd/network/10-wired.network' \
  --customize-hook='printf "[Unit]\nDescription=benchmark HTTP server\nAfter=network-online.target\n\n[Service]\nExecStart=/bin/busybox httpd -f -p 80 -h /srv/www\n\n[Install]\nWantedBy=multi-user.target\n" >"$1"/etc/systemd/system/bench-http.service' \
  --customize-hook='chroot "$1" systemctl enable systemd-networkd bench-http.service' \
  --customize-hook='echo "/dev/vda / ext4 rw,errors=remount-ro 0 1" >"$1"/etc/fstab' \
  --customize-hook='echo reference >"$1"/etc/hostname' \
  bookworm "$ref" http://deb.debian.org/debian >"$work/ref.log" 2>&1 ||
  { tail -40 "$work/ref.log" >&2; exit 1; }
ref_root_bytes=$(du -sb "$ref" | cut -f1)
ref_mib=$(( ref_root_bytes / 1048576 * 3 / 2 + 64 ))
mkfs.ext4 -q -F -L root -d "$ref" "$work/ref.img" "${ref_mib}M" >/dev/null
ref_build_s=$(since "$t0")
# Not part of the build time: the reference root compressed like Hearth's (same content
# measure as the squashfs figure).
SOURCE_DATE_EPOCH=0 mksquashfs "$ref" "$work/ref.squashfs" -noappend -comp zstd -no-xattrs \
  -reproducible -quiet -no-progress >/dev/null
cp "$ref"/boot/vmlinuz-* "$work/ref-vmlinuz"
cp "$ref"/boot/initrd.img-* "$work/ref-initrd"
rm -rf "$ref"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
# boot NAME PROBE DISK [qemu args…]: power-on to the first good answer of PROBE; sets boot_s.
boot() {
  local name="$1" probe="$2" disk="$3"
  shift 3
  cp /usr/share/OVMF/OVMF_VARS.fd "$work/vars.fd"
  local t0
  t0=$(now)
  timeout "$BOOT_TIMEOUT" qemu-system-x86_64 -machine q35 -accel tcg -m 1024 -smp 2 \
    -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd \
    -drive if=pflash,format=raw,file="$work/vars.fd" \
    -drive file="$disk",format=raw,if=virtio \
    -netdev user,id=n,hostfwd=tcp:127.0.0.1:"$port"-:80 -device virtio-net-pci,netdev=n \
    -display none -serial file:"$work/serial-$name.log" "$@" 2>>"$work/qemu.err" &
  qpid=$!
  boot_s=""
  while kill -0 "$qpid" 2>/dev/null; do
    if "$probe"; then boot_s=$(since "$t0"); break; fi
    sleep 0.5
  done
  kill "$qpid" 2>/dev/null || true
  wait "$qpid" 2>/dev/null || true
  qpid=""
  [ -n "$boot_s" ] || { echo "image bench: $name did not answer; serial log:" >&2; tail -40 "$work/serial-$name.log" >&2; exit 1; }
  printf '    %s: answered after %.1f s\n' "$name" "$boot_s"
}
echo_probe() {
  curl -s -m 2 "http://127.0.0.1:$port/rpc/v1" -H 'content-type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"server.echo","params":{"message":"hi"}}' 2>/dev/null |
    grep '"result":"hi"' >/dev/null
}
http_probe() { curl -s -m 2 "http://127.0.0.1:$port/" 2>/dev/null | grep hello >/dev/null; }

echo "== boots under qemu TCG + OVMF (power-on to first answer)"
cp --sparse=always "$img" "$work/disk.img"
truncate -s +512M "$work/disk.img"
boot hearth-disk echo_probe "$work/disk.img"
hearth_disk_s=$boot_s
# Fresh disk again (the first boot created the data partition), kernel given to qemu.
cp --sparse=always "$img" "$work/disk.img"
truncate -s +512M "$work/disk.img"
boot hearth-direct echo_probe "$work/disk.img" -kernel "$work/out/vmlinuz" \
  -initrd "$work/out/initrd.img" -append "$cmdline $NET hearth.slot=a"
hearth_direct_s=$boot_s
boot reference-direct http_probe "$work/ref.img" -kernel "$work/ref-vmlinuz" \
  -initrd "$work/ref-initrd" -append "root=/dev/vda rw $cmdline"
ref_direct_s=$boot_s

echo "== aarch64-uefi image build (mmdebstrap through qemu-user) and boot (qemu virt, TCG + AAVMF)"
. ci/aarch64-bins.sh
arm_bins="${AARCH64_BINS:-}"
if [ -z "$arm_bins" ]; then
  arm_bins="$work/arm-bins"
  aarch64_bins release "$arm_bins"
fi
t0=$(now)
timeout 1800 "$T/debug/hearth-imager" build --recipe imager/recipes/aarch64-uefi.toml \
  --out "$work/arm" --hearth-init "$arm_bins/hearth-init" \
  --hearth-container "$arm_bins/hearth-container" --hearthd "$arm_bins/hearthd" \
  --signing-key "$work/ota.pem" --extra-cmdline "$NET" >"$work/arm-build.log" 2>&1 ||
  { tail -40 "$work/arm-build.log" >&2; exit 1; }
arm_build_s=$(since "$t0")
arm_img="$(ls "$work"/arm/hearth-*-aarch64-uefi.img)"
arm_sq="$(ls "$work"/arm/hearth-*-aarch64-uefi.root.squashfs)"
arm_ota="$(ls "$work"/arm/hearth-*-aarch64-uefi.ota)"
cp --sparse=always "$arm_img" "$work/disk.img"
truncate -s +512M "$work/disk.img"
cp /usr/share/AAVMF/AAVMF_VARS.fd "$work/vars.fd"
t0=$(now)
timeout "$BOOT_TIMEOUT" qemu-system-aarch64 -machine virt -cpu cortex-a72 -accel tcg -m 1024 -smp 2 \
  -drive if=pflash,format=raw,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd \
  -drive if=pflash,format=raw,file="$work/vars.fd" \
  -drive file="$work/disk.img",format=raw,if=none,id=disk -device virtio-blk-pci,drive=disk \
  -netdev user,id=n,hostfwd=tcp:127.0.0.1:"$port"-:80 -device virtio-net-pci,netdev=n \
  -display none -serial file:"$work/serial-aarch64.log" 2>>"$work/qemu.err" &
qpid=$!
arm_echo_s=""
while kill -0 "$qpid" 2>/dev/null; do
  if echo_probe; then arm_echo_s=$(since "$t0"); break; fi
  sleep 0.5
done
[ -n "$arm_echo_s" ] || { echo "image bench: aarch64 did not answer; serial log:" >&2; tail -40 "$work/serial-aarch64.log" >&2; exit 1; }
arm_rpc() { # BODY TIMEOUT
  curl -s -m "$2" -b "$work/cookies" -c "$work/cookies" "http://127.0.0.1:$port/rpc/v1" \
    -H 'content-type: application/json' -d "$1" || true
}
# The setup code as a person reads it on the console (hearthd prints it once).
arm_code="$(grep -ao 'hearthd: setup code [A-Z2-7-]*' "$work/serial-aarch64.log" | tail -n 1 | cut -d' ' -f4)"
[ -n "$arm_code" ] || { echo "image bench: no setup code on the aarch64 console" >&2; exit 1; }
arm_rpc '{"method":"setup.complete","params":{"password":"bench-password","hostname":"hearth","setupCode":"'"$arm_code"'"}}' 180 |
  grep '"result"' >/dev/null || { echo "image bench: aarch64 setup.complete failed" >&2; exit 1; }
arm_rpc '{"method":"auth.login","params":{"password":"bench-password"}}' 180 |
  grep '"result"' >/dev/null || { echo "image bench: aarch64 auth.login failed" >&2; exit 1; }
arm_rpc '{"method":"server.info"}' 30 | jq -e '.result.arch == "aarch64"' >/dev/null ||
  { echo "image bench: aarch64 server.info did not report aarch64" >&2; exit 1; }
arm_info_s=$(since "$t0")
kill "$qpid" 2>/dev/null || true
wait "$qpid" 2>/dev/null || true
qpid=""
printf '    hearth-aarch64: server.echo after %.1f s, server.info after %.1f s\n' "$arm_echo_s" "$arm_info_s"

size() { stat -c %s "$1"; }
alloc() { du -B1 "$1" | cut -f1; }
echo
echo "image benchmark (x86_64-uefi, then aarch64-uefi)"
printf '  build time:        hearth %6.1f s   reference %6.1f s   ratio %s\n' \
  "$hearth_build_s" "$ref_build_s" "$(ratio "$hearth_build_s" "$ref_build_s")"
printf '  root filesystem:   hearth squashfs %s MiB   reference as squashfs %s MiB   ratio %s\n' \
  "$(mib "$(size "$sq")")" "$(mib "$(size "$work/ref.squashfs")")" \
  "$(ratio "$(size "$sq")" "$(size "$work/ref.squashfs")")"
printf '                     (reference ext4 root: %s MiB of files, %s MiB image)\n' \
  "$(mib "$ref_root_bytes")" "$(mib "$(size "$work/ref.img")")"
printf '  initramfs:         hearth %s MiB   reference (initramfs-tools) %s MiB   ratio %s\n' \
  "$(mib "$(size "$work/out/initrd.img")")" "$(mib "$(size "$work/ref-initrd")")" \
  "$(ratio "$(size "$work/out/initrd.img")" "$(size "$work/ref-initrd")")"
printf '  disk image:        %s MiB (%s MiB allocated, sparse)\n' "$(mib "$(size "$img")")" "$(mib "$(alloc "$img")")"
printf '  OTA bundle:        %s MiB (signed; bundle verify %.1f s)\n' "$(mib "$(size "$ota")")" "$verify_s"
printf '  .deb:              %s KiB\n' "$(( $(size "$deb") / 1024 ))"
printf '  boot to answer:    hearth (systemd-boot from disk) %.1f s\n' "$hearth_disk_s"
printf '                     hearth (direct kernel) %.1f s   reference systemd (direct kernel) %.1f s   ratio %s\n' \
  "$hearth_direct_s" "$ref_direct_s" "$(ratio "$hearth_direct_s" "$ref_direct_s")"
echo "  aarch64-uefi (same run; ratio to the x86_64 Hearth figures above):"
printf '    build time:      %6.1f s   ratio %s\n' "$arm_build_s" "$(ratio "$arm_build_s" "$hearth_build_s")"
printf '    root squashfs:   %s MiB   ratio %s\n' "$(mib "$(size "$arm_sq")")" \
  "$(ratio "$(size "$arm_sq")" "$(size "$sq")")"
printf '    disk image:      %s MiB (%s MiB allocated)   OTA bundle %s MiB\n' \
  "$(mib "$(size "$arm_img")")" "$(mib "$(alloc "$arm_img")")" "$(mib "$(size "$arm_ota")")"
printf '    boot (systemd-boot from disk, qemu virt TCG): server.echo %.1f s (ratio %s), server.info %.1f s\n' \
  "$arm_echo_s" "$(ratio "$arm_echo_s" "$hearth_disk_s")" "$arm_info_s"
