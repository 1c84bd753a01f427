#!/usr/bin/env bash
# Benchmark: `hearth s9pk verify` against `b3sum --num-threads 1` on the same
# package holding one 1 GiB random file. Targets: time ≤ 1.25× b3sum, peak
# RSS < 32 MiB. Both commands read the warm page cache (the file is read once
# first; dropping caches needs root). Best of $RUNS runs each.
# Knobs: SIZE_MIB (default 1024), RUNS (default 3), BENCH_DIR (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh

SIZE_MIB="${SIZE_MIB:-1024}"
RUNS="${RUNS:-3}"
cargo build --release -p hearth-cli
HEARTH="$CARGO_TARGET_DIR/release/hearth"

work="$(mktemp -d "${BENCH_DIR:-/tmp}/s9pk-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/images/x86_64"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$work/src/images/x86_64/main.squashfs"
echo '{"id":"bench"}' >"$work/src/manifest.json"
"$HEARTH" key generate --out "$work/key.pem" >/dev/null
"$HEARTH" s9pk pack-dir "$work/src" --key "$work/key.pem" -o "$work/bench.s9pk"
rm -rf "$work/src"
pkg="$work/bench.s9pk"
cat "$pkg" >/dev/null

# measure NAME CMD...: runs CMD $RUNS times; sets best_s (wall seconds) and
# best_kib (peak RSS of that run).
measure() {
  local name="$1"
  shift
  best_s=""
  best_kib=""
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -v "$@" >/dev/null 2>"$work/time.txt"
    local wall kib s
    wall="$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/time.txt")"
    kib="$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time.txt")"
    s="$(echo "$wall" | awk -F: '{ t = 0; for (i = 1; i <= NF; i++) t = t * 60 + $i; print t }')"
    if [ -z "$best_s" ] || awk -v a="$s" -v b="$best_s" 'BEGIN { exit !(a < b) }'; then
      best_s="$s"
      best_kib="$kib"
    fi
  done
  printf '%-34s %8.3f s  peak RSS %6d KiB\n' "$name" "$best_s" "$best_kib"
}

echo "package: $(stat -c %s "$pkg") bytes (${SIZE_MIB} MiB file), best of $RUNS"
measure "b3sum --num-threads 1" b3sum --num-threads 1 "$pkg"
b3_s="$best_s"
measure "hearth s9pk verify" "$HEARTH" s9pk verify "$pkg"
hv_s="$best_s"
hv_kib="$best_kib"

ratio="$(awk -v a="$hv_s" -v b="$b3_s" 'BEGIN { printf "%.3f", a / b }')"
echo "ratio verify / b3sum: ${ratio}x (target ≤ 1.25x)"
echo "verify peak RSS: $((hv_kib / 1024)) MiB (target < 32 MiB)"
ok=1
awk -v r="$ratio" 'BEGIN { exit !(r <= 1.25) }' || { echo "TARGET MISSED: time ratio"; ok=0; }
[ "$hv_kib" -lt $((32 * 1024)) ] || { echo "TARGET MISSED: peak RSS"; ok=0; }
[ "$ok" = 1 ] && echo "targets hold"
