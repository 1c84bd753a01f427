#!/usr/bin/env bash
# System test of hearthd's HTTPS and redirect listeners, with the real binary and real
# clients: the CA is downloaded over plain HTTP (right MIME type), the HTTPS chain
# verifies against it with curl and openssl, ALPN gives h2, the session cookie is
# Secure, plain HTTP redirects (308) to HTTPS, an unknown SNI gets the host's own
# certificate, and the CA survives a restart (same file, same certificate).
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh
. ci/systest/lib.sh
systest_setup tls "hearthd's data directory checks" curl openssl jq
INIT=/nonexistent/hearth-container
trap 'stop_hearthd; rm -rf "$WORK"' EXIT
pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTPS_PORT="$(pick_port)"
HTTP_PORT="$(pick_port)"
HEARTHD_ARGS="--https-listen 127.0.0.1:$HTTPS_PORT --http-redirect-listen 127.0.0.1:$HTTP_PORT"
start_hearthd
for _ in $(seq 1 50); do grep -q '^hearthd redirecting' "$WORK/hearthd.out" && break; sleep 0.1; done
grep -q "^hearthd listening on https://127.0.0.1:$HTTPS_PORT" "$WORK/hearthd.out" || fail "no https line: $(cat "$WORK/hearthd.out")"

# The CA over plain HTTP, with its MIME type; the key stays 0600 on the data partition.
ctype="$(curl -sS -o "$WORK/ca.crt" -w '%{content_type}' "http://127.0.0.1:$HTTP_PORT/hearth-ca.crt")"
[ "$ctype" = application/x-x509-ca-cert ] || fail "CA MIME type: $ctype"
openssl x509 -in "$WORK/ca.crt" -noout -text | grep -q 'CA:TRUE' || fail "downloaded CA is not a CA certificate"
[ "$(stat -c %a "$DATA/tls/ca.key.pem")" = 600 ] || fail "CA key mode $(stat -c %a "$DATA/tls/ca.key.pem")"
if curl -s "http://127.0.0.1:$HTTP_PORT/hearth-ca.crt" | grep -q PRIVATE; then fail "key served"; fi
curl -sS "http://127.0.0.1:$HTTP_PORT/trust" | grep -q 'hearth-ca.crt' || fail "no trust page"
# Everything else on plain HTTP is a redirect, never the API.
redir="$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' -H "Host: box.local:$HTTP_PORT" "http://127.0.0.1:$HTTP_PORT/rpc/v1?x=1")"
[ "$redir" = "308 https://box.local:$HTTPS_PORT/rpc/v1?x=1" ] || fail "redirect: $redir"

# HTTPS, verified against the downloaded CA, on h2.
H="$(cat /proc/sys/kernel/hostname).local"
H="${H,,}"
v="$(curl -sS --cacert "$WORK/ca.crt" --resolve "$H:$HTTPS_PORT:127.0.0.1" --http2 -o /dev/null -w '%{http_version}' "https://$H:$HTTPS_PORT/")" \
  || fail "https to $H did not verify"
[ "$v" = 2 ] || fail "ALPN gave HTTP/$v, not h2"
out="$(curl -sS --cacert "$WORK/ca.crt" "https://localhost:$HTTPS_PORT/rpc/v1" -H 'content-type: application/json' \
  -d '{"method":"setup.complete","params":{"password":"systest-password","hostname":"box","setupCode":"'"$(cat "$DATA/setup-code")"'"}}')"
echo "$out" | jq -e '.revision > 0' >/dev/null || fail "setup over https: $out"
login="$(curl -sS -i --cacert "$WORK/ca.crt" "https://localhost:$HTTPS_PORT/rpc/v1" -H 'content-type: application/json' \
  -d '{"method":"auth.login","params":{"password":"systest-password"}}')"
echo "$login" | grep -i '^set-cookie: session=.*; Secure' >/dev/null || fail "cookie not Secure: $login"
# An unknown SNI gets the host's certificate (chain still verifies), no other name.
cert="$(openssl s_client -connect "127.0.0.1:$HTTPS_PORT" -servername evil.example -CAfile "$WORK/ca.crt" \
  -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName)" || fail "unknown SNI handshake"
echo "$cert" | grep -q "DNS:$H" || fail "unknown SNI: $cert"
if echo "$cert" | grep -q evil; then fail "unknown SNI echoed: $cert"; fi

# Restart: the same CA.
stop_hearthd
start_hearthd
for _ in $(seq 1 50); do grep -q '^hearthd redirecting' "$WORK/hearthd.out" && break; sleep 0.1; done
curl -sS -o "$WORK/ca2.crt" "http://127.0.0.1:$HTTP_PORT/hearth-ca.crt" || fail "CA after restart"
cmp -s "$WORK/ca.crt" "$WORK/ca2.crt" || fail "CA changed across restarts"
curl -sS --cacert "$WORK/ca.crt" -o /dev/null "https://localhost:$HTTPS_PORT/" || fail "old CA no longer verifies"
echo "tls: ok"
