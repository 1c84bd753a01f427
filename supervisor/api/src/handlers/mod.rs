//! Handlers, one module per noun. Each `register` takes only the services its handlers
//! use and binds them into the [`Registry`].

mod auth;
mod db;
mod hostname;
pub(crate) mod notification;
pub(crate) mod package;
mod server;
mod setup;

use std::sync::Arc;
use std::time::Instant;

use hearth_store::Store;

use crate::auth::Authenticator;
use crate::dispatch::Registry;
use crate::{ApiConfig, LogBuffer};

/// The full handler table.
pub(crate) fn registry(
    store: &Store,
    auth: &Arc<Authenticator>,
    logs: &LogBuffer,
    config: &ApiConfig,
    started: Instant,
    setup_code: Option<Arc<crate::setup_code::SetupCode>>,
) -> Registry {
    let mut r = Registry::default();
    server::register(
        &mut r,
        store.clone(),
        logs.clone(),
        server::Identity {
            version: config.version.clone(),
            data_dir: config.data_dir.clone(),
            started,
            boot_state: config.boot_state_file.clone(),
        },
    );
    setup::register(&mut r, store.clone(), Arc::clone(auth), setup_code);
    hostname::register(&mut r, store.clone());
    auth::register(&mut r, Arc::clone(auth), config.session_max_age);
    notification::register(&mut r, store.clone());
    db::register(&mut r, store.clone());
    package::register(
        &mut r,
        hearth_services::Packages::new(
            store.clone(),
            config.data_dir.clone(),
            hearth_services::Host::this_machine(),
        ),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_method_has_exactly_one_handler() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), crate::doc::seed("id", "0")).unwrap();
        let config = ApiConfig::new(dir.path().to_path_buf());
        let auth = Authenticator::new(
            store.clone(),
            &dir.path().join("run/local.cookie"),
            config.session_idle,
            config.session_max_age,
            config.login_failure_budget,
        )
        .unwrap();
        let r = registry(
            &store,
            &auth,
            &LogBuffer::new(10),
            &config,
            Instant::now(),
            None,
        );
        let (missing, unknown, duplicate) = r.coverage();
        assert!(missing.is_empty(), "methods without handler: {missing:?}");
        assert!(
            unknown.is_empty(),
            "handlers for undeclared methods: {unknown:?}"
        );
        assert!(
            duplicate.is_empty(),
            "methods with two handlers: {duplicate:?}"
        );
    }
}
