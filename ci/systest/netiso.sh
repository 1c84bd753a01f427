#!/usr/bin/env bash
# System test: the service network's isolation, from inside real containers.
#
# A real hearthd (listening on 0.0.0.0, so its API is on the gateway address too) runs
# three busybox packages: `na` (httpd on its declared port 8080 and on an undeclared
# 9090), `nb` (independent) and `nc` (depends on na). Probes run inside the containers
# (lxc-attach, busybox wget under `timeout 3`: busybox 1.35's `wget -T` crashes; the
# refused ones in parallel) and check that:
# - nc reaches na's declared port, not na's other port; nb reaches neither; na (the
#   dependency) cannot open a connection to nc, nor nb to nc;
# - no container reaches hearthd's API on the gateway or on the host's other address;
#   the DNS port on the gateway is reachable (a test listener on 10.88.0.1:53: no DNS
#   server yet), and every refused listener answers the host (the refusal is the
#   firewall's);
# - a container that adds an address (source of its traffic) or changes its MAC gets
#   nothing through (skipped with a message, rules asserted, if it lacks CAP_NET_ADMIN);
# - outbound: a container reaches an "outside" network namespace and the listener there
#   sees the host's address (masquerading), while the outside cannot open a connection
#   to a container;
# - the rules are hearthd's own tables only, applied again unchanged by a restarted
#   hearthd (idempotent), with IPv4 forwarding on.
# Needs root, LXC, nft (ci/deps.sh), busybox, curl, python3, ip, the musl target.
# Uses the bridge hearth0 (10.88.0.1/24) and a network namespace hearth-outside
# (198.51.100.0/24), removed at the end with Hearth's tables.
set -euo pipefail
cd "$(dirname "$0")/../.."
. ci/env.sh

. ci/systest/lib.sh
systest_setup netiso "LXC containers, nftables" lxc-start lxc-attach mksquashfs busybox curl python3 nft ip
build_init
T0=$(date +%s)
OUTSIDE=hearth-outside
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  stop_hearthd
  stop_containers na nb nc
  ip netns del "$OUTSIDE" 2>/dev/null || true
  ip link del nisoout0 2>/dev/null || true
  unmount_below "$WORK"
  rm -rf "$WORK"
}
trap cleanup EXIT


# --- packages: na (8080 declared, 9090 not), nb, nc (requires na)
gen_key
mkpkg na "$WORK/na.s9pk" \
  command='["/bin/sh", "-c", "/bin/busybox httpd -p 9090 -h /srv/www; exec /bin/busybox httpd -f -p 8080 -h /srv/www"]'
mkpkg nb "$WORK/nb.s9pk"
mkpkg nc "$WORK/nc.s9pk"
cat >>"$WORK/proj/hearth.toml" <<'EOF'

[manifest.dependencies.na]
description = "The page nc may fetch."
optional = false

[[service.dependencies]]
id = "na"
versionRange = ">=0.1.0:0"
kind = "running"
EOF
"$BIN/hearth" s9pk pack "$WORK/proj" --key "$WORK/key.pem" -o "$WORK/nc.s9pk" 2>"$WORK/pack.err" \
  || fail "pack nc: $(cat "$WORK/pack.err")"

HEARTHD_LISTEN=0.0.0.0:0 start_hearthd # every address: the test checks the gateway cannot reach it
rpc setup.complete '{"password":"password123","hostname":"hearth"}' >/dev/null
trust_key
for p in na nb nc; do
  install_path "$WORK/$p.s9pk" | grep "\"id\":\"$p\"" >/dev/null || fail "install $p"
done
rpc package.start '{"id":"nb"}' >/dev/null
rpc package.start '{"id":"nc"}' >/dev/null
for p in na nb nc; do wait_status "$p" state running; done
wait_status na health/http/result success
addr() { echo "10.88.0.$(rpc db.dump "{\"pointer\":\"/packageData/$1/container/index\"}" | field /result/value)"; }
NA="$(addr na)"; NB="$(addr nb)"; NC="$(addr nc)"
GW=10.88.0.1
HOST_IP="$(ip -4 -o addr show scope global | awk '$2 != "hearth0" {sub(/\/.*/, "", $4); print $4; exit}')"
echo "   na $NA, nb $NB, nc $NC, API port $API_PORT, host address ${HOST_IP:-none} ($(( $(date +%s) - T0 )) s)"

# A listener on the gateway's DNS port (no DNS server yet), an "outside" network
# namespace reached through the host (198.51.100.2:8000), each logging its clients.
mkdir -p "$WORK/www" && echo "host listener" >"$WORK/www/index.html"
python3 -m http.server --bind "$GW" --directory "$WORK/www" 53 >"$WORK/dns.log" 2>&1 &
PIDS+=($!)
ip netns add "$OUTSIDE"
ip link add nisoout0 type veth peer name eth0 netns "$OUTSIDE"
ip addr add 198.51.100.1/24 dev nisoout0
ip link set nisoout0 up
ip -n "$OUTSIDE" addr add 198.51.100.2/24 dev eth0
ip -n "$OUTSIDE" link set eth0 up
ip -n "$OUTSIDE" link set lo up
ip -n "$OUTSIDE" route add 10.88.0.0/24 via 198.51.100.1
echo "outside" >"$WORK/www/outside.html"
ip netns exec "$OUTSIDE" python3 -m http.server --bind 198.51.100.2 --directory "$WORK/www" 8000 \
  >"$WORK/outside.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do
  curl -s -m 1 "http://$GW:53/" >/dev/null && curl -s -m 1 http://198.51.100.2:8000/ >/dev/null && break
  sleep 0.1
done

# inside ID CMD…: runs CMD in container ID (busybox applets by name).
inside() { local id="$1"; shift; lxc-attach -P "$DATA/containers" -n "$id" --clear-env -- /bin/busybox "$@"; }
fetch() { # ID URL: the body, or nothing (stderr appended to $WORK/fetch.err)
  inside "$1" timeout 3 /bin/busybox wget -q -O - "$2" 2>>"$WORK/fetch.err" || true
}
netfail() { # MESSAGE: fail, with the rules and what the fetches said
  echo "--- Hearth's rules" >&2
  nft list table inet hearth >&2 || true
  nft list table bridge hearth >&2 || true
  echo "--- fetch errors" >&2
  tail -n 20 "$WORK/fetch.err" >&2 || true
  if [ -n "${NETISO_DEBUG:-}" ]; then
    set +e
    for c in bridge inet; do
      for ch in prerouting forward between; do nft insert rule $c hearth $ch counter 2>/dev/null; done
    done
    for id in nc nb; do echo "== $id" >&2; inside $id ip addr >&2; inside $id ip route >&2; done
    inside nc timeout 3 /bin/busybox wget -O - "http://$NA:8080/" >&2
    inside nc ip neigh >&2
    ip neigh show dev hearth0 >&2
    bridge link >&2
    nft list table inet hearth >&2
    nft list table bridge hearth >&2
    nft delete table inet hearth; nft delete table bridge hearth
    echo "== without rules" >&2
    inside nc timeout 3 /bin/busybox wget -O - "http://$NA:8080/" >&2
  fi
  fail "$@"
}

echo "-- every listener answers the host (a refusal below is the firewall's)"
for u in "http://$NA:8080/" "http://$NA:9090/" "http://$NB:8080/" "http://$NC:8080/" \
  "http://$GW:$API_PORT/" "http://$GW:53/"; do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -m 3 "$u")" != 000 ] || fail "host cannot reach $u"
done

echo "-- allowed: nc to its dependency's declared port, the gateway's DNS port, the outside"
fetch nc "http://$NA:8080/" | grep "Hello from an OCI image" >/dev/null || netfail "nc cannot reach na:8080 (declared)"
fetch nb "http://$GW:53/" | grep "host listener" >/dev/null || netfail "nb cannot reach the DNS port on the gateway"
fetch nb http://198.51.100.2:8000/outside.html | grep outside >/dev/null || netfail "nb cannot reach the outside"
grep -q '^198\.51\.100\.1 .*GET /outside.html' "$WORK/outside.log" || fail "outside saw no masqueraded client: $(cat "$WORK/outside.log")"
! grep -q '^10\.88\.' "$WORK/outside.log" || fail "a container's address left the host: $(cat "$WORK/outside.log")"

echo "-- refused (in parallel, 3 s each)"
probe() { # NAME ID URL: records NAME if the fetch got through
  [ -z "$(fetch "$2" "$3")" ] || echo "$1" >>"$WORK/leaks"
}
: >"$WORK/leaks"
refused=(
  "nc to na's undeclared port|nc|http://$NA:9090/"
  "nb to na (not its dependency)|nb|http://$NA:8080/"
  "na (the dependency) to its dependent nc|na|http://$NC:8080/"
  "nb to nc|nb|http://$NC:8080/"
  "nb to hearthd's API on the gateway|nb|http://$GW:$API_PORT/"
  "nc to hearthd's API on the gateway|nc|http://$GW:$API_PORT/"
)
[ -n "$HOST_IP" ] && refused+=("nb to hearthd's API on the host's address $HOST_IP|nb|http://$HOST_IP:$API_PORT/")
jobs_=()
for r in "${refused[@]}"; do
  IFS='|' read -r name id url <<<"$r"
  probe "$name" "$id" "$url" &
  jobs_+=($!)
done
# The outside cannot open a connection to a container (only replies get in).
( [ -z "$(ip netns exec "$OUTSIDE" busybox timeout 3 busybox wget -q -O - "http://$NA:8080/" 2>/dev/null)" ] \
  || echo "the outside to na" >>"$WORK/leaks" ) &
jobs_+=($!)
for j in "${jobs_[@]}"; do wait "$j"; done
[ ! -s "$WORK/leaks" ] || netfail "got through: $(paste -sd ';' "$WORK/leaks")"

echo "-- no spoofing: another source address, another MAC"
RULES="$(nft list table bridge hearth)"
VETH_NB="$(lxc-info -P "$DATA/containers" -n nb -c lxc.net.0.veth.pair | awk '{print $3}')"
MAC_NB="$(lxc-info -P "$DATA/containers" -n nb -c lxc.net.0.hwaddr | awk '{print $3}')"
for rule in "iifname \"$VETH_NB\" jump" "ether saddr != $MAC_NB drop" "ip saddr != $NB drop" \
  "arp saddr ip != $NB drop" "arp saddr ether != $MAC_NB drop" 'ether type != { ip, arp } drop' \
  "iifname \"$VETH_NB\" jump between"; do
  grep -qF "$rule" <<<"$RULES" || fail "bridge rules lack '$rule': $RULES"
done
[ -n "$VETH_NB" ] && ip link show "$VETH_NB" >/dev/null 2>&1 || fail "nb's veth '$VETH_NB' is not on the host"
if inside nb ip addr add 10.88.0.200/32 dev eth0 2>"$WORK/ipaddr.err"; then
  inside nb ip route add "$GW/32" dev eth0 src 10.88.0.200
  [ -z "$(fetch nb "http://$GW:53/")" ] || fail "nb got through with the source address 10.88.0.200"
  inside nb ip route del "$GW/32" dev eth0 src 10.88.0.200
  inside nb ip addr del 10.88.0.200/32 dev eth0
  inside nb ip link set eth0 address 02:00:00:00:99:99
  # The host must learn the new MAC (without the rules it would, and nb get through).
  ip neigh flush dev hearth0 to "$NB"
  [ -z "$(fetch nb "http://$GW:53/")" ] || fail "nb got through with another MAC"
  inside nb ip link set eth0 address "$MAC_NB"
  fetch nb "http://$GW:53/" | grep "host listener" >/dev/null || fail "nb lost the gateway after its own address and MAC came back"
else
  echo "   nb cannot change its addresses at all ($(cat "$WORK/ipaddr.err")): the rules above are the second line"
fi

echo "-- hearthd's own tables only, applied again unchanged by a new hearthd; forwarding on"
[ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ] || fail "net.ipv4.ip_forward is off"
[ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables)" = 1 ] || fail "bridge-nf-call-iptables is off"
BEFORE="$(nft list table inet hearth; nft list table bridge hearth)"
APPLIED="$(grep -c "firewall rules of the service network applied" "$WORK/hearthd.err" || true)"
stop_hearthd
HEARTHD_LISTEN=0.0.0.0:0 start_hearthd # every address: the test checks the gateway cannot reach it
for _ in $(seq 1 50); do
  [ "$(grep -c "firewall rules of the service network applied" "$WORK/hearthd.err" || true)" -gt "$APPLIED" ] && break
  sleep 0.1
done
[ "$(grep -c "firewall rules of the service network applied" "$WORK/hearthd.err" || true)" -gt "$APPLIED" ] \
  || fail "a new hearthd did not apply the rules"
[ "$(nft list table inet hearth; nft list table bridge hearth)" = "$BEFORE" ] || fail "rules changed by the re-apply"
[ "$(nft list tables | grep -c ' hearth$')" = 2 ] || fail "tables: $(nft list tables)"
[ -z "$(fetch nb "http://$NA:8080/")" ] || fail "nb reaches na after the hearthd restart"
fetch nc "http://$NA:8080/" | grep "Hello" >/dev/null || fail "nc lost na after the hearthd restart"
echo "netiso: ok ($(( $(date +%s) - T0 )) s)"
