//! File access for the CA, behind a narrow trait so the certificate logic is tested
//! without a disk. [`DirStore`] is the real one: a directory on the data partition,
//! files written atomically (temporary file, fsync, rename) with mode 0600.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// An error reading or writing one file of the CA store.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct StoreError {
    /// What was being done.
    pub op: &'static str,
    /// The file concerned.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// Where the CA's certificate and key live.
pub trait CaStore: Send + Sync {
    /// The file's bytes, or `None` when it does not exist.
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Replaces the file atomically; it is readable by its owner only (0600).
    fn write_private(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError>;
}

/// A directory of the data partition (created 0700 when missing).
#[derive(Debug, Clone)]
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    /// Opens (creating it 0700 if needed) the directory that holds the CA.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let err = |op, source| StoreError {
            op,
            path: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(|e| err("creating", e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| err("restricting", e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }
}

impl CaStore for DirStore {
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.dir.join(name);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError {
                op: "reading",
                path,
                source,
            }),
        }
    }

    fn write_private(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let err = |op, p: &Path, source| StoreError {
            op,
            path: p.to_path_buf(),
            source,
        };
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| err("creating", &tmp, e))?;
        f.write_all(bytes).map_err(|e| err("writing", &tmp, e))?;
        f.sync_all().map_err(|e| err("syncing", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| err("renaming into", &path, e))?;
        Ok(())
    }
}
