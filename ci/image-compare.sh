# Sourced by ci/image-repro.sh and ci/systest/zz-repro.sh: compares two output directories
# of `hearth-imager build` and, for every file that differs, says where.
#
#   image_compare DIR_A DIR_B
#
# Both directories must hold the same file names (subdirectories such as `work/` are
# ignored) with the same bytes: each file is hashed (SHA-256) on both sides, independently
# of the SHA256SUMS the imager wrote (which is compared as a file like the others). Returns
# 0 when all are byte-identical, 1 otherwise, after printing for each differing file its
# first differing byte (cmp) and, by kind:
#   - disk image (*.img): both partition tables (sfdisk --dump) when they differ, then each
#     region (the table before the first partition, every partition, gaps, the end with the
#     backup GPT) that differs, with its first differing byte in the image and in the
#     region; a differing FAT partition (ESP, firmware) is read with mtools (listing with
#     times, then which files differ);
#   - root squashfs: `sqfsdiff -T -I -S` (entries, contents, times, inode numbers, super
#     block) and the difference of the `unsquashfs -lls` listings;
#   - initramfs (newc cpio): the difference of its entry lists (every header field and a
#     hash of each file's contents);
#   - .deb: `dpkg-deb --info` and `--contents`; OTA bundle (tar): listing and manifest;
#   - SHA256SUMS: diff -u.
# Listings are cut at $IMAGE_COMPARE_LINES lines (default 40). Needs sfdisk, mtools,
# squashfs-tools, squashfs-tools-ng (sqfsdiff), python3, dpkg-deb (ci/deps.sh).

_ic_lines() { head -n "${IMAGE_COMPARE_LINES:-40}" | sed 's/^/      /'; }

# Files of a directory, one name a line, sorted (regular files and symlinks to them).
_ic_files() { find "$1" -mindepth 1 -maxdepth 1 \( -type f -o -xtype f \) -printf '%f\n' | LC_ALL=C sort -u; }

# First differing byte of two files or of two byte ranges of them:
# _ic_first_diff A B [OFFSET LENGTH] → prints the 1-based offset (within the range), or
# nothing when equal. A size difference counts as a difference at the end of the shorter one.
_ic_first_diff() {
  local out
  if [ $# -eq 4 ]; then
    out="$(cmp -i "$3:$3" -n "$4" "$1" "$2" 2>&1)" && return 0
  else
    out="$(cmp "$1" "$2" 2>&1)" && return 0
  fi
  case "$out" in
    *'differ: byte '*) echo "$out" | sed -n 's/.*differ: byte \([0-9]*\).*/\1/p' ;;
    *'EOF on '*) echo "$out" | sed -n 's/.*EOF on .* after byte \([0-9]*\).*/\1/p' | awk '{print $1 + 1}' ;;
    *) echo "cmp failed: $out" >&2; echo 0 ;;
  esac
}

# Partitions of a disk image: "START_BYTE SIZE_BYTES NAME" lines in disk order (a nameless
# MBR partition is called partN).
_ic_parts() {
  sfdisk --json "$1" 2>/dev/null | python3 -c '
import json, sys
try:
    t = json.load(sys.stdin)["partitiontable"]
except ValueError:
    sys.exit(0)
sec = t.get("sectorsize", 512)
for i, p in enumerate(sorted(t.get("partitions", []), key=lambda p: p["start"])):
    name = p.get("name") or p["node"].rsplit("/", 1)[-1]
    print(p["start"] * sec, p["size"] * sec, name)
'
}

# FAT filesystems in files A and B: listing with sizes and times, then per-file contents.
_ic_explain_fat() {
  local a="$1" b="$2" f
  export MTOOLS_SKIP_CHECK=1
  if ! diff -u <(mdir -/ -a -i "$a" :: 2>&1) <(mdir -/ -a -i "$b" :: 2>&1) >"$_ic_tmp/fat.diff"; then
    echo "    FAT listing (names, sizes, times) differs:"
    tail -n +3 "$_ic_tmp/fat.diff" | _ic_lines
  fi
  comm -12 <(mdir -/ -b -i "$a" :: 2>/dev/null | LC_ALL=C sort) \
    <(mdir -/ -b -i "$b" :: 2>/dev/null | LC_ALL=C sort) | while read -r f; do
    case "$f" in */) continue ;; esac
    if [ "$(mtype -i "$a" "$f" 2>/dev/null | sha256sum)" != "$(mtype -i "$b" "$f" 2>/dev/null | sha256sum)" ]; then
      echo "    FAT file ${f#::} differs"
    fi
  done
  f="$(_ic_first_diff "$a" "$b" 0 512)"
  if [ -n "$f" ]; then echo "    FAT boot sector differs at byte $f"; fi
}

# A partition table (sfdisk --dump) without the file's name.
_ic_table() {
  sfdisk --dump "$1" 2>&1 | grep -v '^device:' | sed 's|^[^ ]*[^0-9]\([0-9][0-9]*\) :|partition \1 :|'
}

_ic_explain_disk() {
  local a="$1" b="$2" start size name first end prev=0 regions
  if ! diff -u <(_ic_table "$a") <(_ic_table "$b") >"$_ic_tmp/table.diff"; then
    echo "    partition tables differ (sfdisk --dump):"
    tail -n +3 "$_ic_tmp/table.diff" | _ic_lines
  fi
  # Regions of image A: what lies before, between and after its partitions, and each one.
  regions="$(
    while read -r start size name; do
      if [ "$start" -gt "$prev" ]; then echo "$prev $((start - prev)) (partition-table/gap)"; fi
      echo "$start $size $name"
      prev=$((start + size))
    done < <(_ic_parts "$a")
    end="$(stat -c %s "$a")"
    if [ "$end" -gt "$prev" ]; then echo "$prev $((end - prev)) (end/backup-table)"; fi
  )"
  while read -r start size name; do
    first="$(_ic_first_diff "$a" "$b" "$start" "$size")"
    [ -n "$first" ] || continue
    echo "    region $name (image bytes $start-$((start + size - 1))): first difference at image byte $((start + first)), byte $first of the region"
    case "$name" in
      esp | autoboot | boot-a | boot-b)
        dd if="$a" of="$_ic_tmp/fat-a" iflag=skip_bytes,count_bytes skip="$start" count="$size" status=none
        dd if="$b" of="$_ic_tmp/fat-b" iflag=skip_bytes,count_bytes skip="$start" count="$size" status=none
        _ic_explain_fat "$_ic_tmp/fat-a" "$_ic_tmp/fat-b"
        rm -f "$_ic_tmp/fat-a" "$_ic_tmp/fat-b"
        ;;
      root-*) echo "    (a root slot holds the root squashfs: see that file's comparison)" ;;
    esac
  done <<<"$regions"
}

_ic_explain_squashfs() {
  local rc=0
  sqfsdiff -a "$1" -b "$2" -T -I -S >"$_ic_tmp/sqfsdiff" 2>&1 || rc=$?
  if [ "$rc" = 0 ]; then
    echo "    sqfsdiff: same entries, contents, times, inode numbers and super block (layout or compression differs)"
  else
    echo "    sqfsdiff -T -I -S:"
    _ic_lines <"$_ic_tmp/sqfsdiff"
  fi
  if ! diff -u <(unsquashfs -lls "$1" | tail -n +2) <(unsquashfs -lls "$2" | tail -n +2) \
    >"$_ic_tmp/lls.diff"; then
    echo "    unsquashfs -lls:"
    tail -n +3 "$_ic_tmp/lls.diff" | _ic_lines
  fi
}

# Entries of a newc cpio archive, one a line with every header field and a hash of the data
# (cpio -itv shows neither exact times nor inode numbers).
_ic_cpio_list() {
  python3 - "$1" <<'PY'
import hashlib, sys
d = open(sys.argv[1], "rb").read()
o = 0
while o + 110 <= len(d):
    h = d[o:o + 110]
    if h[:6] not in (b"070701", b"070702"):
        print(f"(no newc header at byte {o})")
        break
    ino, mode, uid, gid, nlink, mtime, size, _, _, rmaj, rmin, namesize, _ = (
        int(h[6 + 8 * i:14 + 8 * i], 16) for i in range(13))
    name = d[o + 110:o + 109 + namesize].decode(errors="replace")
    o = (o + 110 + namesize + 3) & ~3
    data = d[o:o + size]
    o = (o + size + 3) & ~3
    if name == "TRAILER!!!":
        break
    print(f"{name} mode={mode:o} uid={uid} gid={gid} nlink={nlink} mtime={mtime} ino={ino} "
          f"rdev={rmaj}:{rmin} size={size} sha256={hashlib.sha256(data).hexdigest()[:16]}")
PY
}

_ic_explain_cpio() {
  if diff -u <(_ic_cpio_list "$1") <(_ic_cpio_list "$2") >"$_ic_tmp/cpio.diff"; then
    echo "    cpio: same entries, metadata and contents (padding or order of the archive differs)"
  else
    echo "    cpio entries (name, header fields, hash of the contents):"
    tail -n +3 "$_ic_tmp/cpio.diff" | _ic_lines
  fi
}

# diff -u of two listings without its two header lines, cut (never fails).
_ic_diff() { { diff -u "$1" "$2" || true; } | tail -n +3 | _ic_lines; }

_ic_explain_deb() {
  _ic_diff <(dpkg-deb --info "$1") <(dpkg-deb --info "$2")
  _ic_diff <(dpkg-deb --contents "$1") <(dpkg-deb --contents "$2")
}

_ic_explain_tar() {
  _ic_diff <(tar --full-time -tvf "$1") <(tar --full-time -tvf "$2")
  _ic_diff <(tar -xOf "$1" manifest.json | python3 -m json.tool) \
    <(tar -xOf "$2" manifest.json | python3 -m json.tool)
}

# Says where two versions of one artifact differ.
image_explain() { # A B
  local a="$1" b="$2" first
  first="$(_ic_first_diff "$a" "$b")"
  echo "    sizes $(stat -L -c %s "$a") and $(stat -L -c %s "$b") bytes; first difference at byte ${first:-?}"
  case "$(basename "$a")" in
    initrd.img) _ic_explain_cpio "$a" "$b" ;;
    *.img) _ic_explain_disk "$a" "$b" ;;
    *.squashfs) _ic_explain_squashfs "$a" "$b" ;;
    *.deb) _ic_explain_deb "$a" "$b" ;;
    *.ota) _ic_explain_tar "$a" "$b" ;;
    *.ota2) _ic_diff <(tar --full-time -tvf "$a") <(tar --full-time -tvf "$b") ;;
    SHA256SUMS) _ic_diff "$a" "$b" ;;
  esac
}

image_compare() { # DIR_A DIR_B
  local a="$1" b="$2" f ha hb rc=0 n=0
  _ic_tmp="$(mktemp -d)"
  if ! diff <(_ic_files "$a") <(_ic_files "$b") >"$_ic_tmp/names"; then
    echo "image-compare: the two builds hold different files (< $a, > $b):"
    _ic_lines <"$_ic_tmp/names"
    rc=1
  fi
  while read -r f; do
    ha="$(sha256sum <"$a/$f" | cut -d' ' -f1)"
    hb="$(sha256sum <"$b/$f" | cut -d' ' -f1)"
    n=$((n + 1))
    if [ "$ha" = "$hb" ]; then
      echo "  identical  $ha  $f"
    else
      echo "  DIFFERENT  $f: $ha (in $a) vs $hb (in $b)"
      image_explain "$a/$f" "$b/$f"
      rc=1
    fi
  done < <(comm -12 <(_ic_files "$a") <(_ic_files "$b"))
  rm -rf "$_ic_tmp"
  [ "$n" -gt 0 ] || { echo "image-compare: no files to compare in $a and $b" >&2; rc=1; }
  return "$rc"
}
