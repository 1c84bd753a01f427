#!/usr/bin/env bash
# `make run`: build and start the main program on an embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
./ci/deps.sh
. ci/env.sh
cargo build -p hearth-cli
"$CARGO_TARGET_DIR/debug/hearth" --help
