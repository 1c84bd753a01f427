#!/usr/bin/env bash
# Installs everything `make test`, `make run` and `make bench` need on a fresh Debian 12
# machine (run as root). Idempotent and quiet when everything is already present.
set -euo pipefail

APT_PACKAGES=(
  # building
  build-essential pkg-config
  # package images (s9pk pack): squashfs from rootfs / OCI layers / Debian package lists
  squashfs-tools squashfs-tools-ng mmdebstrap debian-archive-keyring
  # static busybox for the OCI image the pack system test builds (sdk/cli/tests/pack)
  busybox-static
  # unprivileged LXC containers (supervisor/lxc): lxc-* tools, newuidmap/newgidmap, ip
  lxc uidmap iproute2
  # the service network's firewall and NAT (supervisor/net: nft -f, checked by its root tests)
  nftables
  # OS images (imager/): GPT with sfdisk, FAT ESP with mkfs.vfat + mtools, cpio to inspect
  # initramfs; boot tests under qemu TCG with OVMF (ci/vm-test.sh)
  fdisk dosfstools mtools cpio qemu-system-x86 ovmf
  # aarch64 images: foreign-arch mmdebstrap (qemu-user-static + binfmt_misc; mmdebstrap
  # checks them with arch-test), the aarch64
  # cross linker/libc for hearth-init (musl, static) and hearthd (gnu), the boot test on
  # qemu `virt` with AAVMF (ci/vm-test-aarch64.sh)
  qemu-user-static binfmt-support arch-test gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  qemu-system-arm qemu-efi-aarch64
  # imager .deb and bad-input tests, image benchmark: dpkg-deb, mkfs.ext4 (loop-mounted
  # full disk, the reference image's ext4 root), bc (figures)
  dpkg e2fsprogs bc
  # benchmarks and tests
  b3sum time nodejs curl jq wrk
  # mDNS system test (ci/systest/mdns.sh): a real avahi peer and resolver, dig
  avahi-daemon avahi-utils dbus-daemon dnsutils
  # python venv for the official MCP client SDK used by system tests
  python3-venv
  # the web UI's browser tests (ci/systest/web.sh: Playwright drives Debian's Chromium)
  chromium
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "deps: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 1
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

# Foreign-architecture chroots (aarch64 images): binfmt_misc mounted and qemu-aarch64
# registered (binfmt-support reads qemu-user-static's entry; flag F keeps it usable in
# chroots). Idempotent.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  update-binfmts --enable qemu-aarch64
fi

# supervisor/lxc: each container maps uid/gid 0 to its own 65536 ids at
# 100000 + index * 65536 (index 0..255: 16777216 ids in all); LXC (through newuidmap)
# checks that root may delegate that range. Idempotent: replaces the older
# single-range line (root:100000:65536) and appends the line when missing.
for f in /etc/subuid /etc/subgid; do
  touch "$f"
  sed -i '/^root:100000:65536$/d' "$f"
  grep -qx 'root:100000:16777216' "$f" || echo 'root:100000:16777216' >>"$f"
done

# The web UI's build and test tools (web/package-lock.json), installed with `npm ci`
# only when the lock file changed since the last install (npm writes
# node_modules/.package-lock.json; Playwright uses Debian's Chromium, no browser download).
WEB="$(cd "$(dirname "$0")/.." && pwd)/web"
if ! cmp -s "$WEB/package-lock.json" "$WEB/node_modules/.package-lock.json.installed" 2>/dev/null; then
  echo "deps: npm ci in web/"
  (cd "$WEB" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  cp "$WEB/package-lock.json" "$WEB/node_modules/.package-lock.json.installed"
fi
