//! The per-session task behind `resources/subscribe`: store revisions in, debounced
//! `notifications/resources/updated` out, and a periodic check that the subscriber is
//! still logged in.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use rmcp::RoleServer;
use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::service::Peer;
use rmcp::transport::streamable_http_server::session::SessionManager;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::McpBackend;
use crate::resources;
use crate::session::Shared;

/// Subscribed URI (as the client spelt it) → pointer relative to `/public`.
pub(crate) type Subscriptions = Arc<Mutex<BTreeMap<String, String>>>;

pub(crate) struct Watcher<B: McpBackend> {
    pub(crate) peer: Peer<RoleServer>,
    pub(crate) shared: Arc<Shared<B>>,
    /// Who subscribed; notifications stop when it is no longer valid.
    pub(crate) principal: B::Principal,
    /// The session to close when `principal` is no longer valid.
    pub(crate) session_id: Option<Arc<str>>,
    pub(crate) subscriptions: Subscriptions,
    pub(crate) stop: CancellationToken,
}

impl<B: McpBackend> Watcher<B> {
    /// Debounce: the first change arms a timer of `debounce`; every URI touched until it
    /// fires is notified once. A lagging receiver marks every URI dirty (the client
    /// re-reads; nothing is missed). Ends when `stop` is cancelled (session dropped or
    /// service shut down), the store is gone, the client is gone, or the principal is
    /// no longer valid (then the session is closed too).
    pub(crate) async fn run(self) {
        let mut updates = self.shared.store.subscribe().updates;
        let mut dirty: Vec<String> = Vec::new();
        let mut deadline: Option<Instant> = None;
        let mut revalidate = tokio::time::interval(self.shared.revalidate_every);
        revalidate.tick().await; // the first tick is immediate
        loop {
            let timer = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.stop.cancelled() => return,
                _ = revalidate.tick() => {
                    if !self.shared.backend.still_valid(&self.principal).await {
                        self.end_session().await;
                        return;
                    }
                }
                () = timer => {
                    deadline = None;
                    if !self.shared.backend.still_valid(&self.principal).await {
                        self.end_session().await;
                        return;
                    }
                    if !self.notify(std::mem::take(&mut dirty)).await {
                        return;
                    }
                }
                msg = updates.recv() => {
                    if let Err(RecvError::Closed) = msg {
                        return;
                    }
                    self.mark(&msg, &mut dirty);
                    if !dirty.is_empty() && deadline.is_none() {
                        deadline = Some(Instant::now() + self.shared.debounce);
                    }
                }
            }
        }
    }

    fn mark(&self, msg: &Result<Arc<hearth_store::Revision>, RecvError>, dirty: &mut Vec<String>) {
        let subs = self
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (uri, pointer) in subs.iter() {
            let touched = match msg {
                Ok(rev) => resources::patch_touches(&rev.patch, pointer),
                Err(_) => true, // lagged: some revisions were skipped
            };
            if touched && !dirty.contains(uri) {
                dirty.push(uri.clone());
            }
        }
    }

    /// Sends one notification per still-subscribed URI; false when the client is gone.
    async fn notify(&self, dirty: Vec<String>) -> bool {
        let still: Vec<String> = {
            let subs = self
                .subscriptions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            dirty
                .into_iter()
                .filter(|uri| subs.contains_key(uri))
                .collect()
        };
        for uri in still {
            let note = ResourceUpdatedNotificationParam::new(uri.clone());
            if let Err(error) = self.peer.notify_resource_updated(note).await {
                tracing::debug!(%error, "MCP client gone; stopping its watcher");
                return false;
            }
            tracing::trace!(uri, "sent notifications/resources/updated");
        }
        true
    }

    async fn end_session(&self) {
        tracing::info!(
            session = self.session_id.as_deref().unwrap_or("?"),
            "MCP subscriber is no longer authenticated; closing the session"
        );
        if let Some(id) = &self.session_id
            && let Err(error) = self.shared.sessions.close_session(id).await
        {
            tracing::warn!(%error, "closing the MCP session failed");
        }
    }
}
