//! The network policy as data ([`Model`]) and its nftables text ([`render`]).
//!
//! Design: the renderer is a pure function of a validated model; the text is what
//! `nft -f` loads, in Hearth's two tables only (see the crate docs for why the
//! container-to-container check is in `inet` and the anti-spoofing in `bridge`). Rules
//! are sorted (containers by id, peers by address, ports ascending) so equal models give
//! byte-equal rulesets. Refusals are `drop` (the bridge family here cannot `reject`:
//! `nft_reject_bridge` is often not built).
//!
//! Invariants: [`Model::validate`] accepts only interface names of `[A-Za-z0-9_.-]`
//! (1-15 bytes), ids of `[a-z0-9-]`, MACs `xx:xx:xx:xx:xx:xx` (unicast), addresses
//! inside the service network and distinct; everything written into the text passed it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// The name of both of Hearth's tables (`inet hearth`, `bridge hearth`).
pub const TABLE: &str = "hearth";

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    fn keyword(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A port of one protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    /// The protocol.
    pub proto: Proto,
    /// The port number (not 0).
    pub port: u16,
}

impl Port {
    /// A TCP port.
    pub const fn tcp(port: u16) -> Port {
        Port {
            proto: Proto::Tcp,
            port,
        }
    }
    /// A UDP port.
    pub const fn udp(port: u16) -> Port {
        Port {
            proto: Proto::Udp,
            port,
        }
    }
}

/// DNS on the gateway: what every container may reach on the host.
pub const DNS_PORTS: [Port; 2] = [Port::udp(53), Port::tcp(53)];

/// A container another may connect to (a declared dependency) and at which ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its package id (for the rule's comment).
    pub id: String,
    /// Its address on the service network.
    pub address: Ipv4Addr,
    /// The ports it declares (its `interfaces`); none: it cannot be reached.
    pub ports: Vec<Port>,
}

/// One container's place on the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerNet {
    /// Its package id.
    pub id: String,
    /// Its host-side veth (a port of the bridge), starting with [`Model::veth_prefix`].
    pub veth: String,
    /// The MAC its `eth0` has, lower-case `xx:xx:xx:xx:xx:xx`.
    pub mac: String,
    /// Its address.
    pub address: Ipv4Addr,
    /// What it may connect to on other containers.
    pub peers: Vec<Peer>,
}

/// The whole service network's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// The bridge (`hearth0`).
    pub bridge: String,
    /// The bridge's address, the containers' gateway.
    pub gateway: Ipv4Addr,
    /// The service network's prefix length (8-30).
    pub prefix_len: u8,
    /// What every container veth's name starts with (validated; the rules name each
    /// container's port exactly, never the prefix, so other bridges are not touched).
    pub veth_prefix: String,
    /// Ports of the gateway address containers may reach ([`DNS_PORTS`], the proxy's).
    pub host_ports: Vec<Port>,
    /// Every container, running or not.
    pub containers: Vec<ContainerNet>,
}

/// A model that cannot be rendered safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// An interface name that is not 1-15 bytes of `[A-Za-z0-9_.-]`.
    #[error("{what} {name:?} is not an interface name (1-15 of A-Z a-z 0-9 _ . -)")]
    InterfaceName {
        /// Which name ("bridge", "veth prefix", "veth of <id>").
        what: String,
        /// The name.
        name: String,
    },
    /// A veth whose name does not start with the model's prefix, or the bridge that does
    /// (bridge and container ports must never be mistaken for each other).
    #[error("{what} {name:?} and the veth prefix {prefix:?} do not fit")]
    VethPrefix {
        /// Which name.
        what: String,
        /// The name.
        name: String,
        /// The prefix.
        prefix: String,
    },
    /// A prefix length outside 8-30 or a gateway that is not a host of its network.
    #[error(
        "service network {gateway}/{prefix_len} is not usable (prefix 8-30, gateway a host address)"
    )]
    Network {
        /// The gateway.
        gateway: Ipv4Addr,
        /// The prefix length.
        prefix_len: u8,
    },
    /// A package id that is not `[a-z0-9-]+`.
    #[error("package id {id:?} is not [a-z0-9-]+")]
    Id {
        /// The id.
        id: String,
    },
    /// An address outside the service network, or the gateway, or its network or
    /// broadcast address.
    #[error(
        "{id}: address {address} is not a host address of the service network other than the gateway"
    )]
    Address {
        /// The container (or peer) id.
        id: String,
        /// The address.
        address: Ipv4Addr,
    },
    /// A MAC that is not `xx:xx:xx:xx:xx:xx` (lower-case hex) or is multicast.
    #[error("{id}: MAC {mac:?} is not a unicast address like 02:00:00:00:00:01")]
    Mac {
        /// The container.
        id: String,
        /// The MAC.
        mac: String,
    },
    /// Port 0.
    #[error("{id}: port 0 is not a port")]
    Port {
        /// The container, peer or "host".
        id: String,
    },
    /// Two containers with the same id, veth, MAC or address.
    #[error("{what} {value} is used by both {first} and {second}")]
    Duplicate {
        /// "id", "veth", "MAC" or "address".
        what: &'static str,
        /// The shared value.
        value: String,
        /// One container.
        first: String,
        /// The other.
        second: String,
    },
}

/// The text `nft -f` loads: Hearth's tables replaced as one transaction. Only
/// [`render`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset(String);

impl Ruleset {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Ruleset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_ifname(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_unicast_mac(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split(':').collect();
    parts.len() == 6
        && parts.iter().all(|p| {
            p.len() == 2
                && p.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        && u8::from_str_radix(parts[0], 16).is_ok_and(|first| first & 1 == 0)
}

impl Model {
    fn mask(&self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix_len))
    }

    /// The service network, `a.b.c.d/len`.
    pub fn network(&self) -> String {
        format!(
            "{}/{}",
            Ipv4Addr::from(u32::from(self.gateway) & self.mask()),
            self.prefix_len
        )
    }

    fn is_host(&self, address: Ipv4Addr) -> bool {
        let (a, g, m) = (u32::from(address), u32::from(self.gateway), self.mask());
        a & m == g & m && a & !m != 0 && a & !m != !m
    }

    /// Checks everything [`render`] writes into the text (see [`ModelError`]).
    pub fn validate(&self) -> Result<(), ModelError> {
        let name_err = |what: &str, name: &str| ModelError::InterfaceName {
            what: what.to_owned(),
            name: name.to_owned(),
        };
        if !is_ifname(&self.bridge) {
            return Err(name_err("bridge", &self.bridge));
        }
        if self.veth_prefix.len() >= 15 || !is_ifname(&self.veth_prefix) {
            return Err(name_err("veth prefix", &self.veth_prefix));
        }
        if self.bridge.starts_with(&self.veth_prefix) {
            return Err(ModelError::VethPrefix {
                what: "bridge".into(),
                name: self.bridge.clone(),
                prefix: self.veth_prefix.clone(),
            });
        }
        if !(8..=30).contains(&self.prefix_len) || !self.is_host(self.gateway) {
            return Err(ModelError::Network {
                gateway: self.gateway,
                prefix_len: self.prefix_len,
            });
        }
        if self.host_ports.iter().any(|p| p.port == 0) {
            return Err(ModelError::Port { id: "host".into() });
        }
        let mut seen: [BTreeMap<String, &str>; 4] = Default::default();
        for c in &self.containers {
            if !is_id(&c.id) {
                return Err(ModelError::Id { id: c.id.clone() });
            }
            let what = format!("veth of {}", c.id);
            if !is_ifname(&c.veth) {
                return Err(name_err(&what, &c.veth));
            }
            if !c.veth.starts_with(&self.veth_prefix) {
                return Err(ModelError::VethPrefix {
                    what,
                    name: c.veth.clone(),
                    prefix: self.veth_prefix.clone(),
                });
            }
            if !is_unicast_mac(&c.mac) {
                return Err(ModelError::Mac {
                    id: c.id.clone(),
                    mac: c.mac.clone(),
                });
            }
            let address_ok = |id: &str, address: Ipv4Addr| {
                if self.is_host(address) && address != self.gateway {
                    Ok(())
                } else {
                    Err(ModelError::Address {
                        id: id.to_owned(),
                        address,
                    })
                }
            };
            address_ok(&c.id, c.address)?;
            for p in &c.peers {
                if !is_id(&p.id) {
                    return Err(ModelError::Id { id: p.id.clone() });
                }
                address_ok(&p.id, p.address)?;
                if p.ports.iter().any(|port| port.port == 0) {
                    return Err(ModelError::Port { id: p.id.clone() });
                }
            }
            let keys = [
                ("id", c.id.clone()),
                ("veth", c.veth.clone()),
                ("MAC", c.mac.clone()),
                ("address", c.address.to_string()),
            ];
            for (map, (what, value)) in seen.iter_mut().zip(keys) {
                if let Some(first) = map.insert(value.clone(), &c.id) {
                    return Err(ModelError::Duplicate {
                        what,
                        value,
                        first: first.to_owned(),
                        second: c.id.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// `{ a, b }` of the sorted, deduplicated ports of `proto` in `ports` (`None`: none).
fn port_set(ports: &[Port], proto: Proto) -> Option<String> {
    let set: BTreeSet<u16> = ports
        .iter()
        .filter(|p| p.proto == proto)
        .map(|p| p.port)
        .collect();
    (!set.is_empty()).then(|| {
        let list: Vec<String> = set.iter().map(u16::to_string).collect();
        format!("{{ {} }}", list.join(", "))
    })
}

/// One allowed connection direction: `from` may open connections to `to` at `ports`.
struct Allow<'a> {
    from: &'a ContainerNet,
    to: &'a Peer,
}

/// Renders `model` (validated first) into the ruleset text.
pub fn render(model: &Model) -> Result<Ruleset, ModelError> {
    model.validate()?;
    let mut containers: Vec<&ContainerNet> = model.containers.iter().collect();
    containers.sort_by(|a, b| a.id.cmp(&b.id));
    let mut allows: Vec<Allow<'_>> = Vec::new();
    for c in &containers {
        let mut peers: Vec<&Peer> = c.peers.iter().filter(|p| p.address != c.address).collect();
        peers.sort_by_key(|p| p.address);
        allows.extend(peers.into_iter().map(|to| Allow { from: c, to }));
    }
    let mut t = Text::default();
    header(&mut t);
    bridge_table(&mut t, &containers, &allows);
    t.blank();
    inet_table(&mut t, model, &allows);
    Ok(Ruleset(t.0))
}

/// A ruleset under construction (writing into a `String` cannot fail).
#[derive(Default)]
struct Text(String);

impl Text {
    fn line(&mut self, indent: usize, s: &str) {
        for _ in 0..indent {
            self.0.push('\t');
        }
        self.0.push_str(s);
        self.0.push('\n');
    }
    fn blank(&mut self) {
        self.0.push('\n');
    }
}

fn header(t: &mut Text) {
    for l in [
        "#!/usr/sbin/nft -f",
        "# Hearth's service network policy, rendered by hearth-net (do not edit: hearthd",
        "# replaces it). Only Hearth's own tables, replaced in this one transaction: each is",
        "# declared (so the delete cannot fail), deleted, and defined again.",
    ] {
        t.line(0, l);
    }
    for family in ["inet", "bridge"] {
        t.line(0, &format!("table {family} {TABLE}"));
        t.line(0, &format!("delete table {family} {TABLE}"));
    }
    t.blank();
}

fn port_chain(veth: &str) -> String {
    // Chain names: the veth name is [A-Za-z0-9_.-]; nft identifiers take [A-Za-z0-9_.]
    // after a letter, so `-` becomes `_`.
    format!("port_{}", veth.replace('-', "_"))
}

/// The `ip saddr … ip daddr … <proto> <dir> { ports }` rules for one allow, per protocol.
fn allow_rules(a: &Allow<'_>, reply: bool) -> Vec<String> {
    [Proto::Tcp, Proto::Udp]
        .into_iter()
        .filter_map(|proto| {
            let set = port_set(&a.to.ports, proto)?;
            let (kw, from, to) = (proto.keyword(), a.from.address, a.to.address);
            Some(if reply {
                format!(
                    "ip saddr {to} ip daddr {from} {kw} sport {set} accept comment \"replies of {} to {}\"",
                    a.to.id, a.from.id
                )
            } else {
                format!(
                    "ip saddr {from} ip daddr {to} {kw} dport {set} accept comment \"{} to its dependency {}\"",
                    a.from.id, a.to.id
                )
            })
        })
        .collect()
}

fn bridge_table(t: &mut Text, containers: &[&ContainerNet], allows: &[Allow<'_>]) {
    t.line(0, &format!("table bridge {TABLE} {{"));
    t.line(
        1,
        "# What a container sends: its own MAC and IPv4 address only (ARP too); IPv4 and ARP",
    );
    t.line(
        1,
        "# only. Rules name the containers' own ports only, never a prefix: other bridges",
    );
    t.line(
        1,
        "# on the host (a developer's test bridges) are left alone.",
    );
    t.line(1, "chain prerouting {");
    t.line(
        2,
        "type filter hook prerouting priority filter; policy accept;",
    );
    for c in containers {
        t.line(
            2,
            &format!("iifname \"{}\" jump {}", c.veth, port_chain(&c.veth)),
        );
    }
    t.line(1, "}");
    for c in containers {
        t.blank();
        t.line(1, &format!("chain {} {{", port_chain(&c.veth)));
        t.line(2, &format!("# {}: {} {}", c.id, c.address, c.mac));
        for rule in [
            format!("ether saddr != {} drop", c.mac),
            "ether type != { ip, arp } drop".to_owned(),
            format!("ip saddr != {} drop", c.address),
            format!("arp saddr ether != {} drop", c.mac),
            format!("arp saddr ip != {} drop", c.address),
            "accept".to_owned(),
        ] {
            t.line(2, &rule);
        }
        t.line(1, "}");
    }
    t.blank();
    t.line(
        1,
        "# Between two containers: a dependency's declared ports, and replies by the reverse",
    );
    t.line(
        1,
        "# tuple (stateless: bridge conntrack may be missing; inet hearth checks the state).",
    );
    t.line(1, "chain forward {");
    t.line(
        2,
        "type filter hook forward priority filter; policy accept;",
    );
    for c in containers {
        t.line(2, &format!("iifname \"{}\" jump between", c.veth));
    }
    t.line(1, "}");
    t.blank();
    t.line(1, "chain between {");
    t.line(2, "ether type arp accept");
    for a in allows {
        for r in allow_rules(a, false)
            .into_iter()
            .chain(allow_rules(a, true))
        {
            t.line(2, &r);
        }
    }
    t.line(2, "drop");
    t.line(1, "}");
    t.line(0, "}");
}

fn inet_table(t: &mut Text, m: &Model, allows: &[Allow<'_>]) {
    let br = format!("\"{}\"", m.bridge);
    let gw = m.gateway;
    let net = m.network();
    t.line(0, &format!("table inet {TABLE} {{"));
    t.line(
        1,
        "# Containers reach the host only at the listed ports of the gateway address (DNS,",
    );
    t.line(
        1,
        "# the proxy): not hearthd's API, no other port or address of the host.",
    );
    t.line(1, "chain input {");
    t.line(2, "type filter hook input priority filter; policy accept;");
    t.line(2, &format!("iifname {br} jump from_containers"));
    t.line(1, "}");
    t.blank();
    t.line(1, "chain from_containers {");
    t.line(2, "ct state established,related accept");
    for proto in [Proto::Udp, Proto::Tcp] {
        if let Some(set) = port_set(&m.host_ports, proto) {
            t.line(
                2,
                &format!("ip daddr {gw} {} dport {set} accept", proto.keyword()),
            );
        }
    }
    t.line(2, "drop");
    t.line(1, "}");
    t.blank();
    t.line(
        1,
        "# Bridged container-to-container traffic is seen here too (br_netfilter), with the",
    );
    t.line(
        1,
        "# bridge as both interfaces; source addresses are pinned by bridge hearth.",
    );
    t.line(1, "chain forward {");
    t.line(
        2,
        "type filter hook forward priority filter; policy accept;",
    );
    t.line(2, &format!("iifname {br} oifname {br} jump between"));
    t.line(
        2,
        &format!("oifname {br} ct state established,related accept"),
    );
    t.line(
        2,
        &format!("oifname {br} drop comment \"nothing outside opens a connection to a container\""),
    );
    t.line(
        2,
        &format!(
            "iifname {br} ip saddr {net} accept comment \"containers to the outside (masqueraded)\""
        ),
    );
    t.line(2, &format!("iifname {br} drop"));
    t.line(1, "}");
    t.blank();
    t.line(1, "chain between {");
    t.line(2, "ct state established,related accept");
    for a in allows {
        for r in allow_rules(a, false) {
            t.line(2, &r);
        }
    }
    t.line(2, "drop");
    t.line(1, "}");
    t.blank();
    t.line(1, "chain postrouting {");
    t.line(
        2,
        "type nat hook postrouting priority srcnat; policy accept;",
    );
    t.line(2, &format!("ip saddr {net} oifname != {br} masquerade"));
    t.line(1, "}");
    t.line(0, "}");
}

/// Models the golden tests (and the `nft -c` root test) render.
#[doc(hidden)]
pub mod examples {
    use super::*;

    fn container(id: &str, host: u8, peers: Vec<Peer>) -> ContainerNet {
        ContainerNet {
            id: id.to_owned(),
            veth: format!("hv{id}"),
            mac: format!("02:00:00:00:00:{host:02x}"),
            address: Ipv4Addr::new(10, 88, 0, host),
            peers,
        }
    }

    fn base(containers: Vec<ContainerNet>) -> Model {
        Model {
            bridge: "hearth0".into(),
            gateway: Ipv4Addr::new(10, 88, 0, 1),
            prefix_len: 24,
            veth_prefix: "hv".into(),
            host_ports: DNS_PORTS.to_vec(),
            containers,
        }
    }

    /// No container yet.
    pub fn empty() -> Model {
        base(vec![])
    }

    /// Two containers, neither depending on the other.
    pub fn two_independent() -> Model {
        base(vec![container("a", 2, vec![]), container("b", 3, vec![])])
    }

    /// `pg-client` depends on `postgresql` (tcp 5432), `web` on nothing; a proxy port on
    /// the host; a dependency declaring TCP and UDP ports.
    pub fn dependent() -> Model {
        let mut m = base(vec![
            container("postgresql", 2, vec![]),
            container(
                "pg-client",
                3,
                vec![Peer {
                    id: "postgresql".into(),
                    address: Ipv4Addr::new(10, 88, 0, 2),
                    ports: vec![Port::tcp(5432)],
                }],
            ),
            container(
                "web",
                4,
                vec![Peer {
                    id: "media".into(),
                    address: Ipv4Addr::new(10, 88, 0, 5),
                    ports: vec![Port::udp(1900), Port::tcp(8096), Port::tcp(8920)],
                }],
            ),
            container("media", 5, vec![]),
        ]);
        m.host_ports.push(Port::tcp(3128));
        m
    }

    /// Every example, named.
    pub fn all() -> Vec<(&'static str, Model)> {
        vec![
            ("empty", empty()),
            ("two_independent", two_independent()),
            ("dependent", dependent()),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::examples::*;
    use super::*;

    #[test]
    fn golden_empty() {
        insta::assert_snapshot!(render(&empty()).unwrap().as_str());
    }

    #[test]
    fn golden_two_independent() {
        insta::assert_snapshot!(render(&two_independent()).unwrap().as_str());
    }

    #[test]
    fn golden_dependent() {
        insta::assert_snapshot!(render(&dependent()).unwrap().as_str());
    }

    #[test]
    fn rendering_is_deterministic_whatever_the_order() {
        let m = dependent();
        let mut shuffled = m.clone();
        shuffled.containers.reverse();
        for c in &mut shuffled.containers {
            for p in &mut c.peers {
                p.ports.reverse();
                p.ports.extend(p.ports.clone());
            }
        }
        assert_eq!(render(&m).unwrap(), render(&shuffled).unwrap());
    }

    #[test]
    fn only_hearths_tables_and_never_a_flush() {
        for (name, m) in all() {
            let text = render(&m).unwrap();
            let text = text.as_str();
            assert!(!text.contains("flush"), "{name}");
            for line in text
                .lines()
                .filter(|l| l.starts_with("table") || l.starts_with("delete"))
            {
                assert!(line.contains(" hearth"), "{name}: {line}");
            }
            assert!(text.contains("delete table inet hearth\n"), "{name}");
            assert!(text.contains("delete table bridge hearth\n"), "{name}");
        }
    }

    #[test]
    fn independent_containers_get_no_path_to_each_other() {
        let text = render(&two_independent()).unwrap();
        let between: Vec<&str> = text
            .as_str()
            .lines()
            .skip_while(|l| !l.contains("chain between"))
            .take_while(|l| !l.trim().starts_with('}'))
            .collect();
        assert!(
            !between.iter().any(|l| l.contains("ip saddr")),
            "{between:?}"
        );
    }

    #[test]
    fn bad_models_are_refused() {
        let bad = |f: &dyn Fn(&mut Model)| {
            let mut m = two_independent();
            f(&mut m);
            render(&m).unwrap_err()
        };
        assert!(matches!(
            bad(&|m| m.bridge = "hearth0\" accept".into()),
            ModelError::InterfaceName { .. }
        ));
        assert!(matches!(
            bad(&|m| m.containers[0].veth = "eth1".into()),
            ModelError::VethPrefix { .. }
        ));
        assert!(matches!(
            bad(&|m| m.containers[0].veth = "hv-very-long-name".into()),
            ModelError::InterfaceName { .. }
        ));
        assert!(matches!(
            bad(&|m| m.containers[0].id = "A b".into()),
            ModelError::Id { .. }
        ));
        assert!(matches!(
            bad(&|m| m.containers[0].mac = "03:00:00:00:00:01".into()),
            ModelError::Mac { .. }
        ));
        assert!(matches!(
            bad(&|m| m.containers[0].mac = "02:00:00:00:00".into()),
            ModelError::Mac { .. }
        ));
        for address in [
            [10, 88, 0, 1],
            [10, 88, 1, 2],
            [10, 88, 0, 255],
            [10, 88, 0, 0],
        ] {
            assert!(matches!(
                bad(&|m| m.containers[0].address = Ipv4Addr::from(address)),
                ModelError::Address { .. }
            ));
        }
        assert!(matches!(
            bad(&|m| m.containers[1].address = m.containers[0].address),
            ModelError::Duplicate {
                what: "address",
                ..
            }
        ));
        assert!(matches!(
            bad(&|m| m.containers[1].mac = m.containers[0].mac.clone()),
            ModelError::Duplicate { what: "MAC", .. }
        ));
        assert!(matches!(
            bad(&|m| m.prefix_len = 31),
            ModelError::Network { .. }
        ));
        assert!(matches!(
            bad(&|m| m.host_ports.push(Port::tcp(0))),
            ModelError::Port { .. }
        ));
        assert!(matches!(
            bad(&|m| m.veth_prefix = "hea".into()),
            ModelError::VethPrefix { .. }
        ));
        assert!(matches!(
            bad(&|m| m.containers[0].peers.push(Peer {
                id: "b".into(),
                address: Ipv4Addr::new(192, 168, 1, 1),
                ports: vec![]
            })),
            ModelError::Address { .. }
        ));
    }
}
