#!/usr/bin/env bash
# Reproducibility check of the x86_64 image: builds it twice from the same recipe and the
# same binaries into two directories and compares SHA256SUMS (disk image, root squashfs,
# kernel, initramfs). Slow (two image builds, several minutes): not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/env.sh
export CARGO_TARGET_DIR="${IMAGER_TARGET_DIR:-$CARGO_TARGET_DIR}"
T="$CARGO_TARGET_DIR"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
rustup target list --installed | grep -qx x86_64-unknown-linux-musl ||
  rustup target add x86_64-unknown-linux-musl
cargo build -q --release -p hearth-init --target x86_64-unknown-linux-musl
cargo build -q --release -p hearthd
cargo build -q -p hearth-imager
for n in 1 2; do
  echo "== build $n"
  timeout 900 "$T/debug/hearth-imager" build --recipe imager/recipes/x86_64-uefi.toml \
    --out "$tmp/out$n" --hearth-init "$T/x86_64-unknown-linux-musl/release/hearth-init" \
    --hearthd "$T/release/hearthd" | grep -v '^    \$'
done
if diff -u "$tmp/out1/SHA256SUMS" "$tmp/out2/SHA256SUMS"; then
  echo "image-repro: ok, byte-identical"
else
  echo "image-repro: builds differ" >&2
  exit 1
fi
