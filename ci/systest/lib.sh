#!/usr/bin/env bash
# shellcheck shell=bash
# Helpers the hearthd system tests share (services.sh, packages.sh, faults.sh): checks of
# what they need, a hearthd on 127.0.0.1:0 with its own data dir, JSON-RPC and upload
# calls with the local cookie, waits on a package's statusInfo, a signing key, and the
# hello-oci package rebuilt on a static busybox.
#
# Source it from the repository root after ci/env.sh, then call `systest_setup NAME WHY
# TOOL…` (root, tools, hearth + hearthd in $CARGO_TARGET_DIR/debug; sets BIN, WORK,
# DATA). The script keeps its own cleanup trap; `stop_hearthd`, `stop_containers` and
# `unmount_below` are its pieces. A script sets FAIL_TAIL (lines of hearthd's stderr
# shown on failure, default 20) and HEARTHD_ARGS (extra hearthd flags) if it wants.
# Not a test on its own: `make test` (ci/test.sh) runs every ci/systest/*.sh, so run
# directly it says so and succeeds.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  echo "lib.sh: helpers sourced by the system tests; nothing to run"
  exit 0
fi

# NAME WHY TOOL…: refuses to run without root, a tool, or the built binaries; sets BIN,
# WORK (a temp dir every container's root, whatever its id range, can traverse: it
# reaches rootfs and volumes below it) and DATA.
systest_setup() {
  SYSTEST="$1"
  [ "$(id -u)" = 0 ] || { echo "$SYSTEST: needs root ($2)" >&2; exit 1; }
  local tool b
  for tool in "${@:3}"; do
    command -v "$tool" >/dev/null || { echo "$SYSTEST: needs $tool" >&2; exit 1; }
  done
  BIN="$CARGO_TARGET_DIR/debug"
  for b in hearth hearthd; do
    [ -x "$BIN/$b" ] || { echo "$SYSTEST: $BIN/$b missing; run cargo build --workspace --bins" >&2; exit 1; }
  done
  WORK="$(mktemp -d)"
  chmod 711 "$WORK"
  DATA="$WORK/data"
  HEARTHD_PID=""
}

# Builds hearth-container for the musl target (it must be static: images may have no
# libc); sets INIT.
build_init() {
  local musl
  musl="$(uname -m)-unknown-linux-musl"
  rustup target list --installed | grep -x "$musl" >/dev/null || rustup target add "$musl"
  cargo build -q -p hearth-container --target "$musl"
  INIT="$CARGO_TARGET_DIR/$musl/debug/hearth-container"
}

fail() {
  echo "FAIL: $*" >&2
  [ -f "$WORK/hearthd.err" ] && {
    echo "--- hearthd stderr (last ${FAIL_TAIL:-20} lines)" >&2
    tail -n "${FAIL_TAIL:-20}" "$WORK/hearthd.err" >&2
  }
  exit 1
}

# Starts hearthd on $DATA with $INIT (and $HEARTHD_ARGS) and waits for its address (URL).
# Listens on $HEARTHD_LISTEN (default 127.0.0.1:0); sets URL (on 127.0.0.1 when it
# listens on every address) and API_PORT.
start_hearthd() {
  : >"$WORK/hearthd.out"
  # shellcheck disable=SC2086 # HEARTHD_ARGS is a list of flags
  "$BIN/hearthd" --data-dir "$DATA" --listen "${HEARTHD_LISTEN:-127.0.0.1:0}" --container-init "$INIT" \
    ${HEARTHD_ARGS:-} >"$WORK/hearthd.out" 2>>"$WORK/hearthd.err" &
  HEARTHD_PID=$!
  URL=""
  for _ in $(seq 1 100); do
    URL="$(sed -n 's/^hearthd listening on \(http:[^ ]*\).*/\1/p' "$WORK/hearthd.out" | head -n 1)"
    if [ -n "$URL" ]; then
      URL="${URL/\/\/0.0.0.0:/\/\/127.0.0.1:}"
      API_PORT="${URL##*:}"
      return 0
    fi
    sleep 0.1
  done
  fail "hearthd did not announce its address"
}

# FILE: installs FILE by path (package.install {path} reads only below <data>/import).
install_path() {
  cp "$1" "$DATA/import/" || fail "copy $1 into the import directory"
  rpc package.install "{\"path\":\"$(basename "$1")\"}"
}

stop_hearthd() {
  if [ -n "${HEARTHD_PID:-}" ] && kill -0 "$HEARTHD_PID" 2>/dev/null; then
    kill -TERM "$HEARTHD_PID" 2>/dev/null || true
    wait "$HEARTHD_PID" 2>/dev/null || true
  fi
  HEARTHD_PID=""
}

stop_containers() { # NAME…: kills them and drops hearthd's firewall tables (what a host
  # reboot does; other tests on this host must not find rules naming gone containers)
  local c
  for c in "$@"; do
    lxc-stop -k -P "$DATA/containers" -n "$c" >/dev/null 2>&1 || true
  done
  if command -v nft >/dev/null; then
    nft delete table inet hearth 2>/dev/null || true
    nft delete table bridge hearth 2>/dev/null || true
  fi
}

unmount_below() { # DIR: unmounts anything a run left below DIR, deepest first
  awk -v w="$1" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
}

cookie() { cat "$DATA/run/local.cookie"; }

rpc() { # METHOD PARAMS-JSON -> response JSON
  curl -sS "$URL/rpc/v1" -H 'content-type: application/json' \
    -H "x-hearth-local-auth: $(cookie)" -d "{\"method\":\"$1\",\"params\":$2}"
}

# JSON-POINTER < JSON: the value (lists and objects as JSON, `null` when absent,
# booleans as True/False).
field() {
  python3 -c 'import json,sys
v = json.load(sys.stdin)
for k in sys.argv[1].strip("/").split("/"):
    v = v.get(k) if isinstance(v, dict) else None
print("null" if v is None else json.dumps(v) if isinstance(v, (list, dict)) else v)' "$1"
}

status() { # ID FIELD: /packageData/<id>/statusInfo/<field>
  rpc db.dump "{\"pointer\":\"/packageData/$1/statusInfo\"}" | field "/result/value/$2"
}

wait_status() { # ID FIELD VALUE [SECONDS, default 60]
  local n=$(( ${4:-60} * 5 ))
  for _ in $(seq 1 "$n"); do
    [ "$(status "$1" "$2")" = "$3" ] && return 0
    sleep 0.2
  done
  fail "$1: statusInfo.$2 never became $3 (now $(status "$1" "$2"); state $(status "$1" state); lastError: $(status "$1" lastError))"
}

# FILE [QUERY] [CURL-ARGS…] -> HTTP status; the body in $WORK/upload.json (streamed
# with -T).
upload() {
  local file="$1" query="${2:-}"
  shift; shift || true
  rm -f "$WORK/upload.json"
  curl -sS -o "$WORK/upload.json" -w '%{http_code}' -H "x-hearth-local-auth: $(cookie)" \
    -H 'content-type: application/octet-stream' -H 'expect:' -X POST -T "$file" "$@" \
    "$URL/rest/package/upload$query" || true
}

gen_key() { # a signing key in $WORK/key.pem, its public half in $WORK/pub.pem
  "$BIN/hearth" key generate --out "$WORK/key.pem" >/dev/null
  "$BIN/hearth" key public "$WORK/key.pem" >"$WORK/pub.pem"
}

trust_key() { # trusts $WORK/pub.pem
  local pem
  pem="$(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$WORK/pub.pem")"
  rpc package.trust.add "{\"publicKey\":$pem}" | grep fingerprint >/dev/null || fail "trust.add"
}

# ID OUT [command=JSON] [health=PATH] [arch=ARCH] [chatty] [blob=MIB]: hello-oci with
# its image from a rootfs holding a static busybox (httpd; sh, sed and tee for its
# action), varied as asked, signed with $WORK/key.pem. The project stays in $WORK/proj
# until the next call.
mkpkg() {
  local id="$1" out="$2" applet
  shift 2
  rm -rf "$WORK/proj"
  cp -r sdk/examples/hello-oci "$WORK/proj"
  mkdir -p "$WORK/proj/rootfs/bin"
  cp "$(command -v busybox)" "$WORK/proj/rootfs/bin/busybox"
  for applet in sh sed tee usleep; do ln -s busybox "$WORK/proj/rootfs/bin/$applet"; done
  python3 - "$WORK/proj" "$id" "$@" <<'PY'
import json, os, sys
proj, pid, opts = sys.argv[1], sys.argv[2], dict(a.split("=", 1) if "=" in a else (a, "1") for a in sys.argv[3:])
p = os.path.join(proj, "hearth.toml")
s = open(p).read()
s = s.replace('id = "hello-oci"', f'id = "{pid}"')
image = 'rootfs = "rootfs"'
if "arch" in opts:
    image += f'\narch = ["{opts["arch"]}"]'
s = s.replace('oci = "image"', image)
cmd = opts.get("command", json.dumps(["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/srv/www"]))
s = s.replace('[[service.daemons]]\nid = "httpd"\nimage = "main"\n',
              f'[[service.daemons]]\nid = "httpd"\nimage = "main"\ncommand = {cmd}\n')
s = s.replace('command = ["/usr/local/bin/hello", "sign"]\n',
              'command = ["/bin/sh", "/usr/local/bin/hello", "sign"]\nenv = { PATH = "/bin" }\n')
if "health" in opts:
    s = s.replace('probe = { http = { port = 8080, path = "/" } }',
                  f'probe = {{ http = {{ port = 8080, path = "{opts["health"]}" }} }}')
if "chatty" in opts:
    # About 2,000 lines (400 KB) a second: past the 1 MiB log cap within seconds.
    loop = ('i=0; while true; do echo "chatty line $i 0123456789abcdef0123456789abcdef'
            '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"; '
            'i=$((i+1)); [ $((i % 100)) = 0 ] && usleep 50000; done')
    s += ('\n[[service.daemons]]\nid = "chatty"\nimage = "main"\n'
          f'command = {json.dumps(["/bin/sh", "-c", loop])}\n')
if "blob" in opts:
    os.makedirs(os.path.join(proj, "rootfs/var/blob"), exist_ok=True)
    with open(os.path.join(proj, "rootfs/var/blob/random.bin"), "wb") as f:
        for _ in range(int(opts["blob"])):
            f.write(os.urandom(1 << 20))
open(p, "w").write(s)
PY
  "$BIN/hearth" s9pk pack "$WORK/proj" --key "$WORK/key.pem" -o "$out" 2>"$WORK/pack.err" \
    || { cat "$WORK/pack.err" >&2; fail "hearth s9pk pack $id"; }
}
