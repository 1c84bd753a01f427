//! [`Announcer`]: `<hostname>.local`, `_https._tcp` and service names over mDNS.

use std::sync::{Arc, Mutex, PoisonError};

use hearth_rpc::Hostname;
use mdns_sd::{DaemonEvent, IfKind, RRType, ServiceDaemon, ServiceInfo};
use tokio::sync::watch;

use crate::MdnsError;

/// The DNS-SD type of the HTTPS UI/API record.
pub const HTTPS_SERVICE: &str = "_https._tcp.local.";

/// How the announcer is set up.
#[derive(Clone, Debug)]
pub struct AnnouncerConfig {
    /// Interfaces never announced on nor answered from (the container bridge).
    pub exclude_interfaces: Vec<String>,
    /// Port of the `_https._tcp` record.
    pub https_port: u16,
}

impl Default for AnnouncerConfig {
    fn default() -> Self {
        AnnouncerConfig {
            exclude_interfaces: vec!["hearth0".into()],
            https_port: 443,
        }
    }
}

#[derive(Default)]
struct Current {
    /// `<hostname>.local.` as asked for (before any conflict rename).
    host: Option<String>,
    hostname: Option<Hostname>,
    /// Full names of the registered instances (to withdraw them on a rename).
    registered: Vec<String>,
    /// Services given to `announce_service`, re-announced after a rename.
    services: Vec<(Hostname, u16)>,
}

/// Announces this server's names; cheap to share (`Arc` inside).
#[derive(Clone)]
pub struct Announcer {
    daemon: ServiceDaemon,
    config: AnnouncerConfig,
    current: Arc<Mutex<Current>>,
    names: watch::Sender<Option<String>>,
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer")
            .field("config", &self.config)
            .field("announced", &*self.names.borrow())
            .finish()
    }
}

fn daemon_err(op: &'static str) -> impl FnOnce(mdns_sd::Error) -> MdnsError {
    move |source| MdnsError::Daemon { op, source }
}

impl Announcer {
    /// Starts the mDNS daemon (UDP 5353 on every interface but loopback and the
    /// excluded ones). Nothing is announced before [`Announcer::set_hostname`].
    pub fn start(config: AnnouncerConfig) -> Result<Announcer, MdnsError> {
        let daemon = ServiceDaemon::new().map_err(daemon_err("start daemon"))?;
        let mut off = vec![IfKind::LoopbackV4, IfKind::LoopbackV6];
        off.extend(config.exclude_interfaces.iter().cloned().map(IfKind::Name));
        daemon
            .disable_interface(off)
            .map_err(daemon_err("leave out loopback and the bridge"))?;
        let events = daemon.monitor().map_err(daemon_err("monitor"))?;
        let (names, _) = watch::channel(None);
        let announcer = Announcer {
            daemon,
            config,
            current: Arc::default(),
            names,
        };
        let follower = announcer.clone();
        std::thread::Builder::new()
            .name("mdns-events".into())
            .spawn(move || {
                // Ends when the daemon shuts down (the channel closes).
                while let Ok(event) = events.recv() {
                    follower.on_event(event);
                }
            })
            .map_err(|e| MdnsError::Daemon {
                op: "spawn the event thread",
                source: mdns_sd::Error::Msg(e.to_string()),
            })?;
        Ok(announcer)
    }

    fn on_event(&self, event: DaemonEvent) {
        match event {
            DaemonEvent::NameChange(change) => {
                tracing::warn!(
                    original = %change.original,
                    new_name = %change.new_name,
                    rr_type = ?change.rr_type,
                    interface = %change.intf_name,
                    "another machine on the LAN has this name; ours is renamed"
                );
                let ours = self.lock().host.clone();
                if matches!(change.rr_type, RRType::A | RRType::AAAA)
                    && ours.as_deref() == Some(change.original.as_str())
                {
                    self.names.send_replace(Some(change.new_name));
                }
            }
            DaemonEvent::Error(e) => tracing::warn!(error = %e, "mdns daemon error"),
            other => tracing::debug!(event = ?other, "mdns event"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The name currently announced for this host (`hearth.local.`, `hearth-2.local.`
    /// after a conflict), `None` before [`Announcer::set_hostname`]; the receiver sees
    /// every change.
    pub fn names(&self) -> watch::Receiver<Option<String>> {
        self.names.subscribe()
    }

    /// Withdraws what was announced and announces `hostname`: `<hostname>.local`, its
    /// `_https._tcp` record and every service name.
    pub fn set_hostname(&self, hostname: &Hostname) -> Result<(), MdnsError> {
        let mut cur = self.lock();
        for fullname in cur.registered.drain(..) {
            if let Err(e) = self.daemon.unregister(&fullname) {
                tracing::warn!(fullname, error = %e, "withdrawing an mDNS record");
            }
        }
        let host = format!("{hostname}.local.");
        cur.host = Some(host.clone());
        cur.hostname = Some(hostname.clone());
        let mut registered =
            vec![self.register(hostname.as_str(), &host, self.config.https_port)?];
        for (name, port) in cur.services.clone() {
            registered.push(self.register_service(hostname, &name, port)?);
        }
        cur.registered = registered;
        drop(cur);
        self.names.send_replace(Some(host.clone()));
        tracing::info!(host, "announcing over mDNS");
        Ok(())
    }

    /// Announces `<name>.<hostname>.local` with an `_https._tcp` record on `port`
    /// (now if a hostname is set, and after every rename).
    pub fn announce_service(&self, name: &Hostname, port: u16) -> Result<(), MdnsError> {
        let mut cur = self.lock();
        cur.services.retain(|(n, _)| n != name);
        cur.services.push((name.clone(), port));
        if let Some(hostname) = cur.hostname.clone() {
            let fullname = self.register_service(&hostname, name, port)?;
            cur.registered.push(fullname);
        }
        Ok(())
    }

    fn register_service(
        &self,
        hostname: &Hostname,
        name: &Hostname,
        port: u16,
    ) -> Result<String, MdnsError> {
        self.register(
            &format!("{name} on {hostname}"),
            &format!("{name}.{hostname}.local."),
            port,
        )
    }

    fn register(&self, instance: &str, host: &str, port: u16) -> Result<String, MdnsError> {
        let info = ServiceInfo::new(HTTPS_SERVICE, instance, host, (), port, None)
            .map_err(daemon_err("build a service record"))?
            .enable_addr_auto();
        let fullname = info.get_fullname().to_owned();
        self.daemon
            .register(info)
            .map_err(daemon_err("register a service record"))?;
        Ok(fullname)
    }

    /// Withdraws everything (goodbye packets) and stops the daemon.
    pub fn shutdown(&self) {
        if let Err(e) = self.daemon.shutdown() {
            tracing::warn!(error = %e, "stopping the mdns daemon");
        }
    }
}
