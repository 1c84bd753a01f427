//! The redb file: layout, loading with verification, and the one write path.
//!
//! Layout (format 1):
//! - `meta`: `"format"` → 1, `"revision"` → the current revision.
//! - `snapshot`: exactly one entry, `S` → the whole document (JSON) at revision `S`.
//! - `patches`: `r` → the RFC 6902 patch (JSON, whole-document paths) turning revision
//!   `r - 1` into `r`, for every `r` in `S + 1 ..= revision` and no other key.
//!
//! Every write is one transaction with [`Durability::Immediate`], so after `commit`
//! returns the revision survives a crash; a transaction interrupted by a crash is
//! discarded by redb as a whole, so the three tables are always mutually consistent.

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use serde_json::Value;

use crate::error::StoreError;

const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const SNAPSHOT: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("snapshot");
const PATCHES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("patches");

const KEY_FORMAT: &str = "format";
const KEY_REVISION: &str = "revision";
const FORMAT: u64 = 1;

/// The open redb file. Only [`crate::store`]'s mutate path calls [`Disk::commit`].
pub(crate) struct Disk {
    db: Database,
    path: PathBuf,
}

/// What [`Disk::open`] found on disk.
pub(crate) struct Loaded {
    pub(crate) disk: Disk,
    pub(crate) doc: Value,
    pub(crate) revision: u64,
    /// Revision of the stored snapshot (the number of patches to replay is
    /// `revision - snapshot_rev`).
    pub(crate) snapshot_rev: u64,
}

/// The write of one new revision.
pub(crate) struct Commit<'a> {
    pub(crate) rev: u64,
    /// The whole-document patch from `rev - 1`.
    pub(crate) patch: &'a json_patch::Patch,
    /// When set, the document at `rev`: it replaces the snapshot and the patch log is
    /// emptied in the same transaction (compaction).
    pub(crate) snapshot: Option<&'a Value>,
}

impl Disk {
    /// Opens `path`, creating it with `seed` at revision 0 when it holds no store yet.
    pub(crate) fn open(path: &Path, seed: &Value) -> Result<Loaded, StoreError> {
        let db = Database::create(path).map_err(|e| StoreError::db("open database", path, e))?;
        let disk = Disk {
            db,
            path: path.to_path_buf(),
        };
        match disk.read_format()? {
            None => {
                disk.initialize(seed)?;
                sync_parent_dir(path)?;
                tracing::info!(path = %path.display(), "created new store");
                Ok(Loaded {
                    disk,
                    doc: seed.clone(),
                    revision: 0,
                    snapshot_rev: 0,
                })
            }
            Some(FORMAT) => disk.load(),
            Some(other) => Err(disk.corrupted(format!("unknown format version {other}"))),
        }
    }

    /// The redb file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn corrupted(&self, reason: String) -> StoreError {
        StoreError::Corrupted {
            path: self.path.clone(),
            reason,
        }
    }

    /// `None` when the file has no `meta` table: a store that was never initialized
    /// (the initializing transaction creates every table at once).
    fn read_format(&self) -> Result<Option<u64>, StoreError> {
        let path = &self.path;
        let txn = self
            .db
            .begin_read()
            .map_err(|e| StoreError::db("begin read", path, e))?;
        let meta = match txn.open_table(META) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(StoreError::db("open meta table", path, e)),
        };
        let format = meta
            .get(KEY_FORMAT)
            .map_err(|e| StoreError::db("read format", path, e))?
            .map(|g| g.value());
        match format {
            Some(f) => Ok(Some(f)),
            None => Err(self.corrupted("meta table without a format entry".into())),
        }
    }

    fn initialize(&self, seed: &Value) -> Result<(), StoreError> {
        let path = &self.path;
        let bytes = encode(path, "seed", seed)?;
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| StoreError::db("begin initialize", path, e))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| StoreError::db("set durability", path, e))?;
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| StoreError::db("create meta table", path, e))?;
            meta.insert(KEY_FORMAT, FORMAT)
                .map_err(|e| StoreError::db("write format", path, e))?;
            meta.insert(KEY_REVISION, 0)
                .map_err(|e| StoreError::db("write revision", path, e))?;
            let mut snap = txn
                .open_table(SNAPSHOT)
                .map_err(|e| StoreError::db("create snapshot table", path, e))?;
            snap.insert(0, bytes.as_slice())
                .map_err(|e| StoreError::db("write seed snapshot", path, e))?;
            txn.open_table(PATCHES)
                .map_err(|e| StoreError::db("create patch table", path, e))?;
        }
        txn.commit()
            .map_err(|e| StoreError::db("commit initialize", path, e))
    }

    /// Loads the snapshot, replays the patch log and checks that the revisions are
    /// contiguous and end at the recorded revision.
    fn load(self) -> Result<Loaded, StoreError> {
        let path = &self.path;
        let txn = self
            .db
            .begin_read()
            .map_err(|e| StoreError::db("begin read", path, e))?;
        let meta = txn
            .open_table(META)
            .map_err(|e| StoreError::db("open meta table", path, e))?;
        let revision = meta
            .get(KEY_REVISION)
            .map_err(|e| StoreError::db("read revision", path, e))?
            .map(|g| g.value())
            .ok_or_else(|| self.corrupted("no revision entry".into()))?;

        let snap_table = txn
            .open_table(SNAPSHOT)
            .map_err(|e| StoreError::db("open snapshot table", path, e))?;
        let mut snaps = snap_table
            .iter()
            .map_err(|e| StoreError::db("list snapshots", path, e))?;
        let (snapshot_rev, mut doc) = match snaps.next() {
            None => return Err(self.corrupted("no snapshot".into())),
            Some(entry) => {
                let (k, v) = entry.map_err(|e| StoreError::db("read snapshot", path, e))?;
                let doc: Value =
                    serde_json::from_slice(v.value()).map_err(|source| StoreError::Decode {
                        path: path.clone(),
                        what: format!("snapshot of revision {}", k.value()),
                        source,
                    })?;
                (k.value(), doc)
            }
        };
        if snaps.next().is_some() {
            return Err(self.corrupted("more than one snapshot".into()));
        }
        if snapshot_rev > revision {
            return Err(self.corrupted(format!(
                "snapshot revision {snapshot_rev} is after the current revision {revision}"
            )));
        }

        let patches = txn
            .open_table(PATCHES)
            .map_err(|e| StoreError::db("open patch table", path, e))?;
        let mut expected = snapshot_rev;
        for entry in patches
            .iter()
            .map_err(|e| StoreError::db("list patches", path, e))?
        {
            let (k, v) = entry.map_err(|e| StoreError::db("read patch", path, e))?;
            let rev = k.value();
            if rev != expected + 1 {
                return Err(self.corrupted(format!(
                    "patch log has revision {rev} where {} was expected",
                    expected + 1
                )));
            }
            let patch: json_patch::Patch =
                serde_json::from_slice(v.value()).map_err(|source| StoreError::Decode {
                    path: path.clone(),
                    what: format!("patch of revision {rev}"),
                    source,
                })?;
            json_patch::patch(&mut doc, &patch).map_err(|source| StoreError::Replay {
                path: path.clone(),
                rev,
                source,
            })?;
            expected = rev;
        }
        if expected != revision {
            return Err(self.corrupted(format!(
                "patch log ends at revision {expected} but the recorded revision is {revision}"
            )));
        }
        drop((meta, snap_table, patches, txn));
        tracing::info!(
            path = %path.display(),
            revision,
            snapshot_rev,
            replayed = revision - snapshot_rev,
            "opened store"
        );
        Ok(Loaded {
            disk: self,
            doc,
            revision,
            snapshot_rev,
        })
    }

    /// Persists one revision durably. On error nothing was written.
    pub(crate) fn commit(&self, c: &Commit<'_>) -> Result<(), StoreError> {
        let path = &self.path;
        let patch_bytes = encode(path, "patch", c.patch)?;
        let snap_bytes = c
            .snapshot
            .map(|d| encode(path, "snapshot", d))
            .transpose()?;

        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| StoreError::db("begin commit", path, e))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| StoreError::db("set durability", path, e))?;
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|e| StoreError::db("open meta table", path, e))?;
            meta.insert(KEY_REVISION, c.rev)
                .map_err(|e| StoreError::db("write revision", path, e))?;
            let mut patches = txn
                .open_table(PATCHES)
                .map_err(|e| StoreError::db("open patch table", path, e))?;
            match &snap_bytes {
                None => {
                    patches
                        .insert(c.rev, patch_bytes.as_slice())
                        .map_err(|e| StoreError::db("write patch", path, e))?;
                }
                Some(snap) => {
                    patches
                        .retain(|_, _| false)
                        .map_err(|e| StoreError::db("truncate patch log", path, e))?;
                    let mut snaps = txn
                        .open_table(SNAPSHOT)
                        .map_err(|e| StoreError::db("open snapshot table", path, e))?;
                    snaps
                        .retain(|_, _| false)
                        .map_err(|e| StoreError::db("drop old snapshot", path, e))?;
                    snaps
                        .insert(c.rev, snap.as_slice())
                        .map_err(|e| StoreError::db("write snapshot", path, e))?;
                }
            }
        }
        txn.commit()
            .map_err(|e| StoreError::db("commit revision", path, e))
    }
}

/// Makes the directory entry of a newly created store file durable: without this, a
/// power loss soon after creation could lose the file although its commits were
/// fsync'd, and the next start would silently begin again from the seed.
fn sync_parent_dir(path: &Path) -> Result<(), StoreError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| StoreError::SyncDir {
            path: parent.to_path_buf(),
            source,
        })
}

fn encode<T: serde::Serialize>(
    path: &Path,
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Encode {
        path: path.to_path_buf(),
        what,
        source,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;
    use serde_json::json;

    fn store_with_revisions(n: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let seed = json!({"public": {"n": 0}, "private": {}});
        let loaded = Disk::open(&path, &seed).unwrap();
        let mut doc = seed;
        for rev in 1..=n {
            let mut next = doc.clone();
            next["public"]["n"] = json!(rev);
            let patch = json_patch::diff(&doc, &next);
            loaded
                .disk
                .commit(&Commit {
                    rev,
                    patch: &patch,
                    snapshot: None,
                })
                .unwrap();
            doc = next;
        }
        (dir, path)
    }

    fn tamper(path: &Path, f: impl FnOnce(&redb::WriteTransaction)) {
        let db = Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        f(&txn);
        txn.commit().unwrap();
    }

    fn open_err(path: &Path) -> String {
        match Disk::open(path, &json!({"public": {}, "private": {}})) {
            Err(StoreError::Corrupted { reason, .. }) => reason,
            Err(other) => panic!("expected Corrupted, got {other}"),
            Ok(l) => panic!("opened a corrupted store at revision {}", l.revision),
        }
    }

    #[test]
    fn replays_the_patch_log_after_the_snapshot() {
        let (_dir, path) = store_with_revisions(5);
        let loaded = Disk::open(&path, &json!({"public": {}, "private": {}})).unwrap();
        assert_eq!((loaded.revision, loaded.snapshot_rev), (5, 0));
        assert_eq!(loaded.doc, json!({"public": {"n": 5}, "private": {}}));
    }

    #[test]
    fn a_gap_in_the_patch_log_is_corruption() {
        let (_dir, path) = store_with_revisions(5);
        tamper(&path, |txn| {
            txn.open_table(PATCHES).unwrap().remove(3).unwrap();
        });
        assert!(open_err(&path).contains("revision 4 where 3 was expected"));
    }

    #[test]
    fn a_missing_tail_is_corruption() {
        let (_dir, path) = store_with_revisions(5);
        tamper(&path, |txn| {
            txn.open_table(PATCHES).unwrap().remove(5).unwrap();
        });
        assert!(open_err(&path).contains("ends at revision 4"));
    }

    #[test]
    fn an_undecodable_patch_is_an_error() {
        let (_dir, path) = store_with_revisions(2);
        tamper(&path, |txn| {
            txn.open_table(PATCHES)
                .unwrap()
                .insert(2, b"not json".as_slice())
                .unwrap();
        });
        let err = Disk::open(&path, &json!({"public": {}, "private": {}})).err();
        assert!(matches!(err, Some(StoreError::Decode { .. })), "{err:?}");
    }

    #[test]
    fn a_missing_snapshot_is_corruption() {
        let (_dir, path) = store_with_revisions(1);
        tamper(&path, |txn| {
            txn.open_table(SNAPSHOT).unwrap().remove(0).unwrap();
        });
        assert_eq!(open_err(&path), "no snapshot");
    }
}
