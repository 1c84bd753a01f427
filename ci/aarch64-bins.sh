# Sourced by ci/vm-test-aarch64.sh, ci/systest/zz-boot-aarch64.sh and ci/bench/image.sh:
# cross-builds the binaries of an aarch64 image on x86_64 (CARGO_TARGET_DIR must be set).
#
#   aarch64_bins PROFILE DIR   # PROFILE release or debug
#
# leaves in DIR: hearth-init and hearth-container (static, aarch64 musl, release: small, and
# hearth-init is the initramfs /init), hearthd (aarch64 gnu, PROFILE, stripped: debug info
# is of no use in the image and makes a debug build ~10x larger). The musl ones are linked
# by rust-lld, hearthd by aarch64-linux-gnu-gcc against bookworm's glibc
# (gcc-aarch64-linux-gnu + libc6-dev-arm64-cross, ci/deps.sh). A debug hearthd builds in a
# fraction of the time of a release one (the boot tests' choice, like ci/systest/zz-boot.sh).
aarch64_bins() {
  local profile="$1" dir="$2" t0 rt flag=()
  [ "$profile" = release ] && flag=(--release)
  t0=$(date +%s)
  for rt in aarch64-unknown-linux-musl aarch64-unknown-linux-gnu; do
    rustup target list --installed | grep -x "$rt" >/dev/null || rustup target add "$rt"
  done
  # blake3 (in hearth-container) compiles its NEON C code with the target's C compiler;
  # there is no aarch64 musl gcc in Debian, and the gnu one builds that freestanding code.
  CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
    cargo build -q --release -p hearth-init -p hearth-container --target aarch64-unknown-linux-musl
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    cargo build -q "${flag[@]}" -p hearthd --target aarch64-unknown-linux-gnu
  mkdir -p "$dir"
  cp "$CARGO_TARGET_DIR/aarch64-unknown-linux-musl/release/hearth-init" \
    "$CARGO_TARGET_DIR/aarch64-unknown-linux-musl/release/hearth-container" "$dir/"
  aarch64-linux-gnu-strip -o "$dir/hearthd" \
    "$CARGO_TARGET_DIR/aarch64-unknown-linux-gnu/$profile/hearthd"
  echo "aarch64-bins: hearth-init, hearth-container (release), hearthd ($profile) built in $(( $(date +%s) - t0 )) s"
}
