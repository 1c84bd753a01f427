#!/usr/bin/env bash
# The workspace's dependency rules (ARCHITECTURE.md, "Dependency rules"), checked over
# the output of cargo metadata by ci/check-deps.py: each internal crate may depend only on
# the internal crates its rule allows.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --no-deps --offline | python3 ci/check-deps.py
