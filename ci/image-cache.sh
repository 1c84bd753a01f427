# Sourced by the boot tests (ci/vm-test.sh, ci/vm-test-aarch64.sh): an image cache keyed by
# the hash of the image's inputs. The build is reproducible (ci/image-repro.sh), so an image
# found under the key of unchanged inputs is the image a rebuild would give.
#
#   key="$(image_cache_key RECIPE IMAGER BINARY…)"
#   image_cache_build CACHE_DIR KEY FALLBACK_DIR TARGET IMAGER build --recipe RECIPE …
#   # then the image is "$IMAGE_DIR"/hearth-*-TARGET.img
#
# The key is the first 16 hex digits of the SHA-256 of the given files' contents followed by
# every file of debian/ and overlays/ (which the imager packs into the image). Run from the
# repository root.

# image_cache_key FILE…: prints the key of these inputs.
image_cache_key() {
  (cat "$@"; find debian overlays -type f | LC_ALL=C sort | xargs cat) | sha256sum | cut -c1-16
}

# image_cache_build CACHE_DIR KEY FALLBACK_DIR TARGET IMAGER_ARGV…: sets IMAGE_DIR to
# CACHE_DIR/KEY, which holds the outputs of `IMAGER_ARGV… --out DIR` (hearth-*-TARGET.img,
# SHA256SUMS, …). Built now (into DIR.tmp, then renamed, so a failed build leaves nothing
# that looks complete) unless a finished one is there; only the newest image is kept in
# CACHE_DIR. With an empty CACHE_DIR: builds into FALLBACK_DIR (no reuse across runs).
image_cache_build() {
  local cache="$1" key="$2" target="$4" t0
  IMAGE_DIR="$3"
  shift 4
  [ -n "$cache" ] && IMAGE_DIR="$cache/$key"
  if ls "$IMAGE_DIR"/hearth-*-"$target".img >/dev/null 2>&1 && [ -f "$IMAGE_DIR/SHA256SUMS" ]; then
    echo "== reusing the $target image built from the same inputs: $IMAGE_DIR"
    return 0
  fi
  echo "== building the $target image"
  if [ -n "$cache" ]; then
    rm -rf "$cache"
    mkdir -p "$cache"
  fi
  t0=$(date +%s)
  rm -rf "$IMAGE_DIR.tmp"
  timeout 1500 "$@" --out "$IMAGE_DIR.tmp" | grep -v '^    \$'
  rm -rf "$IMAGE_DIR.tmp/work"
  mv "$IMAGE_DIR.tmp" "$IMAGE_DIR"
  echo "image-cache: $target image built in $(( $(date +%s) - t0 )) s"
}
