//! Wiring of this server's names: the hostname in the state reaches the kernel and mDNS.
//!
//! One task follows `/public/serverInfo/hostname` (written by `setup.complete` and
//! `server.hostname.set`): at start and on every change it sets the kernel hostname
//! (`--set-kernel-hostname`) and re-announces over mDNS (`--mdns`), then writes the name
//! actually announced (`<hostname>-2.local.` after a conflict on the LAN) to
//! `/public/serverInfo/mdnsName` (`null` while nothing is announced). Both flags are off
//! by default (a development machine keeps its own hostname and mDNS responder);
//! `hearth-init` turns both on on the image.

use hearth_mdns::{Announcer, Hostname, KernelHostname};
use hearth_rpc::methods::hostname::MDNS_NAME_KEY;
use hearth_store::Store;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const SERVER_INFO: &str = "/public/serverInfo";

/// What follows the hostname.
pub(crate) struct Names {
    pub(crate) kernel: Option<Box<dyn KernelHostname>>,
    pub(crate) mdns: Option<Announcer>,
}

fn stored_hostname(store: &Store) -> Option<Hostname> {
    let v = store.get(&format!("{SERVER_INFO}/hostname")).ok()?;
    let s = v.as_str()?;
    match Hostname::parse(s) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "stored hostname is not a DNS label; not applied");
            None
        }
    }
}

impl Names {
    /// From hearthd's flags; an announcer that cannot start is logged and left out.
    pub(crate) fn from_flags(mdns: bool, kernel: bool) -> Names {
        let mdns = mdns
            .then(|| hearth_mdns::Announcer::start(hearth_mdns::AnnouncerConfig::default()))
            .and_then(|r| {
                r.map_err(|e| tracing::error!(error = %e, "mDNS announcer not started"))
                    .ok()
            });
        Names {
            kernel: kernel.then(|| Box::new(hearth_mdns::Sethostname) as Box<dyn KernelHostname>),
            mdns,
        }
    }

    /// Applies `hostname` to the kernel and mDNS; failures are logged (the state keeps
    /// the name, the next change or restart tries again).
    fn apply(&self, hostname: &Hostname) {
        if let Some(k) = &self.kernel {
            match k.set(hostname) {
                Ok(()) => tracing::info!(%hostname, "kernel hostname set"),
                Err(e) => tracing::warn!(error = %e, "kernel hostname not set"),
            }
        }
        if let Some(a) = &self.mdns
            && let Err(e) = a.set_hostname(hostname)
        {
            tracing::warn!(error = %e, "mDNS announcement failed");
        }
    }
}

async fn write_mdns_name(store: &Store, name: Option<String>) {
    let store = store.clone();
    let done = tokio::task::spawn_blocking(move || {
        store.mutate(|d| {
            if let Some(info) = d.pointer_mut(SERVER_INFO).and_then(Value::as_object_mut) {
                info.insert(
                    MDNS_NAME_KEY.into(),
                    name.map_or(Value::Null, Value::String),
                );
            }
            Ok::<(), std::convert::Infallible>(())
        })
    })
    .await;
    match done {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "recording the mDNS name"),
        Err(e) => tracing::warn!(error = %e, "recording the mDNS name"),
    }
}

/// Follows the stored hostname until `cancel`.
pub(crate) fn spawn(
    store: Store,
    names: Names,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Without an announcer, a channel that never changes (its sender kept alive).
        let (_never, idle) = watch::channel(None);
        let mut announced = names.mdns.as_ref().map_or(idle, Announcer::names);
        let mut updates = store.subscribe().updates;
        let mut applied: Option<Hostname> = None;
        write_mdns_name(&store, None).await;
        loop {
            let now = stored_hostname(&store);
            if now.is_some() && now != applied {
                if let Some(h) = &now {
                    names.apply(h);
                }
                applied = now;
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                r = updates.recv() => {
                    if let Err(tokio::sync::broadcast::error::RecvError::Closed) = r {
                        break;
                    }
                }
                r = announced.changed() => {
                    if r.is_err() {
                        break;
                    }
                    let name = announced.borrow_and_update().clone();
                    write_mdns_name(&store, name).await;
                }
            }
        }
        if let Some(a) = &names.mdns {
            a.shutdown();
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;
    use std::time::Duration;

    use hearth_mdns::{FakeKernelHostname, MdnsError};

    use super::*;

    struct Shared(Arc<FakeKernelHostname>);
    impl KernelHostname for Shared {
        fn set(&self, h: &Hostname) -> Result<(), MdnsError> {
            self.0.set(h)
        }
    }

    async fn wait_for(fake: &FakeKernelHostname, want: &[&str]) {
        for _ in 0..200 {
            if fake.history() == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(fake.history(), want);
    }

    #[tokio::test]
    async fn the_stored_hostname_reaches_the_kernel_at_start_and_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let seed =
            serde_json::json!({"public": {"serverInfo": {"hostname": "first"}}, "private": {}});
        let store = Store::open(&dir.path().join("s.redb"), seed).unwrap();
        let fake = Arc::new(FakeKernelHostname::default());
        let cancel = CancellationToken::new();
        let task = spawn(
            store.clone(),
            Names {
                kernel: Some(Box::new(Shared(Arc::clone(&fake)))),
                mdns: None,
            },
            cancel.clone(),
        );
        wait_for(&fake, &["first"]).await;
        let set = |v: Value| {
            store
                .mutate(|d| {
                    d["public"]["serverInfo"]["hostname"] = v;
                    Ok::<_, std::convert::Infallible>(())
                })
                .unwrap();
        };
        set(Value::String("second".into()));
        wait_for(&fake, &["first", "second"]).await;
        // A name that is not a label (written by hand, an old bug) is never applied.
        set(Value::String("bad.name".into()));
        set(Value::String("third".into()));
        wait_for(&fake, &["first", "second", "third"]).await;
        // No announcer: no mDNS name in the state.
        assert_eq!(
            store.get("/public/serverInfo/mdnsName").unwrap(),
            Value::Null
        );
        cancel.cancel();
        task.await.unwrap();
    }
}
