# Sourced by ci/*.sh: shared build settings.
# A target dir outside the clone lets repeated CI runs on one machine reuse build
# artefacts; nothing depends on it being warm.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/hearth/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CARGO_INCREMENTAL=0
mkdir -p "$CARGO_TARGET_DIR"
