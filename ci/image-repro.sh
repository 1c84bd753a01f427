#!/usr/bin/env bash
# Reproducibility check of the OS images: for each target given (default: every recipe in
# imager/recipes/), builds the image twice from the same recipe, the same binaries and the
# same (throwaway) OTA signing key into two directories — the second under another umask,
# time zone and locale — and compares every artifact byte for byte (ci/image-compare.sh:
# disk image, root squashfs, kernel, initramfs, .deb, OTA bundle, SHA256SUMS; on a
# difference it says where). The Raspberry Pi image, which cannot be booted here, is also
# read back by imager/tests/rpi_layout.rs (partition table, firmware partitions, slots).
# Slow (two image builds per target, several minutes each; aarch64 ones run their package
# scripts under qemu-user). `make test` checks the x86_64 image with one build instead
# (ci/systest/zz-repro.sh: rebuilds the image ci/systest/zz-boot.sh booted and compares).
# Needs root (mmdebstrap).
#   ci/image-repro.sh                      # x86_64-uefi aarch64-uefi raspberrypi
#   ci/image-repro.sh aarch64-uefi         # one target
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/env.sh
. ci/image-compare.sh
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

# Binaries for a target's CPU: prints "INIT HEARTHD CONTAINER CLI". hearth-init and
# hearth-container are static (musl); the aarch64 ones are cross-linked (rust-lld for musl,
# aarch64-linux-gnu-gcc for gnu).
binaries() {
  case "$1" in
    x86_64-uefi)
      rustup target list --installed | grep -qx x86_64-unknown-linux-musl ||
        rustup target add x86_64-unknown-linux-musl >&2
      cargo build -q --release -p hearth-init -p hearth-container --target x86_64-unknown-linux-musl >&2
      cargo build -q --release -p hearthd -p hearth-cli >&2
      local m="$T/x86_64-unknown-linux-musl/release"
      echo "$m/hearth-init $T/release/hearthd $m/hearth-container $T/release/hearth"
      ;;
    aarch64-uefi | raspberrypi)
      for rt in aarch64-unknown-linux-musl aarch64-unknown-linux-gnu; do
        rustup target list --installed | grep -qx "$rt" || rustup target add "$rt" >&2
      done
      CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
        cargo build -q --release -p hearth-init -p hearth-container --target aarch64-unknown-linux-musl >&2
      CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        cargo build -q --release -p hearthd -p hearth-cli --target aarch64-unknown-linux-gnu >&2
      local m="$T/aarch64-unknown-linux-musl/release" g="$T/aarch64-unknown-linux-gnu/release"
      echo "$m/hearth-init $g/hearthd $m/hearth-container $g/hearth"
      ;;
    *) echo "image-repro: no binaries known for target $1" >&2; exit 2 ;;
  esac
}

cargo build -q -p hearth-imager -p hearth-cli
# A throwaway key, so the OTA bundles are built and compared too (Ed25519 signatures are
# deterministic).
"$T/debug/hearth" key generate --out "$tmp/ota.pem" >/dev/null
failed=()
for t in "${targets[@]}"; do
  bins="$(binaries "$t")"
  read -r init hearthd container cli <<<"$bins"
  for n in 1 2; do
    echo "== $t: build $n"
    start=$(date +%s)
    (
      # The second build in another environment: nothing of it may reach the image.
      if [ "$n" = 2 ]; then umask 0077; export TZ=Pacific/Kiritimati LC_ALL=C.UTF-8; fi
      timeout 1800 "$T/debug/hearth-imager" build --recipe "imager/recipes/$t.toml" \
        --out "$tmp/$t-$n" --hearth-init "$init" --hearthd "$hearthd" \
        --hearth-container "$container" --hearth "$cli" --signing-key "$tmp/ota.pem" |
        grep -v '^    \$'
    )
    echo "image-repro: $t build $n took $(($(date +%s) - start)) s"
  done
  if [ "$t" = raspberrypi ]; then
    HEARTH_RPI_IMAGE_DIR="$tmp/$t-1" cargo test -q -p hearth-imager --test rpi_layout -- --ignored ||
      failed+=("$t(layout)")
  fi
  if image_compare "$tmp/$t-1" "$tmp/$t-2"; then
    echo "image-repro: $t ok, byte-identical"
  else
    echo "image-repro: $t builds differ" >&2
    failed+=("$t")
  fi
  rm -rf "$tmp/$t-1" "$tmp/$t-2"
done
[ ${#failed[@]} -eq 0 ] || { echo "image-repro: failed: ${failed[*]}" >&2; exit 1; }
echo "image-repro: ok (${targets[*]})"
