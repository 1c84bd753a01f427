#!/usr/bin/env bash
# `make test`: installs what is needed, then runs format, lint and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
TIMES=""
step() { # NAME COMMAND...: runs one step, records its wall time for the summary
  local name="$1" t0; shift
  echo "== $name"
  t0=$(date +%s)
  "$@"
  TIMES="$TIMES$(printf '%6d s  %s' $(( $(date +%s) - t0 )) "$name")"$'\n'
}
step "ci/deps.sh" ./ci/deps.sh
. ci/env.sh

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
step "dependency rules" ./ci/check-deps.sh
step "cargo build (binaries used by system tests)" cargo build --workspace --bins
step "cargo test" cargo test --workspace
for t in ci/systest/*.sh; do
  [ -e "$t" ] || continue
  [ "$(basename "$t")" = lib.sh ] && continue # helpers sourced by the tests, not a test
  step "system test $t" "$t"
done
echo "== all tests passed in $(( $(date +%s) - START )) s; per step:"
printf '%s' "$TIMES"
