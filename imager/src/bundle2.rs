//! OTA bundles, format v2 (`hearth-<version>-<target>.ota2`), written beside the v1 `.ota`.
//!
//! A POSIX ustar archive with, in this order: `manifest.hota` (the signed envelope of
//! `hearth_ota::sign`: version, target, compatibility, accepted source versions, minimum
//! updater, kernel release, per image size + SHA-256 + BLAKE3 + chunk-index hash), then
//! `<image>.chunks` for every image (its binary FastCDC index, `hearth_ota::chunk`), then
//! the images (`vmlinuz`, `initrd.img`, `root.squashfs`). Headers as in v1 (0644, 0:0,
//! mtime = epoch), so the same inputs give the same bytes. The format itself, its checks
//! and the reader live in `hearth-ota` (needed on the device); this module only lays out
//! the file. Every input is read once to index it and again while copying; a difference
//! (an input changed meanwhile) fails the write. Temporary file, then rename.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::Path;

use ed25519_dalek::SigningKey;
use hearth_ota::{Image, Manifest, chunk};
use sha2::{Digest, Sha256};

use crate::bundle::BundleError;

/// Name of the envelope entry.
pub(crate) const ENVELOPE_NAME: &str = "manifest.hota";

/// What the manifest says beyond the images.
#[derive(Debug, Clone)]
pub(crate) struct Spec<'a> {
    pub(crate) version: &'a str,
    pub(crate) target: &'a str,
    pub(crate) kernel_release: &'a str,
    /// Running versions it applies to; `None`: every older version (`<V:0`).
    pub(crate) source_versions: Option<&'a str>,
}

/// The compatibility string of a target's disk layout (A/B slots, version 1).
pub(crate) fn compatibility(target: &str) -> String {
    format!("hearth-{target}-ab/1")
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BundleError {
    let path = path.to_owned();
    move |source| BundleError::Io { op, path, source }
}

fn bad(reason: String, out: &Path) -> BundleError {
    BundleError::Malformed {
        path: out.to_owned(),
        reason,
    }
}

/// Writes the v2 bundle `out` of `files` (name → path, bundle order); returns the manifest.
pub(crate) fn write(
    out: &Path,
    spec: &Spec<'_>,
    files: &[(&str, &Path)],
    key: &SigningKey,
    epoch: u64,
) -> Result<Manifest, BundleError> {
    let mut images = Vec::new();
    let mut indexes = Vec::new();
    for (name, src) in files {
        if !hearth_ota::plain_name(name) || images.iter().any(|i: &Image| i.name == *name) {
            return Err(BundleError::BadName((*name).to_owned()));
        }
        let f = File::open(src).map_err(io("opening", src))?;
        let d = chunk::digest(BufReader::new(f))
            .map_err(|e| io("indexing", src)(std::io::Error::other(e.to_string())))?;
        images.push(Image::from_digest(name, &d));
        indexes.push(chunk::encode_index(&d.chunks));
    }
    let parse = |field: &str, s: &str| bad(format!("{field} {s:?} does not parse"), out);
    let source = match spec.source_versions {
        Some(r) => r.parse().map_err(|_| parse("source versions", r))?,
        None => format!("<{}:0", spec.version)
            .parse()
            .map_err(|_| parse("version", spec.version))?,
    };
    let manifest = Manifest {
        version: spec
            .version
            .parse()
            .map_err(|_| parse("version", spec.version))?,
        target: spec.target.to_owned(),
        compatibility: compatibility(spec.target),
        source_versions: source,
        min_updater: hearth_ota::UPDATER_VERSION
            .parse()
            .map_err(|_| parse("updater version", hearth_ota::UPDATER_VERSION))?,
        kernel_release: spec.kernel_release.to_owned(),
        images,
    };
    // What we sign must be what a device accepts.
    Manifest::parse(&manifest.to_json())
        .map_err(|e| bad(format!("the manifest would not verify: {e}"), out))?;
    let envelope = hearth_ota::sign(&manifest, key);

    let tmp = out.with_extension("ota2.tmp");
    let result = write_archive(&tmp, out, &manifest, &envelope, &indexes, files, epoch);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, out).map_err(io("renaming into place", out))?;
    Ok(manifest)
}

fn header(name: &str, size: u64, epoch: u64) -> std::io::Result<tar::Header> {
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

fn write_archive(
    tmp: &Path,
    out: &Path,
    manifest: &Manifest,
    envelope: &[u8],
    indexes: &[Vec<u8>],
    files: &[(&str, &Path)],
    epoch: u64,
) -> Result<(), BundleError> {
    let w = || io("writing", tmp);
    let f = File::create(tmp).map_err(io("creating", tmp))?;
    let mut b = tar::Builder::new(BufWriter::new(f));
    let mut small = |name: &str, bytes: &[u8]| -> Result<(), BundleError> {
        let h = header(name, bytes.len() as u64, epoch).map_err(w())?;
        b.append(&h, bytes).map_err(w())
    };
    small(ENVELOPE_NAME, envelope)?;
    for (img, idx) in manifest.images.iter().zip(indexes) {
        small(&format!("{}.chunks", img.name), idx)?;
    }
    for ((name, src), img) in files.iter().zip(&manifest.images) {
        let h = header(name, img.size, epoch).map_err(w())?;
        let f = File::open(src).map_err(io("opening", src))?;
        let mut r = Hashing {
            inner: BufReader::new(f).take(img.size),
            sha: Sha256::new(),
            n: 0,
        };
        b.append(&h, &mut r).map_err(w())?;
        let sha: [u8; 32] = r.sha.finalize().into();
        if r.n != img.size || sha != img.sha256 {
            return Err(BundleError::InputChanged {
                bundle: out.to_owned(),
                input: src.to_path_buf(),
            });
        }
    }
    let inner = b.into_inner().map_err(w())?;
    let file = inner.into_inner().map_err(|e| w()(e.into_error()))?;
    file.sync_all().map_err(io("syncing", tmp))
}

struct Hashing<R> {
    inner: R,
    sha: Sha256,
    n: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.sha.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hearth_ota::{Device, VerifyError};

    fn inputs(dir: &Path, salt: u8) -> Vec<(&'static str, std::path::PathBuf)> {
        let mut v = Vec::new();
        for (name, len) in [
            ("vmlinuz", 3000usize),
            ("initrd.img", 10),
            ("root.squashfs", 300_000),
        ] {
            let p = dir.join(name);
            let mut x = 0x9e37_79b9_u32;
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x.to_le_bytes()[0]
                })
                .collect();
            if salt != 0 && len > 1000 {
                bytes.splice(len / 2..len / 2, [salt; 200]);
            }
            std::fs::write(&p, bytes).unwrap();
            v.push((name, p));
        }
        v
    }

    fn build(dir: &Path, out: &Path, version: &str) -> Manifest {
        let files = inputs(dir, 0);
        let refs: Vec<(&str, &Path)> = files.iter().map(|(n, p)| (*n, p.as_path())).collect();
        let spec = Spec {
            version,
            target: "x86_64-uefi",
            kernel_release: "6.12.57+deb12-amd64",
            source_versions: None,
        };
        let key = SigningKey::from_bytes(&[1; 32]);
        write(out, &spec, &refs, &key, 1_735_689_600).unwrap()
    }

    fn entries(path: &Path) -> Vec<(String, Vec<u8>)> {
        let mut a = tar::Archive::new(File::open(path).unwrap());
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let mut v = Vec::new();
                e.read_to_end(&mut v).unwrap();
                (name, v)
            })
            .collect()
    }

    #[test]
    fn v2_bundle_is_reproducible_and_verifies_on_a_device() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.ota2"), dir.path().join("b.ota2"));
        let m = build(dir.path(), &a, "0.2.0");
        build(dir.path(), &b, "0.2.0");
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert!(!dir.path().join("a.ota2.tmp").exists());
        let e = entries(&a);
        let names: Vec<&str> = e.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "manifest.hota",
                "vmlinuz.chunks",
                "initrd.img.chunks",
                "root.squashfs.chunks",
                "vmlinuz",
                "initrd.img",
                "root.squashfs"
            ]
        );
        let key = SigningKey::from_bytes(&[1; 32]).verifying_key();
        let mut device = Device {
            target: "x86_64-uefi".into(),
            compatibility: compatibility("x86_64-uefi"),
            running: "0.1.0".parse().unwrap(),
            updater: hearth_ota::UPDATER_VERSION.parse().unwrap(),
        };
        let (got, _) = hearth_ota::verify(&e[0].1, &[key], &device).unwrap();
        assert_eq!(got, m);
        assert_eq!(got.kernel_release, "6.12.57+deb12-amd64");
        // Each chunk index matches its hash, count and size, and rebuilds the image.
        for (i, img) in got.images.iter().enumerate() {
            let idx = &e[1 + i].1;
            assert_eq!(blake3::hash(idx).as_bytes(), &img.index_blake3);
            let chunks = chunk::decode_index(idx, img.chunk_count, img.size).unwrap();
            let data = &e[4 + i].1;
            let mut out = Vec::new();
            chunk::reconstruct(
                &chunks,
                &chunk::Seed::default(),
                &mut std::io::Cursor::new(Vec::new()),
                |_, c, off| {
                    let o = usize::try_from(off).unwrap();
                    Ok(data[o..o + c.len as usize].to_vec())
                },
                &mut out,
            )
            .unwrap();
            assert_eq!(&out, data);
        }
        // The default source range is "every older version": not a re-install or downgrade.
        device.running = "0.2.0".parse().unwrap();
        assert!(matches!(
            hearth_ota::verify(&e[0].1, &[key], &device).unwrap_err(),
            VerifyError::SourceExcluded { .. }
        ));
    }

    /// Delta between two builds whose root differs by a 200-byte insertion.
    #[test]
    fn delta_between_two_bundles() {
        let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let old = inputs(d0.path(), 0);
        let new = inputs(d1.path(), 7);
        let old_root = std::fs::read(&old[2].1).unwrap();
        let new_root = std::fs::read(&new[2].1).unwrap();
        let seed = chunk::Seed::build(&old_root[..]).unwrap();
        let d = chunk::digest(&new_root[..]).unwrap();
        let s = chunk::plan(&d.chunks, &seed);
        println!(
            "delta: {} of {} bytes of the root to fetch",
            s.fetched, d.size
        );
        assert!(
            s.fetched > 0 && s.fetched <= 2 * u64::from(chunk::CHUNK_MAX),
            "{s:?}"
        );
        assert_eq!(s.fetched + s.reused, d.size);
    }
}
