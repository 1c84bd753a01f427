#!/usr/bin/env bash
# `make run`: build the web UI (web/dist) and start hearthd serving it on 127.0.0.1 with a
# data dir inside the checkout (open the printed URL to finish setup in the browser).
#   HEARTH_DATA_DIR (default .data, git-ignored) and HEARTH_LISTEN (default 127.0.0.1:8080)
#   override the defaults. Ctrl-C stops hearthd cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
./ci/deps.sh
. ci/env.sh
cargo build -p hearthd
(cd web && npm run build >/dev/null)
export HEARTH_DATA_DIR="${HEARTH_DATA_DIR:-$PWD/.data}"
export HEARTH_LISTEN="${HEARTH_LISTEN:-127.0.0.1:8080}"
mkdir -p "$HEARTH_DATA_DIR"
echo "make run: starting hearthd (data dir $HEARTH_DATA_DIR); Ctrl-C stops it"
# exec: Ctrl-C (SIGINT) goes straight to hearthd, which shuts down gracefully.
exec "$CARGO_TARGET_DIR/debug/hearthd" --data-dir "$HEARTH_DATA_DIR" --listen "$HEARTH_LISTEN" \
  --web-dir "$PWD/web/dist"
