#!/usr/bin/env bash
# System test (after zz-boot.sh, whose x86_64 image it reuses): hearth-init's Raspberry Pi
# (MBR, autoboot.txt) boot path under qemu TCG + OVMF — root by PARTUUID, the data
# partition created as logical partition 7, a successful trial committed in autoboot.txt,
# a failed trial falling back to the committed slot. See init/tests/mbr-boot.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${IMAGE_CACHE:-/var/cache/hearth/vm-image}"
dir="$(ls -dt "$cache"/*/ 2>/dev/null | head -1)"
[ -n "$dir" ] || { echo "zz-mbr-boot: no x86_64 image in $cache (zz-boot.sh builds it)" >&2; exit 1; }
t0=$(date +%s)
./init/tests/mbr-boot.sh "$dir"
echo "zz-mbr-boot: took $(( $(date +%s) - t0 )) s"
