#!/usr/bin/env bash
# `make fuzz` (and, with FUZZ_SECONDS=5, `make test` via ci/systest/fuzz.sh): builds the
# libFuzzer targets of sdk/crates/s9pk/fuzz on stable Rust (sancov instrumentation, no
# nightly, no ASan) and runs each for FUZZ_SECONDS (default 60) over its checked-in
# seeds (corpus/<target>/) plus a working corpus kept in the build dir. A crash, leak,
# timeout or OOM fails the run and prints the reproducer's path and how to replay it.
#   FUZZ_SECONDS=N      time per target
#   FUZZ_TARGETS="a b"  only these targets (default: every [[bin]] of the crate)
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/env.sh
CRATE=sdk/crates/s9pk/fuzz
SECONDS_EACH="${FUZZ_SECONDS:-60}"
HOST="$(rustc -vV | sed -n 's/^host: //p')"
# Own target dir below the shared one: the instrumented build must not evict (or
# reuse) the normal artefacts. --target keeps the flags off build scripts and proc macros.
OUT="$CARGO_TARGET_DIR/fuzz"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
TARGETS="${FUZZ_TARGETS:-$(sed -n 's/^name = "\(.*\)"$/\1/p' "$CRATE/Cargo.toml" | grep -v '^hearth-')}"
echo "== building fuzz targets: $(echo $TARGETS)"
cargo build --release --locked --manifest-path "$CRATE/Cargo.toml" --target "$HOST" \
  --target-dir "$OUT" $(for t in $TARGETS; do printf -- '--bin %s ' "$t"; done)
BIN_DIR="$OUT/$HOST/release"
ART="$OUT/artifacts"
mkdir -p "$ART"
failed=""
for t in $TARGETS; do
  seeds="$CRATE/corpus/$t"
  [ -d "$seeds" ] && [ -n "$(ls -A "$seeds")" ] || { echo "no seed corpus $seeds" >&2; exit 1; }
  work="$OUT/corpus/$t"
  mkdir -p "$work"
  log="$OUT/$t.log"
  echo "== fuzz $t for ${SECONDS_EACH}s"
  rm -f "$ART/$t-"*
  if "$BIN_DIR/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
      -max_len=1048576 -print_final_stats=1 -artifact_prefix="$ART/$t-" \
      "$work" "$seeds" >"$log" 2>&1; then
    grep -E '^(stat::number_of_executed_units|#[0-9]+.*DONE)' "$log" | tail -n 2 || true
  else
    failed="$failed $t"
    tail -n 40 "$log" >&2
    for a in "$ART/$t-"*; do
      [ -e "$a" ] || continue
      echo "FUZZ CRASH in $t: reproducer $a" >&2
      echo "  replay: $BIN_DIR/$t $a" >&2
    done
  fi
done
if [ -n "$failed" ]; then
  echo "fuzzing failed:$failed (logs in $OUT/<target>.log)" >&2
  exit 1
fi
echo "== fuzzing passed: $(echo $TARGETS | wc -w) targets, ${SECONDS_EACH}s each"
