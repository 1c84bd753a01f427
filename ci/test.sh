#!/usr/bin/env bash
# `make test`: installs what is needed, then runs format, lint and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./ci/deps.sh
. ci/env.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo build (binaries used by system tests)"
cargo build --workspace --bins
echo "== cargo test"
cargo test --workspace
for t in ci/systest/*.sh; do
  [ -e "$t" ] || continue
  echo "== system test $t"
  "$t"
done
echo "== all tests passed"
