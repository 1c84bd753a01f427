//! Well-known paths, file names, HTTP routes and header names (constants only).
//!
//! # Purpose
//! Every program that has to agree on where something lives — `hearthd`, the `hearth`
//! CLI, system tests — reads the name from here, so a path is spelled exactly once.
//!
//! # Design
//! Paths inside the data directory are *relative* (`run/local.cookie`); the caller joins
//! them onto the data directory it was given (`--data-dir`). That keeps this crate free of
//! I/O and of any notion of "the" data directory, which differs between a device
//! (`/media/hearth/data`), `make run` (`.data/` in the checkout) and tests (a temp dir).
//!
//! # Invariants
//! Constants are append-only in spirit: renaming one breaks on-disk state or clients.
//!
//! # Rejected alternatives
//! A `Layout` struct with methods computing absolute paths: it would need a data
//! directory at construction and grow behaviour; plain constants are enough today.
#![warn(missing_docs)]

/// Data directory used by a device image.
pub const DEVICE_DATA_DIR: &str = "/media/hearth/data";
/// Data directory used by `make run`, relative to the checkout (git-ignored).
pub const DEV_DATA_DIR: &str = ".data";
/// Default listen address of `hearthd` for development (`make run`).
pub const DEV_LISTEN: &str = "127.0.0.1:8080";

/// State database file, relative to the data directory.
pub const STORE_FILE: &str = "db/hearth.redb";
/// Directory for files that only live while `hearthd` runs, relative to the data dir.
pub const RUN_DIR: &str = "run";
/// Local authentication cookie (mode 0600, rewritten at every start), relative to the
/// data directory. Its content authenticates the `hearth` CLI on the same machine.
pub const LOCAL_COOKIE_FILE: &str = "run/local.cookie";

/// Installed package archives, `<id>/<version>.s9pk`, relative to the data directory.
pub const PACKAGE_ARCHIVE_DIR: &str = "packages/archive";
/// Extracted, verified container images, `<id>/<image>.squashfs`, relative to the data dir.
pub const PACKAGE_IMAGE_DIR: &str = "packages/images";
/// Per-service data (volumes, container overlay), `<id>/`, relative to the data directory.
pub const PACKAGE_DATA_DIR: &str = "packages/data";

/// Where `package.install {path}` takes packages from (hearthd creates it, mode 0700;
/// only regular files below it are opened, never through a symlink), relative to the
/// data directory.
pub const PACKAGE_IMPORT_DIR: &str = "import";
/// Uploaded packages while they are received, relative to the data directory.
pub const PACKAGE_UPLOAD_DIR: &str = "packages/upload";
/// Package upload (POST, raw `.s9pk` body; `?allowUntrusted=true` to accept an unknown signer).
pub const PACKAGE_UPLOAD_PATH: &str = "/rest/package/upload";

/// JSON-RPC endpoint (POST).
pub const RPC_PATH: &str = "/rpc/v1";
/// Live state stream (WebSocket): a dump of the public state, then one patch per revision.
pub const WS_DB_PATH: &str = "/ws/db";
/// MCP Streamable HTTP endpoint.
pub const MCP_PATH: &str = "/mcp";

/// Name of the browser session cookie.
pub const SESSION_COOKIE: &str = "session";
/// Name of the cookie carrying the local authentication secret.
pub const LOCAL_COOKIE: &str = "local";
/// Header carrying the local authentication secret (alternative to the cookie).
pub const LOCAL_AUTH_HEADER: &str = "x-hearth-local-auth";
/// Response header with the state revision a mutating call produced.
pub const PATCH_SEQUENCE_HEADER: &str = "x-patch-sequence";
/// Prefix of API tokens (`Authorization: Bearer hth_…`), so leaked tokens are greppable.
pub const API_TOKEN_PREFIX: &str = "hth_";

/// Inside a service container: where `hearthd` mounts, read-only, what it gives the
/// container (the service spec and the image defaults). Its host side (`<package
/// data>/config/`) only `hearthd` writes.
pub const CONTAINER_CONFIG_DIR: &str = "/media/hearth/config";
/// Inside a service container: the service spec `hearth-container` runs, in
/// [`CONTAINER_CONFIG_DIR`].
pub const CONTAINER_SPEC_FILE: &str = "/media/hearth/config/spec.json";
/// Inside a service container: each image's `<image>.json` / `.env` defaults, in
/// [`CONTAINER_CONFIG_DIR`].
pub const CONTAINER_IMAGES_DIR: &str = "/media/hearth/config/images";
/// Inside a service container: the one directory it shares writably with `hearthd`,
/// holding only [`SERVICE_SOCKET`] (`hearthd` checks the socket without following
/// links before connecting, and clears the directory before each start).
pub const CONTAINER_RPC_DIR: &str = "/media/hearth/rpc";
/// The control socket's file name in [`CONTAINER_RPC_DIR`].
pub const SERVICE_SOCKET: &str = "service.sock";
