#!/usr/bin/env bash
# System test: the `hearth` CLI as a client of a real `hearthd`.
#
# Starts hearthd on a free loopback port with a temp data dir, then drives it only
# through `hearth`: setup, login with --password-stdin, generated commands with human
# and --json output, `hearth rpc`, wrong password, logout, a session killed on the
# server, the local auth cookie, an API token, and `hearth package install` (upload with
# progress on a terminal, refusals, trusting the signer, --path, a URL). Needs the
# binaries built by `cargo build --workspace --bins` (make test does that first),
# python3 (to type at the password prompts through a pseudo-terminal, as a
# TLS-terminating proxy, and as the file server for the URL install) and openssl (to make a CA and a server certificate for the --ca-cert check).
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh

BIN="$CARGO_TARGET_DIR/debug"
for tool in python3 openssl; do
  command -v "$tool" >/dev/null || { echo "cli-client: needs $tool" >&2; exit 1; }
done
for b in hearth hearthd; do
  [ -x "$BIN/$b" ] || { echo "cli-client: $BIN/$b missing; run cargo build --workspace --bins" >&2; exit 1; }
done

WORK="$(mktemp -d)"
HEARTHD_PID=""
PROXY_PID=""
SRV_PID=""
cleanup() {
  if [ -n "$SRV_PID" ]; then
    kill -TERM "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
  fi
  if [ -n "$PROXY_PID" ]; then
    kill -TERM "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
  fi
  if [ -n "$HEARTHD_PID" ] && kill -0 "$HEARTHD_PID" 2>/dev/null; then
    kill -TERM "$HEARTHD_PID" 2>/dev/null || true
    wait "$HEARTHD_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  if [ -f "$WORK/hearthd.err" ]; then
    echo "--- hearthd stderr (last 20 lines)" >&2
    tail -n 20 "$WORK/hearthd.err" >&2
  fi
  exit 1
}

# Isolated client state: sessions go to $WORK/config, no local cookie unless asked for.
export XDG_CONFIG_HOME="$WORK/config"
export HEARTH_DATA_DIR="$WORK/no-such-data-dir"
unset HEARTH_TOKEN HEARTH_URL

: >"$WORK/hearthd.out"
"$BIN/hearthd" --data-dir "$WORK/data" --listen 127.0.0.1:0 --log warn \
  --allow-package-source 127.0.0.1/32 >"$WORK/hearthd.out" 2>"$WORK/hearthd.err" &
HEARTHD_PID=$!
URL=""
for _ in $(seq 1 100); do
  URL="$(sed -n 's/^hearthd listening on \(http:[^ ]*\).*/\1/p' "$WORK/hearthd.out" | head -n 1)"
  [ -n "$URL" ] && break
  kill -0 "$HEARTHD_PID" 2>/dev/null || fail "hearthd exited before listening"
  sleep 0.1
done
[ -n "$URL" ] || fail "hearthd did not print its address within 10 s"
echo "cli-client: hearthd at $URL (pid $HEARTHD_PID)"

# hearth ARGS... : runs the CLI against this hearthd; output in $OUT, status in $RC.
hearth() {
  set +e
  OUT="$(timeout 60 "$BIN/hearth" --url "$URL" "$@" 2>&1)"
  RC=$?
  set -e
}
expect_ok() {
  hearth "$@"
  [ "$RC" -eq 0 ] || fail "hearth $* exited $RC: $OUT"
}
expect_err() {
  hearth "$@"
  [ "$RC" -ne 0 ] || fail "hearth $* succeeded but should fail: $OUT"
  [ "$(printf '%s\n' "$OUT" | wc -l)" -eq 1 ] || fail "hearth $*: error is not one line: $OUT"
}
expect_usage_err() {
  hearth "$@"
  [ "$RC" -eq 2 ] || fail "hearth $* exited $RC, want 2 (usage error): $OUT"
}
contains() {
  case "$OUT" in
    *"$1"*) ;;
    *) fail "expected output to contain '$1', got: $OUT" ;;
  esac
}

PASSWORD='correct horse battery'

echo "== setup through hearth rpc"
expect_ok setup status
contains "setupComplete: false"
expect_err server info
contains "code 34"
contains "auth login"
expect_err rpc setup.complete "{\"password\": \"$PASSWORD\", \"hostname\": \"clibox\"}"
contains "setup code"
# The setup code, read from its file as a person with access to the machine would.
CODE="$(cat "$WORK/data/setup-code")"
expect_ok rpc setup.complete "{\"password\": \"$PASSWORD\", \"hostname\": \"clibox\", \"setupCode\": \"$CODE\"}"
expect_ok setup status --json
contains '"setupComplete": true'

echo "== login with --password-stdin"
hearth auth login --password-stdin <<<"$PASSWORD"
[ "$RC" -eq 0 ] || fail "login failed: $OUT"
contains "Logged in to $URL"
SESSIONS="$XDG_CONFIG_HOME/hearth/sessions.json"
[ -f "$SESSIONS" ] || fail "no sessions file at $SESSIONS"
[ "$(stat -c %a "$SESSIONS")" = 600 ] || fail "sessions file mode is $(stat -c %a "$SESSIONS"), not 600"

echo "== generated commands, human and --json"
expect_ok server info
contains "hostname:"
contains "clibox"
printf '%s\n' "$OUT" | grep -Eq '^uptimeSecs: +[0-9]+$' || fail "server info: no aligned uptimeSecs line: $OUT"
expect_ok server info --json
contains '"hostname": "clibox"'
expect_ok server echo --message hi
[ "$OUT" = "hi" ] || fail "server echo printed '$OUT', want 'hi'"
expect_ok rpc server.echo '{"message":"x"}' --json
[ "$OUT" = '"x"' ] || fail "rpc server.echo printed '$OUT', want '\"x\"'"
OUT="$(printf '{"message":"piped"}' | timeout 60 "$BIN/hearth" --url "$URL" rpc server.echo -)"
[ "$OUT" = '"piped"' ] || fail "rpc with params from stdin printed '$OUT'"
expect_usage_err server echo
contains "--message"
expect_err rpc server.echo '{"mesage":"typo"}'
contains "code -32602"
expect_err rpc no.such.method
contains "code -32601"

echo "== API token: create, list as a table, use"
expect_ok auth token create --name ci-script --scope admin --json
TOKEN="$(printf '%s\n' "$OUT" | sed -n 's/^ *"token": "\(.*\)".*/\1/p')"
[ -n "$TOKEN" ] || fail "no token in: $OUT"
expect_ok auth token list
printf '%s\n' "$OUT" | head -n 1 | grep -Eq '^createdMs +id +lastUsedMs +name +scope$' \
  || fail "token list has no table header: $OUT"
contains "ci-script"
# A wrong token is refused even though a valid session is saved: the token is exclusive.
HEARTH_TOKEN="hth_wrong" expect_err server info
contains "code 34"
contains "API token"

echo "== wrong password fails clearly"
hearth auth login --password-stdin <<<"not the password"
[ "$RC" -ne 0 ] || fail "login with a wrong password succeeded"
contains "incorrect password"
contains "code 7"

echo "== prompts without echo on a terminal"
# hearth_tty ANSWER... -- ARGS... : runs hearth in a pseudo-terminal, typing one answer
# per prompt; output (with the prompts) in $OUT, status in $RC.
hearth_tty() {
  set +e
  OUT="$(timeout 60 python3 - "$BIN/hearth" "$URL" "$@" <<'PY'
import os, pty, sys, termios, time
exe, url, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
cut = rest.index("--")
answers, args = rest[:cut], rest[cut + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(exe, [exe, "--url", url] + args)
out = b""
def drain(until_prompt):
    global out
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return False
        if not chunk:
            return False
        out += chunk
        if until_prompt and out.rstrip().endswith(b":"):
            return True
def wait_for_no_echo():
    # The prompt is printed before echo is switched off; typing earlier would echo.
    # On Linux the master side reports the terminal's (shared) settings.
    for _ in range(500):
        if not termios.tcgetattr(fd)[3] & termios.ECHO:
            return
        time.sleep(0.01)
for answer in answers:
    if not drain(True):
        break
    wait_for_no_echo()
    os.write(fd, answer.encode() + b"\n")
    out += b"\n"
drain(False)
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace").replace("\r", ""))
sys.exit(os.waitstatus_to_exitcode(status))
PY
)"
  RC=$?
  set -e
}
hearth_tty "$PASSWORD" -- auth login
[ "$RC" -eq 0 ] || fail "login at the prompt failed: $OUT"
contains "Password for $URL:"
contains "Logged in to $URL"
case "$OUT" in *"$PASSWORD"*) fail "the password was echoed: $OUT" ;; esac
NEW_PASSWORD='a brand new passphrase'
hearth_tty "$PASSWORD" "$NEW_PASSWORD" "$NEW_PASSWORD" -- auth password change
[ "$RC" -eq 0 ] || fail "password change at the prompts failed: $OUT"
contains "old-password for auth.password.change:"
contains "new-password again:"
hearth_tty "$PASSWORD" "x-one-entry" "x-other-entry" -- auth password change
[ "$RC" -ne 0 ] || fail "differing new passwords were accepted: $OUT"
contains "the two passwords differ"
hearth_tty "$NEW_PASSWORD" -- auth login
[ "$RC" -eq 0 ] || fail "login with the changed password failed: $OUT"
# The password change kept only the caller's session; the new login replaced it.
expect_ok auth session list --json
[ "$(printf '%s\n' "$OUT" | grep -c '"loggedInMs"')" -eq 1 ] \
  || fail "the replaced session is still live: $OUT"
PASSWORD="$NEW_PASSWORD"
# The password change revoked every API token: the old one is refused, a new one
# (read-only this time) is made.
HEARTH_TOKEN="$TOKEN" expect_err server info
contains "unknown or revoked"
expect_ok auth token create --name ci-reader --scope read --json
TOKEN="$(printf '%s\n' "$OUT" | sed -n 's/^ *"token": "\(.*\)".*/\1/p')"
[ -n "$TOKEN" ] || fail "no token in: $OUT"
HEARTH_TOKEN="$TOKEN" expect_err db put ui --pointer /x --value 1
contains "scope"

echo "== logout"
expect_ok auth logout
contains "Logged out of $URL"
expect_err server info
contains "code 34"
expect_ok auth logout
contains "Not logged in"
# Without session or local cookie, the API token alone authenticates.
HEARTH_TOKEN="$TOKEN" hearth server info
[ "$RC" -eq 0 ] || fail "server info with the API token failed: $OUT"
contains "clibox"

echo "== local auth cookie: root on the box needs no password"
COOKIE="$WORK/data/run/local.cookie"
[ "$(stat -c %a "$COOKIE")" = 600 ] || fail "local cookie mode is $(stat -c %a "$COOKIE")"
expect_ok --data-dir "$WORK/data" server info
contains "clibox"
HEARTH_DATA_DIR="$WORK/data" hearth server info --json
[ "$RC" -eq 0 ] || fail "local cookie via HEARTH_DATA_DIR failed: $OUT"

echo "== package install: upload, clear refusals, trust as the error says, --path, a URL"
ARCH="$(uname -m)"
PKG_DIR="$WORK/pkg"
make_package() { # ID KEY OUT IMAGE_MIB
  rm -rf "$PKG_DIR"
  mkdir -p "$PKG_DIR/images/$ARCH"
  cat >"$PKG_DIR/manifest.json" <<EOF_MANIFEST
{"id": "$1", "title": "The $1", "version": "1.0.0:0", "license": "MIT",
 "packageRepo": "https://example.com/p", "upstreamRepo": "https://example.com/u",
 "description": {"short": "A test service", "long": "A test service for installs."},
 "images": {"main": {"arch": ["$ARCH"]}}, "volumes": ["main"]}
EOF_MANIFEST
  echo '{"daemons": [{"id": "web", "image": "main", "command": ["httpd"]}]}' >"$PKG_DIR/hearth.json"
  head -c "$(($4 * 1024 * 1024))" /dev/urandom >"$PKG_DIR/images/$ARCH/main.squashfs"
  "$BIN/hearth" s9pk pack-dir "$PKG_DIR" --key "$2" -o "$3" >/dev/null \
    || fail "could not pack $1"
}
"$BIN/hearth" key generate --out "$WORK/publisher.key" >/dev/null
"$BIN/hearth" key generate --out "$WORK/stranger.key" >/dev/null
make_package hello "$WORK/publisher.key" "$WORK/hello.s9pk" 24
make_package other "$WORK/stranger.key" "$WORK/other.s9pk" 1
make_package third "$WORK/stranger.key" "$WORK/third.s9pk" 1
AS_ROOT=(--data-dir "$WORK/data")
expect_err "${AS_ROOT[@]}" package install "$WORK/missing.s9pk"
contains "missing.s9pk"
contains "No such file"
echo "not a package" >"$WORK/junk.s9pk"
expect_err "${AS_ROOT[@]}" package install "$WORK/junk.s9pk"
contains "junk.s9pk is not a valid .s9pk package"
expect_err "${AS_ROOT[@]}" package install "$WORK/hello.s9pk"
contains "does not trust"
contains 'hearth package trust add --public-key="$(hearth s9pk inspect --signer '"$WORK/hello.s9pk"')"'
contains "--allow-untrusted"
FP="$(printf '%s\n' "$OUT" | sed -n 's/.*(fingerprint \([0-9a-f]\{64\}\)).*/\1/p')"
[ -n "$FP" ] || fail "no fingerprint in: $OUT"
expect_ok "${AS_ROOT[@]}" package list --json
[ "$OUT" = "[]" ] || fail "a refused package was installed: $OUT"
[ -z "$(ls -A "$WORK/data/packages/upload" 2>/dev/null)" ] || fail "refused upload left behind"
# Do what the error says: trust the key taken from the package, install again.
expect_ok "${AS_ROOT[@]}" package trust add --name publisher \
  --public-key="$("$BIN/hearth" s9pk inspect --signer "$WORK/hello.s9pk")"
expect_ok "${AS_ROOT[@]}" package trust list --json
contains "\"fingerprint\": \"$FP\""
expect_ok "${AS_ROOT[@]}" package install "$WORK/hello.s9pk"
printf '%s\n' "$OUT" | grep -E '^id: +hello$' >/dev/null || fail "install printed no id line: $OUT"
contains "$FP"
case "$OUT" in *Uploading*) fail "progress line without a terminal: $OUT" ;; esac
expect_err "${AS_ROOT[@]}" package install "$WORK/hello.s9pk"
contains "already installed"
# On a terminal, stderr shows the upload's progress.
hearth_tty -- "${AS_ROOT[@]}" package install "$WORK/other.s9pk" --allow-untrusted
[ "$RC" -eq 0 ] || fail "install on a terminal failed: $OUT"
contains "Uploading other.s9pk:"
contains "(100%)"
contains "installing"
# --path: only a file in the server's import directory.
expect_err "${AS_ROOT[@]}" package install --path "$WORK/third.s9pk" --allow-untrusted
contains "not a package file in the import directory"
cp "$WORK/third.s9pk" "$WORK/data/import/"
expect_ok "${AS_ROOT[@]}" package install --path third.s9pk --allow-untrusted --json
contains '"id": "third"'
contains '"signerTrusted": false'
expect_ok "${AS_ROOT[@]}" package list --json
# An http:// SOURCE is downloaded by hearthd (package.install {url}).
mkdir -p "$WORK/srv"
make_package fourth "$WORK/publisher.key" "$WORK/srv/fourth.s9pk" 1
python3 - "$WORK/srv" >"$WORK/srv.out" 2>/dev/null <<'PY' &
import functools, http.server, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
print("http://127.0.0.1:%d" % server.server_address[1], flush=True)
server.serve_forever()
PY
SRV_PID=$!
SRV_URL=""
for _ in $(seq 1 100); do
  SRV_URL="$(head -n 1 "$WORK/srv.out")"
  [ -n "$SRV_URL" ] && break
  kill -0 "$SRV_PID" 2>/dev/null || fail "file server exited"
  sleep 0.1
done
[ -n "$SRV_URL" ] || fail "file server did not start"
expect_ok "${AS_ROOT[@]}" package install "$SRV_URL/fourth.s9pk" --json
contains '"id": "fourth"'
contains '"signerTrusted": true'
kill -TERM "$SRV_PID"
wait "$SRV_PID" 2>/dev/null || true
SRV_PID=""
expect_ok "${AS_ROOT[@]}" package list --json
for id in hello other third fourth; do contains "\"id\": \"$id\""; done
[ -z "$(ls -A "$WORK/data/packages/upload" 2>/dev/null)" ] || fail "upload files left behind"

echo "== a session ended on the server is forgotten, the local cookie takes over"
hearth auth login --password-stdin <<<"$PASSWORD"
if [ "$RC" -ne 0 ]; then
  # The failed attempt above may still be inside the server's login back-off.
  sleep 3
  hearth auth login --password-stdin <<<"$PASSWORD"
fi
[ "$RC" -eq 0 ] || fail "second login failed: $OUT"
expect_ok auth session list --json
SID="$(printf '%s\n' "$OUT" | sed -n 's/^ *"current": "\(.*\)".*/\1/p')"
[ -n "$SID" ] || fail "no current session in: $OUT"
expect_ok auth session kill --ids "$SID"
expect_ok --data-dir "$WORK/data" server echo --message still-here
expect_ok --data-dir "$WORK/data" server info
contains "clibox"
grep -q "$URL" "$SESSIONS" && fail "killed session still saved: $(cat "$SESSIONS")"
expect_err server info
contains "auth login"

echo "== https through a TLS proxy, trusted with --ca-cert"
TLS="$WORK/tls"
mkdir -p "$TLS"
cat >"$TLS/ca.cnf" <<'EOF_CNF'
[req]
distinguished_name = dn
x509_extensions = v3_ca
prompt = no
[dn]
CN = hearth test CA
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF_CNF
cat >"$TLS/leaf.cnf" <<'EOF_CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = 127.0.0.1
[v3_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
authorityKeyIdentifier = keyid
EOF_CNF
{
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$TLS/ca.key" -out "$TLS/ca.pem" -days 2 -config "$TLS/ca.cnf"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$TLS/leaf.key" -out "$TLS/leaf.csr" -config "$TLS/leaf.cnf"
  openssl x509 -req -in "$TLS/leaf.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" \
    -CAcreateserial -out "$TLS/leaf.pem" -days 2 -extfile "$TLS/leaf.cnf" -extensions v3_leaf
} >"$TLS/openssl.log" 2>&1 || fail "openssl could not make test certificates: $(cat "$TLS/openssl.log")"
: >"$TLS/proxy.out"
python3 - "$URL" "$TLS/leaf.pem" "$TLS/leaf.key" >"$TLS/proxy.out" 2>"$TLS/proxy.err" <<'PY' &
# TLS-terminating reverse proxy to hearthd: prints its URL, then forwards requests.
import http.client, http.server, ssl, sys, urllib.parse
upstream = urllib.parse.urlsplit(sys.argv[1])
class Proxy(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request("POST", self.path, body, headers)
        reply = conn.getresponse()
        data = reply.read()
        self.send_response(reply.status)
        for k, v in reply.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("https://127.0.0.1:%d" % server.server_address[1], flush=True)
server.serve_forever()
PY
PROXY_PID=$!
HTTPS_URL=""
for _ in $(seq 1 100); do
  HTTPS_URL="$(head -n 1 "$TLS/proxy.out")"
  [ -n "$HTTPS_URL" ] && break
  kill -0 "$PROXY_PID" 2>/dev/null || fail "TLS proxy exited: $(cat "$TLS/proxy.err")"
  sleep 0.1
done
[ -n "$HTTPS_URL" ] || fail "TLS proxy did not start"
hearth_at() {
  set +e
  OUT="$(timeout 60 "$BIN/hearth" --url "$HTTPS_URL" "$@" 2>&1)"
  RC=$?
  set -e
}
# The public roots do not know this CA: refused, with the reason on one line.
hearth_at server echo --message tls
[ "$RC" -ne 0 ] || fail "https with an unknown CA succeeded: $OUT"
contains "UnknownIssuer"
[ "$(printf '%s\n' "$OUT" | wc -l)" -eq 1 ] || fail "TLS error is not one line: $OUT"
hearth_at --ca-cert "$TLS/ca.pem" server echo --message tls
[ "$RC" -eq 0 ] && [ "$OUT" = "tls" ] || fail "https with --ca-cert failed ($RC): $OUT"
HEARTH_CA_CERT="$TLS/ca.pem" HEARTH_TOKEN="$TOKEN" hearth_at server info
[ "$RC" -eq 0 ] || fail "server info over https with HEARTH_CA_CERT failed: $OUT"
contains "clibox"
# A login over https keeps its own session, keyed by the https URL.
printf '%s\n' "$PASSWORD" | {
  set +e
  OUT="$(timeout 60 "$BIN/hearth" --url "$HTTPS_URL" --ca-cert "$TLS/ca.pem" auth login --password-stdin 2>&1)"
  RC=$?
  set -e
  [ "$RC" -eq 0 ] || fail "login over https failed: $OUT"
}
grep -q "$HTTPS_URL" "$SESSIONS" || fail "no session saved for $HTTPS_URL: $(cat "$SESSIONS")"
hearth_at --ca-cert "$TLS/ca.pem" server info --json
[ "$RC" -eq 0 ] || fail "server info over https with the saved session failed: $OUT"
contains '"hostname": "clibox"'
kill -TERM "$PROXY_PID"
wait "$PROXY_PID" 2>/dev/null || true
PROXY_PID=""

echo "== stop hearthd"
kill -TERM "$HEARTHD_PID"
wait "$HEARTHD_PID" || fail "hearthd exited with status $? on SIGTERM"
HEARTHD_PID=""
expect_err server echo --message gone
contains "server.echo"

echo "cli-client: all checks passed"
