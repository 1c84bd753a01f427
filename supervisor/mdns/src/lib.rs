//! `hearth-mdns`: this server's names on the LAN.
//!
//! # Purpose
//! Two things follow the hostname stored in the state (`/public/serverInfo/hostname`):
//! the kernel hostname ([`KernelHostname`], `sethostname(2)` behind a narrow trait with a
//! recording fake) and the mDNS announcements ([`Announcer`], on the `mdns-sd` crate):
//! - `<hostname>.local` with an A/AAAA record for each address of each LAN interface
//!   (loopback and the container bridge, `hearth0` by default, are left out);
//! - an `_https._tcp` service instance named after the host, port 443;
//! - `<service>.<hostname>.local` for each name given to [`Announcer::announce_service`].
//!
//! # Conflicts
//! Before announcing, `mdns-sd` probes each name (RFC 6762 §8). When another machine
//! answers for `<hostname>.local` with other addresses, it renames ours `<hostname>-2.local`
//! (then `-3`, …) and probes again; [`Announcer::names`] reports the name in use, which
//! hearthd writes to `/public/serverInfo/mdnsName`. A conflict is only seen while probing
//! (at start and after a rename): a peer that takes our name later is answered by our
//! announcements and must rename itself, as RFC 6762 §9 asks of it.
//!
//! # Invariants
//! Names come in as [`Hostname`] (validated labels), so every announced name is a valid
//! DNS name. [`Announcer::set_hostname`] withdraws the old records (goodbye packets)
//! before announcing the new ones: a rename needs no restart.

mod announcer;
mod kernel;

pub use announcer::{Announcer, AnnouncerConfig, HTTPS_SERVICE};
pub use kernel::{FakeKernelHostname, KernelHostname, Sethostname};

pub use hearth_rpc::Hostname;

/// Errors of this crate, naming the operation.
#[derive(Debug, thiserror::Error)]
pub enum MdnsError {
    /// The mDNS daemon could not start or refused a command.
    #[error("mdns: {op}: {source}")]
    Daemon {
        /// What was being done.
        op: &'static str,
        /// The `mdns-sd` error.
        #[source]
        source: mdns_sd::Error,
    },
    /// `sethostname(2)` failed.
    #[error("set kernel hostname to {hostname}: {source}")]
    Sethostname {
        /// The name asked for.
        hostname: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
