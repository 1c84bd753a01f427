#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/env.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
./ci/check-deps.sh
(cd web && npx svelte-check --fail-on-warnings)
