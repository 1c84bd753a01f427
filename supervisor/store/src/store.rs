//! [`Store`]: the in-memory document, the serialized mutate path and the public stream.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::error::{MutateError, StoreError};
use crate::persist::{Commit, Disk};
use crate::pointer;

/// Tuning knobs of a [`Store`]; [`Store::open`] uses the defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreOptions {
    /// How many public revisions [`Store::public_since`] can return (the history ring).
    pub history: usize,
    /// Upper bound on the serialized size of the patches kept in the history ring; the
    /// oldest are dropped first (a client that needs them takes a new dump).
    pub history_bytes: usize,
    /// Compact (new snapshot, empty patch log) after this many patches, bounding both
    /// the file and the replay work at open.
    pub snapshot_every: u64,
    /// Capacity of the broadcast channel; a subscriber that falls further behind gets
    /// `RecvError::Lagged` and must take a new dump (or call [`Store::public_since`]).
    /// The channel keeps its last `channel` revisions alive, so this also bounds memory.
    pub channel: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            history: 1024,
            history_bytes: 8 << 20,
            snapshot_every: 1024,
            channel: 256,
        }
    }
}

/// The result of a successful [`Store::mutate`].
#[derive(Debug)]
pub struct Mutation<T> {
    /// What the closure returned.
    pub value: T,
    /// The new revision, or the current one when the closure changed nothing.
    pub revision: u64,
}

/// The public half of the document at one revision.
#[derive(Debug, Clone, Serialize)]
pub struct Dump {
    /// The revision the value was taken at.
    pub rev: u64,
    /// The value of `/public`.
    pub value: Value,
}

/// One published revision: the change to the public half.
#[derive(Debug, Clone, Serialize)]
pub struct Revision {
    /// The revision number (global: shared with private-only revisions).
    pub rev: u64,
    /// RFC 6902 patch with paths relative to `/public`.
    pub patch: json_patch::Patch,
}

/// A dump of the public half and the receiver of every later public revision.
///
/// The first message on `updates` (if any) is the first public revision after
/// `dump.rev`; none is skipped and none is already contained in the dump. Revision
/// numbers are global, so consecutive messages may jump (the revisions in between
/// touched only `/private`); a gap is not a loss. A loss shows up only as
/// `RecvError::Lagged`, after which the subscriber must take a new dump.
#[derive(Debug)]
pub struct Subscription {
    /// The public half at subscription time.
    pub dump: Dump,
    /// Later public revisions, in order.
    pub updates: broadcast::Receiver<Arc<Revision>>,
}

/// The state document: `{"public": {..}, "private": {..}}` persisted in redb.
///
/// Cheap to clone (an `Arc`); `Send + Sync`. Reads never wait for a disk write.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("revision", &self.revision())
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Held for the whole of a mutation: serializes writers. Guards the disk and the
    /// compaction counter; the document itself lives in `state`.
    writer: Mutex<Writer>,
    /// What readers see. Only replaced after the disk commit succeeded, and the
    /// broadcast happens while its write lock is held, which is what makes
    /// `subscribe` gap- and duplicate-free.
    state: RwLock<State>,
    tx: broadcast::Sender<Arc<Revision>>,
    options: StoreOptions,
}

struct Writer {
    disk: Disk,
    /// Patches in the log since the last snapshot.
    since_snapshot: u64,
}

struct State {
    doc: Arc<Value>,
    revision: u64,
    /// The last public revisions (at most `options.history` of them, at most
    /// `options.history_bytes` of serialized patches), oldest first, with their sizes.
    history: VecDeque<(Arc<Revision>, usize)>,
    history_bytes: usize,
    /// Every public revision after this one is in `history`.
    history_floor: u64,
}

impl Store {
    /// Opens or creates the store at `path` (a redb file). `seed` is the initial document
    /// `{"public": {..}, "private": {..}}`, used only when the store is new.
    pub fn open(path: &Path, seed: Value) -> Result<Store, StoreError> {
        Store::open_with(path, seed, StoreOptions::default())
    }

    /// [`Store::open`] with explicit [`StoreOptions`].
    pub fn open_with(path: &Path, seed: Value, options: StoreOptions) -> Result<Store, StoreError> {
        check_shape(&seed, "seed")?;
        let loaded = Disk::open(path, &seed)?;
        check_shape(&loaded.doc, "stored document").map_err(|e| StoreError::Corrupted {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let (tx, _) = broadcast::channel(options.channel.max(1));
        let state = State {
            doc: Arc::new(loaded.doc),
            revision: loaded.revision,
            history: VecDeque::new(),
            history_bytes: 0,
            // History is not rebuilt from the patch log: clients that knew an earlier
            // revision before a restart take a new dump.
            history_floor: loaded.revision,
        };
        Ok(Store {
            inner: Arc::new(Inner {
                writer: Mutex::new(Writer {
                    disk: loaded.disk,
                    since_snapshot: loaded.revision - loaded.snapshot_rev,
                }),
                state: RwLock::new(state),
                tx,
                options,
            }),
        })
    }

    /// The current revision.
    pub fn revision(&self) -> u64 {
        self.read_state().revision
    }

    /// The value at an RFC 6901 pointer into the whole document (`""` is the root,
    /// `"/public/ui"` the UI preferences).
    pub fn get(&self, pointer: &str) -> Result<Value, StoreError> {
        let doc = Arc::clone(&self.read_state().doc);
        pointer::resolve(&doc, pointer).cloned()
    }

    /// Runs `f` on a copy of the document. If `f` returns `Ok` and changed something, the
    /// RFC 6902 diff is persisted durably as a new revision before this returns, then
    /// published (when it touches `/public`). No change: no new revision, the current
    /// one is returned. `f` returning `Err`: nothing changes.
    ///
    /// Blocking: async callers use `spawn_blocking`. Mutations are serialized, so `f`
    /// should be quick and must not call back into this store's `mutate` (deadlock).
    pub fn mutate<T, E>(
        &self,
        f: impl FnOnce(&mut Value) -> Result<T, E>,
    ) -> Result<Mutation<T>, MutateError<E>> {
        // A panic in `f` poisons the lock but leaves nothing half-done: the document is
        // only replaced after a successful commit. So the poison can be ignored.
        let mut writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (old, old_rev) = {
            let state = self.read_state();
            (Arc::clone(&state.doc), state.revision)
        };
        let mut new = Value::clone(&old);
        let value = f(&mut new).map_err(MutateError::Rejected)?;
        let patch = crate::diff::diff(&old, &new);
        if patch.0.is_empty() {
            return Ok(Mutation {
                value,
                revision: old_rev,
            });
        }
        check_shape(&new, "mutation result").map_err(MutateError::Store)?;
        let rev = old_rev
            .checked_add(1)
            .ok_or_else(|| StoreError::RevisionOverflow {
                path: writer.disk.path().to_path_buf(),
            })
            .map_err(MutateError::Store)?;
        let compact = writer.since_snapshot + 1 >= self.inner.options.snapshot_every;
        writer
            .disk
            .commit(&Commit {
                rev,
                patch: &patch,
                snapshot: compact.then_some(&new),
            })
            .map_err(MutateError::Store)?;
        writer.since_snapshot = if compact {
            0
        } else {
            writer.since_snapshot + 1
        };
        let public = public_patch(patch);
        tracing::debug!(
            rev,
            public_ops = public.0.len(),
            compact,
            "committed revision"
        );

        let mut state = self
            .inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        state.doc = Arc::new(new);
        state.revision = rev;
        if !public.0.is_empty() {
            let size = serde_json::to_vec(&public).map_or(usize::MAX, |v| v.len());
            let revision = Arc::new(Revision { rev, patch: public });
            state.remember(Arc::clone(&revision), size, &self.inner.options);
            // No receivers is not an error: the revision is kept in the history ring.
            let _ = self.inner.tx.send(revision);
        }
        drop(state);
        drop(writer);
        Ok(Mutation {
            value,
            revision: rev,
        })
    }

    /// A dump of the public half and a receiver of every later public revision, taken
    /// atomically: no revision is missing between the dump and the first update, none
    /// is in both.
    pub fn subscribe(&self) -> Subscription {
        let state = self.read_state();
        let updates = self.inner.tx.subscribe();
        let value = state.doc.get("public").cloned().unwrap_or(Value::Null);
        Subscription {
            dump: Dump {
                rev: state.revision,
                value,
            },
            updates,
        }
    }

    /// The public revisions after `rev` (exclusive) up to the current one, oldest first
    /// (empty when nothing public changed), or `None` when some of them are no longer
    /// kept (or `rev` is in the future, e.g. from before a restore): the client must then
    /// take a new dump. After a restart of the process, only revisions made since the
    /// restart are kept.
    pub fn public_since(&self, rev: u64) -> Option<Vec<Arc<Revision>>> {
        let state = self.read_state();
        if rev < state.history_floor || rev > state.revision {
            return None;
        }
        Some(
            state
                .history
                .iter()
                .map(|(r, _)| r)
                .filter(|r| r.rev > rev)
                .cloned()
                .collect(),
        )
    }

    /// How many [`Subscription`] receivers are alive (for metrics and leak tests).
    pub fn subscribers(&self) -> usize {
        self.inner.tx.receiver_count()
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // Writers never panic while holding the state lock (plain field assignments).
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Appends a published revision to the history ring, then drops the oldest entries
    /// until both limits hold (possibly `revision` itself, if it alone is too big).
    fn remember(&mut self, revision: Arc<Revision>, size: usize, options: &StoreOptions) {
        let rev = revision.rev;
        self.history.push_back((revision, size));
        self.history_bytes = self.history_bytes.saturating_add(size);
        while self.history.len() > options.history || self.history_bytes > options.history_bytes {
            match self.history.pop_front() {
                Some((evicted, bytes)) => {
                    self.history_floor = evicted.rev;
                    self.history_bytes = self.history_bytes.saturating_sub(bytes);
                }
                None => {
                    self.history_floor = rev;
                    break;
                }
            }
        }
    }
}

/// The document must be an object with exactly `public` and `private`, both objects:
/// every byte of state is then classified, and `/public` can always be dumped.
fn check_shape(doc: &Value, context: &'static str) -> Result<(), StoreError> {
    let invalid = |reason: String| StoreError::InvalidDocument { context, reason };
    let map = doc
        .as_object()
        .ok_or_else(|| invalid("the root is not an object".into()))?;
    for half in ["public", "private"] {
        match map.get(half) {
            Some(Value::Object(_)) => {}
            Some(_) => return Err(invalid(format!("/{half} is not an object"))),
            None => return Err(invalid(format!("/{half} is missing"))),
        }
    }
    if let Some(extra) = map.keys().find(|k| *k != "public" && *k != "private") {
        return Err(invalid(format!("unexpected top-level key {extra:?}")));
    }
    Ok(())
}

/// The operations of a whole-document patch that touch `/public`, with paths made
/// relative to it. `check_shape` guarantees `/public` is an object before and after, so
/// the diff never replaces `/public` itself: every public operation is strictly below it.
fn public_patch(patch: json_patch::Patch) -> json_patch::Patch {
    use json_patch::PatchOperation as Op;
    use json_patch::jsonptr::PointerBuf;
    let relative = |p: &PointerBuf| match p.split_front() {
        Some((first, rest)) if first.decoded() == "public" => Some(rest.to_buf()),
        _ => None,
    };
    let ops = patch
        .0
        .into_iter()
        .filter_map(|op| match op {
            Op::Add(mut o) => relative(&o.path).map(|p| {
                o.path = p;
                Op::Add(o)
            }),
            Op::Remove(mut o) => relative(&o.path).map(|p| {
                o.path = p;
                Op::Remove(o)
            }),
            Op::Replace(mut o) => relative(&o.path).map(|p| {
                o.path = p;
                Op::Replace(o)
            }),
            // `json_patch::diff` emits only add, remove and replace.
            Op::Move(_) | Op::Copy(_) | Op::Test(_) => None,
        })
        .collect();
    json_patch::Patch(ops)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
#[path = "store_tests.rs"]
mod tests;
