//! `hearth key`: generate Ed25519 signing keys and print public keys.
//!
//! Private keys are PEM PKCS#8 files created with mode 0600 and never
//! overwritten; public keys are printed as PEM SPKI, the format `hearth s9pk
//! verify --trust` reads and StartOS uses.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::PathBuf;

use hearth_s9pk::key::{self, KeyError};

/// `hearth key` subcommands.
#[derive(clap::Subcommand)]
pub(crate) enum KeyCommand {
    /// Generate a signing key (PEM PKCS#8, mode 0600) and print its public key.
    Generate {
        /// Where to write the private key; must not exist.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key (PEM SPKI) of a private key file.
    Public {
        /// The private key file (PEM PKCS#8).
        key: PathBuf,
    },
}

/// Errors of `hearth key`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyCmdError {
    /// The output file exists.
    #[error("{0} already exists; refusing to overwrite a key")]
    Exists(PathBuf),
    /// Creating or writing the key file failed.
    #[error("writing {path}")]
    Write { path: PathBuf, source: io::Error },
    /// Reading the key file failed.
    #[error("reading {path}")]
    Read { path: PathBuf, source: io::Error },
    /// Key conversion failed.
    #[error("{path}")]
    Key { path: PathBuf, source: KeyError },
    /// Writing the public key to stdout failed.
    #[error("writing to stdout")]
    Stdout(#[source] io::Error),
}

/// Reads a PEM PKCS#8 private key file.
pub(crate) fn load_signing_key(path: &PathBuf) -> Result<hearth_s9pk::SigningKey, KeyCmdError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyCmdError::Read {
        path: path.clone(),
        source,
    })?;
    key::signing_key_from_pem(&text).map_err(|source| KeyCmdError::Key {
        path: path.clone(),
        source,
    })
}

/// Runs `hearth key …`.
pub(crate) fn run(cmd: KeyCommand, json: bool) -> Result<(), KeyCmdError> {
    let (signing, path) = match cmd {
        KeyCommand::Generate { out } => {
            let k = key::generate().map_err(|source| KeyCmdError::Key {
                path: out.clone(),
                source,
            })?;
            let pem = key::signing_key_to_pem(&k).map_err(|source| KeyCmdError::Key {
                path: out.clone(),
                source,
            })?;
            let mut opts = OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&out).map_err(|source| {
                if source.kind() == io::ErrorKind::AlreadyExists {
                    KeyCmdError::Exists(out.clone())
                } else {
                    KeyCmdError::Write {
                        path: out.clone(),
                        source,
                    }
                }
            })?;
            f.write_all(pem.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|source| KeyCmdError::Write {
                    path: out.clone(),
                    source,
                })?;
            (k, out)
        }
        KeyCommand::Public { key } => (load_signing_key(&key)?, key),
    };
    let public = key::verifying_key_to_pem(&signing.verifying_key())
        .map_err(|source| KeyCmdError::Key { path, source })?;
    let printed = if json {
        crate::s9pk_cmd::print_json(&serde_json::json!({"publicKey": public}))
    } else {
        crate::s9pk_cmd::print_out(&public)
    };
    printed.map_err(KeyCmdError::Stdout)
}
