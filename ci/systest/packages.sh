#!/usr/bin/env bash
# System test: real packages built from Debian software, run by a real hearthd with
# real LXC and driven through its API only (JSON-RPC and POST /rest/package/upload).
#
# Packs sdk/examples/{nginx,postgresql,pg-client,crash-loop} with `hearth s9pk pack`
# (Debian images from mmdebstrap, cached in HEARTH_CACHE_DIR, default
# /var/cache/hearth/pack-cache: only the first run downloads), starts hearthd as root,
# uploads them, trusts the key, then checks:
# - nginx: its page is served on its bridge address and its http health check passes;
# - pg-client depends on postgresql: starting it starts postgresql first, it waits
#   (`waiting`, waitingFor) until postgresql is healthy, then its own health check
#   (`SELECT 1` on postgresql.hearth) passes and its heartbeat rows appear;
# - postgresql: a table and row made with its `sql` action survive a package restart,
#   and a hearthd restart with every container gone (the host side restarted: services
#   desired running come back);
# - crash-loop: reported as a crash loop, with the exit status and its log line, and
#   notified;
# - update (last): postgresql v2 (uploaded over the running v1) keeps the row, and
#   pg-client writes again afterwards.
# Prints how long each phase took. Needs what ci/systest/services.sh needs (root, LXC,
# squashfs-tools, mmdebstrap, curl, python3, the musl target) and network access to
# deb.debian.org on the first run. Uses the bridge hearth0 (10.88.0.1/24).
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh

. ci/systest/lib.sh
systest_setup packages "LXC containers, pack" lxc-start lxc-stop mksquashfs mmdebstrap curl python3
FAIL_TAIL=30
# A failure also shows what the containers say: each package's health (with the
# failing check's message) and its last log lines, the host's nft tables, and what is
# on the bridge (another test's leftover container would share an address).
eval "lib_$(declare -f fail)"
fail() {
  if [ -n "${URL:-}" ]; then
    for p in "${PACKAGES[@]}"; do
      echo "--- $p: health $(status "$p" health 2>/dev/null)" >&2
      echo "    logs: $(rpc package.logs "{\"id\":\"$p\",\"limit\":8}" 2>/dev/null | cut -c1-2000)" >&2
    done
    echo "--- nft tables: $(nft list tables 2>&1 | tr '\n' ' ')" >&2
    echo "--- on hearth0: $(ip -br link show master hearth0 2>&1 | tr '\n' ' ')" >&2
    echo "--- neighbours: $(ip neigh show dev hearth0 2>&1 | tr '\n' ' ')" >&2
  fi
  lib_fail "$@"
}
export HEARTH_CACHE_DIR="${HEARTH_CACHE_DIR:-/var/cache/hearth/pack-cache}"
PACKAGES=(nginx postgresql pg-client crash-loop)

# Each phase prints its wall time and the CPU time of the commands it waited for (pack
# and cargo are CPU-bound: on a loaded machine the two differ a lot).
cpu_s() { # CPU_NOW = children's user+sys CPU seconds so far (`times` in this shell)
  times >"$WORK/times"
  CPU_NOW=$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); t += p[1] * 60 + p[2] }; print t }' "$WORK/times")
}
T0=$(date +%s.%N)
PHASE=""
phase() { # NAME: ends the current phase (printing its times) and starts NAME
  local now cpu
  now=$(date +%s.%N)
  cpu_s
  cpu=$CPU_NOW
  [ -n "$PHASE" ] && awk -v a="$T_PHASE" -v b="$now" -v c0="$CPU_PHASE" -v c1="$cpu" -v n="$PHASE" \
    'BEGIN {printf "   [%s: %.1f s, commands %.1f s CPU]\n", n, b - a, c1 - c0}'
  PHASE="$1"
  T_PHASE=$now
  CPU_PHASE=$cpu
  [ -n "$PHASE" ] && echo "-- $PHASE"
  return 0
}

cleanup() {
  stop_hearthd
  stop_containers "${PACKAGES[@]}"
  unmount_below "$WORK"
  rm -rf "$WORK"
}
trap cleanup EXIT

phase "build hearth-container (static musl)"
build_init

phase "pack ${PACKAGES[*]}"
gen_key
pack() { # PROJECT-DIR OUT [ARGS]
  "$BIN/hearth" s9pk pack "$1" --key "$WORK/key.pem" -o "$2" "${@:3}" 2>"$WORK/pack.err" \
    || { cat "$WORK/pack.err" >&2; fail "hearth s9pk pack $1"; }
}
for p in "${PACKAGES[@]}"; do
  # postgresql's staging folder is kept to make its v2 for the update test.
  extra=()
  [ "$p" = postgresql ] && extra=(--staging "$WORK/postgresql-staging")
  pack "sdk/examples/$p" "$WORK/$p.s9pk" "${extra[@]}"
  echo "   $p.s9pk: $(($(stat -c %s "$WORK/$p.s9pk") / 1024)) KiB"
done

address() { # ID -> its address on the bridge
  echo "10.88.0.$(rpc db.dump "{\"pointer\":\"/packageData/$1/container/index\"}" | field /result/value)"
}
sql() { # SQL -> psql output, through postgresql's `sql` action
  local input out
  input="$(python3 -c 'import json,sys; print(json.dumps({"sql": sys.argv[1]}))' "$1")"
  out="$(rpc package.action.run "{\"id\":\"postgresql\",\"actionId\":\"sql\",\"input\":$input}")"
  [ "$(echo "$out" | field /result/success)" = True ] || fail "sql action ($1): $out"
  echo "$out" | field /result/stdout
}

phase "start hearthd, upload and trust"
start_hearthd
rpc setup.complete '{"password":"password123","hostname":"hearth"}' >/dev/null
trust_key
for p in "${PACKAGES[@]}"; do
  code="$(upload "$WORK/$p.s9pk")"
  [ "$(field /result/id <"$WORK/upload.json")" = "$p" ] \
    || fail "upload $p: HTTP $code $(cat "$WORK/upload.json")"
done
NGINX="$(address nginx)"
PG="$(address postgresql)"

phase "crash-loop: start (checked later)"
rpc package.start '{"id":"crash-loop"}' >/dev/null

phase "nginx: page and health"
rpc package.start '{"id":"nginx"}' >/dev/null
wait_status nginx state running
wait_status nginx health/web/result success
curl -fsS -m 3 "http://$NGINX/" | grep "Hello from Hearth" >/dev/null || fail "nginx page not served on $NGINX"

phase "pg-client: starts postgresql, waits until it is healthy, then connects"
[ "$(status postgresql state)" = stopped ] || fail "postgresql not stopped before the test"
rpc package.start '{"id":"pg-client"}' >/dev/null
# Until postgresql's `ready` check passes, pg-client must not run.
saw_waiting=""
for i in $(seq 1 600); do
  # In this order: once pg-client runs, postgresql's check passed before and still does.
  info="$(rpc db.dump '{"pointer":"/packageData/pg-client/statusInfo"}')"
  client="$(echo "$info" | field /result/value/state)"
  pg_health="$(status postgresql health/ready/result)"
  if [ "$client" = waiting ]; then
    saw_waiting=1
    [ "$(echo "$info" | field /result/value/waitingFor)" = '["postgresql"]' ] \
      || fail "pg-client waitingFor: $(echo "$info" | field /result/value/waitingFor)"
  fi
  if [ "$client" = running ] || [ "$client" = starting ]; then
    [ "$pg_health" = success ] || fail "pg-client $client while postgresql's health is $pg_health"
    break
  fi
  [ "$i" = 600 ] && fail "pg-client never started (state $client, postgresql health $pg_health)"
  sleep 0.2
done
[ -n "$saw_waiting" ] || fail "pg-client was never seen waiting for postgresql"
[ "$(status postgresql desired)" = running ] || fail "postgresql was not started with its dependent"
wait_status pg-client state running
wait_status pg-client health/database/result success
LOGS="$(rpc package.logs '{"id":"pg-client","limit":50}')"
echo "$LOGS" | grep "writing to postgresql.hearth (HEARTH_POSTGRESQL_HOST=$PG)" >/dev/null \
  || fail "pg-client did not see postgresql.hearth / HEARTH_POSTGRESQL_HOST=$PG: $LOGS"
beats() { # rows pg-client wrote (0 before its table exists)
  sql "SELECT count(*) FROM heartbeat WHERE client = 'pg-client'" 2>/dev/null | sed -n 3p | tr -d ' ' || echo 0
}
wait_beats() { # MORE-THAN
  for _ in $(seq 1 50); do
    BEATS="$(beats)"
    [ "${BEATS:-0}" -gt "$1" ] && return 0
    sleep 0.2
  done
  fail "pg-client wrote no heartbeat row after the first $1"
}
wait_beats 0

phase "postgresql: a row survives a package restart"
sql "CREATE TABLE kept (id int PRIMARY KEY, note text); INSERT INTO kept VALUES (1, 'made by packages.sh')" >/dev/null
has_row() { sql "SELECT note FROM kept WHERE id = 1" | grep 'made by packages.sh' >/dev/null; }
has_row || fail "row not found right after the insert"
STARTED="$(status postgresql startedAt)"
rpc package.restart '{"id":"postgresql"}' >/dev/null
for _ in $(seq 1 300); do
  [ "$(status postgresql startedAt)" != "$STARTED" ] && [ "$(status postgresql state)" = running ] && break
  sleep 0.2
done
[ "$(status postgresql startedAt)" != "$STARTED" ] || fail "postgresql was not restarted"
wait_status postgresql health/ready/result success
has_row || fail "row lost after a package restart"

phase "crash-loop: reported"
wait_status crash-loop crashLoop True 80
[ "$(status crash-loop daemons/crash/crashLoop)" = True ] || fail "daemons.crash.crashLoop: $(status crash-loop daemons/crash)"
[ "$(status crash-loop daemons/crash/lastExit)" = "exit status 3" ] || fail "lastExit: $(status crash-loop daemons/crash)"
status crash-loop daemons/crash/lastError | grep "crash loop" >/dev/null || fail "lastError: $(status crash-loop daemons/crash)"
# Recorded with the report that turned crashLoop true (notify.rs).
NOTES="$(rpc db.dump '{"pointer":"/notifications"}')"
echo "$NOTES" | grep ": crash keeps crashing" >/dev/null || fail "no notification of the crash loop: $NOTES"
rpc package.logs '{"id":"crash-loop","limit":50}' | grep "failing on purpose" >/dev/null \
  || fail "crash-loop's output not in package.logs"
[ "$(status nginx crashLoop)" = False ] || fail "nginx reported as crash-looping"

phase "hearthd restart with every container gone: services come back"
ERR_LINES="$(wc -l <"$WORK/hearthd.err")"
stop_hearthd
stop_containers "${PACKAGES[@]}"
curl -s -m 2 "http://$NGINX/" >/dev/null && fail "nginx still serving after its container was stopped"
start_hearthd
wait_status nginx health/web/result success
curl -fsS -m 3 "http://$NGINX/" | grep "Hello from Hearth" >/dev/null || fail "nginx page not served after the restart"
wait_status postgresql health/ready/result success
has_row || fail "row lost after hearthd and its containers restarted"
wait_status pg-client health/database/result success
# postgresql's health from before the restart must not count (it once let pg-client
# start 84 ms after postgresql): pg-client waits for the new postgresql's check first.
SINCE="$(tail -n +"$((ERR_LINES + 1))" "$WORK/hearthd.err" | grep -E "waiting for dependencies|started package=pg-client" || true)"
case "${SINCE%%$'\n'*}" in
  *'waiting for dependencies package=pg-client waiting_for=["postgresql"]'*) ;;
  *) fail "after the hearthd restart pg-client did not wait for postgresql first: $SINCE" ;;
esac
tail -n +"$((ERR_LINES + 1))" "$WORK/hearthd.err" \
  | grep -E "started package=(postgresql|pg-client)|waiting for dependencies" | sed 's/^/   /' || true
wait_beats "$BEATS"

phase "update: postgresql v2 keeps the row"
# v2 is v1's staging folder with the next downstream revision, signed again
# (`pack-dir` packs a folder as is: no second image build).
V1="$(rpc db.dump '{"pointer":"/packageData/postgresql/manifest/version"}' | field /result/value)"
V2="$(python3 - "$WORK/postgresql-staging/manifest.json" <<'PY2'
import json, sys
p = sys.argv[1]
m = json.load(open(p))
upstream, rev = m["version"].rsplit(":", 1)
m["version"] = f"{upstream}:{int(rev) + 1}"
json.dump(m, open(p, "w"))
print(m["version"])
PY2
)"
"$BIN/hearth" s9pk pack-dir "$WORK/postgresql-staging" --key "$WORK/key.pem" \
  --out "$WORK/postgresql-v2.s9pk" >/dev/null || fail "pack-dir postgresql v2"
BEFORE_UPDATE="$(status postgresql startedAt)"
out="$(curl -sS -H "x-hearth-local-auth: $(cat "$DATA/run/local.cookie")" \
  --data-binary @"$WORK/postgresql-v2.s9pk" "$URL/rest/package/upload")"
[ "$(echo "$out" | field /result/id)" = postgresql ] || fail "update $V1 -> $V2: $out"
for _ in $(seq 1 600); do
  version="$(rpc db.dump '{"pointer":"/packageData/postgresql/manifest/version"}' | field /result/value)"
  state="$(rpc db.dump '{"pointer":"/packageData/postgresql/stateInfo/state"}' | field /result/value)"
  [ "$version" = "$V2" ] && [ "$state" = installed ] && break
  sleep 0.2
done
[ "$version" = "$V2" ] && [ "$state" = installed ] \
  || fail "update to $V2 not done (version $version, state $state, lastError $(status postgresql lastError))"
[ "$(status postgresql startedAt)" != "$BEFORE_UPDATE" ] || fail "postgresql not restarted by the update"
wait_status postgresql state running
wait_status postgresql health/ready/result success
has_row || fail "row lost by the update to $V2"
wait_status pg-client health/database/result success
wait_beats "$BEATS"

phase ""
awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN {printf "packages: ok (%.0f s)\n", b - a}'
