#!/usr/bin/env bash
# hearth-store benchmark (run by `make bench`): mutations/s with fsync'd commits against
# raw redb Immediate commits measured in the same run (ratio = the store's overhead,
# target <= 1.5x), a ~1 MB document, reopen with a full patch log, read latency.
# Knobs: BENCH_STORE_MUTATIONS (default 1000), BENCH_DIR (default /tmp; the disk matters).
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh
cargo build --release -q -p hearth-store --example store_bench
"$CARGO_TARGET_DIR/release/examples/store_bench" "${BENCH_DIR:-/tmp}" "${BENCH_STORE_MUTATIONS:-1000}"
