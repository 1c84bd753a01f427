#!/usr/bin/env bash
# Reproducibility check of the OS images: for each target given (default: every recipe in
# imager/recipes/), builds the image twice from the same recipe and the same binaries into
# two directories and compares SHA256SUMS (disk image, root squashfs, kernel, initramfs).
# The Raspberry Pi image, which cannot be booted here, is also read back by
# imager/tests/rpi_layout.rs (partition table, firmware partitions, slots).
# Slow (two image builds per target, several minutes each; aarch64 ones run their package
# scripts under qemu-user): not part of `make test`. Needs root (mmdebstrap).
#   ci/image-repro.sh                      # x86_64-uefi aarch64-uefi raspberrypi
#   ci/image-repro.sh aarch64-uefi         # one target
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/env.sh
export CARGO_TARGET_DIR="${IMAGER_TARGET_DIR:-$CARGO_TARGET_DIR}"
T="$CARGO_TARGET_DIR"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=()
  for r in imager/recipes/*.toml; do targets+=("$(basename "$r" .toml)"); done
fi
for t in "${targets[@]}"; do
  [ -f "imager/recipes/$t.toml" ] || { echo "image-repro: no recipe imager/recipes/$t.toml" >&2; exit 2; }
done

# Binaries for a target's CPU: prints "INIT HEARTHD". hearth-init is static (musl); the
# aarch64 ones are cross-linked (rust-lld for musl, aarch64-linux-gnu-gcc for gnu).
binaries() {
  case "$1" in
    x86_64-uefi)
      rustup target list --installed | grep -qx x86_64-unknown-linux-musl ||
        rustup target add x86_64-unknown-linux-musl >&2
      cargo build -q --release -p hearth-init --target x86_64-unknown-linux-musl >&2
      cargo build -q --release -p hearthd >&2
      echo "$T/x86_64-unknown-linux-musl/release/hearth-init $T/release/hearthd"
      ;;
    aarch64-uefi | raspberrypi)
      for rt in aarch64-unknown-linux-musl aarch64-unknown-linux-gnu; do
        rustup target list --installed | grep -qx "$rt" || rustup target add "$rt" >&2
      done
      CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
        cargo build -q --release -p hearth-init --target aarch64-unknown-linux-musl >&2
      CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        cargo build -q --release -p hearthd --target aarch64-unknown-linux-gnu >&2
      echo "$T/aarch64-unknown-linux-musl/release/hearth-init $T/aarch64-unknown-linux-gnu/release/hearthd"
      ;;
    *) echo "image-repro: no binaries known for target $1" >&2; exit 2 ;;
  esac
}

cargo build -q -p hearth-imager
failed=()
for t in "${targets[@]}"; do
  bins="$(binaries "$t")"
  read -r init hearthd <<<"$bins"
  for n in 1 2; do
    echo "== $t: build $n"
    start=$(date +%s)
    timeout 1800 "$T/debug/hearth-imager" build --recipe "imager/recipes/$t.toml" \
      --out "$tmp/$t-$n" --hearth-init "$init" --hearthd "$hearthd" | grep -v '^    \$'
    echo "image-repro: $t build $n took $(($(date +%s) - start)) s"
  done
  if [ "$t" = raspberrypi ]; then
    HEARTH_RPI_IMAGE_DIR="$tmp/$t-1" cargo test -q -p hearth-imager --test rpi_layout -- --ignored ||
      failed+=("$t(layout)")
  fi
  if diff -u "$tmp/$t-1/SHA256SUMS" "$tmp/$t-2/SHA256SUMS"; then
    echo "image-repro: $t ok, byte-identical"
  else
    echo "image-repro: $t builds differ" >&2
    failed+=("$t")
  fi
  rm -rf "$tmp/$t-1" "$tmp/$t-2"
done
[ ${#failed[@]} -eq 0 ] || { echo "image-repro: failed: ${failed[*]}" >&2; exit 1; }
echo "image-repro: ok (${targets[*]})"
