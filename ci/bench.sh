#!/usr/bin/env bash
# `make bench`: benchmarks print figures and ratios against baselines measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
./ci/deps.sh
. ci/env.sh
for b in ci/bench/*.sh; do
  [ -e "$b" ] || continue
  echo "== benchmark $b"
  "$b"
done
