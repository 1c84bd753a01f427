//! `package.*`: install from the import directory or a URL, trusted signers, desired run state.
//!
//! Handlers only call [`Packages`] (blocking, so through `spawn_blocking`); the
//! reconcile loop in `hearth-services` does the container work. The mapping of
//! [`InstallError`] / [`PackageError`] to wire errors lives here: refusals are `-32602`
//! with `data.reason` (and `data.missing` / `data.fingerprint` where useful), unknown
//! packages and keys `6`, store failures `29`, anything else `-32603` with the details
//! in the log.

use std::path::Path;

use hearth_rpc::methods::{
    PackageActionList, PackageActionRun, PackageInstall, PackageList, PackageLogs, PackageRestart,
    PackageStart, PackageStop, PackageTrustAdd, PackageTrustList, PackageTrustRemove,
    PackageUninstall, package::StopResult,
};
use hearth_rpc::{ErrorCode, RpcError};
use hearth_services::{
    DownloadError, InstallError, InstallOptions, PackageError, Packages, ServiceCallError,
};

use crate::dispatch::{Registry, Reply};
use crate::error::blocking;

fn refused(reason: &str, message: String) -> RpcError {
    RpcError::new(ErrorCode::InvalidParams, message).with("reason", reason)
}

pub(crate) fn install_error(e: InstallError) -> RpcError {
    let message = e.to_string();
    match e {
        InstallError::Open { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            RpcError::new(ErrorCode::NotFound, message).with("what", "file")
        }
        InstallError::Open { .. } => refused("unreadable", message),
        InstallError::NotImportable { .. } => refused("notImportable", message),
        InstallError::Verify { .. } => refused("verification", message),
        InstallError::UntrustedSigner { fingerprint, .. } => {
            refused("untrustedSigner", message).with("fingerprint", fingerprint)
        }
        InstallError::Manifest { .. } => refused("manifest", message),
        InstallError::Spec { .. } => refused("serviceSpec", message),
        InstallError::Arch { .. } => refused("architecture", message),
        InstallError::OsVersion { .. } => refused("osVersion", message),
        InstallError::Dependencies { missing, .. } => {
            refused("dependencies", message).with("missing", missing)
        }
        InstallError::AlreadyInstalled { .. } => refused("alreadyInstalled", message),
        InstallError::Downgrade { .. } => refused("downgrade", message),
        InstallError::Busy { .. } => refused("busy", message),
        InstallError::BreaksDependents { dependents, .. } => {
            refused("dependents", message).with("dependents", dependents)
        }
        InstallError::Download(DownloadError::BadUrl { .. }) => {
            RpcError::invalid_params("url", message)
        }
        InstallError::Download(DownloadError::TooLarge { limit, .. }) => {
            refused("tooLarge", message).with("limit", limit)
        }
        InstallError::Download(DownloadError::Status { status, .. }) => {
            refused("download", message).with("status", status)
        }
        InstallError::Download(DownloadError::Unreachable { .. }) => {
            refused("unreachable", message)
        }
        InstallError::Download(_) => refused("download", message),
        ref e if crate::upload::is_no_space(e) => {
            tracing::error!(error = %message, "install: the data disk is full");
            crate::upload::no_space(message)
        }
        InstallError::Store { .. } => {
            tracing::error!(error = %message, "install: state store failure");
            RpcError::new(ErrorCode::Database, "the state database failed; try again")
        }
        _ => {
            tracing::error!(error = %message, "install failed");
            RpcError::internal()
        }
    }
}

fn package_error(e: PackageError) -> RpcError {
    let message = e.to_string();
    match e {
        PackageError::NotFound { what, .. } => {
            RpcError::new(ErrorCode::NotFound, message).with("what", what)
        }
        PackageError::WrongState { .. } => refused("wrongState", message),
        PackageError::HasDependents { dependents, .. } => {
            refused("dependents", message).with("dependents", dependents)
        }
        PackageError::Key(_) => RpcError::invalid_params("publicKey", message),
        PackageError::Store { .. } => {
            tracing::error!(error = %message, "package: state store failure");
            RpcError::new(ErrorCode::Database, "the state database failed; try again")
        }
        PackageError::Document { .. } => {
            tracing::error!(error = %message, "package: damaged state document");
            RpcError::internal()
        }
    }
}

/// Errors of `package.logs` and `package.action.*`: refusals `-32602` with
/// `data.reason` (`notRunning`, `notAllowed`, `wrongState`; bad input also carries
/// `data.path`), unknown actions `6`, the container's own errors passed on as it sent
/// them, a container that cannot be reached `-32603` with the cause in the message.
fn service_call_error(e: ServiceCallError) -> RpcError {
    if let Some(remote) = e.container_error() {
        return remote.clone();
    }
    let message = e.to_string();
    match e {
        ServiceCallError::Package(p) => package_error(p),
        ServiceCallError::NotRunning { .. } => refused("notRunning", message),
        ServiceCallError::NoAction { .. } => {
            RpcError::new(ErrorCode::NotFound, message).with("what", "action")
        }
        ServiceCallError::InvalidInput { path, .. } => {
            refused("invalidInput", message).with("path", path)
        }
        ServiceCallError::NotAllowed { .. } => refused("notAllowed", message),
        _ => {
            tracing::warn!(error = %message, "call into a service container failed");
            RpcError::new(ErrorCode::Internal, message)
        }
    }
}

pub(crate) fn register(r: &mut Registry, packages: Packages) {
    let p = packages.clone();
    r.register::<PackageLogs, _, _>(move |_, params| {
        let p = p.clone();
        async move {
            let logs = p
                .logs(&params.id, params.daemon, params.limit, params.cursor)
                .await
                .map_err(service_call_error)?;
            Ok(Reply::new(logs))
        }
    });

    let p = packages.clone();
    r.register::<PackageActionList, _, _>(move |_, params| {
        let p = p.clone();
        async move {
            let list = blocking("list package actions", move || {
                p.action_list(&params.id).map_err(service_call_error)
            })
            .await?;
            Ok(Reply::new(list))
        }
    });

    let p = packages.clone();
    r.register::<PackageActionRun, _, _>(move |_, params| {
        let p = p.clone();
        async move {
            let (result, rev) = p
                .action_run(&params.id, &params.action_id, params.input)
                .await
                .map_err(service_call_error)?;
            Ok(Reply::at(result, rev))
        }
    });

    let p = packages.clone();
    r.register::<PackageTrustAdd, _, _>(move |_, params| {
        let p = p.clone();
        async move {
            let (key, rev) = blocking("trust package key", move || {
                p.trust_add(&params.public_key, params.name)
                    .map_err(package_error)
            })
            .await?;
            Ok(Reply::at(key, rev))
        }
    });

    let p = packages.clone();
    r.register::<PackageTrustList, _, _>(move |_, _| {
        let p = p.clone();
        async move {
            let keys = blocking("list trusted keys", move || {
                p.trust_list().map_err(package_error)
            })
            .await?;
            Ok(Reply::new(keys))
        }
    });

    let p = packages.clone();
    r.register::<PackageTrustRemove, _, _>(move |_, params| {
        let p = p.clone();
        async move {
            let rev = blocking("untrust package key", move || {
                p.trust_remove(&params.fingerprint).map_err(package_error)
            })
            .await?;
            Ok(Reply::at((), rev))
        }
    });

    let p = packages.clone();
    r.register::<PackageInstall, _, _>(move |_, params| {
        let p = p.clone();
        async move {
            let opts = InstallOptions {
                allow_untrusted: params.allow_untrusted,
                allow_downgrade: params.allow_downgrade,
            };
            let (result, rev) = match (params.path, params.url) {
                (Some(path), None) => {
                    // Only below an import directory; see `Packages::install_import`.
                    blocking("install package", move || {
                        p.install_import(Path::new(&path), opts)
                            .map_err(install_error)
                    })
                    .await?
                }
                (None, Some(url)) => {
                    blocking("install package from a URL", move || {
                        p.install_url(&url, opts).map_err(install_error)
                    })
                    .await?
                }
                _ => {
                    return Err(RpcError::invalid_params(
                        "path",
                        "give exactly one of path and url",
                    ));
                }
            };
            Ok(Reply::at(result, rev))
        }
    });

    let p = packages.clone();
    r.register::<PackageList, _, _>(move |_, _| {
        let p = p.clone();
        async move {
            let list = blocking("list packages", move || p.list().map_err(package_error)).await?;
            Ok(Reply::new(list))
        }
    });

    let p = packages.clone();
    r.register::<PackageStart, _, _>(move |_, params| {
        let p = p.clone();
        async move {
            let rev = blocking("start package", move || {
                p.start(&params.id).map_err(package_error)
            })
            .await?;
            Ok(Reply::at((), rev))
        }
    });

    let p = packages.clone();
    r.register::<PackageStop, _, _>(move |_, params| {
        let p = p.clone();
        async move {
            let (rev, dependents) = blocking("stop package", move || {
                p.stop(&params.id).map_err(package_error)
            })
            .await?;
            Ok(Reply::at(StopResult { dependents }, rev))
        }
    });

    let p = packages.clone();
    r.register::<PackageRestart, _, _>(move |_, params| {
        let p = p.clone();
        async move {
            let rev = blocking("restart package", move || {
                p.restart(&params.id).map_err(package_error)
            })
            .await?;
            Ok(Reply::at((), rev))
        }
    });

    r.register::<PackageUninstall, _, _>(move |_, params| {
        let p = packages.clone();
        async move {
            let rev = blocking("uninstall package", move || {
                p.uninstall(&params.id, params.keep_data)
                    .map_err(package_error)
            })
            .await?;
            Ok(Reply::at((), rev))
        }
    });
}
