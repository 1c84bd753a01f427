//! The host bridge the containers' veths join (`hearth0` by default).
//!
//! Design: [`ensure_bridge`] is idempotent — it creates the bridge if `/sys/class/net/<name>`
//! is missing, sets the gateway address with `ip addr replace`, and brings it up. The
//! bridge is shared by every container and never removed by the runtime.
//! Each container's host-side veth gets a stable name ([`veth_name`], set by the config's
//! `lxc.net.0.veth.pair`) and its MAC ([`mac_address`]) is stable too, so the firewall
//! (`hearth-net`) can name a container's port and pin its addresses before it starts.
//! Rejected for now: rtnetlink (an async netlink stack for three idempotent calls made
//! once per container start); `ip` runs through the logged tool helper instead.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::spec::ContainerId;
use crate::tool::{self, ToolError};

/// What every container's host-side veth name starts with (and nothing else on the host
/// should): the firewall drops frames from a port with this prefix it does not know.
pub const VETH_PREFIX: &str = "hv";

/// The host-side veth of container `id`: [`VETH_PREFIX`] and 12 hex digits of a hash of
/// the id (14 characters; interface names hold at most 15), the same on every start.
pub fn veth_name(id: &ContainerId) -> String {
    let h = crate::config::fnv1a(id.as_str());
    format!("{VETH_PREFIX}{:012x}", h >> 16)
}

/// The MAC address of container `id`'s `eth0` (`lxc.net.0.hwaddr`), `xx:xx:…` in lower case.
pub fn mac_address(id: &ContainerId) -> String {
    crate::config::stable_mac(id.as_str())
}

/// Creates the bridge `name` if missing, with `gateway/prefix_len`, and sets it up.
pub(crate) fn ensure_bridge(
    name: &str,
    gateway: Ipv4Addr,
    prefix_len: u8,
) -> Result<(), ToolError> {
    if !Path::new("/sys/class/net").join(name).exists() {
        match tool::run("ip", ["link", "add", "name", name, "type", "bridge"]) {
            Ok(_) => tracing::info!(bridge = name, "created bridge"),
            // Lost a race with another creator: the bridge exists, which is what we want.
            Err(ToolError::Failed { ref stderr, .. }) if stderr.contains("File exists") => {}
            Err(e) => return Err(e),
        }
    }
    let addr = format!("{gateway}/{prefix_len}");
    tool::run("ip", ["addr", "replace", &addr, "dev", name])?;
    tool::run("ip", ["link", "set", name, "up"])?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;

    #[test]
    fn veth_names_are_stable_short_and_distinct() {
        let a = ContainerId::new("a").unwrap();
        let long = ContainerId::new("a-very-long-package-identifier-indeed").unwrap();
        assert_eq!(veth_name(&a), veth_name(&a));
        assert_ne!(veth_name(&a), veth_name(&long));
        for n in [veth_name(&a), veth_name(&long)] {
            assert!(n.len() <= 15 && n.starts_with(VETH_PREFIX), "{n}");
            assert!(n.bytes().all(|b| b.is_ascii_alphanumeric()), "{n}");
        }
        assert!(mac_address(&a).starts_with("02:"));
    }
}
