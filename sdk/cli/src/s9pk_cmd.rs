//! `hearth s9pk inspect|verify|filter` (and the hidden `pack-dir`).
//!
//! `inspect` prints one JSON document: `manifest` (the parsed
//! `manifest.json`, or null), `serviceSpec` (the parsed root `hearth.json`, or
//! null), `signer` (PEM SPKI), `rootSighash` (standard base64, no padding),
//! `rootMaxsize`, and `files`: every entry sorted by path with `path`, `type`
//! (`file`, `directory`, `missing`), `size` and `hash`. File hashes are
//! lower-case hex BLAKE3 so they compare directly with `b3sum`; directory
//! hashes are sighashes. Everything printed has been verified (signature,
//! every TOC, and the files read). `inspect --signer` prints only the signer's
//! PEM public key (for `hearth package trust add --public-key`).
//!
//! `verify` hashes every present file too and, with `--trust`, requires the
//! signer to be one of the given keys. Failures are one line naming what
//! failed and where.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use hearth_s9pk::key::{self, KeyError};
use hearth_s9pk::{FilterError, ReadError, S9pkReader, WriteError};
use serde_json::{Value, json};

use crate::key::{KeyCmdError, load_signing_key};

/// Largest JSON document `inspect` reads out of an archive.
const MAX_JSON: u64 = 16 * 1024 * 1024;

/// Arguments of `hearth s9pk inspect`.
#[derive(clap::Args)]
pub(crate) struct InspectArgs {
    /// The .s9pk file.
    file: PathBuf,
    /// Print only the signer's public key (PEM), after checking the signature; what
    /// `hearth package trust add --public-key` takes.
    #[arg(long)]
    signer: bool,
}

/// Arguments of `hearth s9pk verify`.
#[derive(clap::Args)]
pub(crate) struct VerifyArgs {
    /// The .s9pk file.
    file: PathBuf,
    /// A trusted signer public key (PEM SPKI); repeatable. Without it, any
    /// valid signature is accepted.
    #[arg(long = "trust", value_name = "PUBKEY.pem")]
    trust: Vec<PathBuf>,
}

/// Arguments of `hearth s9pk filter`.
#[derive(clap::Args)]
pub(crate) struct FilterArgs {
    /// The .s9pk file.
    file: PathBuf,
    /// The architecture to keep (`x86_64`, `aarch64`, `riscv64`).
    #[arg(long)]
    arch: String,
    /// Where to write the filtered package.
    #[arg(short = 'o', long = "out")]
    out: PathBuf,
}

/// Arguments of the hidden `hearth s9pk pack-dir` (benchmarks and tests):
/// packs a plain directory tree as-is.
#[derive(clap::Args)]
pub(crate) struct PackDirArgs {
    /// The directory to pack.
    dir: PathBuf,
    /// The signing key (PEM PKCS#8).
    #[arg(long)]
    key: PathBuf,
    /// Where to write the package.
    #[arg(short = 'o', long = "out")]
    out: PathBuf,
}

/// Errors of these commands.
#[derive(Debug, thiserror::Error)]
pub(crate) enum S9pkCmdError {
    /// Opening the archive file failed.
    #[error("opening {path}")]
    Open { path: PathBuf, source: io::Error },
    /// The archive is invalid or could not be read.
    #[error("{path}")]
    Read {
        path: PathBuf,
        source: Box<ReadError>,
    },
    /// An embedded JSON file does not parse.
    #[error("{path}: /{inner} is not valid JSON")]
    Json {
        path: PathBuf,
        inner: &'static str,
        source: serde_json::Error,
    },
    /// Reading a trusted key failed.
    #[error("reading trusted key {path}")]
    TrustRead { path: PathBuf, source: io::Error },
    /// A trusted key does not parse.
    #[error("trusted key {path}")]
    TrustKey { path: PathBuf, source: KeyError },
    /// Loading the signing key failed.
    #[error(transparent)]
    Key(#[from] KeyCmdError),
    /// Filtering failed.
    #[error("filtering {path}")]
    Filter {
        path: PathBuf,
        source: Box<FilterError>,
    },
    /// Writing failed.
    #[error("packing {path}")]
    Write {
        path: PathBuf,
        source: Box<WriteError>,
    },
    /// Printing the signer key failed.
    #[error("encoding the signer key")]
    Signer(#[source] KeyError),
}

fn open(path: &Path) -> Result<S9pkReader<File>, S9pkCmdError> {
    let f = File::open(path).map_err(|source| S9pkCmdError::Open {
        path: path.to_owned(),
        source,
    })?;
    S9pkReader::open(f, None).map_err(|source| S9pkCmdError::Read {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// Reads and parses a root JSON file if it is present.
fn json_file(
    r: &mut S9pkReader<File>,
    path: &Path,
    inner: &'static str,
) -> Result<Value, S9pkCmdError> {
    match r.read_file(inner, MAX_JSON) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| S9pkCmdError::Json {
            path: path.to_owned(),
            inner,
            source,
        }),
        Err(ReadError::NotFound { .. }) => Ok(Value::Null),
        Err(source) => Err(S9pkCmdError::Read {
            path: path.to_owned(),
            source: Box::new(source),
        }),
    }
}

/// `hearth s9pk inspect`.
pub(crate) fn inspect(args: InspectArgs) -> Result<(), S9pkCmdError> {
    let mut r = open(&args.file)?;
    if args.signer {
        let pem = key::verifying_key_to_pem(&r.signer()).map_err(S9pkCmdError::Signer)?;
        print!("{pem}");
        return Ok(());
    }
    let read_err = |source: ReadError| S9pkCmdError::Read {
        path: args.file.clone(),
        source: Box::new(source),
    };
    let files: Vec<Value> = r
        .entries()
        .map_err(read_err)?
        .into_iter()
        .map(|e| {
            json!({
                "path": e.path,
                "type": e.kind.as_str(),
                "size": e.size,
                "hash": e.hash.to_hex(),
            })
        })
        .collect();
    let manifest = json_file(&mut r, &args.file, "manifest.json")?;
    let spec = json_file(&mut r, &args.file, "hearth.json")?;
    let signer = key::verifying_key_to_pem(&r.signer()).map_err(S9pkCmdError::Signer)?;
    let c = r.commitment();
    let doc = json!({
        "manifest": manifest,
        "serviceSpec": spec,
        "signer": signer,
        "rootSighash": c.root_sighash.to_base64(),
        "rootMaxsize": c.root_maxsize,
        "files": files,
    });
    println!("{doc:#}");
    Ok(())
}

/// `hearth s9pk verify`.
pub(crate) fn verify(args: VerifyArgs) -> Result<(), S9pkCmdError> {
    let mut trusted = Vec::new();
    for path in &args.trust {
        let text = std::fs::read_to_string(path).map_err(|source| S9pkCmdError::TrustRead {
            path: path.clone(),
            source,
        })?;
        trusted.push(key::verifying_key_from_pem(&text).map_err(|source| {
            S9pkCmdError::TrustKey {
                path: path.clone(),
                source,
            }
        })?);
    }
    let mut r = open(&args.file)?;
    let read_err = |source: ReadError| S9pkCmdError::Read {
        path: args.file.clone(),
        source: Box::new(source),
    };
    if !trusted.is_empty() {
        r.check_signer(&trusted).map_err(read_err)?;
    }
    let s = r.verify_all().map_err(read_err)?;
    println!(
        "ok: {} files ({} bytes) and {} directories verified, {} missing entries; signer {}",
        s.files,
        s.bytes,
        s.directories,
        s.missing,
        hearth_s9pk::base64_encode(r.signer().as_bytes())
    );
    Ok(())
}

/// `hearth s9pk filter`.
pub(crate) fn filter(args: FilterArgs) -> Result<(), S9pkCmdError> {
    let mut r = open(&args.file)?;
    let stripped = hearth_s9pk::filter_arch(&mut r, &args.arch, &args.out).map_err(|source| {
        S9pkCmdError::Filter {
            path: args.file.clone(),
            source: Box::new(source),
        }
    })?;
    for p in stripped {
        println!("stripped {p}");
    }
    Ok(())
}

/// `hearth s9pk pack-dir`.
pub(crate) fn pack_dir(args: PackDirArgs) -> Result<(), S9pkCmdError> {
    let key = load_signing_key(&args.key)?;
    hearth_s9pk::write_dir(&args.dir, &key, &args.out).map_err(|source| S9pkCmdError::Write {
        path: args.dir.clone(),
        source: Box::new(source),
    })
}
