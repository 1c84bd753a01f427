//! `package.install {url}`: the package is streamed to disk under `packages/upload/`
//! with a size limit, then installed like a file on the server (every check happens
//! on the complete download, before anything is unpacked), then deleted.
//!
//! # Design
//! * Blocking HTTP with `ureq` (rustls, the workspace's one HTTP client and TLS stack;
//!   the CLI uses it too): the install path is blocking already (it runs in
//!   `spawn_blocking`), and a 1 GiB package flows through a 64 KiB buffer.
//! * Limits: `Content-Length` above the limit is refused before the body is read; the
//!   body is cut off at the limit + 1 byte; a connection that stalls for
//!   [`STALL_TIMEOUT`] fails. Redirects are followed by hand (at most
//!   [`MAX_REDIRECTS`]), `http` and `https` only, each hop checked like the first.
//! * Where it may connect ([`SourcePolicy`]): only public unicast addresses, after the
//!   name is resolved, on every hop. Loopback, private (RFC 1918, ULA `fc00::/7`),
//!   CGNAT `100.64.0.0/10`, link-local, documentation, benchmarking and other special
//!   ranges are refused unless an allow-list names them (`hearthd
//!   --allow-package-source CIDR`, e.g. a LAN mirror's `192.168.1.0/24`; the tests
//!   allow `127.0.0.1/32`). Never allowed, whatever the list: unspecified, multicast,
//!   broadcast and the service bridge `10.88.0.0/16`. The check is in the HTTP client's
//!   resolver ([`Filtered`]): the addresses it returns are the only ones ureq connects
//!   to, so a name that resolves differently between check and connect (DNS
//!   rebinding) cannot slip through, and no proxy from the environment is used.
//! * Errors say as little as a port scan could use: a refused address, a name that
//!   does not resolve, a closed or filtered port, a timeout and a TLS failure all give
//!   the same [`DownloadError::Unreachable`].
//! * The URL as stored (`/public/packageDownloads`), logged and put in errors is
//!   [`redact`]ed: no userinfo (`user:password@`), no query, no fragment.
//! * Progress: before the package's id is known (it is read from the verified
//!   archive), the download shows in `/public/packageDownloads/<n> {url, progress
//!   {phase: "download", bytesDone, bytesTotal?}}` (at most every 250 ms), removed when
//!   the download ends either way.
//! * The partial file is `<random>.s9pk.part`, removed on any failure.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use hearth_layout::PACKAGE_UPLOAD_DIR;
use hearth_store::Store;
use serde_json::{Value, json};

/// Longest wait for the server to connect, answer, or send more of the body.
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Most redirects followed (each hop checked).
pub(crate) const MAX_REDIRECTS: usize = 5;
/// Default size limit of a downloaded package.
pub const DEFAULT_DOWNLOAD_LIMIT: u64 = 4 << 30;
const DOWNLOADS: &str = "/public/packageDownloads";

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// Not an absolute `http(s)` URL.
    #[error("{url:?} is not an http:// or https:// URL")]
    BadUrl {
        /// The URL given.
        url: String,
    },
    /// The source could not be reached, or is not allowed (not a public address):
    /// deliberately one error for a refused address, an unknown name, a closed or
    /// filtered port, a timeout and a TLS failure.
    #[error(
        "download {url}: cannot fetch from this source (unreachable, or not a public \
         address; hearthd --allow-package-source allows a LAN source)"
    )]
    Unreachable {
        /// The URL (redacted).
        url: String,
    },
    /// The server redirected too often, or to a place that is not an http(s) URL.
    #[error("download {url}: too many or bad redirects")]
    Redirect {
        /// The URL (redacted).
        url: String,
    },
    /// The server answered with an error status.
    #[error("download {url}: the server answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
    },
    /// The package is larger than the limit.
    #[error("download {url}: larger than the limit of {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// Writing the file failed.
    #[error("download {url} to {path}: {source}")]
    Io {
        /// The URL.
        url: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Which addresses a download may connect to besides public unicast ones: an
/// allow-list of CIDR ranges (empty by default). See the module docs for what is
/// never allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePolicy {
    allowed: Vec<Cidr>,
}

impl SourcePolicy {
    /// Public addresses only (the default).
    pub fn public_only() -> SourcePolicy {
        SourcePolicy::default()
    }

    /// Also allows `cidr` (`192.168.1.0/24`, `127.0.0.1/32`, `fd00::/8`; a bare
    /// address means just it).
    pub fn allow(mut self, cidr: &str) -> Result<SourcePolicy, String> {
        self.allowed.push(cidr.parse()?);
        Ok(self)
    }

    /// Public addresses and every range of `cidrs`.
    pub fn from_cidrs(cidrs: &[impl AsRef<str>]) -> Result<SourcePolicy, String> {
        cidrs
            .iter()
            .try_fold(SourcePolicy::default(), |p, c| p.allow(c.as_ref()))
    }

    /// Whether a download may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if never(ip) {
            return false;
        }
        is_public(ip) || self.allowed.iter().any(|c| c.contains(ip))
    }
}

/// An address range `addr/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    net: IpAddr,
    len: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad = || format!("{s:?} is not an address range like 192.168.1.0/24");
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let net = canonical(addr.parse::<IpAddr>().map_err(|_| bad())?);
        let max = if net.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { net, len })
    }
}

impl Cidr {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.len),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.len),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], len: u8) -> bool {
    let len = usize::from(len);
    let (bytes, bits) = (len / 8, len % 8);
    if a[..bytes] != b[..bytes] {
        return false;
    }
    bits == 0 || {
        let mask = 0xffu8 << (8 - bits);
        (a[bytes] & mask) == (b[bytes] & mask)
    }
}

fn in4(ip: Ipv4Addr, net: [u8; 4], len: u8) -> bool {
    prefix_eq(&ip.octets(), &net, len)
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Never connected to, whatever the allow-list says: unspecified, multicast,
/// broadcast, and the service bridge (the containers and hearthd's side of it).
fn never(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            a.is_unspecified()
                || a.is_multicast()
                || a.is_broadcast()
                || in4(a, [0, 0, 0, 0], 8)
                || in4(a, [10, 88, 0, 0], 16)
        }
        IpAddr::V6(a) => a.is_unspecified() || a.is_multicast(),
    }
}

/// Whether `ip` is a public unicast address (what a download may reach by default).
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(a) => public_v4(a),
        IpAddr::V6(a) => public_v6(a),
    }
}

fn public_v4(a: Ipv4Addr) -> bool {
    const SPECIAL: [([u8; 4], u8); 16] = [
        ([0, 0, 0, 0], 8),       // "this network"
        ([10, 0, 0, 0], 8),      // private
        ([100, 64, 0, 0], 10),   // CGNAT
        ([127, 0, 0, 0], 8),     // loopback
        ([169, 254, 0, 0], 16),  // link-local
        ([172, 16, 0, 0], 12),   // private
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // documentation
        ([192, 88, 99, 0], 24),  // 6to4 relay anycast
        ([192, 168, 0, 0], 16),  // private
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // documentation
        ([203, 0, 113, 0], 24),  // documentation
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved, broadcast
        ([255, 255, 255, 255], 32),
    ];
    !SPECIAL.iter().any(|(net, len)| in4(a, *net, *len))
}

fn public_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    let o = a.octets();
    let embedded_v4 = |at: usize| Ipv4Addr::new(o[at], o[at + 1], o[at + 2], o[at + 3]);
    if a.is_unspecified() || a.is_loopback() || a.is_multicast() {
        return false;
    }
    match s[0] {
        // ::/96 (IPv4-compatible, deprecated) and the rest of ::/8 (reserved).
        0x0000 => false,
        // 64:ff9b::/96 NAT64 (and 64:ff9b:1::/48, local-use NAT64): the IPv4 inside.
        0x0064 if s[1] == 0xff9b => s[2..6] == [0, 0, 0, 0] && public_v4(embedded_v4(12)),
        // 100::/64 discard-only.
        0x0100 if s[1..4] == [0, 0, 0] => false,
        // 2001::/23 IETF assignments (Teredo 2001::/32 hides an IPv4 inside),
        // 2001:db8::/32 documentation.
        0x2001 if s[1] < 0x0200 || s[1] == 0x0db8 => false,
        // 2002::/16 6to4: the IPv4 inside.
        0x2002 => public_v4(embedded_v4(2)),
        // fc00::/7 unique local, fe80::/10 link-local, fec0::/10 site-local (deprecated).
        x if (x & 0xfe00) == 0xfc00 || (x & 0xffc0) == 0xfe80 || (x & 0xffc0) == 0xfec0 => false,
        // 3fff::/20 documentation.
        0x3fff if s[1] < 0x1000 => false,
        // Only 2000::/3 is global unicast.
        x => (x & 0xe000) == 0x2000,
    }
}

/// `url` without userinfo, query or fragment: what is stored, logged and shown.
pub(crate) fn redact(url: &str) -> String {
    let cut = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..cut];
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}{}", &url[..start], &url[start + at + 1..]),
        None => url.to_owned(),
    }
}

/// The resolver the HTTP client uses: the system's, keeping only the addresses the
/// policy permits (none left: `HostNotFound`, as for a name that does not resolve).
#[derive(Debug)]
struct Filtered {
    policy: SourcePolicy,
}

impl ureq::unversioned::resolver::Resolver for Filtered {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        use ureq::unversioned::resolver::DefaultResolver;
        let all = DefaultResolver::default().resolve(uri, config, timeout)?;
        let mut kept = self.empty();
        for addr in &all {
            if self.policy.permits(addr.ip()) {
                kept.push(*addr);
            } else {
                tracing::debug!(%addr, "download: address not allowed");
            }
        }
        if kept.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(kept)
    }
}

fn is_http(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// `location` (a redirect's target) resolved against `base`.
fn join(base: &str, location: &str) -> Option<String> {
    if is_http(location) {
        return Some(location.to_owned());
    }
    let scheme_end = base.find("://")?;
    let start = scheme_end + 3;
    let end = base[start..]
        .find(['/', '?', '#'])
        .map_or(base.len(), |i| start + i);
    if let Some(rest) = location.strip_prefix("//") {
        return Some(format!("{}//{rest}", &base[..=scheme_end]));
    }
    if location.starts_with('/') {
        return Some(format!("{}{location}", &base[..end]));
    }
    if location.contains("://") || location.contains(':') && !location.contains('/') {
        return None;
    }
    let path_end = base[end..].find(['?', '#']).map_or(base.len(), |i| end + i);
    let dir_end = base[end..path_end].rfind('/').map_or(end, |i| end + i);
    Some(format!("{}/{location}", &base[..dir_end]))
}

/// Downloads `url` into `packages/upload/` under `data_dir` (at most `limit` bytes,
/// only from addresses `policy` permits); returns the complete file's path. Progress
/// goes to the store (see module docs).
pub(crate) fn download(
    store: &Store,
    data_dir: &Path,
    url: &str,
    limit: u64,
    policy: &SourcePolicy,
) -> Result<PathBuf, DownloadError> {
    let shown = redact(url);
    if !is_http(url) {
        return Err(DownloadError::BadUrl { url: shown });
    }
    let dir = data_dir.join(PACKAGE_UPLOAD_DIR);
    let io = |path: &Path| {
        let (url, path) = (shown.clone(), path.to_owned());
        move |source| DownloadError::Io { url, path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let token = random_hex();
    let part = dir.join(format!("{token}.s9pk.part"));
    let done = dir.join(format!("{token}.s9pk"));
    let slot = register(store, &shown);
    let result = fetch(store, slot, url, &part, limit, policy).and_then(|()| {
        std::fs::rename(&part, &done).map_err(io(&part))?;
        Ok(done.clone())
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    unregister(store, slot);
    result
}

/// The agent every hop uses: no automatic redirects (each hop is checked by
/// [`get`]), no proxy, the [`Filtered`] resolver.
fn agent(policy: &SourcePolicy) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .timeout_connect(Some(STALL_TIMEOUT))
        .timeout_recv_response(Some(STALL_TIMEOUT))
        .timeout_per_read(Some(STALL_TIMEOUT))
        .user_agent(format!("hearthd/{}", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        Filtered {
            policy: policy.clone(),
        },
    )
}

/// GET `url`, following at most [`MAX_REDIRECTS`] redirects by hand (every hop an
/// http(s) URL, resolved through the policy); the final response.
fn get(
    url: &str,
    policy: &SourcePolicy,
) -> Result<ureq::http::Response<ureq::Body>, DownloadError> {
    let shown = redact(url);
    let agent = agent(policy);
    let mut current = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let response = agent.get(&current).call().map_err(|error| {
            tracing::debug!(url = %redact(&current), %error, "download: request failed");
            DownloadError::Unreachable { url: shown.clone() }
        })?;
        if !response.status().is_redirection() {
            return Ok(response);
        }
        let next = response
            .headers()
            .get(ureq::http::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| join(&current, l))
            .filter(|n| is_http(n))
            .ok_or_else(|| DownloadError::Redirect { url: shown.clone() })?;
        tracing::debug!(from = %redact(&current), to = %redact(&next), "download: redirected");
        current = next;
    }
    Err(DownloadError::Redirect { url: shown })
}

fn fetch(
    store: &Store,
    slot: Option<u64>,
    url: &str,
    part: &Path,
    limit: u64,
    policy: &SourcePolicy,
) -> Result<(), DownloadError> {
    let shown = redact(url);
    let response = get(url, policy)?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(DownloadError::Status { url: shown, status });
    }
    let total = response.body().content_length();
    let too_large = || DownloadError::TooLarge {
        url: shown.clone(),
        limit,
    };
    if total.is_some_and(|t| t > limit) {
        return Err(too_large());
    }
    let io = |source| DownloadError::Io {
        url: shown.clone(),
        path: part.to_owned(),
        source,
    };
    let mut out = File::create(part).map_err(io)?;
    let mut body = response.into_body().into_reader();
    let mut buf = vec![0u8; 64 * 1024];
    let mut done: u64 = 0;
    let mut last = Instant::now();
    progress(store, slot, done, total);
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(match e.downcast::<ureq::Error>() {
                    Ok(error) => {
                        tracing::debug!(url = %shown, %error, "download: body failed");
                        DownloadError::Unreachable { url: shown.clone() }
                    }
                    Err(e) => io(e),
                });
            }
        };
        done += n as u64;
        if done > limit {
            return Err(too_large());
        }
        out.write_all(&buf[..n]).map_err(io)?;
        if last.elapsed() >= crate::progress::EVERY {
            progress(store, slot, done, total);
            last = Instant::now();
        }
    }
    out.sync_all().map_err(io)?;
    progress(store, slot, done, total);
    tracing::info!(url = %shown, bytes = done, "package downloaded");
    Ok(())
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Unique enough for a file name: time and pid.
        let t = crate::doc::now_ms() ^ u64::from(std::process::id());
        bytes[..8].copy_from_slice(&t.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Adds `/public/packageDownloads/<n>`; `None` if the store refused (the download goes
/// on without progress).
fn register(store: &Store, url: &str) -> Option<u64> {
    let added = store.mutate(|d| {
        let map = crate::doc::object_mut(d, DOWNLOADS)?;
        let n = (1..)
            .find(|n: &u64| !map.contains_key(&n.to_string()))
            .unwrap_or(0);
        map.insert(
            n.to_string(),
            json!({"url": url, "progress": {"phase": "download", "bytesDone": 0}}),
        );
        Ok::<_, crate::error::PackageError>(n)
    });
    match added {
        Ok(m) => Some(m.value),
        Err(error) => {
            tracing::warn!(%error, "cannot record the download");
            None
        }
    }
}

fn progress(store: &Store, slot: Option<u64>, done: u64, total: Option<u64>) {
    let Some(n) = slot else {
        return;
    };
    let pointer = format!("{DOWNLOADS}/{n}/progress");
    let mut p = json!({"phase": "download", "bytesDone": done});
    if let Some(t) = total {
        p["bytesTotal"] = Value::from(t);
    }
    let written = store.mutate(|d| {
        if let Some(slot) = d.pointer_mut(&pointer) {
            *slot = p;
        }
        Ok::<_, crate::error::PackageError>(())
    });
    if let Err(error) = written {
        tracing::warn!(%error, "cannot record download progress");
    }
}

fn unregister(store: &Store, slot: Option<u64>) {
    let Some(n) = slot else {
        return;
    };
    let removed = store.mutate(|d| {
        if let Some(Value::Object(map)) = d.pointer_mut(DOWNLOADS) {
            map.remove(&n.to_string());
        }
        Ok::<_, crate::error::PackageError>(())
    });
    if let Err(error) = removed {
        tracing::warn!(%error, "cannot remove the download record");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn public_addresses_pass_and_every_special_range_is_refused() {
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(ip(public)), "{public}");
            assert!(SourcePolicy::public_only().permits(ip(public)), "{public}");
        }
        for special in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.88.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "3fff::1",
            "4000::1",
        ] {
            assert!(!is_public(ip(special)), "{special}");
            assert!(
                !SourcePolicy::public_only().permits(ip(special)),
                "{special}"
            );
        }
    }

    #[test]
    fn the_allow_list_admits_exactly_its_ranges_but_never_the_bridge_or_multicast() {
        let lan = SourcePolicy::from_cidrs(&["192.168.1.0/24", "fd00::/8", "127.0.0.1"]).unwrap();
        for ok in [
            "192.168.1.7",
            "::ffff:192.168.1.7",
            "fd00::5",
            "127.0.0.1",
            "8.8.8.8",
        ] {
            assert!(lan.permits(ip(ok)), "{ok}");
        }
        for refused in ["192.168.2.1", "127.0.0.2", "fe80::1", "10.0.0.1"] {
            assert!(!lan.permits(ip(refused)), "{refused}");
        }
        let everything = SourcePolicy::from_cidrs(&["0.0.0.0/0", "::/0"]).unwrap();
        assert!(everything.permits(ip("10.1.2.3")));
        for never in [
            "10.88.0.1",
            "10.88.0.5",
            "::ffff:10.88.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "ff02::1",
        ] {
            assert!(!everything.permits(ip(never)), "{never}");
        }
        for bad in [
            "",
            "x",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/-1",
            "1.2.3.4/8/9",
        ] {
            assert!(SourcePolicy::from_cidrs(&[bad]).is_err(), "{bad}");
        }
        let odd = SourcePolicy::from_cidrs(&["172.16.0.0/13"]).unwrap();
        assert!(odd.permits(ip("172.23.255.255")));
        assert!(!odd.permits(ip("172.24.0.0")));
    }

    #[test]
    fn redaction_drops_userinfo_query_and_fragment() {
        for (url, shown) in [
            (
                "https://u:p@example.com/a.s9pk",
                "https://example.com/a.s9pk",
            ),
            (
                "https://u@example.com:8443/a?t=1",
                "https://example.com:8443/a",
            ),
            ("http://example.com/a@b.s9pk", "http://example.com/a@b.s9pk"),
            ("http://a:b@c@example.com#x", "http://example.com"),
            ("http://example.com/p?x=@y", "http://example.com/p"),
            ("nonsense?secret", "nonsense"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
    }

    #[test]
    fn redirect_locations_are_resolved_against_the_current_url() {
        let base = "http://h.example:8080/dir/p.s9pk?q=1";
        for (loc, want) in [
            ("https://o.example/x", Some("https://o.example/x")),
            ("//o.example/x", Some("http://o.example/x")),
            ("/x", Some("http://h.example:8080/x")),
            ("x.s9pk", Some("http://h.example:8080/dir/x.s9pk")),
            ("file:///etc/passwd", None),
            ("javascript:alert(1)", None),
        ] {
            assert_eq!(join(base, loc).as_deref(), want, "{loc}");
        }
        assert_eq!(join("http://h", "x").as_deref(), Some("http://h/x"));
    }
}
