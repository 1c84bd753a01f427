//! OTA bundles: one signed, streamable file holding what an update writes into the inactive
//! slot (root squashfs, kernel, initramfs).
//!
//! # Format (`hearth-<version>-<target>.ota`, version 1)
//! A POSIX ustar archive (readable with `tar tvf`) whose entries come in this order:
//!
//! 1. `manifest.json`: `{"format":"hearth-ota/1","version":…,"target":…,"files":[{"name",
//!    "size","sha256"}…]}` (compact JSON, at most [`MAX_MANIFEST`] bytes);
//! 2. `manifest.json.sig`: the 64-byte Ed25519 signature (RFC 8032, pure) of
//!    [`SIG_DOMAIN`] followed by the exact bytes of `manifest.json`;
//! 3. the files, exactly in manifest order, then the end-of-archive blocks. Nothing else.
//!
//! Every header has mode 0644, owner 0:0, no user or group names and mtime
//! `source_date_epoch`, so the same inputs give the same bytes.
//!
//! # Design
//! Signature and manifest come first, so a reader (an updater receiving the bundle over
//! the network) checks the signature before it trusts any size or name, then hashes each
//! file while streaming it to its destination, never holding one in memory. [`verify`]
//! does exactly that and refuses: a bad signature, a manifest that does not parse, an entry
//! out of order or unexpected, a size that differs from the manifest, a file cut short, a
//! hash mismatch, a missing file, anything after the last file. The writer hashes each
//! input once for the manifest and again while copying it, and fails if they differ (an
//! input changed under it); it writes a temporary file and renames it.
//!
//! # Rejected alternatives
//! RAUC/casync bundles (a squashfs with a CMS signature): an X.509/OpenSSL toolchain for
//! one Ed25519 key; S9PK: its tree of TOCs is made for random access to many small files,
//! an OTA is three big files read once in order.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids;

/// The `format` value of version-1 manifests.
pub(crate) const FORMAT: &str = "hearth-ota/1";
/// Prefix of the signed message (domain separation from any other use of the key).
pub(crate) const SIG_DOMAIN: &[u8] = b"hearth-ota-manifest/1\n";
/// Largest accepted `manifest.json`.
pub(crate) const MAX_MANIFEST: u64 = 64 * 1024;
const MANIFEST_NAME: &str = "manifest.json";
const SIG_NAME: &str = "manifest.json.sig";

/// The signed description of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    pub(crate) format: String,
    pub(crate) version: String,
    pub(crate) target: String,
    pub(crate) files: Vec<FileEntry>,
}

/// One file of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileEntry {
    pub(crate) name: String,
    pub(crate) size: u64,
    /// Lower-case hex SHA-256 of the content (the same as in `SHA256SUMS`).
    pub(crate) sha256: String,
}

/// Writing or verifying a bundle failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BundleError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An input changed between hashing and copying.
    #[error("writing bundle {bundle}: input {input} changed while it was being copied")]
    InputChanged { bundle: PathBuf, input: PathBuf },
    /// A file name is not a plain name.
    #[error("bundle file name {0:?} must be a plain file name")]
    BadName(String),
    /// The manifest could not be encoded.
    #[error("encoding the manifest: {0}")]
    Encode(#[source] serde_json::Error),
    /// The signature does not match the manifest and key.
    #[error(
        "bundle {path}: the manifest signature does not verify with the given key (wrong key, or the manifest was altered)"
    )]
    BadSignature { path: PathBuf },
    /// The bundle is not laid out as the format says.
    #[error("bundle {path}: {reason}")]
    Malformed { path: PathBuf, reason: String },
    /// A file's content differs from its manifest entry.
    #[error("bundle {path}: {name}: sha256 is {actual}, the signed manifest says {expected}")]
    HashMismatch {
        path: PathBuf,
        name: String,
        expected: String,
        actual: String,
    },
    /// A file ends before the size in its header and manifest.
    #[error("bundle {path}: {name} is truncated: {got} of {want} bytes")]
    Truncated {
        path: PathBuf,
        name: String,
        got: u64,
        want: u64,
    },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BundleError {
    let path = path.to_owned();
    move |source| BundleError::Io { op, path, source }
}

/// Streams `r` into `w` (if any) while hashing; returns (bytes, hex sha256).
fn copy_hashing<R: Read, W: Write>(
    mut r: R,
    mut w: Option<&mut W>,
) -> std::io::Result<(u64, String)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..k]);
        if let Some(w) = w.as_deref_mut() {
            w.write_all(&buf[..k])?;
        }
        n += k as u64;
    }
    Ok((n, ids::hex(&h.finalize())))
}

fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && name != MANIFEST_NAME
        && name != SIG_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._+".contains(c))
}

fn header(name: &str, size: u64, epoch: u64) -> Result<tar::Header, std::io::Error> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(epoch);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

/// The files of an image bundle, in bundle order: kernel, initramfs, root squashfs (the
/// small ones first, so an updater can stage them before the long root copy).
pub(crate) fn standard_files<'a>(
    root: &'a Path,
    kernel: &'a Path,
    initrd: &'a Path,
) -> [(&'static str, &'a Path); 3] {
    [
        ("vmlinuz", kernel),
        ("initrd.img", initrd),
        ("root.squashfs", root),
    ]
}

/// Writes the bundle `out` holding `files` (name in the bundle → source path), signed with
/// `key`. Returns the manifest.
pub(crate) fn write(
    out: &Path,
    version: &str,
    target: &str,
    files: &[(&str, &Path)],
    key: &SigningKey,
    epoch: u64,
) -> Result<Manifest, BundleError> {
    let mut entries = Vec::new();
    for (name, src) in files {
        if !plain_name(name) || entries.iter().any(|e: &FileEntry| e.name == *name) {
            return Err(BundleError::BadName((*name).to_owned()));
        }
        let f = File::open(src).map_err(io("opening", src))?;
        let (size, sha256) =
            copy_hashing(BufReader::new(f), None::<&mut File>).map_err(io("hashing", src))?;
        entries.push(FileEntry {
            name: (*name).to_owned(),
            size,
            sha256,
        });
    }
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        version: version.to_owned(),
        target: target.to_owned(),
        files: entries,
    };
    let bytes = serde_json::to_vec(&manifest).map_err(BundleError::Encode)?;
    let mut msg = SIG_DOMAIN.to_vec();
    msg.extend_from_slice(&bytes);
    let sig = key.sign(&msg).to_bytes();

    let tmp = out.with_extension("ota.tmp");
    let result = write_archive(&tmp, out, &manifest, &bytes, &sig, files, epoch);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result.map(|()| manifest);
    }
    std::fs::rename(&tmp, out).map_err(io("renaming into place", out))?;
    Ok(manifest)
}

fn write_archive(
    tmp: &Path,
    out: &Path,
    manifest: &Manifest,
    manifest_bytes: &[u8],
    sig: &[u8; 64],
    files: &[(&str, &Path)],
    epoch: u64,
) -> Result<(), BundleError> {
    let f = File::create(tmp).map_err(io("creating", tmp))?;
    let mut b = tar::Builder::new(BufWriter::new(f));
    let w = io("writing", tmp);
    let hdr =
        header(MANIFEST_NAME, manifest_bytes.len() as u64, epoch).map_err(io("writing", tmp))?;
    b.append(&hdr, manifest_bytes).map_err(io("writing", tmp))?;
    let hdr = header(SIG_NAME, 64, epoch).map_err(io("writing", tmp))?;
    b.append(&hdr, &sig[..]).map_err(io("writing", tmp))?;
    for ((name, src), entry) in files.iter().zip(&manifest.files) {
        let hdr = header(name, entry.size, epoch).map_err(io("writing", tmp))?;
        let f = File::open(src).map_err(io("opening", src))?;
        // Hash again while copying: the manifest must describe what is written.
        let mut hashing = HashingReader::new(BufReader::new(f).take(entry.size));
        b.append(&hdr, &mut hashing).map_err(io("writing", tmp))?;
        let (n, sha) = hashing.finish();
        if n != entry.size || sha != entry.sha256 {
            return Err(BundleError::InputChanged {
                bundle: out.to_owned(),
                input: src.to_path_buf(),
            });
        }
    }
    let inner = b.into_inner().map_err(io("writing", tmp))?;
    let file = inner.into_inner().map_err(|e| w(e.into_error()))?;
    file.sync_all().map_err(io("syncing", tmp))?;
    Ok(())
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hash: Sha256,
    n: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            n: 0,
        }
    }
    fn finish(self) -> (u64, String) {
        (self.n, ids::hex(&self.hash.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.hash.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }
}

/// Checks a bundle in one pass: signature first, then every file's size and hash.
/// If `extract` is given, each file is written there (only meaningful when this returns
/// `Ok`: a caller must discard the directory on error).
pub(crate) fn verify(
    path: &Path,
    key: &VerifyingKey,
    extract: Option<&Path>,
) -> Result<Manifest, BundleError> {
    let f = File::open(path).map_err(io("opening", path))?;
    let malformed = |reason: String| BundleError::Malformed {
        path: path.to_owned(),
        reason,
    };
    let mut archive = tar::Archive::new(BufReader::new(f));
    let mut entries = archive
        .entries()
        .map_err(|e| malformed(format!("not a tar archive: {e}")))?;
    let mut next = |want: &str| -> Result<Option<tar::Entry<'_, BufReader<File>>>, BundleError> {
        match entries.next() {
            None => Ok(None),
            Some(Ok(e)) => Ok(Some(e)),
            Some(Err(e)) => Err(malformed(format!(
                "reading the header of {want}: {e} (truncated or corrupt)"
            ))),
        }
    };
    let mut small = |want: &str, max: u64| -> Result<Vec<u8>, BundleError> {
        let Some(mut e) = next(want)? else {
            return Err(malformed(format!("{want} is missing")));
        };
        let name = entry_name(&e);
        if name != want {
            return Err(malformed(format!("expected {want}, found {name:?}")));
        }
        let size = e.header().size().unwrap_or(u64::MAX);
        if size > max {
            return Err(malformed(format!("{want} is {size} bytes (at most {max})")));
        }
        let mut buf = Vec::new();
        (&mut e)
            .take(max)
            .read_to_end(&mut buf)
            .map_err(|err| malformed(format!("reading {want}: {err}")))?;
        if buf.len() as u64 != size {
            return Err(BundleError::Truncated {
                path: path.to_owned(),
                name: want.to_owned(),
                got: buf.len() as u64,
                want: size,
            });
        }
        Ok(buf)
    };
    let manifest_bytes = small(MANIFEST_NAME, MAX_MANIFEST)?;
    let sig_bytes = small(SIG_NAME, 64)?;
    let sig: [u8; 64] = sig_bytes
        .as_slice()
        .try_into()
        .map_err(|_| malformed(format!("{SIG_NAME} must be 64 bytes")))?;
    let mut msg = SIG_DOMAIN.to_vec();
    msg.extend_from_slice(&manifest_bytes);
    key.verify_strict(&msg, &Signature::from_bytes(&sig))
        .map_err(|_| BundleError::BadSignature {
            path: path.to_owned(),
        })?;
    // Signed: from here on the manifest is trusted, the files are not.
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| malformed(format!("signed manifest does not parse: {e}")))?;
    if manifest.format != FORMAT {
        return Err(malformed(format!(
            "format {:?} is not supported (this imager reads {FORMAT})",
            manifest.format
        )));
    }
    for (i, fe) in manifest.files.iter().enumerate() {
        if !plain_name(&fe.name) || manifest.files[..i].iter().any(|o| o.name == fe.name) {
            return Err(malformed(format!(
                "manifest file name {:?} is invalid",
                fe.name
            )));
        }
    }
    if let Some(dir) = extract {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    }
    for fe in &manifest.files {
        let Some(mut e) = next(&fe.name)? else {
            return Err(malformed(format!(
                "{} is missing (the archive ends early)",
                fe.name
            )));
        };
        let name = entry_name(&e);
        if name != fe.name {
            return Err(malformed(format!("expected {}, found {name:?}", fe.name)));
        }
        let size = e.header().size().unwrap_or(u64::MAX);
        if size != fe.size {
            return Err(malformed(format!(
                "{}: header says {size} bytes, the signed manifest says {}",
                fe.name, fe.size
            )));
        }
        let (got, sha) = match extract {
            Some(dir) => {
                let dest = dir.join(&fe.name);
                let mut out = File::create(&dest).map_err(io("creating", &dest))?;
                copy_hashing(&mut e, Some(&mut out))
            }
            None => copy_hashing(&mut e, None::<&mut File>),
        }
        .map_err(|err| malformed(format!("reading {}: {err}", fe.name)))?;
        if got != fe.size {
            return Err(BundleError::Truncated {
                path: path.to_owned(),
                name: fe.name.clone(),
                got,
                want: fe.size,
            });
        }
        if sha != fe.sha256 {
            return Err(BundleError::HashMismatch {
                path: path.to_owned(),
                name: fe.name.clone(),
                expected: fe.sha256.clone(),
                actual: sha,
            });
        }
    }
    if let Some(extra) = next("the end of the archive")? {
        return Err(malformed(format!(
            "unexpected entry {:?} after the last file",
            entry_name(&extra)
        )));
    }
    Ok(manifest)
}

fn entry_name<R: Read>(e: &tar::Entry<'_, R>) -> String {
    String::from_utf8_lossy(&e.path_bytes()).into_owned()
}

/// Reads a PEM PKCS#8 Ed25519 private key (`hearth key generate`).
pub(crate) fn load_signing_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    hearth_s9pk::key::signing_key_from_pem(&text).map_err(|source| KeyFileError::Key {
        path: path.to_owned(),
        source,
    })
}

/// Reads a PEM SPKI Ed25519 public key (`hearth key public`).
pub(crate) fn load_verifying_key(path: &Path) -> Result<VerifyingKey, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    hearth_s9pk::key::verifying_key_from_pem(&text).map_err(|source| KeyFileError::Key {
        path: path.to_owned(),
        source,
    })
}

/// A key file could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyFileError {
    #[error("reading key {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key {path}: {source}")]
    Key {
        path: PathBuf,
        #[source]
        source: hearth_s9pk::key::KeyError,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn inputs(dir: &Path) -> Vec<(&'static str, PathBuf)> {
        let mut v = Vec::new();
        for (name, len) in [
            ("vmlinuz", 3000),
            ("initrd.img", 10),
            ("root.squashfs", 70_000),
        ] {
            let p = dir.join(name);
            let bytes: Vec<u8> = (0..len)
                .map(|i| u8::try_from(i * 7 % 251).unwrap())
                .collect();
            std::fs::write(&p, bytes).unwrap();
            v.push((name, p));
        }
        v
    }

    fn build(dir: &Path, out: &Path) -> Manifest {
        let files = inputs(dir);
        let refs: Vec<(&str, &Path)> = files.iter().map(|(n, p)| (*n, p.as_path())).collect();
        write(out, "0.1.0", "x86_64-uefi", &refs, &key(1), 1_735_689_600).unwrap()
    }

    #[test]
    fn roundtrip_reproducible_and_readable_by_tar() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.ota"), dir.path().join("b.ota"));
        let m = build(dir.path(), &a);
        build(dir.path(), &b);
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert!(!dir.path().join("a.ota.tmp").exists());
        let got = verify(&a, &key(1).verifying_key(), Some(&dir.path().join("x"))).unwrap();
        assert_eq!(got, m);
        assert_eq!(m.files.len(), 3);
        assert_eq!(
            std::fs::read(dir.path().join("x/root.squashfs")).unwrap(),
            std::fs::read(dir.path().join("root.squashfs")).unwrap()
        );
        let listing = crate::tool::run("tar", &["tvf".as_ref(), a.as_os_str()], 0, None).unwrap();
        let names: Vec<&str> = listing
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "manifest.json",
                "manifest.json.sig",
                "vmlinuz",
                "initrd.img",
                "root.squashfs"
            ]
        );
        assert!(listing.contains("0/0"), "{listing}");
    }

    #[test]
    fn wrong_key_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.ota");
        build(dir.path(), &a);
        let err = verify(&a, &key(2).verifying_key(), None).unwrap_err();
        assert!(matches!(err, BundleError::BadSignature { .. }), "{err}");
        let p = dir.path().join("vmlinuz");
        for bad in ["../x", "manifest.json", "", "a/b"] {
            let err = write(&a, "1", "t", &[(bad, &p)], &key(1), 0).unwrap_err();
            assert!(matches!(err, BundleError::BadName(_)), "{err}");
        }
    }
}
