#!/usr/bin/env bash
# System test (with zz-boot.sh, at the end of `make test`): the arm64 images.
#
# 1. aarch64-uefi: ci/vm-test-aarch64.sh boots the image on qemu `virt` (cortex-a72, TCG)
#    with AAVMF: DHCP, hearthd answers `server.echo` (power-on-to-answer time printed),
#    setup, login, `server.info` reports arch aarch64.
# 2. raspberrypi: the image is built and read back by imager/tests/rpi_layout.rs (MBR,
#    autoboot.txt A/B, firmware partitions, kernel, initramfs, both slots holding an aarch64
#    hearthd); a Pi cannot be emulated here (imager/README.md).
#
# Both images are built from the same cross-built binaries (ci/aarch64-bins.sh: a debug
# hearthd, stripped, like zz-boot.sh's) and kept in /var/cache/hearth/vm-image-aarch64 and
# /var/cache/hearth/vm-image-rpi under the hash of their inputs (ci/image-cache.sh), so a
# run whose recipes, imager, debian/, overlays/ and binaries are unchanged reuses them
# without rebuilding. Debian packages come from the imager's cache
# (/var/cache/hearth/imager-debs). Needs root (mmdebstrap), qemu-user-static +
# binfmt_misc, qemu-system-arm, qemu-efi-aarch64, the aarch64 cross toolchain (ci/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh
. ci/aarch64-bins.sh
. ci/image-cache.sh
[ "$(id -u)" = 0 ] || { echo "zz-boot-aarch64: needs root (mmdebstrap builds the images)" >&2; exit 1; }
T="$CARGO_TARGET_DIR"
t_all=$(date +%s)
bins="$T/aarch64-image-bins"
aarch64_bins debug "$bins"
cargo build -q -p hearth-imager

t0=$(date +%s)
AARCH64_BINS="$bins" IMAGE_CACHE="${IMAGE_CACHE_AARCH64:-/var/cache/hearth/vm-image-aarch64}" \
  ./ci/vm-test-aarch64.sh
echo "zz-boot-aarch64: aarch64-uefi image and boot test took $(( $(date +%s) - t0 )) s"

t0=$(date +%s)
recipe=imager/recipes/raspberrypi.toml
key="$(image_cache_key "$recipe" "$T/debug/hearth-imager" \
  "$bins/hearth-init" "$bins/hearth-container" "$bins/hearthd")"
image_cache_build "${IMAGE_CACHE_RPI:-/var/cache/hearth/vm-image-rpi}" "$key" "" raspberrypi \
  "$T/debug/hearth-imager" build --recipe "$recipe" --hearth-init "$bins/hearth-init" \
  --hearth-container "$bins/hearth-container" --hearthd "$bins/hearthd"
HEARTH_RPI_IMAGE_DIR="$IMAGE_DIR" cargo test -q -p hearth-imager --test rpi_layout -- --ignored
echo "zz-boot-aarch64: raspberrypi image and layout check took $(( $(date +%s) - t0 )) s"
echo "zz-boot-aarch64: ok ($(( $(date +%s) - t_all )) s)"
