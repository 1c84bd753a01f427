//! Picks the certificate for a TLS handshake by SNI.
//!
//! Invariant: a name that is not one of the host's or a service's exact names (or
//! no SNI at all, as with an IP literal) gets the host's own leaf, never another
//! service's, so a probe with an unknown SNI learns no service name.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::leaf::Leaf;

#[derive(Debug, Default)]
struct Table {
    host: Option<Arc<CertifiedKey>>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

/// The rustls resolver; leaves can be swapped while the server runs.
#[derive(Debug, Default)]
pub struct SniResolver {
    table: RwLock<Table>,
}

impl SniResolver {
    /// A resolver answering every handshake with `host` until services are added.
    pub fn new(host: &Leaf) -> Self {
        let r = Self::default();
        r.set_host(host);
        r
    }

    /// Replaces the host's leaf (its names also resolve to it).
    pub fn set_host(&self, host: &Leaf) {
        let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
        let t = &mut *t;
        if let Some(old) = &t.host {
            t.by_name.retain(|_, v| !Arc::ptr_eq(old, v));
        }
        for n in host.names.dns() {
            t.by_name.insert(n.clone(), host.certified.clone());
        }
        t.host = Some(host.certified.clone());
    }

    /// Adds or replaces a service's leaf under each of its names.
    pub fn set_service(&self, leaf: &Leaf) {
        let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
        for n in leaf.names.dns() {
            t.by_name.insert(n.clone(), leaf.certified.clone());
        }
    }

    fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let t = self.table.read().unwrap_or_else(|p| p.into_inner());
        sni.map(str::to_ascii_lowercase)
            .and_then(|n| t.by_name.get(n.trim_end_matches('.')).cloned())
            .or_else(|| t.host.clone())
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

#[cfg(test)]
impl SniResolver {
    pub(crate) fn pick_for_test(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.pick(sni)
    }
}
