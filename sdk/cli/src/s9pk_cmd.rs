//! `hearth s9pk inspect|verify|filter` (and the hidden `pack-dir`).
//!
//! `inspect` prints one JSON document: `manifest` (the parsed
//! `manifest.json`, or null), `serviceSpec` (the parsed root `hearth.json`, or
//! null), `signer` (PEM SPKI), `rootSighash` (standard base64, no padding),
//! `rootMaxsize`, `files`: every entry sorted by path with `path`, `type`
//! (`file`, `directory`, `missing`), `size` and `hash`, and `verified`: what was
//! checked before anything was printed (see [`Verified`]): the signature, every
//! TOC, and the bodies read (`manifest.json`, `hearth.json`), or with `--verify`
//! every body. File hashes are lower-case hex BLAKE3 so they compare directly
//! with `b3sum`; directory hashes are sighashes. `inspect --signer` prints only
//! the signer's PEM public key (for `hearth package trust add --public-key`).
//!
//! `verify` hashes every present file too and, with `--trust`, requires the
//! signer to be one of the given keys. `filter` keeps one of the architectures
//! Hearth runs on ([`ARCHES`]) and refuses one the package has no images for.
//! Failures are one line naming what failed and where.
//!
//! With `--json` every verb prints one JSON document instead of its human
//! lines (`inspect` always does). Output goes through [`print_out`]: a reader
//! that closes the pipe early (`hearth s9pk inspect X | head -1`) ends the
//! output quietly instead of a panic.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use hearth_s9pk::key::{self, KeyError};
use hearth_s9pk::{EntryKind, FilterError, ReadError, S9pkReader, WriteError};
use serde_json::{Value, json};

use crate::key::{KeyCmdError, load_signing_key};

/// Largest JSON document `inspect` reads out of an archive.
const MAX_JSON: u64 = 16 * 1024 * 1024;
/// The architectures `filter` keeps (StartOS's names, as `images/<arch>` uses them).
pub(crate) const ARCHES: [&str; 3] = ["x86_64", "aarch64", "riscv64"];

/// Arguments of `hearth s9pk inspect`.
#[derive(clap::Args)]
pub(crate) struct InspectArgs {
    /// The .s9pk file.
    file: PathBuf,
    /// Print only the signer's public key (PEM), after checking the signature; what
    /// `hearth package trust add --public-key` takes.
    #[arg(long)]
    signer: bool,
    /// Also read and hash every file body (as `verify` does) before printing.
    #[arg(long)]
    verify: bool,
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
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(ARCHES))]
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
    /// The package has no images for the architecture asked for.
    #[error("{path} has no images for {arch} (it has: {has})")]
    NoSuchArch {
        path: PathBuf,
        arch: String,
        has: String,
    },
    /// Writing the output failed.
    #[error("writing to stdout")]
    Stdout(#[source] io::Error),
}

/// Writes `text` to stdout; a closed pipe (`hearth s9pk inspect X | head -1`) is not
/// an error: whoever reads has what they wanted.
pub(crate) fn print_out(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// Prints `value` as pretty JSON and a newline (see [`print_out`]).
pub(crate) fn print_json(value: &Value) -> io::Result<()> {
    print_out(&format!("{value:#}\n"))
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

/// What `inspect` checked before printing (its `verified` key).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Verified {
    /// The header's Ed25519 signature over the root commitment.
    signature: bool,
    /// Every directory's table of contents against the hash its parent signs.
    tables_of_contents: bool,
    /// Whether every present file's body was read and hashed (`--verify`).
    all_bodies: bool,
    /// The files whose body was read and hashed (all of them with `--verify`).
    bodies: Vec<String>,
    /// Their total size.
    body_bytes: u64,
}

/// `hearth s9pk inspect` (always JSON; with `--signer`, the PEM alone unless `--json`).
pub(crate) fn inspect(args: InspectArgs, json: bool) -> Result<(), S9pkCmdError> {
    // Opening checks the signature (`S9pkReader::open`).
    let mut r = open(&args.file)?;
    if args.signer {
        let pem = key::verifying_key_to_pem(&r.signer()).map_err(S9pkCmdError::Signer)?;
        let printed = if json {
            print_json(&json!({"signer": pem}))
        } else {
            print_out(&pem)
        };
        return printed.map_err(S9pkCmdError::Stdout);
    }
    let read_err = |source: ReadError| S9pkCmdError::Read {
        path: args.file.clone(),
        source: Box::new(source),
    };
    let entries = r.entries().map_err(read_err)?;
    let files: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "path": e.path,
                "type": e.kind.as_str(),
                "size": e.size,
                "hash": e.hash.to_hex(),
            })
        })
        .collect();
    let mut verified = Verified {
        signature: true,
        tables_of_contents: true,
        all_bodies: false,
        bodies: Vec::new(),
        body_bytes: 0,
    };
    if args.verify {
        r.verify_all().map_err(read_err)?;
        for e in entries.iter().filter(|e| matches!(e.kind, EntryKind::File)) {
            verified.bodies.push(e.path.clone());
            verified.body_bytes += e.size;
        }
        verified.all_bodies = true;
    }
    let manifest = json_file(&mut r, &args.file, "manifest.json")?;
    let spec = json_file(&mut r, &args.file, "hearth.json")?;
    if !args.verify {
        for (name, value) in [("manifest.json", &manifest), ("hearth.json", &spec)] {
            if let (false, Some(e)) = (value.is_null(), entries.iter().find(|e| e.path == name)) {
                verified.bodies.push(e.path.clone());
                verified.body_bytes += e.size;
            }
        }
    }
    let signer = key::verifying_key_to_pem(&r.signer()).map_err(S9pkCmdError::Signer)?;
    let c = r.commitment();
    let doc = json!({
        "manifest": manifest,
        "serviceSpec": spec,
        "signer": signer,
        "rootSighash": c.root_sighash.to_base64(),
        "rootMaxsize": c.root_maxsize,
        "files": files,
        "verified": verified,
    });
    print_json(&doc).map_err(S9pkCmdError::Stdout)
}

/// `hearth s9pk verify`.
pub(crate) fn verify(args: VerifyArgs, json: bool) -> Result<(), S9pkCmdError> {
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
    let out = if json {
        let pem = key::verifying_key_to_pem(&r.signer()).map_err(S9pkCmdError::Signer)?;
        print_json(&json!({
            "ok": true,
            "files": s.files,
            "bytes": s.bytes,
            "directories": s.directories,
            "missing": s.missing,
            "signer": pem,
            "signerTrusted": !trusted.is_empty(),
        }))
    } else {
        print_out(&format!(
            "ok: {} files ({} bytes) and {} directories verified, {} missing entries; signer {}\n",
            s.files,
            s.bytes,
            s.directories,
            s.missing,
            hearth_s9pk::base64_encode(r.signer().as_bytes())
        ))
    };
    out.map_err(S9pkCmdError::Stdout)
}

/// `hearth s9pk filter`.
pub(crate) fn filter(args: FilterArgs, json: bool) -> Result<(), S9pkCmdError> {
    let mut r = open(&args.file)?;
    // Keeping an architecture the package has no images for would strip them all.
    let entries = r.entries().map_err(|source| S9pkCmdError::Read {
        path: args.file.clone(),
        source: Box::new(source),
    })?;
    let has: Vec<&str> = entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Directory))
        .filter_map(|e| e.path.strip_prefix("images/"))
        .filter(|rest| !rest.contains('/'))
        .collect();
    if !has.is_empty() && !has.contains(&args.arch.as_str()) {
        return Err(S9pkCmdError::NoSuchArch {
            path: args.file.clone(),
            arch: args.arch.clone(),
            has: has.join(", "),
        });
    }
    let stripped = hearth_s9pk::filter_arch(&mut r, &args.arch, &args.out).map_err(|source| {
        S9pkCmdError::Filter {
            path: args.file.clone(),
            source: Box::new(source),
        }
    })?;
    let out = if json {
        print_json(&json!({
            "out": args.out,
            "arch": args.arch,
            "stripped": stripped,
        }))
    } else {
        print_out(
            &stripped
                .iter()
                .map(|p| format!("stripped {p}\n"))
                .collect::<String>(),
        )
    };
    out.map_err(S9pkCmdError::Stdout)
}

/// `hearth s9pk pack-dir` (prints nothing, or `{"out": …}` with `--json`).
pub(crate) fn pack_dir(args: PackDirArgs, json: bool) -> Result<(), S9pkCmdError> {
    let key = load_signing_key(&args.key)?;
    hearth_s9pk::write_dir(&args.dir, &key, &args.out).map_err(|source| S9pkCmdError::Write {
        path: args.dir.clone(),
        source: Box::new(source),
    })?;
    if json {
        print_json(&json!({"out": args.out})).map_err(S9pkCmdError::Stdout)?;
    }
    Ok(())
}
