//! Kernel command line parsing and slot selection (pure, no I/O).
//!
//! Recognised keys: `hearth.slot=a|b` (the A/B slot this boot entry belongs to, written by
//! the imager into each systemd-boot entry and each Raspberry Pi `cmdline.txt`), `root=` (an
//! explicit root device overriding the slot's partition label: `/dev/…`, `PARTLABEL=root-a`,
//! or an MBR `PARTUUID=<disk id>-<nn>` as the Pi's `cmdline.txt` has),
//! `hearth.net=dhcp|static:ADDR/PREFIX,GATEWAY|off` (default `dhcp`: `dhcpcd` on every
//! interface), `hearth.listen=ADDR:PORT` (hearthd's
//! listen address). Unknown keys belong to the kernel or to other programs and are ignored.
//! Values may be double-quoted.
//!
//! Test only: `hearth.test.hearthd=PATH` runs PATH instead of `/usr/bin/hearthd` (same
//! arguments). `ci/vm-test.sh` writes `hearth.test.hearthd=/bin/false` into one slot's boot
//! entry to get a slot whose `hearthd` never becomes healthy and check the fallback. It is
//! logged as a warning on every boot that uses it.

/// A root filesystem slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    A,
    B,
}

impl Slot {
    /// `a` or `b`.
    pub(crate) fn letter(self) -> char {
        match self {
            Slot::A => 'a',
            Slot::B => 'b',
        }
    }

    /// The other slot.
    pub(crate) fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// GPT partition name of this slot's root squashfs.
    pub(crate) fn partition_label(self) -> &'static str {
        match self {
            Slot::A => "root-a",
            Slot::B => "root-b",
        }
    }
}

/// Network configuration requested on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NetConfig {
    /// No network configuration beyond loopback.
    Off,
    /// Addresses from DHCP (and IPv6 router advertisements): `dhcpcd`, supervised.
    Dhcp,
    /// A static IPv4 address (`10.0.2.15/24`) and default gateway.
    Static { address: String, gateway: String },
}

/// What the command line asks of `hearth-init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BootParams {
    pub(crate) slot: Option<Slot>,
    pub(crate) root: Option<String>,
    pub(crate) net: NetConfig,
    pub(crate) listen: String,
    /// Test only: the program run in place of hearthd.
    pub(crate) test_hearthd: Option<String>,
}

/// Default listen address of hearthd on a device.
pub(crate) const DEFAULT_LISTEN: &str = "0.0.0.0:80";

/// hearthd's HTTPS listener on a device.
pub(crate) const DEFAULT_HTTPS_LISTEN: &str = "0.0.0.0:443";

/// A command line value that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum CmdlineError {
    /// `hearth.slot` is neither `a` nor `b`.
    #[error("kernel command line: hearth.slot={0:?} is not `a` or `b`")]
    BadSlot(String),
    /// `hearth.net` is malformed.
    #[error(
        "kernel command line: hearth.net={0:?} is not `dhcp`, `off` or `static:ADDR/PREFIX,GATEWAY`"
    )]
    BadNet(String),
}

/// Splits a command line into words, honouring double quotes.
fn words(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Parses `/proc/cmdline`. Later occurrences of a key win, like the kernel's own parsing.
pub(crate) fn parse(cmdline: &str) -> Result<BootParams, CmdlineError> {
    let mut params = BootParams {
        slot: None,
        root: None,
        net: NetConfig::Dhcp,
        listen: DEFAULT_LISTEN.to_owned(),
        test_hearthd: None,
    };
    for word in words(cmdline) {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        match key {
            "hearth.slot" => {
                params.slot = Some(match value {
                    "a" | "A" => Slot::A,
                    "b" | "B" => Slot::B,
                    other => return Err(CmdlineError::BadSlot(other.to_owned())),
                })
            }
            "root" if !value.is_empty() => params.root = Some(value.to_owned()),
            "hearth.listen" => params.listen = value.to_owned(),
            "hearth.net" => params.net = parse_net(value)?,
            "hearth.test.hearthd" if !value.is_empty() => {
                params.test_hearthd = Some(value.to_owned())
            }
            _ => {}
        }
    }
    Ok(params)
}

fn parse_net(value: &str) -> Result<NetConfig, CmdlineError> {
    let bad = || CmdlineError::BadNet(value.to_owned());
    match value {
        "off" => return Ok(NetConfig::Off),
        "dhcp" => return Ok(NetConfig::Dhcp),
        _ => {}
    }
    let rest = value.strip_prefix("static:").ok_or_else(bad)?;
    let (address, gateway) = rest.split_once(',').ok_or_else(bad)?;
    let (ip, prefix) = address.split_once('/').ok_or_else(bad)?;
    ip.parse::<std::net::Ipv4Addr>().map_err(|_| bad())?;
    gateway.parse::<std::net::Ipv4Addr>().map_err(|_| bad())?;
    match prefix.parse::<u8>() {
        Ok(p) if p <= 32 => {}
        _ => return Err(bad()),
    }
    Ok(NetConfig::Static {
        address: address.to_owned(),
        gateway: gateway.to_owned(),
    })
}

/// The root device to mount: `root=` if given, else the slot's partition label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RootSource {
    /// A device path from `root=` (`/dev/vda2`).
    Device(String),
    /// A GPT partition name to look up (`root-a`).
    PartLabel(&'static str),
    /// An MBR `PARTUUID` (`root=PARTUUID=1234abcd-05`, the Raspberry Pi's `cmdline.txt`).
    PartUuid(crate::mbr::PartUuid),
}

/// Chooses the root: explicit `root=` (a `/dev/…` path, `PARTLABEL=…` of a slot, or an MBR
/// `PARTUUID=<disk id>-<nn>`) wins; otherwise the slot from `hearth.slot`, defaulting to A
/// (a hand-typed command line). The slot of an MBR root is its partition's (5 = A, 6 = B)
/// when it is one of the slots' partitions.
pub(crate) fn select_root(params: &BootParams) -> (Slot, RootSource) {
    use crate::mbr;
    let slot = params.slot.unwrap_or(Slot::A);
    if let Some(id) = params
        .root
        .as_deref()
        .and_then(|r| r.strip_prefix("PARTUUID="))
        .and_then(mbr::parse_partuuid)
    {
        let slot = match id.number {
            mbr::ROOT_A => Slot::A,
            mbr::ROOT_B => Slot::B,
            _ => slot,
        };
        return (slot, RootSource::PartUuid(id));
    }
    match params.root.as_deref() {
        Some("PARTLABEL=root-a") => (Slot::A, RootSource::PartLabel("root-a")),
        Some("PARTLABEL=root-b") => (Slot::B, RootSource::PartLabel("root-b")),
        Some(dev) if dev.starts_with("/dev/") => (slot, RootSource::Device(dev.to_owned())),
        _ => (slot, RootSource::PartLabel(slot.partition_label())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_slot_net_and_ignores_other_keys() {
        let p = parse(
            "BOOT_IMAGE=/x console=ttyS0 quiet hearth.slot=b \
             hearth.net=static:10.0.2.15/24,10.0.2.2 hearth.listen=0.0.0.0:8080",
        )
        .unwrap();
        assert_eq!(p.slot, Some(Slot::B));
        assert_eq!(p.root, None);
        assert_eq!(p.listen, "0.0.0.0:8080");
        assert_eq!(
            p.net,
            NetConfig::Static {
                address: "10.0.2.15/24".into(),
                gateway: "10.0.2.2".into()
            }
        );
    }

    #[test]
    fn defaults() {
        let p = parse("").unwrap();
        assert_eq!(p.slot, None);
        assert_eq!(p.net, NetConfig::Dhcp);
        assert_eq!(p.listen, DEFAULT_LISTEN);
        assert_eq!(p.test_hearthd, None);
        assert_eq!(parse("hearth.net=off").unwrap().net, NetConfig::Off);
        assert_eq!(parse("hearth.net=dhcp").unwrap().net, NetConfig::Dhcp);
        assert_eq!(
            parse("hearth.test.hearthd=/bin/false")
                .unwrap()
                .test_hearthd
                .as_deref(),
            Some("/bin/false")
        );
        assert_eq!((Slot::A.letter(), Slot::A.other()), ('a', Slot::B));
        assert_eq!(select_root(&p), (Slot::A, RootSource::PartLabel("root-a")));
    }

    #[test]
    fn quotes_and_last_wins() {
        let p = parse(r#"hearth.slot=a foo="a b c" hearth.slot="b""#).unwrap();
        assert_eq!(p.slot, Some(Slot::B));
        assert_eq!(words(r#"x="a b" y"#), vec!["x=a b", "y"]);
    }

    #[test]
    fn bad_values_are_errors() {
        assert_eq!(
            parse("hearth.slot=c"),
            Err(CmdlineError::BadSlot("c".into()))
        );
        for bad in [
            "static:10.0.2.15,10.0.2.2",
            "static:10.0.2.15/33,10.0.2.2",
            "static:x/24,10.0.2.2",
            "dhcp4",
            "",
        ] {
            assert!(parse(&format!("hearth.net={bad}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn root_selection() {
        let mut p = parse("hearth.slot=b").unwrap();
        assert_eq!(select_root(&p), (Slot::B, RootSource::PartLabel("root-b")));
        p.root = Some("/dev/vda3".into());
        assert_eq!(
            select_root(&p),
            (Slot::B, RootSource::Device("/dev/vda3".into()))
        );
        p.root = Some("PARTLABEL=root-a".into());
        assert_eq!(select_root(&p), (Slot::A, RootSource::PartLabel("root-a")));
        p.root = Some("UUID=1234".into());
        assert_eq!(select_root(&p), (Slot::B, RootSource::PartLabel("root-b")));
        // The Raspberry Pi's cmdline.txt: the MBR partition decides the slot.
        let pi = parse("console=tty1 root=PARTUUID=1234abcd-06 hearth.slot=b").unwrap();
        let id = crate::mbr::PartUuid {
            disk_id: 0x1234_abcd,
            number: 6,
        };
        assert_eq!(select_root(&pi), (Slot::B, RootSource::PartUuid(id)));
        p.root = Some("PARTUUID=1234abcd-05".into());
        assert_eq!(
            select_root(&p),
            (
                Slot::A,
                RootSource::PartUuid(crate::mbr::PartUuid { number: 5, ..id })
            )
        );
        // A GPT PARTUUID is not looked up: the slot's partition name is used.
        p.root = Some("PARTUUID=b921b045-1df0-41c3-af44-4c6f280d3fae".into());
        assert_eq!(select_root(&p), (Slot::B, RootSource::PartLabel("root-b")));
    }
}
