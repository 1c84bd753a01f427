//! DNS-rebinding protection: every request whose `Host` is not one of the server's own
//! names or addresses is refused with 421 before routing.
//!
//! # Why
//! A web page on `evil.example` can make its DNS name resolve to the server's LAN address
//! (DNS rebinding). The browser then talks to hearthd believing it talks to
//! `evil.example`: `Origin` equals `Host`, so the Origin check alone lets it through.
//! The `Host` header is the one thing such a page cannot forge, so it must name us.
//!
//! # Own names and addresses
//! * `localhost`;
//! * the hostname chosen at setup (`/public/serverInfo/hostname`) and the kernel
//!   hostname, bare or with `.local`;
//! * the address the connection arrived on (covers the listen address) and every address
//!   of the machine's interfaces ([`OwnAddresses`]; IPv6 in brackets).
//!
//! Any port is accepted (a port forward may change it). Names compare case-insensitively,
//! a trailing dot is ignored.
//!
//! # Invariants
//! * A request without a `Host` (and without an authority in its URI) is refused.
//! * The interface list is cached and re-read on a miss at most once per
//!   [`REFRESH_EVERY`], so a flood of foreign hosts costs no more than one
//!   `getifaddrs` per interval.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hearth_rpc::RpcError;
use hearth_store::Store;
use http::StatusCode;
use serde_json::Value;

use crate::http::{Body, rpc_error};

/// Shortest time between two reads of the interface addresses.
pub(crate) const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// Where the server's addresses and kernel hostname come from (a fake in tests).
pub(crate) trait OwnAddresses: Send + Sync {
    /// Every address of the machine's interfaces.
    fn addresses(&self) -> Vec<IpAddr>;
    /// The kernel hostname, if it can be read.
    fn kernel_hostname(&self) -> Option<String>;
}

/// The real machine: `getifaddrs(3)` and `gethostname(2)`.
pub(crate) struct SystemAddresses;

impl OwnAddresses for SystemAddresses {
    fn addresses(&self) -> Vec<IpAddr> {
        match nix::ifaddrs::getifaddrs() {
            Ok(list) => list
                .filter_map(|i| i.address)
                .filter_map(|a| {
                    a.as_sockaddr_in()
                        .map(|s| IpAddr::V4(s.ip()))
                        .or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "getifaddrs failed; only the connection's own address is accepted as Host");
                Vec::new()
            }
        }
    }

    fn kernel_hostname(&self) -> Option<String> {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
    }
}

/// A parsed `Host` value (port dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    /// Lower case, without trailing dot.
    Name(String),
}

/// Parses `host[:port]`, `[v6][:port]`; `None` if malformed (e.g. a bare IPv6).
fn parse_host(raw: &str) -> Option<Host> {
    let raw = raw.trim();
    let port_ok = |p: &str| p.is_empty() || (p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    if let Some(rest) = raw.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let port = match after {
            "" => "",
            a => a.strip_prefix(':').filter(|p| !p.is_empty())?,
        };
        if !port_ok(port) {
            return None;
        }
        return v6
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| Host::Ip(IpAddr::V6(ip)));
    }
    let name = match raw.split_once(':') {
        Some((n, port)) if !port.is_empty() && port_ok(port) => n,
        Some(_) => return None,
        None => raw,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if let Ok(ip) = name.parse::<Ipv4Addr>() {
        return Some(Host::Ip(IpAddr::V4(ip)));
    }
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then(|| Host::Name(name.to_ascii_lowercase()))
}

/// An IPv4-mapped IPv6 address (a `[::]` listener) as the IPv4 it stands for.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn name_matches(name: &str, own: &str) -> bool {
    let own = own.trim_end_matches('.').to_ascii_lowercase();
    !own.is_empty() && (name == own || name.strip_suffix(".local").is_some_and(|base| base == own))
}

struct Cache {
    addrs: Vec<IpAddr>,
    read_at: Option<Instant>,
}

/// The Host check of one server.
pub(crate) struct HostCheck {
    store: Store,
    system: Box<dyn OwnAddresses>,
    cache: Mutex<Cache>,
}

impl HostCheck {
    pub(crate) fn new(store: Store, system: Box<dyn OwnAddresses>) -> HostCheck {
        HostCheck {
            store,
            system,
            cache: Mutex::new(Cache {
                addrs: Vec::new(),
                read_at: None,
            }),
        }
    }

    fn setup_hostname(&self) -> Option<String> {
        match self
            .store
            .get(&format!("{}/hostname", crate::doc::SERVER_INFO))
        {
            Ok(Value::String(h)) => Some(h),
            _ => None,
        }
    }

    fn own_address(&self, ip: IpAddr, local: Option<SocketAddr>) -> bool {
        let ip = canonical(ip);
        if local.is_some_and(|l| canonical(l.ip()) == ip) {
            return true;
        }
        let Ok(mut cache) = self.cache.lock() else {
            return false;
        };
        if cache.addrs.iter().any(|a| canonical(*a) == ip) {
            return true;
        }
        if cache.read_at.is_some_and(|t| t.elapsed() < REFRESH_EVERY) {
            return false;
        }
        cache.addrs = self.system.addresses();
        cache.read_at = Some(Instant::now());
        cache.addrs.iter().any(|a| canonical(*a) == ip)
    }

    fn own_name(&self, name: &str) -> bool {
        name == "localhost"
            || self
                .setup_hostname()
                .is_some_and(|h| name_matches(name, &h))
            || self
                .system
                .kernel_hostname()
                .is_some_and(|h| name_matches(name, &h))
    }

    /// Whether `host` (a `Host` header value) names this server, for a connection that
    /// arrived on `local`.
    pub(crate) fn allowed(&self, host: &str, local: Option<SocketAddr>) -> bool {
        match parse_host(host) {
            Some(Host::Ip(ip)) => self.own_address(ip, local),
            Some(Host::Name(name)) => self.own_name(&name),
            None => false,
        }
    }

    /// `None` if the request may proceed, else the 421 response refusing it.
    pub(crate) fn refuse<B>(
        &self,
        req: &http::Request<B>,
        local: Option<SocketAddr>,
    ) -> Option<http::Response<Body>> {
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                req.headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            });
        let message = match host {
            Some(h) if self.allowed(&h, local) => return None,
            Some(h) => {
                tracing::debug!(host = %h.escape_debug(), "request refused: foreign Host");
                format!(
                    "Host {:?} is not one of this server's names or addresses; requests \
                     for other names are refused (DNS rebinding protection). Use the \
                     server's address, <hostname>.local or localhost.",
                    h.chars().take(100).collect::<String>()
                )
            }
            None => "a Host header naming this server is required".to_owned(),
        };
        Some(rpc_error(
            StatusCode::MISDIRECTED_REQUEST,
            RpcError::unauthorized("foreignHost", message),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Fake {
        addrs: Vec<IpAddr>,
        hostname: Option<String>,
        reads: Arc<AtomicUsize>,
    }

    impl OwnAddresses for Fake {
        fn addresses(&self) -> Vec<IpAddr> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.addrs.clone()
        }
        fn kernel_hostname(&self) -> Option<String> {
            self.hostname.clone()
        }
    }

    fn check(dir: &tempfile::TempDir, hostname: Option<&str>) -> (HostCheck, Arc<AtomicUsize>) {
        let store =
            Store::open(&dir.path().join("s.redb"), crate::doc::seed("id", "test")).unwrap();
        if let Some(h) = hostname {
            store
                .mutate(|d| {
                    crate::doc::object_mut(d, crate::doc::SERVER_INFO).map(|i| {
                        i.insert("hostname".into(), Value::String(h.into()));
                    })
                })
                .unwrap();
        }
        let reads = Arc::new(AtomicUsize::new(0));
        let fake = Fake {
            addrs: vec![
                "192.168.1.20".parse().unwrap(),
                "fd00::20".parse().unwrap(),
                "127.0.0.1".parse().unwrap(),
            ],
            hostname: Some("box".into()),
            reads: Arc::clone(&reads),
        };
        (HostCheck::new(store, Box::new(fake)), reads)
    }

    #[test]
    fn parses_hosts_with_and_without_ports() {
        let ip = |s: &str| Some(Host::Ip(s.parse().unwrap()));
        assert_eq!(parse_host("10.0.0.1"), ip("10.0.0.1"));
        assert_eq!(parse_host("10.0.0.1:8080"), ip("10.0.0.1"));
        assert_eq!(parse_host("[fd00::1]"), ip("fd00::1"));
        assert_eq!(parse_host("[fd00::1]:443"), ip("fd00::1"));
        assert_eq!(
            parse_host("Hearth.Local.:80"),
            Some(Host::Name("hearth.local".into()))
        );
        for bad in [
            "",
            "fd00::1",
            "[fd00::1",
            "[fd00::1]x",
            "[fd00::1]:",
            "a:b",
            "a:",
            "a b",
            "a/b",
            "a:123456",
        ] {
            assert_eq!(parse_host(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn own_names_and_addresses_pass() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = check(&dir, Some("hearth"));
        for ok in [
            "localhost",
            "localhost:5959",
            "hearth.local",
            "HEARTH.LOCAL:443",
            "hearth",
            "box.local",
            "192.168.1.20",
            "192.168.1.20:5959",
            "[fd00::20]:5959",
            "127.0.0.1:1",
            "10.9.9.9:80", // the connection's own address
        ] {
            assert!(
                c.allowed(ok, Some("10.9.9.9:5959".parse().unwrap())),
                "{ok}"
            );
        }
        // A [::] listener reports v4 peers' local address as IPv4-mapped.
        assert!(c.allowed("10.9.9.9", Some("[::ffff:10.9.9.9]:80".parse().unwrap())));
    }

    #[test]
    fn rebinding_hosts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = check(&dir, Some("hearth"));
        for bad in [
            "evil.example",
            "evil.example:5959",
            "hearth.evil.example",
            "hearth.local.evil.example",
            "localhost.evil.example",
            "evil.local",
            "192.168.1.21",
            "[fd00::21]",
            "[::1]", // not an address of the fake
            "",
        ] {
            assert!(
                !c.allowed(bad, Some("10.9.9.9:5959".parse().unwrap())),
                "{bad}"
            );
        }
    }

    #[test]
    fn before_setup_only_the_kernel_hostname_counts() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = check(&dir, None);
        assert!(c.allowed("box.local", None));
        assert!(!c.allowed("hearth.local", None));
    }

    #[test]
    fn interface_list_is_reread_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let (c, reads) = check(&dir, None);
        for _ in 0..50 {
            assert!(!c.allowed("10.1.2.3", None));
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        assert!(c.allowed("192.168.1.20", None));
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn refusal_is_421_json_naming_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) = check(&dir, None);
        let req = http::Request::builder()
            .uri("/rpc/v1")
            .header("host", "evil.example")
            .body(())
            .unwrap();
        let r = c.refuse(&req, None).expect("refused");
        assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST);
        let missing = http::Request::builder().uri("/rpc/v1").body(()).unwrap();
        assert!(c.refuse(&missing, None).is_some());
        let ok = http::Request::builder()
            .uri("/rpc/v1")
            .header("host", "localhost:1")
            .body(())
            .unwrap();
        assert!(c.refuse(&ok, None).is_none());
    }

    #[test]
    fn the_real_machine_lists_loopback() {
        let addrs = SystemAddresses.addresses();
        assert!(
            addrs.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "{addrs:?}"
        );
    }
}
