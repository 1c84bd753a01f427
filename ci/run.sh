#!/usr/bin/env bash
# `make run`: build and start hearthd on 127.0.0.1 with a data dir inside the checkout.
#   HEARTH_DATA_DIR (default .data, git-ignored) and HEARTH_LISTEN (default 127.0.0.1:8080)
#   override the defaults. Ctrl-C stops hearthd cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
./ci/deps.sh
. ci/env.sh
cargo build -p hearthd
export HEARTH_DATA_DIR="${HEARTH_DATA_DIR:-$PWD/.data}"
export HEARTH_LISTEN="${HEARTH_LISTEN:-127.0.0.1:8080}"
mkdir -p "$HEARTH_DATA_DIR"
echo "make run: starting hearthd (data dir $HEARTH_DATA_DIR); Ctrl-C stops it"
# exec: Ctrl-C (SIGINT) goes straight to hearthd, which shuts down gracefully.
exec "$CARGO_TARGET_DIR/debug/hearthd" --data-dir "$HEARTH_DATA_DIR" --listen "$HEARTH_LISTEN"
