//! The host bridge the containers' veths join (`hearth0` by default).
//!
//! Design: [`ensure_bridge`] is idempotent — it creates the bridge if `/sys/class/net/<name>`
//! is missing, sets the gateway address with `ip addr replace`, and brings it up. The
//! bridge is shared by every container and never removed by the runtime.
//! Rejected for now: rtnetlink (an async netlink stack for three idempotent calls made
//! once per container start); `ip` runs through the logged tool helper instead.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::tool::{self, ToolError};

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
