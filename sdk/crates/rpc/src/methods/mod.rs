//! The method table: every method's marker type, name, description, auth and payloads.
//!
//! Params and result types live in one module per noun ([`server`], [`auth`], …); the
//! [`declare_methods!`] invocation at the bottom of this file is the table itself.

pub mod auth;
pub mod db;
pub mod hostname;
pub mod notification;
pub mod package;
pub mod server;
pub mod setup;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalogue::{Auth, Method, MethodInfo};

/// Params of methods that take none: `{}` (or absent).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// Result of `rpc.discover`: an OpenRPC 1.3 document describing every method.
pub type OpenRpcDocument = serde_json::Value;

macro_rules! declare_methods {
    ($(
        $(#[$meta:meta])*
        $ty:ident {
            name: $name:literal,
            auth: $auth:ident,
            mutates: $mutates:literal,
            $(destructive: $destructive:literal,)?
            $(reads_secrets: $secrets:literal,)?
            params: $params:ty,
            result: $result:ty,
            description: $desc:expr $(,)?
        }
    )*) => {
        $(
            $(#[$meta])*
            #[derive(Clone, Copy, Debug, Default)]
            pub struct $ty;

            impl Method for $ty {
                const NAME: &'static str = $name;
                const DESCRIPTION: &'static str = $desc;
                const AUTH: Auth = Auth::$auth;
                const MUTATES: bool = $mutates;
                $(const DESTRUCTIVE: bool = $destructive;)?
                $(const READS_SECRETS: bool = $secrets;)?
                type Params = $params;
                type Result = $result;
            }
        )*

        /// Every method's description, in declaration order.
        pub(crate) fn all() -> Vec<MethodInfo> {
            vec![$(MethodInfo::of::<$ty>()),*]
        }

        /// Decodes `params` into method `name`'s params type and drops it (`None`: no
        /// such method). For the envelope fuzz target and tests.
        pub fn decode_params(
            name: &str,
            params: serde_json::Value,
        ) -> Option<Result<(), serde_json::Error>> {
            match name {
                $($name => Some(serde_json::from_value::<$params>(params).map(|_| ())),)*
                _ => None,
            }
        }
    };
}

declare_methods! {
    /// `rpc.discover`
    RpcDiscover {
        name: "rpc.discover",
        auth: Public,
        mutates: false,
        params: NoParams,
        result: OpenRpcDocument,
        description: "Describe every method this server offers as an OpenRPC 1.3 document: \
            name, description, who may call it, params and result JSON Schemas. \
            Start here to learn the API.",
    }
    /// `server.echo`
    ServerEcho {
        name: "server.echo",
        auth: Public,
        mutates: false,
        params: server::EchoParams,
        result: String,
        description: "Return `message` unchanged. Use it to check that the server is \
            reachable and answering; it needs no login and changes nothing.",
    }
    /// `server.info`
    ServerInfo {
        name: "server.info",
        auth: Authenticated,
        mutates: false,
        params: NoParams,
        result: server::ServerInfo,
        description: "Describe this server: Hearth version, hostname, CPU architecture, \
            seconds since hearthd started, the data directory and how many bytes it uses, \
            and the A/B root slot it booted from with its state (`good`, or `trying` with \
            the tries left before the boot loader falls back to the other slot).",
    }
    /// `server.hostname.set`
    ServerHostnameSet {
        name: "server.hostname.set",
        auth: Authenticated,
        mutates: true,
        params: hostname::HostnameSetParams,
        result: hostname::HostnameSetResult,
        description: "Rename this server: `hostname` is one DNS label (1-63 letters, digits \
            or dashes, not starting or ending with a dash; lowercased). Takes effect without \
            a reboot: the kernel hostname is set and mDNS announces `<hostname>.local` \
            (when hearthd runs with `--mdns`). If another machine on the LAN already has \
            that name, a numbered suffix is added (`<hostname>-2.local`); `server.info` \
            and `/serverInfo/mdnsName` show the name actually announced.",
    }
    /// `server.shutdown`
    ServerShutdown {
        name: "server.shutdown",
        auth: Authenticated,
        mutates: true,
        destructive: true,
        params: NoParams,
        result: (),
        description: "Power the machine off: hearth-init (PID 1) stops hearthd and every \
            other process, syncs, unmounts and powers off. Returns before that starts. \
            Fails (code 6) when hearthd is not running under hearth-init.",
    }
    /// `server.restart`
    ServerRestart {
        name: "server.restart",
        auth: Authenticated,
        mutates: true,
        destructive: true,
        params: NoParams,
        result: (),
        description: "Reboot the machine: hearth-init (PID 1) stops hearthd and every other \
            process, syncs, unmounts and reboots. Returns before that starts. Fails \
            (code 6) when hearthd is not running under hearth-init.",
    }
    /// `server.metrics`
    ServerMetrics {
        name: "server.metrics",
        auth: Authenticated,
        mutates: false,
        params: NoParams,
        result: server::Metrics,
        description: "Current resource use of the machine: CPU busy percentage since the \
            previous sample, memory and data-disk totals and free bytes, and the 1/5/15 \
            minute load averages (from /proc and statvfs).",
    }
    /// `server.logs`
    ServerLogs {
        name: "server.logs",
        auth: Authenticated,
        mutates: false,
        reads_secrets: true,
        params: server::LogsParams,
        result: server::LogsResult,
        description: "Recent log lines of hearthd itself, oldest first, from an in-memory \
            ring buffer. Pass `after` = the previous result's `endCursor` to get only newer \
            lines (follow by polling); `limit` caps the count (default 100, max 1000).",
    }
    /// `setup.status`
    SetupStatus {
        name: "setup.status",
        auth: Public,
        mutates: false,
        params: NoParams,
        result: setup::SetupStatus,
        description: "Whether first-boot setup is done. While `setupComplete` is false, \
            the server has no password and waits for `setup.complete`.",
    }
    /// `setup.complete`
    SetupComplete {
        name: "setup.complete",
        auth: Public,
        mutates: true,
        params: setup::SetupCompleteParams,
        result: (),
        description: "Finish first-boot setup: set the master password (at least 8 \
            characters) and the hostname (lowercase letters, digits and dashes). Works \
            exactly once; afterwards it fails with code 53 and login is required.",
    }
    /// `auth.login`
    AuthLogin {
        name: "auth.login",
        auth: Public,
        mutates: true,
        params: auth::LoginParams,
        result: auth::LoginResult,
        description: "Log in with the master password. On success the HTTP response sets \
            an HttpOnly `session` cookie used by later calls. Repeated failures from one \
            address are delayed: the error (code 37) says how many seconds to wait in \
            `data.retryAfter`.",
    }
    /// `auth.logout`
    AuthLogout {
        name: "auth.logout",
        auth: Authenticated,
        mutates: true,
        params: NoParams,
        result: (),
        description: "End the current browser session: the server forgets it and the \
            `session` cookie is cleared. Does nothing for API-token or local callers.",
    }
    /// `auth.session.list`
    AuthSessionList {
        name: "auth.session.list",
        auth: Authenticated,
        mutates: false,
        params: NoParams,
        result: auth::SessionList,
        description: "List logged-in sessions (by id, which is a hash of the secret \
            token, never the token) with login time, last activity, expiry and user agent; \
            `current` is the caller's own session if it is one.",
    }
    /// `auth.session.kill`
    AuthSessionKill {
        name: "auth.session.kill",
        auth: Authenticated,
        mutates: true,
        destructive: true,
        params: auth::SessionKillParams,
        result: (),
        description: "Log out the sessions with the given ids (from `auth.session.list`). \
            Unknown ids are ignored.",
    }
    /// `auth.password.change`
    AuthPasswordChange {
        name: "auth.password.change",
        auth: Authenticated,
        mutates: true,
        destructive: true,
        params: auth::PasswordChangeParams,
        result: (),
        description: "Change the master password; `oldPassword` must be the current one. \
            All other sessions are logged out (the caller's own session stays) and every \
            API token is revoked: create new ones for the scripts and agents that still \
            need access.",
    }
    /// `auth.token.create`
    AuthTokenCreate {
        name: "auth.token.create",
        auth: Authenticated,
        mutates: true,
        params: auth::TokenCreateParams,
        result: auth::TokenCreated,
        description: "Create an API token for a script or an agent, sent as \
            `Authorization: Bearer <token>`. The token is shown only in this response; \
            the server keeps a hash. `scope` is required: `read` allows only methods that \
            change nothing and reveal no secrets (no logs), `admin` allows everything. \
            Revoke it with `auth.token.revoke`; a password change revokes all tokens.",
    }
    /// `auth.token.list`
    AuthTokenList {
        name: "auth.token.list",
        auth: Authenticated,
        mutates: false,
        params: NoParams,
        result: Vec<auth::TokenInfo>,
        description: "List API tokens (id, name, scope, creation and last-use time); the secret \
            tokens themselves cannot be shown again.",
    }
    /// `auth.token.revoke`
    AuthTokenRevoke {
        name: "auth.token.revoke",
        auth: Authenticated,
        mutates: true,
        destructive: true,
        params: auth::TokenRevokeParams,
        result: (),
        description: "Revoke the API token with this id; calls using it fail from now on. \
            Fails with code 6 if no such token exists.",
    }
    /// `notification.list`
    NotificationList {
        name: "notification.list",
        auth: Authenticated,
        mutates: false,
        params: notification::ListParams,
        result: Vec<notification::Notification>,
        description: "List notifications, newest first. Pass `before` (an id) to page \
            back and `limit` to cap the count (default 50).",
    }
    /// `notification.mark-seen`
    NotificationMarkSeen {
        name: "notification.mark-seen",
        auth: Authenticated,
        mutates: true,
        params: notification::IdsParams,
        result: (),
        description: "Mark the notifications with these ids as seen (unknown ids are \
            ignored); the unread count in `serverInfo` drops accordingly.",
    }
    /// `notification.remove`
    NotificationRemove {
        name: "notification.remove",
        auth: Authenticated,
        mutates: true,
        destructive: true,
        params: notification::IdsParams,
        result: (),
        description: "Delete the notifications with these ids (unknown ids are ignored).",
    }
    /// `package.trust.add`
    PackageTrustAdd {
        name: "package.trust.add",
        auth: Authenticated,
        mutates: true,
        params: package::TrustAddParams,
        result: package::TrustedKey,
        description: "Trust a package signer: `publicKey` is the developer's Ed25519 public \
            key in PEM. Packages signed by a trusted key install without `allowUntrusted`. \
            Adding a key twice keeps the first entry.",
    }
    /// `package.trust.list`
    PackageTrustList {
        name: "package.trust.list",
        auth: Authenticated,
        mutates: false,
        params: NoParams,
        result: Vec<package::TrustedKey>,
        description: "List trusted package signers (fingerprint, PEM key, name, when added).",
    }
    /// `package.trust.remove`
    PackageTrustRemove {
        name: "package.trust.remove",
        auth: Authenticated,
        mutates: true,
        destructive: true,
        params: package::TrustRemoveParams,
        result: (),
        description: "Stop trusting the signer with this fingerprint (installed packages \
            stay). Fails with code 6 if no such key is trusted.",
    }
    /// `package.install`
    PackageInstall {
        name: "package.install",
        auth: Authenticated,
        mutates: true,
        destructive: true,
        params: package::InstallParams,
        result: package::InstallResult,
        description: "Install an .s9pk file that is in the server's import directory \
            (`path`: absolute, or relative to `<data>/import`; regular files only, no \
            symlinks) or at an http(s) `url` (downloaded to the server first from a \
            public address only unless hearthd allows a LAN source, size-limited; progress in \
            `/packageDownloads/<n>/progress {phase, bytesDone, bytesTotal}`). The signature, \
            every hash, the signer (must be trusted unless `allowUntrusted`), the CPU \
            architecture, the OS version, required dependencies and the service spec are \
            checked before anything is copied. Progress shows in \
            `/packageData/<id>/stateInfo` (`phase`, `progress {phase, bytesDone, \
            bytesTotal}`); the service ends up installed and stopped. A \
            newer version of an installed package is an update: the call returns once it \
            is staged, then `stateInfo` (state `updating`, `update.phase`) shows the old \
            version stopped, its volumes snapshotted, the new one migrated, started and \
            checked; if it fails or is not healthy within its grace period the old version \
            and its data come back, with a notification. The same version is refused \
            (`alreadyInstalled`), an older one too (`downgrade`) unless `allowDowngrade`.",
    }
    /// `package.list`
    PackageList {
        name: "package.list",
        auth: Authenticated,
        mutates: false,
        params: NoParams,
        result: Vec<package::PackageSummary>,
        description: "List installed packages with their version, install state, desired \
            and observed run state and last error.",
    }
    /// `package.start`
    PackageStart {
        name: "package.start",
        auth: Authenticated,
        mutates: true,
        params: package::IdParams,
        result: (),
        description: "Ask for the service to run. Returns once recorded; the supervisor \
            starts the container and `/packageData/<id>/statusInfo` shows the progress. \
            Stopped dependencies it needs running are started too; it waits (state \
            `waiting`, `waitingFor` = their ids) until they run and pass their health checks.",
    }
    /// `package.stop`
    PackageStop {
        name: "package.stop",
        auth: Authenticated,
        mutates: true,
        destructive: true,
        params: package::IdParams,
        result: package::StopResult,
        description: "Ask for the service to stop. Returns once recorded; the supervisor \
            stops the container and `/packageData/<id>/statusInfo` shows the progress. \
            Installed services meant to run that need it running (directly or through \
            another) are listed in `dependents`: they are stopped too and wait (state \
            `waiting`, `waitingFor`, desired unchanged) until it runs healthy again, then \
            start by themselves.",
    }
    /// `package.restart`
    PackageRestart {
        name: "package.restart",
        auth: Authenticated,
        mutates: true,
        destructive: true,
        params: package::IdParams,
        result: (),
        description: "Ask for the service to be stopped and started again; it then stays \
            running. Returns once recorded.",
    }
    /// `package.uninstall`
    PackageUninstall {
        name: "package.uninstall",
        auth: Authenticated,
        mutates: true,
        destructive: true,
        params: package::UninstallParams,
        result: (),
        description: "Remove a package: the supervisor stops and destroys its container, \
            deletes the archive and, unless `keepData`, the service's data. The entry \
            disappears from `/packageData` when done. Refused (`data.reason` = \
            `dependents`, `data.dependents` = their ids) while installed packages require it.",
    }
    /// `package.logs`
    PackageLogs {
        name: "package.logs",
        auth: Authenticated,
        mutates: false,
        reads_secrets: true,
        params: package::LogsParams,
        result: package::LogsResult,
        description: "Read a running service's log lines (its daemons' stdout and stderr, \
            oldest first): all daemons or one (`daemon`), at most `limit` (default 100, \
            max 1000), the latest ones or those after `cursor` (the previous \
            `nextCursor`). Fails if the service is not running.",
    }
    /// `package.action.list`
    PackageActionList {
        name: "package.action.list",
        auth: Authenticated,
        mutates: false,
        params: package::IdParams,
        result: Vec<package::ActionInfo>,
        description: "List the actions an installed service offers, with the JSON Schema \
            of each one's input and when it may run.",
    }
    /// `package.action.run`
    PackageActionRun {
        name: "package.action.run",
        auth: Authenticated,
        mutates: true,
        destructive: true,
        params: package::ActionRunParams,
        result: package::ActionRunResult,
        description: "Run an action of a running service. `input` is checked against the \
            action's input schema (refused with -32602 and `data.path` if it does not \
            match) and its allowed statuses before it runs; the result is returned and \
            stored at `/packageData/<id>/actions/<actionId>/lastResult`.",
    }
    /// `db.dump`
    DbDump {
        name: "db.dump",
        auth: Authenticated,
        mutates: false,
        params: db::DumpParams,
        result: db::DumpResult,
        description: "Read the public state (what the UI shows) at its current revision. \
            `pointer` is an RFC 6901 JSON Pointer into the public state, e.g. \
            `/serverInfo/hostname`; omit it for everything.",
    }
    /// `db.put.ui`
    DbPutUi {
        name: "db.put.ui",
        auth: Authenticated,
        mutates: true,
        params: db::PutUiParams,
        result: (),
        description: "Store a UI preference: set `value` at `pointer` (an RFC 6901 JSON \
            Pointer relative to `/ui` of the public state, e.g. `/theme`), creating \
            missing parent objects. Nothing outside `/ui` can be written this way.",
    }
}
