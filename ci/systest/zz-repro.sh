#!/usr/bin/env bash
# System test (runs after zz-boot.sh): the x86_64 image is reproducible. zz-boot.sh built
# (or reused) the image in its cache, /var/cache/hearth/vm-image/<key>, where <key> hashes
# every input (recipe, hearth-imager, hearth-init, hearth-container, hearthd, hearth,
# debian/, overlays/; ci/vm-test.sh). This test builds the same image again from the same
# inputs — the same binaries, built and stripped the way ci/vm-test.sh does, so cargo has
# nothing to rebuild — into a fresh temporary directory: at another time and path, under
# another umask, time zone and locale, and with an OTA signing key. Then it compares every
# artifact byte for byte (ci/image-compare.sh: disk image, root squashfs, kernel,
# initramfs, .deb, OTA bundle, SHA256SUMS) and, on a difference, says which file differs
# and where (partition and byte offset, squashfs/cpio/FAT listings).
#
# The cached build has no OTA bundle (zz-boot.sh builds without a key): its bundle is made
# with the same key by `hearth-imager bundle create` from its own root squashfs, kernel and
# initramfs, and its SHA256SUMS gets that bundle's line (the imager lists the bundle last),
# so the two directories are compared whole. About 2 minutes with a warm `.deb` cache (one
# image build). Needs root (mmdebstrap); runs after zz-boot.sh, which fills the cache.
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh
. ci/image-cache.sh
. ci/image-compare.sh
[ "$(id -u)" = 0 ] || { echo "zz-repro: needs root (mmdebstrap builds the image)" >&2; exit 1; }
export CARGO_TARGET_DIR="${IMAGER_TARGET_DIR:-$CARGO_TARGET_DIR}"
T="$CARGO_TARGET_DIR"
IMAGE_CACHE="${IMAGE_CACHE:-/var/cache/hearth/vm-image}"
RECIPE=imager/recipes/x86_64-uefi.toml
t0=$(date +%s)
tmp="$(mktemp -d /var/tmp/hearth-repro.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

# The inputs of zz-boot.sh's image (HEARTHD_PROFILE=debug), built as ci/vm-test.sh builds
# them (cargo finds them up to date), and their cache key (ci/image-cache.sh).
cargo build -q --release -p hearth-init -p hearth-container --target x86_64-unknown-linux-musl
cargo build -q -p hearthd -p hearth-cli
cargo build -q -p hearth-imager
strip -o "$tmp/hearthd" "$T/debug/hearthd"
strip -o "$tmp/hearth" "$T/debug/hearth"
MUSL_REL="$T/x86_64-unknown-linux-musl/release"
key="$(image_cache_key "$RECIPE" "$T/debug/hearth-imager" \
  "$MUSL_REL/hearth-init" "$MUSL_REL/hearth-container" "$tmp/hearthd" "$tmp/hearth")"
a="$IMAGE_CACHE/$key"
if ! ls "$a"/hearth-*-x86_64-uefi.img >/dev/null 2>&1 || [ ! -f "$a/SHA256SUMS" ]; then
  echo "zz-repro: no image for these inputs in $a (key $key); zz-boot.sh builds it and must run first" >&2
  echo "zz-repro: cache holds: $(ls "$IMAGE_CACHE" 2>/dev/null | tr '\n' ' ')" >&2
  exit 1
fi
name="$(basename "$(ls "$a"/hearth-*-x86_64-uefi.img)" .img)"
echo "zz-repro: reference build (zz-boot.sh's): $a"

# A throwaway signing key for the bundles (Ed25519 signatures are deterministic).
"$T/debug/hearth" key generate --out "$tmp/ota.pem" >"$tmp/ota.pub"

echo "== building the image again into $tmp/b (umask 0077, TZ=Pacific/Kiritimati, LC_ALL=C.UTF-8)"
start=$(date +%s)
(
  umask 0077
  export TZ=Pacific/Kiritimati LC_ALL=C.UTF-8
  timeout 1500 "$T/debug/hearth-imager" build --recipe "$RECIPE" --out "$tmp/b" \
    --hearth-init "$MUSL_REL/hearth-init" --hearth-container "$MUSL_REL/hearth-container" \
    --hearth "$tmp/hearth" --hearthd "$tmp/hearthd" --signing-key "$tmp/ota.pem" |
    grep -v '^    \$'
)
echo "zz-repro: image built again in $(($(date +%s) - start)) s"
[ -f "$tmp/b/$name.ota" ] || { echo "zz-repro: the build wrote no OTA bundle $name.ota" >&2; exit 1; }
[ -f "$tmp/b/$name.ota2" ] || { echo "zz-repro: the build wrote no v2 OTA bundle $name.ota2" >&2; exit 1; }
"$T/debug/hearth-imager" bundle verify --key "$tmp/ota.pub" "$tmp/b/$name.ota" | sed -n 1p

# The reference side: zz-boot.sh's files, plus the bundles (v1 and v2) of its own artifacts.
# The kernel release the v2 manifest records: the initramfs's lib/modules/<release>/.
kernel_release() {
  local r
  r="$(cpio -it --quiet <"$1" | sed -n 's|^lib/modules/\([^/]*\)/.*|\1|p' | sort -u)"
  [ -n "$r" ] && [ "$(printf '%s\n' "$r" | wc -l)" = 1 ] ||
    { echo "zz-repro: no single kernel release in $1: '$r'" >&2; exit 1; }
  printf '%s\n' "$r"
}
epoch="$(sed -n 's/^source_date_epoch *= *\([0-9]*\).*/\1/p' "$RECIPE")"
version="$(sed -n 's/^version *= *"\(.*\)".*/\1/p' "$RECIPE")"
krel="$(kernel_release "$a/initrd.img")"
mkdir "$tmp/a"
for f in "$a"/*; do
  if [ -f "$f" ] && [ "$(basename "$f")" != SHA256SUMS ]; then ln -s "$f" "$tmp/a/"; fi
done
"$T/debug/hearth-imager" bundle create --version "$version" --target x86_64-uefi \
  --root "$a/$name.root.squashfs" --kernel "$a/vmlinuz" --initrd "$a/initrd.img" \
  --signing-key "$tmp/ota.pem" --source-date-epoch "$epoch" --out "$tmp/a/$name.ota" \
  --out-v2 "$tmp/a/$name.ota2" --kernel-release "$krel" >/dev/null
{
  cat "$a/SHA256SUMS"
  for f in "$name.ota" "$name.ota2"; do echo "$(sha256sum <"$tmp/a/$f" | cut -d' ' -f1)  $f"; done
} >"$tmp/a/SHA256SUMS"

echo "== comparing every artifact with zz-boot.sh's build"
if image_compare "$tmp/a" "$tmp/b"; then
  echo "zz-repro: ok, byte-identical ($(($(date +%s) - t0)) s)"
else
  echo "zz-repro: the image is not reproducible: the builds above differ" >&2
  exit 1
fi
