//! `hearth-net`: the container side of Hearth's network policy — which container may talk
//! to whom on the service bridge, that no container can pass for another, and outbound
//! NAT — rendered as one nftables ruleset and applied behind a trait.
//!
//! # Purpose
//! Every service container has one veth on the bridge (`hearth0`, [`SERVICE_BRIDGE`]) with
//! a fixed address and MAC. Without rules any container reaches any other's ports, can
//! claim another's address, and reaches `hearthd`'s API on the gateway. The rules here
//! make the default deny:
//! - a container reaches another container only at the ports its *declared dependency*
//!   declares (`interfaces` of the dependency's spec), and the replies;
//! - it reaches the host only at the listed host ports on the gateway address (DNS, and
//!   later the proxy), never `hearthd`'s API or another port or address of the host;
//! - it reaches the outside world (LAN, internet) through masquerading NAT;
//! - nothing outside opens a connection to a container (the proxy will be the way in);
//! - frames from a container's veth carry its MAC and IPv4 address only (ARP included),
//!   and only IPv4 and ARP (no IPv6 yet). Bridge-family rules name each container's port
//!   exactly: this kernel's nftables cannot match the bridge a frame is on (`meta
//!   ibrname` needs `nft_meta_bridge`), and a prefix rule (`hv*`) would also cut off
//!   containers on other bridges of the host (hearth-lxc's test bridges). Only hearthd
//!   adds ports to `hearth0`, after applying the rules that name them.
//!
//! # Design
//! * [`firewall`]: a typed [`Model`] (bridge, gateway, per container: id, veth, MAC,
//!   address, allowed peers) → [`render`] → [`Ruleset`], a pure function covered by
//!   golden (insta) snapshots, each also checked by the real `nft -c` in a root test.
//! * [`apply`]: the [`Firewall`] trait (`apply(&Ruleset)`), [`Nft`] which pipes the text
//!   to `nft -f -` through `hearth-cmd`, and [`RecordingFirewall`], the fake.
//! * Hearth's own tables only (`table inet hearth`, `table bridge hearth`): a ruleset
//!   first declares, then deletes, then defines both, in one `nft -f` transaction, so
//!   applying is atomic and idempotent and never touches anyone else's rules.
//! * Kernel (found on the 6.x kernels Hearth runs on): bridge-family conntrack
//!   (`nf_conntrack_bridge`) is often not built, but `br_netfilter` is, and with
//!   `net.bridge.bridge-nf-call-iptables = 1` bridged IPv4 passes the `inet` hooks, where
//!   conntrack works. So the stateful container-to-container check lives in `inet hearth`
//!   (`between`, seen with `iifname` = `oifname` = the bridge); the bridge family holds
//!   the per-port anti-spoofing and a stateless copy of the same allow list (forward
//!   tuple, and the replies by reverse tuple), which still isolates if br_netfilter were
//!   off. [`Nft::system`] turns on `br_netfilter` (loading the module if needed) and
//!   `net.ipv4.ip_forward` after loading the rules, so forwarding is never on without them.
//!
//! # Invariants
//! * Every name or address that reaches the ruleset text was validated
//!   ([`ModelError`]): no quote, space or newline can inject a rule.
//! * The rendered text is deterministic (sorted), so equal models give equal rulesets and
//!   callers can skip re-applying an unchanged one.
//!
//! # Limitations
//! * IPv4 only: containers' IPv6 is dropped at their port.
//! * The filter policy of other tables (e.g. a host firewall whose `forward` policy is
//!   drop) still applies: an accept here cannot override a drop elsewhere.
//!
//! # Rejected alternatives
//! * A netlink nftables crate (`rustables`, `nftnl`): more code and `unsafe` FFI for a
//!   ruleset that `nft -f` loads atomically from text that is easy to snapshot and read.
//! * Bridge port isolation (`isolated on`) + proxy ARP to route container traffic through
//!   the host: per-port settings made after LXC creates the veth (a window without them)
//!   for what br_netfilter gives with one sysctl.

pub mod apply;
pub mod firewall;

pub use apply::{Firewall, FirewallError, Nft, RecordingFirewall};
pub use firewall::{
    ContainerNet, DNS_PORTS, Model, ModelError, Peer, Port, Proto, Ruleset, TABLE, render,
};

use std::net::Ipv4Addr;

/// The bridge service containers join.
pub const SERVICE_BRIDGE: &str = "hearth0";
/// The bridge's (the host's) address on the service network, the containers' gateway.
pub const SERVICE_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
/// Prefix length of the service network (`10.88.0.0/24`: 253 services).
pub const SERVICE_PREFIX_LEN: u8 = 24;
