#!/usr/bin/env bash
# System test: faults with a real hearthd (root) and real LXC, on a small data disk.
#
# hearthd's data dir is a 64 MiB ext4 filesystem on a loop device. `keep` (hello-oci
# plus a chatty daemon) is installed, started and its guest book signed; then, one
# after the other: a daemon whose command does not exist (its error and a crash loop
# in statusInfo), a health check that never passes (failure with a message, no crash
# loop), a package packed for another architecture, two packages with a malformed
# hearth.json (signed with the archive writer by `cargo test -p hearth-services --test
# faults -- --ignored write_fault_packages`; `hearth s9pk pack` refuses to make them),
# a package bigger than the free space (507 noSpace: refused before writing when its
# length is declared, the write that fills the disk when sent chunked; the file named)
# and one that fits once but not twice (the install's copy fails: noSpace naming the
# archive), and a package uninstalled while its container starts. After each: a clear
# error, nothing of the faulty package left (entry, files, mounts, container), `keep`
# still serving with its guest book unchanged, and hearthd answering (a package that
# fits installs after the disk was full). Also checks the log stream
# (GET /ws/logs/<id>, a stdlib WebSocket client) and the per-daemon log files on the
# data disk (rotated at the cap hearthd is given, 256 KiB: <daemon>.log + .log.1, newest
# lines kept). Last, statusInfo.resources of the running `keep` (memory, tasks, CPU) and
# its removal when `keep` stops.
# Needs what services.sh needs plus mkfs.ext4 (e2fsprogs). Uses the bridge hearth0.
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh

. ci/systest/lib.sh
systest_setup faults "LXC containers, loop mount" lxc-start lxc-info mksquashfs busybox curl python3 mkfs.ext4
build_init
LOG_CAP=$((256 * 1024)) # hearthd --service-log-max-bytes (hearth-container default: 1 MiB)
HEARTHD_ARGS="--service-log-max-bytes $LOG_CAP"

cleanup() {
  stop_hearthd
  for c in "$DATA"/containers/*/; do
    [ -d "$c" ] && stop_containers "$(basename "$c")" || true
  done
  unmount_below "$WORK"
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "-- a 64 MiB ext4 data disk"
truncate -s 64M "$WORK/disk.img"
mkfs.ext4 -q -F -m 0 "$WORK/disk.img"
mkdir "$DATA"
mount -o loop "$WORK/disk.img" "$DATA"
chmod 711 "$DATA"

# --- packages: hello-oci from a rootfs with a static busybox, varied per fault (mkpkg).
installed() { rpc package.list '{}' | python3 -c 'import json,sys; print(" ".join(sorted(p["id"] for p in json.load(sys.stdin)["result"])))'; }
leftovers() { # ID: files, mounts or container of a package that should be gone
  find "$DATA/packages" "$DATA/containers" -path "*/$1" -o -path "*/$1/*" -o -name ".$1*" 2>/dev/null | head -5
  grep " $DATA/containers/$1/" /proc/mounts || true
  lxc-info -P "$DATA/containers" -n "$1" >/dev/null 2>&1 && echo "container $1 still defined"
  true
}
wait_gone() { # ID
  for _ in $(seq 1 150); do
    [[ " $(installed) " != *" $1 "* ]] && break
    sleep 0.2
  done
  [[ " $(installed) " != *" $1 "* ]] || fail "$1 not removed"
  [ -z "$(leftovers "$1")" ] || fail "$1 left behind: $(leftovers "$1")"
}
page() { curl -s -m 3 "http://10.88.0.$1:8080/" || true; }
BOOK="$DATA/packages/data/keep/volumes/main/guestbook.txt"
keep_intact() { # WHAT
  [ "$(sha256sum <"$BOOK")" = "$BOOK_SUM" ] || fail "after $1: keep's guest book changed"
  page 2 | grep "Hello from an OCI image" >/dev/null || fail "after $1: keep no longer serves its page"
  [ "$(status keep state)" = running ] || fail "after $1: keep is $(status keep state)"
  [ "$(rpc server.echo '{"message":"still here"}' | field /result)" = "still here" ] \
    || fail "after $1: hearthd does not answer"
}
refused() { # FILE REASON NEEDLE WHAT [CURL-ARGS...]: upload refused with data.reason and a message naming NEEDLE
  local code; code="$(upload "$1" '?allowUntrusted=true' "${@:5}")"
  [ "$(field /error/data/reason <"$WORK/upload.json")" = "$2" ] || fail "$4: not refused as $2 (HTTP $code): $(cat "$WORK/upload.json")"
  field /error/message <"$WORK/upload.json" | grep -F "$3" >/dev/null \
    || fail "$4: message does not name $3: $(cat "$WORK/upload.json")"
  echo "   $4: HTTP $code, $(field /error/message <"$WORK/upload.json")"
  [ -z "$(ls -A "$DATA/packages/upload" 2>/dev/null)" ] || fail "$4: upload file left behind"
}

gen_key
mkpkg keep "$WORK/keep.s9pk" chatty
mkpkg ghost "$WORK/ghost.s9pk" 'command=["/bin/does-not-exist", "--serve"]'
mkpkg sick "$WORK/sick.s9pk" health=/no-such-page
mkpkg arm "$WORK/arm.s9pk" arch=aarch64
mkpkg late "$WORK/late.s9pk"
mkdir -p "$WORK/fixtures"
HEARTH_FAULTS_OUT="$WORK/fixtures" HEARTH_FAULTS_KEY="$WORK/key.pem" \
  cargo test -q -p hearth-services --test faults -- --ignored --exact write_fault_packages >/dev/null \
  || fail "writing the malformed packages"

start_hearthd
rpc setup.complete '{"password":"password123","hostname":"hearth"}' >/dev/null
trust_key

echo "-- keep: installed, running, guest book signed"
[ "$(upload "$WORK/keep.s9pk")" = 200 ] || fail "keep upload: $(cat "$WORK/upload.json")"
rpc package.start '{"id":"keep"}' >/dev/null
wait_status keep state running
wait_status keep health/http/result success
RUN="$(rpc package.action.run '{"id":"keep","actionId":"sign","input":{"name":"Ada"}}')"
[ "$(echo "$RUN" | field /result/success)" = True ] || fail "action.run: $RUN"
BOOK_SUM="$(sha256sum <"$BOOK")"
keep_intact start

echo "-- logs: GET /ws/logs/keep follows new lines; refusals before the upgrade"
cat >"$WORK/ws.py" <<'PY'
# Minimal WebSocket client (stdlib): ws.py HOST:PORT PATH COOKIE N -> N line frames as
# JSON lines, or "HTTP <status>" when the upgrade is refused.
import base64, json, os, socket, struct, sys
addr, path, cookie, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
host, port = addr.rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=20)
auth = f"x-hearth-local-auth: {cookie}\r\n" if cookie else ""
key = base64.b64encode(os.urandom(16)).decode()
s.sendall((f"GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n").encode())
buf = b""
while b"\r\n\r\n" not in buf:
    buf += s.recv(4096)
head, buf = buf.split(b"\r\n\r\n", 1)
code = head.split(b" ")[1].decode()
if code != "101":
    print("HTTP", code)
    sys.exit(0)
def take(k):
    global buf
    while len(buf) < k:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("connection closed")
        buf += chunk
    out, buf = buf[:k], buf[k:]
    return out
got = 0
while got < n:
    b0, b1 = take(2)
    length = b1 & 0x7F
    if length == 126:
        length = struct.unpack(">H", take(2))[0]
    elif length == 127:
        length = struct.unpack(">Q", take(8))[0]
    payload = take(length)
    if b0 & 0x0F == 8:
        raise SystemExit(f"closed: {payload[:2].hex()} {payload[2:].decode()}")
    if b0 & 0x0F == 1:
        v = json.loads(payload)
        if "seq" in v:
            print(json.dumps(v))
            got += 1
PY
ADDR="${URL#http://}"
timeout 30 python3 "$WORK/ws.py" "$ADDR" "/ws/logs/keep?daemon=chatty&tail=0" "$(cookie)" 20 >"$WORK/stream.txt" \
  || fail "log stream: $(cat "$WORK/stream.txt")"
python3 - "$WORK/stream.txt" <<'PY' || fail "log stream lines: $(head -c 600 "$WORK/stream.txt")"
import json, sys
e = [json.loads(l) for l in open(sys.argv[1])]
assert len(e) == 20 and all(x["daemon"] == "chatty" for x in e), e
seqs = [x["seq"] for x in e]
assert seqs == sorted(seqs) and len(set(seqs)) == 20, seqs
nums = [int(x["line"].split()[2]) for x in e if x["line"].startswith("chatty line")]
assert nums == list(range(nums[0], nums[0] + len(nums))), nums
PY
[ "$(timeout 10 python3 "$WORK/ws.py" "$ADDR" /ws/logs/keep "" 1)" = "HTTP 401" ] || fail "anonymous log stream not refused"
[ "$(timeout 10 python3 "$WORK/ws.py" "$ADDR" /ws/logs/nope "$(cookie)" 1)" = "HTTP 404" ] || fail "unknown package's log stream not refused"

echo "-- logs: per-daemon files on the data disk stay within the cap, newest lines kept"
LOGDIR=""
for _ in $(seq 1 150); do
  LOGDIR="$(dirname "$(find "$DATA/packages/data/keep" -name chatty.log.1 2>/dev/null | head -n 1)")"
  [ "$LOGDIR" != . ] && break
  sleep 0.2
done
[ "$LOGDIR" != . ] || fail "chatty.log never rotated (no chatty.log.1 under $DATA/packages/data/keep)"
sleep 3 # past the cap again: rotated more than once
LATEST="$(rpc package.logs '{"id":"keep","daemon":"chatty","limit":1}' | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["result"]["entries"][0]["line"].split()[2]))')"
for f in "$LOGDIR"/chatty.log "$LOGDIR"/chatty.log.1; do
  size="$(stat -c %s "$f")"
  [ "$size" -le "$LOG_CAP" ] || fail "$f is $size bytes, over the cap $LOG_CAP"
done
[ -z "$(find "$LOGDIR" -name 'chatty.log.*' ! -name chatty.log.1)" ] || fail "more log files than .log and .log.1: $(ls "$LOGDIR")"
LAST_IN_FILE="$(tail -n 1 "$LOGDIR/chatty.log" | awk '{print $5}')"
FIRST_KEPT="$(head -n 1 "$LOGDIR/chatty.log.1" | awk '{print $5}')"
[ "$LAST_IN_FILE" -ge "$LATEST" ] || fail "newest line $LATEST not in chatty.log (last: $LAST_IN_FILE)"
echo "   chatty.log $(stat -c %s "$LOGDIR/chatty.log") + .log.1 $(stat -c %s "$LOGDIR/chatty.log.1") bytes (cap $LOG_CAP); lines $FIRST_KEPT..$LAST_IN_FILE kept, $LATEST latest seen"

echo "-- a daemon whose command does not exist: its error, then a crash loop"
[ "$(upload "$WORK/ghost.s9pk")" = 200 ] || fail "ghost upload: $(cat "$WORK/upload.json")"
rpc package.start '{"id":"ghost"}' >/dev/null
wait_status ghost state running
for _ in $(seq 1 150); do
  status ghost daemons/httpd/lastError | grep -F /bin/does-not-exist >/dev/null && break
  sleep 0.2
done
status ghost daemons/httpd/lastError | grep -F /bin/does-not-exist >/dev/null \
  || fail "ghost: lastError does not name the command: $(status ghost daemons/httpd/lastError)"
wait_status ghost crashLoop True 90
echo "   ghost: $(status ghost daemons/httpd/lastError); crashLoop $(status ghost crashLoop)"
rpc package.logs '{"id":"ghost","limit":100}' | grep -F does-not-exist >/dev/null || fail "ghost: logs do not say why"
keep_intact "a missing command"
rpc package.uninstall '{"id":"ghost"}' >/dev/null
wait_gone ghost

echo "-- a health check that never passes: failure with a message, no crash loop"
[ "$(upload "$WORK/sick.s9pk")" = 200 ] || fail "sick upload: $(cat "$WORK/upload.json")"
rpc package.start '{"id":"sick"}' >/dev/null
wait_status sick state running
wait_status sick health/http/result failure 60
MSG="$(status sick health/http/message)"
[ "$MSG" != null ] && [ -n "$MSG" ] || fail "sick: health failure without a message"
sleep 3
[ "$(status sick crashLoop)" = False ] || fail "sick: crash loop for a failing health check"
[ "$(status sick health/http/result)" = failure ] || fail "sick: health became $(status sick health/http/result)"
echo "   sick: health http failure: $MSG"
keep_intact "a failing health check"
rpc package.uninstall '{"id":"sick"}' >/dev/null
wait_gone sick

echo "-- refused before anything is written: other architecture, malformed hearth.json"
refused "$WORK/arm.s9pk" architecture aarch64 "packed for aarch64"
refused "$WORK/fixtures/bad-json.s9pk" serviceSpec hearth.json "hearth.json not JSON"
refused "$WORK/fixtures/bad-spec.s9pk" serviceSpec ghost "hearth.json with an unknown image"
for id in arm bad-json bad-spec; do [ -z "$(leftovers "$id")" ] || fail "$id left behind: $(leftovers "$id")"; done
[ "$(installed)" = keep ] || fail "installed: $(installed)"
keep_intact "refused packages"

echo "-- a full data disk"
FREE_MIB=$(( $(df -B1 --output=avail "$DATA" | tail -n 1) / 1048576 ))
echo "   free: $FREE_MIB MiB"
mkpkg toobig "$WORK/toobig.s9pk" blob=$((FREE_MIB + 8))
# Its declared length is refused before anything is written; sent chunked (no length),
# the write that fills the disk fails and the partial file is removed.
refused "$WORK/toobig.s9pk" noSpace "packages/upload: only" "bigger than the free space, declared"
refused "$WORK/toobig.s9pk" noSpace packages/upload/ "bigger than the free space, chunked" \
  -H 'transfer-encoding: chunked'
field /error/message <"$WORK/upload.json" | grep -F "No space left" >/dev/null \
  || fail "the chunked upload did not fill the disk: $(cat "$WORK/upload.json")"
keep_intact "an upload that filled the disk"
mkpkg twice "$WORK/twice.s9pk" blob=$((FREE_MIB * 6 / 10))
refused "$WORK/twice.s9pk" noSpace packages/ "fits once, not twice"
field /error/message <"$WORK/upload.json" | grep -E "packages/(archive|images)/twice" >/dev/null \
  || fail "the install's copy was not what failed: $(cat "$WORK/upload.json")"
rm -f "$WORK/toobig.s9pk" "$WORK/twice.s9pk"
for id in toobig twice; do [ -z "$(leftovers "$id")" ] || fail "$id left behind: $(leftovers "$id")"; done
[ "$(installed)" = keep ] || fail "installed: $(installed)"
AFTER_MIB=$(( $(df -B1 --output=avail "$DATA" | tail -n 1) / 1048576 ))
[ "$AFTER_MIB" -ge $((FREE_MIB - 2)) ] || fail "space not given back: $AFTER_MIB MiB free, was $FREE_MIB"
keep_intact "a full disk"
[ "$(upload "$WORK/late.s9pk")" = 200 ] || fail "no install after the disk was full: $(cat "$WORK/upload.json")"

echo "-- uninstalled while starting"
rpc package.start '{"id":"late"}' >/dev/null
SEEN=""
for _ in $(seq 1 100); do
  SEEN="$(status late state)"
  [ "$SEEN" = starting ] || [ "$SEEN" = running ] && break
  sleep 0.02
done
rpc package.uninstall '{"id":"late"}' >/dev/null
echo "   uninstalled while $SEEN"
wait_gone late
! page 3 | grep Hello >/dev/null || fail "late still serving after uninstall"
keep_intact "an uninstall while starting"

echo "-- hearthd restarts on the same disk: keep adopted"
stop_hearthd
start_hearthd
sleep 2
keep_intact "a hearthd restart"

echo "-- resource use in statusInfo while running (chatty keeps a CPU busy); gone once stopped"
for _ in $(seq 1 150); do
  [ "$(status keep resources/cpuPercent)" != null ] && break
  sleep 0.2
done
RES="$(rpc db.dump '{"pointer":"/packageData/keep/statusInfo/resources"}' | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["result"]["value"]))')"
python3 - "$RES" <<'PY' || fail "keep: statusInfo.resources: $RES"
import json, sys
r = json.loads(sys.argv[1])
assert r["memoryBytes"] > 1 << 20, r
assert r["pids"] >= 3, r  # hearth-container, httpd and chatty's shell at least
assert r["cpuPercent"] > 0, r  # chatty writes about 2,000 lines a second (2.5 % seen)
assert r["cpuTimeNs"] > 0 and r["sampledAt"] > 0, r
PY
echo "   keep: $RES"
rpc package.stop '{"id":"keep"}' >/dev/null
wait_status keep state stopped
[ "$(status keep resources)" = null ] || fail "keep stopped, resources still shown: $(status keep resources)"
echo "faults: ok"
