#!/usr/bin/env bash
# System test: a package installed, run, adopted, restarted after a crash, stopped and
# removed by a real hearthd with real LXC.
#
# Packs sdk/examples/hello-oci from a rootfs with a static busybox, uploads it to
# hearthd (POST /rest/package/upload), trusts its key, starts it and fetches its page on
# the service bridge, checks what hearthd learns over the container's service.sock
# (health check `success` in statusInfo, package.logs, the `sign` action refused with
# bad input and run with good input, its lastResult), restarts hearthd (the container
# must be adopted, not started again), kills the container's init (it must be
# restarted and counted, health followed again; before that, container root plants
# symlinks, hard links and FIFOs in its socket dir, volume and overlay upper and swaps
# service.sock for a link to another host socket, a FIFO and a hard link: hearthd must
# refuse each socket at once, never write the host canary file, never reach the other
# socket, and the config dir must be read-only inside), stops it (health cleared), and
# uninstalls it (no file or mount left). Then dependencies: packages a and b (b
# requires a, kind running): b's install is refused without a; starting b starts a;
# b stays `waiting` (waitingFor a, no container) until a's health check passes; b's
# daemon reaches http://a.hearth:8080/ at its first try and sees HEARTH_A_HOST; a
# cannot be uninstalled while b is installed; stopping a (or a crash of a) stops b,
# which waits for a and comes back by itself; a is installed from a URL
# (python3 -m http.server; a 404 is refused clearly). Then updates: hello-oci v1 -> v2 (a
# migration records HEARTH_PREVIOUS_VERSION in the volume; the guest book survives; the
# v2 page is served; a success notification), the same version and a downgrade are
# refused, and v3 (its health check never passes) is rolled back to v2 with its data
# and an error notification. Needs root, LXC, busybox-static,
# squashfs-tools, /etc/sub{u,g}id (ci/deps.sh), curl, python3 and the Rust target
# <arch>-unknown-linux-musl (hearth-container must be static: images may have no libc).
# Uses the bridge hearth0 (10.88.0.1/24), left in place.
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh

. ci/systest/lib.sh
systest_setup services "LXC containers" lxc-start lxc-info mksquashfs busybox curl python3
build_init
HTTP_PID=""
OTHER_PID=""
cleanup() {
  [ -z "$HTTP_PID" ] || kill "$HTTP_PID" 2>/dev/null || true
  [ -z "$OTHER_PID" ] || kill "$OTHER_PID" 2>/dev/null || true
  stop_hearthd
  stop_containers hello-oci a b
  unmount_below "$WORK"
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- the package: hello-oci with its image from a rootfs (static busybox as httpd)
gen_key
mkpkg hello-oci "$WORK/hello.s9pk"

hello_status() { status hello-oci "$1"; }
wait_hello() { wait_status hello-oci "$1" "$2"; }
page() { curl -s -m 3 http://10.88.0.2:8080/ || true; }

# The test's package server is on 127.0.0.1, refused unless allowed explicitly.
HEARTHD_ARGS="${HEARTHD_ARGS:-} --allow-package-source 127.0.0.1/32"
start_hearthd
rpc setup.complete '{"password":"password123","hostname":"hearth"}' >/dev/null

echo "-- upload refused for an unknown signer, accepted once its key is trusted"
upload_hello() { upload "$WORK/hello.s9pk" >/dev/null; cat "$WORK/upload.json"; }
[ "$(upload_hello | field /error/data/reason)" = untrustedSigner ] || fail "untrusted upload not refused"
trust_key
[ "$(upload_hello | field /result/signerTrusted)" = True ] || fail "trusted upload not installed"
[ -z "$(ls -A "$DATA/packages/upload")" ] || fail "upload file left behind"

echo "-- start: the container runs the daemon and serves its page"
rpc package.start '{"id":"hello-oci"}' >/dev/null
wait_hello state running
page | grep "Hello from an OCI image" >/dev/null || fail "page not served on 10.88.0.2:8080"
STARTED="$(hello_status startedAt)"

echo "-- over service.sock: health in the state, logs, an action with checked input"
wait_hello health/http/result success
[ "$(hello_status daemons/httpd/state)" = running ] || fail "daemons.httpd.state is $(hello_status daemons/httpd/state)"
[ "$(hello_status crashLoop)" = False ] || fail "crashLoop is $(hello_status crashLoop)"
LOGS="$(rpc package.logs '{"id":"hello-oci","limit":50}')"
echo "$LOGS" | python3 -c 'import json,sys
e = json.load(sys.stdin)["result"]["entries"]
assert any("started process" in x["line"] for x in e), e' || fail "package.logs: $LOGS"
rpc package.action.list '{"id":"hello-oci"}' | python3 -c 'import json,sys
a = json.load(sys.stdin)["result"]
assert [x["id"] for x in a] == ["sign"] and a[0]["input"]["required"] == ["name"], a' \
  || fail "package.action.list"
BOOK="$DATA/packages/data/hello-oci/volumes/main/guestbook.txt"
BAD="$(rpc package.action.run '{"id":"hello-oci","actionId":"sign","input":{"name":5}}')"
[ "$(echo "$BAD" | field /error/data/reason)" = invalidInput ] || fail "bad input not refused: $BAD"
[ "$(echo "$BAD" | field /error/data/path)" = input.name ] || fail "bad input path: $BAD"
[ ! -e "$BOOK" ] || fail "the action ran despite bad input"
RUN="$(rpc package.action.run '{"id":"hello-oci","actionId":"sign","input":{"name":"Ada"}}')"
[ "$(echo "$RUN" | field /result/success)" = True ] || fail "action.run: $RUN"
echo "$RUN" | field /result/stdout | grep "Hello from Hearth, Ada" >/dev/null || fail "action output (GREETING comes from the image env): $RUN"
grep -q "Ada" "$BOOK" || fail "guest book not signed"
LAST="$(rpc db.dump '{"pointer":"/packageData/hello-oci/actions/sign/lastResult"}')"
[ "$(echo "$LAST" | field /result/value/success)" = True ] || fail "lastResult: $LAST"

echo "-- hearthd restart: the running container is adopted, not started again"
stop_hearthd
page | grep "Hello" >/dev/null || fail "container stopped with hearthd"
start_hearthd
sleep 2
[ "$(hello_status state)" = running ] || fail "not running after hearthd restart"
[ "$(hello_status startedAt)" = "$STARTED" ] || fail "container was started again"
grep -q "adopting container" "$WORK/hearthd.err" || fail "no adoption logged"

echo "-- container root attacks the host through every directory it can write"
# A host file the container must never change (root, 0600), and another socket on the
# host that hearthd must never be tricked into connecting to.
CANARY="$WORK/canary"
printf 'X' >"$CANARY"
chmod 600 "$CANARY"
canary_intact() {
  [ "$(cat "$CANARY")" = X ] && [ "$(stat -c %a:%u "$CANARY")" = 600:0 ] \
    || fail "host file changed by hearthd ($1): $(stat -c %a:%u "$CANARY") $(head -c 40 "$CANARY")"
}
python3 - "$WORK/other.sock" "$WORK/other.hits" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
while True:
    c, _ = s.accept(); open(sys.argv[2], "a").write("hit\n"); c.close()
PY
OTHER_PID=$!
for _ in $(seq 1 50); do [ -S "$WORK/other.sock" ] && break; sleep 0.1; done
inside() { lxc-attach -P "$DATA/containers" -n hello-oci -- /bin/busybox sh -c "$1"; }
R=/media/hearth/rpc
logs_call() { rpc package.logs '{"id":"hello-oci","limit":1}'; }
socket_refused() { # WHAT: package.logs fails at once with a refusal, and reaches nothing else
  local t0 out
  t0=$(date +%s)
  out="$(logs_call)"
  [ $(( $(date +%s) - t0 )) -le 3 ] || fail "package.logs hung on a $1"
  echo "$out" | grep -q refusing || fail "no clear refusal for a $1: $out"
}
inside "busybox mv $R/service.sock $R/real.sock && busybox ln -s $WORK/other.sock $R/service.sock"
socket_refused "symlink to another socket"
inside "busybox rm $R/service.sock && busybox mkfifo $R/service.sock"
socket_refused "FIFO"
inside "busybox rm $R/service.sock && busybox ln $R/real.sock $R/service.sock"
socket_refused "hard link"
inside "busybox rm $R/service.sock && busybox ln -s /nowhere $R/service.sock"
socket_refused "dangling symlink"
[ ! -e "$WORK/other.hits" ] || fail "hearthd connected to another socket through the container's link"
inside "busybox rm $R/service.sock && busybox mv $R/real.sock $R/service.sock"
logs_call | grep -q '"entries"' || fail "package.logs does not work again once the socket is back"
grep -q "refusing" "$WORK/hearthd.err" || fail "hearthd logged no refusal"
# What hearthd gives the container is read-only inside.
! inside "echo x >/media/hearth/config/spec.json" 2>/dev/null || fail "config dir writable from the container"
! inside "busybox touch /media/hearth/config/new" 2>/dev/null || fail "config dir writable from the container"
# Links planted for the next start: the spec and image defaults where hearthd used to
# copy them, the socket dir, a volume, the overlay upper (the container's /).
inside "busybox ln -sf $CANARY $R/spec.json; busybox rm -rf $R/images; busybox mkdir -p $R/images;
  busybox ln -sf $CANARY $R/images/main.json; busybox ln -sf $CANARY $R/.spec.json.tmp;
  busybox ln -sf $CANARY /media/hearth/volumes/main/link; busybox ln -sf $WORK /media/hearth/volumes/main/work;
  busybox touch /media/hearth/volumes/main/f; busybox ln /media/hearth/volumes/main/f /media/hearth/volumes/main/hard;
  busybox ln -sf $CANARY /canary; busybox ln -sf $WORK /hostwork; busybox mkfifo $R/junk.fifo"
canary_intact "links planted"

echo "-- its init dies: restarted and counted"
PID="$(lxc-info -P "$DATA/containers" -n hello-oci -pH)"
[ -n "$PID" ] || fail "no init pid"
kill -9 "$PID"
for _ in $(seq 1 150); do [ "$(hello_status restartCount)" != 0 ] && break; sleep 0.2; done
canary_intact "a start after the links were planted"
wait_hello restartCount 1
wait_hello state running
page | grep "Hello" >/dev/null || fail "page not served after the restart"
wait_hello health/http/result success
canary_intact "a start after the links were planted"
[ "$(ls -A "$DATA/packages/data/hello-oci/rpc")" = service.sock ] \
  || fail "socket dir holds more than the socket after a start: $(ls -A "$DATA/packages/data/hello-oci/rpc")"
[ ! -e "$WORK/other.hits" ] || fail "hearthd connected to another socket"
kill "$OTHER_PID" 2>/dev/null || true

echo "-- stop, then uninstall: nothing left"
rpc package.stop '{"id":"hello-oci"}' >/dev/null
wait_hello state stopped
for _ in $(seq 1 50); do [ "$(hello_status health)" = null ] && break; sleep 0.2; done
[ "$(hello_status health)" = null ] || fail "health still reported after stop: $(hello_status health)"
[ -z "$(page)" ] || fail "still serving after stop"
rpc package.uninstall '{"id":"hello-oci"}' >/dev/null
for _ in $(seq 1 100); do
  [ "$(rpc package.list '{}' | field /result)" = "[]" ] && break
  sleep 0.2
done
[ "$(rpc package.list '{}' | field /result)" = "[]" ] || fail "package not removed"
[ -z "$(find "$DATA/packages" -type f)" ] || fail "files left: $(find "$DATA/packages" -type f)"
! grep -q "$WORK" /proc/mounts || fail "mounts left: $(grep "$WORK" /proc/mounts)"

echo "-- dependencies: b requires a (kind running); b starts only once a is healthy"
# a: busybox httpd that comes up 4 s after its container (its http check fails until
# then). b: on start, fetches http://a.hearth:8080/ once (recording FAILED if it could
# not) and writes \$HEARTH_A_HOST into its volume, then serves.
mkproj() { # ID DIR
  mkdir -p "$2/rootfs/bin" "$2/rootfs/srv/www" "$2/rootfs/etc"
  cp "$(command -v busybox)" "$2/rootfs/bin/busybox"
  for applet in sh sleep wget cat; do ln -s busybox "$2/rootfs/bin/$applet"; done
  echo "hosts: files dns" >"$2/rootfs/etc/nsswitch.conf"
  echo "page of $1" >"$2/rootfs/srv/www/index.html"
  cp sdk/examples/hello-oci/{LICENSE.md,icon.svg,instructions.md} "$2/"
}
manifest() { # ID VERSION
  cat <<EOF
[manifest]
id = "$1"
title = "Package $1"
version = "$2"
license = "MIT"
packageRepo = "https://example.invalid/$1"
upstreamRepo = "https://example.invalid/$1"
releaseNotes = "Test release."
volumes = ["main"]

[manifest.description]
short = "Test package $1"
long = "A busybox test package for the services system test."

[images.main]
rootfs = "rootfs"
EOF
}
mkproj a "$WORK/a"
{ manifest a 1.0.0:0; cat <<'EOF'

[[service.daemons]]
id = "httpd"
image = "main"
command = ["/bin/sh", "-c", "sleep 4; exec /bin/busybox httpd -f -p 8080 -h /srv/www"]

[[service.daemons.healthChecks]]
id = "http"
name = "Page"
probe = { http = { port = 8080, path = "/" } }
interval = "1s"

# Declared, so that b (which depends on a) may reach it through the firewall.
[[service.interfaces]]
id = "web"
name = "Page"
type = "ui"
port = 8080
EOF
} >"$WORK/a/hearth.toml"
mkproj b "$WORK/b"
{ manifest b 1.0.0:0; cat <<'EOF'

[manifest.dependencies.a]
description = "Serves the page b fetches."
optional = false

[[service.daemons]]
id = "fetch"
image = "main"
command = ["/bin/sh", "-c", "V=/media/hearth/volumes/main; echo \"$HEARTH_A_HOST\" >$V/env; wget -q -O $V/first http://a.hearth:8080/ || echo FAILED >$V/first; exec /bin/busybox httpd -f -p 8080 -h /srv/www"]

[[service.dependencies]]
id = "a"
versionRange = ">=1.0.0:0"
kind = "running"
EOF
} >"$WORK/b/hearth.toml"
for p in a b; do
  "$BIN/hearth" s9pk pack "$WORK/$p" --key "$WORK/key.pem" -o "$WORK/$p.s9pk" 2>"$WORK/pack.err" \
    || fail "pack $p: $(cat "$WORK/pack.err")"
done
# package.install {path} reads only below <data>/import (hearthd makes it, 0700).
[ "$(stat -c %a "$DATA/import")" = 700 ] || fail "import dir mode $(stat -c %a "$DATA/import")"
[ "$(rpc package.install "{\"path\":\"$WORK/b.s9pk\"}" | field /error/data/reason)" = notImportable ] \
  || fail "a file outside the import directory was opened"
[ "$(install_path "$WORK/b.s9pk" | field /error/data/reason)" = dependencies ] \
  || fail "b installed without a"
echo "-- install a from a URL (python3 -m http.server)"
python3 -u -m http.server --bind 127.0.0.1 --directory "$WORK" 0 >"$WORK/http.out" 2>&1 &
HTTP_PID=$!
HTTP_PORT=""
for _ in $(seq 1 50); do
  HTTP_PORT="$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$WORK/http.out" | head -n 1)"
  [ -n "$HTTP_PORT" ] && break
  sleep 0.1
done
[ -n "$HTTP_PORT" ] || fail "http.server did not start: $(cat "$WORK/http.out")"
MISSING="$(rpc package.install "{\"url\":\"http://127.0.0.1:$HTTP_PORT/nope.s9pk\"}")"
[ "$(echo "$MISSING" | field /error/data/status)" = 404 ] || fail "404 download: $MISSING"
# Credentials and query in the URL: used for the fetch, never stored or logged.
rpc package.install "{\"url\":\"http://hearth:SeCrEtPw@127.0.0.1:$HTTP_PORT/a.s9pk?token=SeCrEtTok\"}" \
  | grep '"id":"a"' >/dev/null || fail "install a from a URL"
! grep -q 'SeCrEt' "$WORK/hearthd.err" || fail "URL credentials in hearthd's log"
! rpc server.logs '{"limit":1000}' | grep -q 'SeCrEt' || fail "URL credentials in server.logs"
! rpc db.dump '{}' | grep -q 'SeCrEt' || fail "URL credentials in the state"
kill "$HTTP_PID" 2>/dev/null || true
wait "$HTTP_PID" 2>/dev/null || true
[ -z "$(ls -A "$DATA/packages/upload")" ] || fail "download left behind: $(ls -A "$DATA/packages/upload")"
install_path "$WORK/b.s9pk" | grep '"id":"b"' >/dev/null || fail "install b"
A_ADDR="10.88.0.$(rpc db.dump '{"pointer":"/packageData/a/container/index"}' | field /result/value)"
# Starting b starts a first; b waits (no container) until a's check passes.
rpc package.start '{"id":"b"}' >/dev/null
[ "$(rpc db.dump '{"pointer":"/packageData/a/statusInfo/desired"}' | field /result/value)" = running ] \
  || fail "starting b did not start a"
SEEN_WAITING=""
# b is read before a: if b was seen starting, a must have been healthy before.
for _ in $(seq 1 150); do
  B_JSON="$(rpc db.dump '{"pointer":"/packageData/b/statusInfo"}')"
  B_RUNS=""
  lxc-info -P "$DATA/containers" -n b -sH 2>/dev/null | grep RUNNING >/dev/null && B_RUNS=1
  A_HEALTH="$(status a health/http/result)"
  B_STATE="$(echo "$B_JSON" | field /result/value/state)"
  if [ "$B_STATE" = waiting ]; then
    SEEN_WAITING=1
    [ "$(echo "$B_JSON" | field /result/value/waitingFor)" = '["a"]' ] \
      || fail "b waitingFor: $(echo "$B_JSON" | field /result/value/waitingFor)"
  fi
  [ "$A_HEALTH" = success ] && break
  case "$B_STATE" in starting|running) fail "b is $B_STATE while a's health is $A_HEALTH";; esac
  [ -z "$B_RUNS" ] || fail "b's container runs before a is healthy"
  sleep 0.2
done
[ "$A_HEALTH" = success ] || fail "a never became healthy (state $(status a state))"
[ -n "$SEEN_WAITING" ] || fail "b was never shown waiting for a"
wait_status b state running
[ "$(status b waitingFor)" = null ] || fail "waitingFor kept: $(status b waitingFor)"
BVOL="$DATA/packages/data/b/volumes/main"
for _ in $(seq 1 50); do [ -s "$BVOL/first" ] && break; sleep 0.2; done
grep -x "page of a" "$BVOL/first" >/dev/null || fail "b could not fetch a.hearth: $(cat "$BVOL/first" 2>&1)"
[ "$(cat "$BVOL/env")" = "$A_ADDR" ] || fail "HEARTH_A_HOST is '$(cat "$BVOL/env")', a is $A_ADDR"
grep "a.hearth" "$DATA/packages/data/b/hosts" >/dev/null || fail "no a.hearth in b's hosts file"

echo "-- a cannot be uninstalled while b requires it"
REFUSED="$(rpc package.uninstall '{"id":"a"}')"
[ "$(echo "$REFUSED" | field /error/data/reason)" = dependents ] || fail "uninstall a: $REFUSED"
[ "$(echo "$REFUSED" | field /error/data/dependents)" = '["b"]' ] || fail "dependents: $REFUSED"
[ "$(status a state)" = running ] || fail "a disturbed by the refused uninstall"

b_runs() { lxc-info -P "$DATA/containers" -n b -sH 2>/dev/null | grep RUNNING >/dev/null; }
b_waits_then_returns() { # WHY: b stops and waits for a, then starts by itself and
  # fetches a's page again (its daemon fetches once per start).
  wait_status b state waiting
  [ "$(status b waitingFor)" = '["a"]' ] || fail "$1: b waitingFor $(status b waitingFor)"
  [ "$(rpc db.dump '{"pointer":"/packageData/b/statusInfo/desired"}' | field /result/value)" = running ] \
    || fail "$1: b's desired state changed"
  ! b_runs || fail "$1: b's container still runs while it waits"
  : >"$BVOL/first"
  wait_status b state running
  [ "$(status a health/http/result)" = success ] || fail "$1: b started before a was healthy"
  for _ in $(seq 1 50); do [ -s "$BVOL/first" ] && break; sleep 0.2; done
  grep -x "page of a" "$BVOL/first" >/dev/null || fail "$1: b's new run could not fetch a: $(cat "$BVOL/first")"
  [ "$(status b restartCount)" = 0 ] || fail "$1: b counted as crashed"
}
echo "-- a stopped: b stops and waits for it; a started again: b comes back by itself"
STOPPED="$(rpc package.stop '{"id":"a"}')"
[ "$(echo "$STOPPED" | field /result/dependents)" = '["b"]' ] || fail "stop a names no dependents: $STOPPED"
wait_status b state waiting
rpc package.start '{"id":"a"}' | grep '"result"' >/dev/null || fail "start a"
b_waits_then_returns "a stopped"
echo "-- a's init dies: b stops and waits for a's new run, then comes back"
APID="$(lxc-info -P "$DATA/containers" -n a -pH)"
[ -n "$APID" ] || fail "no init pid for a"
kill -9 "$APID"
wait_status a restartCount 1
b_waits_then_returns "a died"
rpc package.uninstall '{"id":"b"}' >/dev/null
for _ in $(seq 1 100); do
  rpc package.list '{}' | grep '"id":"b"' >/dev/null || break
  sleep 0.2
done
rpc package.uninstall '{"id":"a"}' | grep '"result"' >/dev/null || fail "uninstall a after b"
for _ in $(seq 1 100); do
  [ "$(rpc package.list '{}' | field /result)" = "[]" ] && break
  sleep 0.2
done
[ "$(rpc package.list '{}' | field /result)" = "[]" ] || fail "a and b not removed"

echo "-- update: hello-oci v1 -> v2 keeps its volume and runs the migration"
# v2: another page and a migration that records HEARTH_PREVIOUS_VERSION in the volume.
# v3: a health check that never passes (404) with a short grace period.
variant() { # DIR VERSION PAGE EXTRA-PYTHON
  cp -r "$WORK/proj" "$1"
  echo "$3" >"$1/rootfs/srv/www/index.html"
  python3 - "$1/hearth.toml" "$2" "$4" <<'PY2'
import sys
p, version, extra = sys.argv[1], sys.argv[2], sys.argv[3]
s = open(p).read()
s = s.replace('version = "0.1.0:0"', 'version = "%s"' % version)
exec(extra)
open(p, "w").write(s)
PY2
  "$BIN/hearth" s9pk pack "$1" --key "$WORK/key.pem" -o "$1.s9pk" 2>"$WORK/pack.err" \
    || fail "pack $1: $(cat "$WORK/pack.err")"
}
variant "$WORK/v2" 0.2.0:0 "Hello v2" '
s += """
[service.migration]
command = ["/bin/sh", "-c", "echo \\"from $HEARTH_PREVIOUS_VERSION\\" >/media/hearth/volumes/main/migrated"]
timeout = "30s"
"""'
variant "$WORK/v3" 0.3.0:0 "Hello v3" '
s = s.replace("probe = { http = { port = 8080, path = \"/\" } }",
              "probe = { http = { port = 8080, path = \"/missing\" } }\ngracePeriod = \"2s\"\ninterval = \"1s\"\ntimeout = \"1s\"")
assert "/missing" in s'
install_path "$WORK/hello.s9pk" | grep '"id":"hello-oci"' >/dev/null || fail "reinstall hello-oci v1"
rpc package.start '{"id":"hello-oci"}' >/dev/null
wait_hello health/http/result success
rpc package.action.run '{"id":"hello-oci","actionId":"sign","input":{"name":"Grace"}}' \
  | grep '"success":true' >/dev/null || fail "sign before the update"
HELLO_ADDR="10.88.0.$(rpc db.dump '{"pointer":"/packageData/hello-oci/container/index"}' | field /result/value)"
hpage() { curl -s -m 3 "http://$HELLO_ADDR:8080/" || true; }
[ "$(install_path "$WORK/hello.s9pk" | field /error/data/reason)" = alreadyInstalled ] \
  || fail "same version not refused"
install_path "$WORK/v2.s9pk" | grep '"version":"0.2.0:0"' >/dev/null || fail "update to v2 refused"
state_info() { rpc db.dump '{"pointer":"/packageData/hello-oci/stateInfo"}' | field "/result/value/$1"; }
PHASES=""
for _ in $(seq 1 300); do
  P="$(state_info phase)"
  case " $PHASES " in *" $P "*) ;; *) PHASES="$PHASES $P";; esac
  [ "$(state_info state)" = installed ] && break
  sleep 0.2
done
[ "$(state_info state)" = installed ] || fail "update to v2 did not finish (phase $(state_info phase))"
echo "   phases seen:$PHASES"
case "$PHASES" in *checking*) ;; *) fail "update phases not shown in stateInfo:$PHASES";; esac
[ "$(rpc package.list '{}' | python3 -c 'import json,sys; print([p["version"] for p in json.load(sys.stdin)["result"] if p["id"]=="hello-oci"][0])')" = 0.2.0:0 ] \
  || fail "not at v2 after the update"
wait_hello state running
hpage | grep "Hello v2" >/dev/null || fail "v2 page not served: $(hpage)"
grep Grace "$BOOK" >/dev/null || fail "volume file lost by the update"
[ "$(cat "$DATA/packages/data/hello-oci/volumes/main/migrated" 2>&1)" = "from 0.1.0:0" ] \
  || fail "migration did not run with HEARTH_PREVIOUS_VERSION: $(cat "$DATA/packages/data/hello-oci/volumes/main/migrated" 2>&1)"
[ ! -e "$DATA/packages/archive/hello-oci/0.1.0:0.s9pk" ] || fail "v1 archive kept"
[ -z "$(ls -A "$DATA/packages/data/hello-oci/snapshots" 2>/dev/null)" ] || fail "snapshot kept after commit"
rpc notification.list '{}' | grep "updated from 0.1.0:0 to 0.2.0:0" >/dev/null || fail "no success notification"

echo "-- update: v3 never becomes healthy and is rolled back to v2 with its data"
[ "$(install_path "$WORK/hello.s9pk" | field /error/data/reason)" = downgrade ] || fail "downgrade not refused"
install_path "$WORK/v3.s9pk" | grep '"version":"0.3.0:0"' >/dev/null || fail "update to v3 refused"
SEEN_V3=""
for _ in $(seq 1 400); do
  [ "$(state_info phase)" = checking ] && hpage | grep "Hello v3" >/dev/null && SEEN_V3=1
  [ "$(state_info state)" = installed ] && break
  sleep 0.2
done
[ "$(state_info state)" = installed ] || fail "update to v3 did not end (phase $(state_info phase))"
[ -n "$SEEN_V3" ] || fail "v3 never ran"
NOTES="$(rpc notification.list '{}')"
echo "$NOTES" | python3 -c 'import json,sys
n = [x for x in json.load(sys.stdin)["result"] if "rolled back" in x["title"]]
assert n and n[0]["level"] == "error" and "not healthy within its grace period" in n[0]["message"] \
  and "http" in n[0]["message"], n' || fail "no rollback notification: $NOTES"
[ "$(rpc package.list '{}' | python3 -c 'import json,sys; print([p["version"] for p in json.load(sys.stdin)["result"] if p["id"]=="hello-oci"][0])')" = 0.2.0:0 ] \
  || fail "not back at v2"
wait_hello state running
wait_hello health/http/result success
hpage | grep "Hello v2" >/dev/null || fail "v2 page not served after the rollback: $(hpage)"
grep Grace "$BOOK" >/dev/null || fail "volume file lost by the rollback"
hello_status lastError | grep "rolled back" >/dev/null || fail "lastError: $(hello_status lastError)"
[ ! -e "$DATA/packages/archive/hello-oci/0.3.0:0.s9pk" ] || fail "v3 archive kept"
[ ! -e "$DATA/packages/update/hello-oci" ] || fail "update files kept"
rpc package.stop '{"id":"hello-oci"}' >/dev/null
wait_hello state stopped
rpc package.uninstall '{"id":"hello-oci"}' >/dev/null
for _ in $(seq 1 100); do
  [ "$(rpc package.list '{}' | field /result)" = "[]" ] && break
  sleep 0.2
done
[ "$(rpc package.list '{}' | field /result)" = "[]" ] || fail "hello-oci not removed after the updates"
[ -z "$(find "$DATA/packages" -type f)" ] || fail "files left: $(find "$DATA/packages" -type f)"
echo "services: ok"
