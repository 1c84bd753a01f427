#!/usr/bin/env bash
# System test: this server's name on the LAN, seen by real mDNS peers.
#
# Three network namespaces on one bridge stand for a LAN: hnm-a runs the real hearthd
# (--mdns --set-kernel-hostname, in its own UTS namespace so the host keeps its name),
# hnm-b asks with real dig (one-shot mDNS queries to a responder's port 5353, RFC 6762
# §5.5), hnm-c runs a real avahi-daemon (private config, no D-Bus) that claims a name.
# It proves that:
# - after setup, `<hostname>.local` resolves to hearthd's LAN address, and the kernel
#   hostname of hearthd's UTS namespace is the one chosen;
# - after `server.hostname.set`, the new name resolves without a restart, the old one no
#   longer does, and the kernel hostname follows;
# - a name avahi already holds makes ours `<name>-2.local`, shown in server.info's
#   mdnsName, resolving to hearthd while `<name>.local` still resolves to avahi's host;
# - a hostname that is not a DNS label is refused and changes nothing.
# The laptop namespace also resolves each of hearthd's names through its own avahi-daemon
# (avahi-resolve-host-name on a private D-Bus): multicast queries, as a desktop asks.
# Needs root, ip, dig, avahi-daemon, avahi-resolve-host-name, dbus-daemon, unshare, curl,
# python3 (ci/deps.sh). Runs under
# flock /var/lock/hearth-systest.lock; everything it creates is named hnm* and removed.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${HNM_LOCKED:-}" ]; then
  export HNM_LOCKED=1
  exec flock /var/lock/hearth-systest.lock "$0" "$@"
fi
. ci/env.sh
. ci/systest/lib.sh
systest_setup mdns "network namespaces" ip dig avahi-daemon avahi-resolve-host-name dbus-daemon \
  unshare nsenter curl python3 flock
T0=$(date +%s)
AVAHI_PID=""
LAPTOP_PIDS=()
cleanup() {
  local p
  for p in "${LAPTOP_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${HEARTHD_PID:-}" ] && kill -TERM "$HEARTHD_PID" 2>/dev/null && wait "$HEARTHD_PID" 2>/dev/null
  [ -n "$AVAHI_PID" ] && kill "$AVAHI_PID" 2>/dev/null
  for n in hnm-a hnm-b hnm-c hnm-lan; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# The LAN: a bridge in hnm-lan, one veth to each host.
ip netns add hnm-lan
ip -n hnm-lan link add hnmbr0 type bridge
ip -n hnm-lan link set hnmbr0 up
i=1
for h in a b c; do
  ip netns add "hnm-$h"
  ip -n "hnm-$h" link set lo up
  ip link add "hnm$h" netns "hnm-$h" type veth peer name "hnm$h-p" netns hnm-lan
  ip -n hnm-lan link set "hnm$h-p" master hnmbr0 up
  ip -n "hnm-$h" addr add "10.77.0.$i/24" dev "hnm$h"
  ip -n "hnm-$h" link set "hnm$h" up
  # No default route on this LAN: multicast (mDNS) needs its own.
  ip -n "hnm-$h" route add 224.0.0.0/4 dev "hnm$h"
  i=$((i + 1))
done
sleep 2 # IPv6 DAD and link up

# The laptop (hnm-b) resolves like a desktop does: avahi-daemon (publishing nothing) on a
# private D-Bus, asked by avahi-resolve-host-name, so queries and answers are multicast.
mkdir -p "$WORK/laptop"
cat >"$WORK/laptop/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=$WORK/laptop/bus</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/>
<allow receive_sender="*"/></policy></busconfig>
CONF
cat >"$WORK/laptop/avahi-daemon.conf" <<CONF
[server]
host-name=hnmlaptop
use-ipv6=no
allow-interfaces=hnmb
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
disable-publishing=yes
CONF
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$WORK/laptop/bus"
LAPTOP_PIDS+=("$(ip netns exec hnm-b dbus-daemon --config-file="$WORK/laptop/bus.conf" --fork --print-pid)")
ip netns exec hnm-b sh -c "mkdir -p /run/avahi-daemon && mount -t tmpfs hnm /run/avahi-daemon \
  && exec avahi-daemon --no-drop-root --no-chroot --no-rlimits -f '$WORK/laptop/avahi-daemon.conf'" \
  >"$WORK/laptop/avahi.log" 2>&1 &
LAPTOP_PIDS+=("$!")
mc_resolve() { # NAME -> the IPv4 address the laptop's avahi resolves it to (empty: none)
  ip netns exec hnm-b timeout 5 avahi-resolve-host-name -4 "$1" 2>/dev/null | awk '{print $2}' || true
}
expect_mc_resolves() { # NAME ADDRESS
  local got=""
  for _ in $(seq 1 5); do
    got="$(mc_resolve "$1")"
    [ "$got" = "$2" ] && return 0
    sleep 1
  done
  cat "$WORK/laptop/avahi.log" >&2
  fail "the laptop's avahi resolves $1 to '${got}', expected $2"
}

# hearthd in hnm-a, its own UTS namespace.
: >"$WORK/hearthd.out"
ip netns exec hnm-a unshare --uts "$BIN/hearthd" --data-dir "$DATA" --listen 127.0.0.1:0 \
  --mdns --set-kernel-hostname >"$WORK/hearthd.out" 2>>"$WORK/hearthd.err" &
HEARTHD_PID=$!
URL=""
for _ in $(seq 1 100); do
  URL="$(sed -n 's/^hearthd listening on \(http:[^ ]*\).*/\1/p' "$WORK/hearthd.out" | head -n 1)"
  [ -n "$URL" ] && break
  sleep 0.1
done
[ -n "$URL" ] || fail "hearthd did not announce its address"
rpc() { # METHOD PARAMS-JSON -> response JSON (from inside hnm-a)
  ip netns exec hnm-a curl -sS "$URL/rpc/v1" -H 'content-type: application/json' \
    -H "x-hearth-local-auth: $(cookie)" -d "{\"method\":\"$1\",\"params\":$2}"
}
# dig sends the mDNS query to the responder's own address on port 5353 (RFC 6762 §5.5
# one-shot unicast query): a query to 224.0.0.251 is answered too, but from the
# responder's address, and dig drops replies from an address it did not ask.
resolve() { # NAME [RESPONDER, default hearthd's 10.77.0.1] -> A records (empty: none)
  ip netns exec hnm-b dig +short +time=1 +tries=1 "@${2:-10.77.0.1}" -p 5353 "$1" A 2>/dev/null \
    | grep -E '^[0-9.]+$' | sort -u || true
}
expect_resolves() { # NAME ADDRESS [RESPONDER]
  local got=""
  for _ in $(seq 1 15); do
    got="$(resolve "$1" "${3:-10.77.0.1}")"
    [ "$got" = "$2" ] && return 0
    sleep 1
  done
  fail "$1 resolves to '${got}', expected $2"
}
expect_gone() { # NAME
  local got=""
  for _ in $(seq 1 10); do
    got="$(resolve "$1")"
    [ -z "$got" ] && return 0
    sleep 1
  done
  fail "$1 still resolves to $got"
}
kernel_hostname() { nsenter -t "$HEARTHD_PID" -u hostname; }
mdns_name() { rpc server.info '{}' | field /result/mdnsName; }
expect_mdns_name() { # NAME
  local got=""
  for _ in $(seq 1 20); do
    got="$(mdns_name)"
    [ "$got" = "$1" ] && return 0
    sleep 0.5
  done
  fail "server.info mdnsName is $got, expected $1"
}

r="$(ip netns exec hnm-a curl -sS "$URL/rpc/v1" -H 'content-type: application/json' \
  -d '{"method":"setup.complete","params":{"password":"correct horse","hostname":"hnmbox","setupCode":"'"$(cat "$DATA/setup-code")"'"}}')"
[ "$(echo "$r" | field /error)" = null ] || fail "setup.complete: $r"
expect_resolves hnmbox.local 10.77.0.1
expect_mdns_name hnmbox.local.
expect_mc_resolves hnmbox.local 10.77.0.1
[ "$(kernel_hostname)" = hnmbox ] || fail "kernel hostname is $(kernel_hostname), expected hnmbox"
echo "mdns: hnmbox.local resolves to 10.77.0.1 after setup ($(( $(date +%s) - T0 ))s)"

r="$(rpc server.hostname.set '{"hostname":"Hnm-Renamed"}')"
[ "$(echo "$r" | field /result/hostname)" = hnm-renamed ] || fail "server.hostname.set: $r"
expect_resolves hnm-renamed.local 10.77.0.1
expect_gone hnmbox.local
expect_mdns_name hnm-renamed.local.
expect_mc_resolves hnm-renamed.local 10.77.0.1
[ "$(kernel_hostname)" = hnm-renamed ] || fail "kernel hostname is $(kernel_hostname) after rename"
echo "mdns: renamed without restart: hnm-renamed.local resolves, hnmbox.local is gone ($(( $(date +%s) - T0 ))s)"

r="$(rpc server.hostname.set '{"hostname":"bad.name"}')"
[ "$(echo "$r" | field /error/code)" = -32602 ] || fail "bad hostname accepted: $r"
[ "$(rpc server.info '{}' | field /result/hostname)" = hnm-renamed ] || fail "bad hostname changed the state"
[ "$(kernel_hostname)" = hnm-renamed ] || fail "bad hostname reached the kernel"
echo "mdns: 'bad.name' refused, nothing changed"

# A peer that already holds the name: avahi in hnm-c, private config, no D-Bus.
mkdir -p "$WORK/avahi"
cat >"$WORK/avahi/avahi-daemon.conf" <<CONF
[server]
host-name=hnmdupe
domain-name=local
use-ipv4=yes
use-ipv6=no
allow-interfaces=hnmc
enable-dbus=no
[wide-area]
enable-wide-area=no
[publish]
publish-addresses=yes
publish-workstation=no
publish-hinfo=no
CONF
ip netns exec hnm-c sh -c "mkdir -p /run/avahi-daemon && mount -t tmpfs hnm /run/avahi-daemon \
  && exec avahi-daemon --no-drop-root --no-chroot --no-rlimits -f '$WORK/avahi/avahi-daemon.conf'" \
  >"$WORK/avahi.log" 2>&1 &
AVAHI_PID=$!
expect_resolves hnmdupe.local 10.77.0.3 10.77.0.3

r="$(rpc server.hostname.set '{"hostname":"hnmdupe"}')"
[ "$(echo "$r" | field /result/hostname)" = hnmdupe ] || fail "server.hostname.set hnmdupe: $r"
expect_mdns_name hnmdupe-2.local.
expect_resolves hnmdupe-2.local 10.77.0.1
expect_resolves hnmdupe.local 10.77.0.3 10.77.0.3
expect_gone hnmdupe.local
expect_mc_resolves hnmdupe-2.local 10.77.0.1
echo "mdns: avahi holds hnmdupe.local; ours became hnmdupe-2.local, shown in mdnsName ($(( $(date +%s) - T0 ))s)"
echo "mdns: passed in $(( $(date +%s) - T0 ))s"
