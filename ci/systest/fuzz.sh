#!/usr/bin/env bash
# System test step: every libFuzzer target (ci/fuzz.sh) for a few seconds each
# (FUZZ_SECONDS, default 5 here; `make fuzz` runs them 60 s each). No root, no LXC.
set -euo pipefail
cd "$(dirname "$0")/../.."
FUZZ_SECONDS="${FUZZ_SECONDS:-5}" exec ./ci/fuzz.sh
