#!/usr/bin/env bash
# System test (runs last in `make test`): the boot tests of ci/vm-test.sh on the x86_64
# image under qemu TCG + OVMF — DHCP, hearthd answering on a forwarded port (boot-to-answer
# times printed), the slot marked good after hearthd's READY=1, a service package
# installed through the API running and healthy before and after a reboot (hearthd on
# the real LXC runtime), reboot and power off, a
# corrupted data partition left untouched, and the fallback to slot B when slot A's
# hearthd never becomes ready.
#
# It reuses the debug hearthd `make test` has just built (stripped for the image) and keeps
# the image in /var/cache/hearth/vm-image under the hash of its inputs, so a run whose
# recipe, imager, hearth-init and hearthd are unchanged boots the same image again
# without rebuilding it. Debian packages come from the imager's cache
# (/var/cache/hearth/imager-debs). Needs root (mmdebstrap), qemu-system-x86, ovmf, mtools
# (ci/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh
[ "$(id -u)" = 0 ] || { echo "zz-boot: needs root (mmdebstrap builds the image)" >&2; exit 1; }
t0=$(date +%s)
HEARTHD_PROFILE=debug IMAGE_CACHE="${IMAGE_CACHE:-/var/cache/hearth/vm-image}" ./ci/vm-test.sh
echo "zz-boot: boot tests took $(( $(date +%s) - t0 )) s"
