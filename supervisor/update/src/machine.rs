//! Planner, executor and the traits they act through.

use hearth_ota::chunk::{ChunkRef, Seed};
use sha2::{Digest, Sha256};

/// Bytes written between two checkpoints (default of [`Journal::checkpoint`]).
pub const CHECKPOINT_BYTES: u64 = 4 << 20;
/// Trial boots a published slot gets.
pub const TRIES: u8 = 3;

/// An A/B root slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Slot A.
    A,
    /// Slot B.
    B,
}

impl Slot {
    /// The other slot.
    pub fn other(self) -> Self {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
}

/// A boot entry as the boot loader holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    /// Which slot it boots.
    pub slot: Slot,
    /// `None`: committed; `Some(n)`: pending a trial with `n` tries left.
    pub tries_left: Option<u8>,
    /// SHA-256 of the image the entry was published for.
    pub image_sha256: [u8; 32],
    /// Its size (the slot's first `image_size` bytes).
    pub image_size: u64,
}

/// Raw slot access (block device partitions on the device).
pub trait Disk {
    /// Size of a slot in bytes.
    fn slot_size(&self, slot: Slot) -> u64;
    /// Reads `buf.len()` bytes at `offset`.
    fn read_at(&mut self, slot: Slot, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
    /// Writes `data` at `offset` (durable only after [`Disk::sync`]).
    fn write_at(&mut self, slot: Slot, offset: u64, data: &[u8]) -> std::io::Result<()>;
    /// `fdatasync` of the slot.
    fn sync(&mut self, slot: Slot) -> std::io::Result<()>;
}

/// The boot loader's entries (systemd-boot entries with boot counting, or autoboot.txt).
pub trait BootLoader {
    /// Current entries.
    fn entries(&self) -> Vec<BootEntry>;
    /// Removes the slot's entry (idempotent).
    fn disarm(&mut self, slot: Slot) -> std::io::Result<()>;
    /// Atomically installs a pending entry for `slot` (replacing any).
    fn publish(&mut self, slot: Slot, tries: u8, image: (u64, [u8; 32])) -> std::io::Result<()>;
}

/// The durable journal (a file written by rename on the data partition).
pub trait JournalStore {
    /// The saved journal, if an update is in progress.
    fn load(&self) -> std::io::Result<Option<Journal>>;
    /// Saves atomically.
    fn save(&mut self, j: &Journal) -> std::io::Result<()>;
    /// Removes it (the update is finished).
    fn clear(&mut self) -> std::io::Result<()>;
}

/// Where missing chunks come from (HTTP range requests into the published image, or the
/// bundle file).
pub trait Source {
    /// The `len` bytes of the new image at `offset`.
    fn fetch(&mut self, offset: u64, len: u32) -> std::io::Result<Vec<u8>>;
}

/// The image being installed (from a verified manifest and its chunk index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the image.
    pub sha256: [u8; 32],
    /// BLAKE3 of the image.
    pub blake3: [u8; 32],
    /// Its chunk index.
    pub chunks: Vec<ChunkRef>,
}

/// Where the update stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Remove the inactive slot's entry.
    Disarm,
    /// Chunks before `next` (ending at `offset`) are durable in the slot.
    Write {
        /// Next chunk index.
        next: usize,
        /// Its offset.
        offset: u64,
    },
    /// Compare the slot's hash.
    ReadBack,
    /// Install the pending entry.
    Publish,
}

/// The persisted state of an update in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    /// The running slot (the seed).
    pub running: Slot,
    /// The slot being written.
    pub slot: Slot,
    /// What is written.
    pub target: Target,
    /// Where it stands.
    pub phase: Phase,
    /// Bytes written between two checkpoints.
    pub checkpoint: u64,
}

/// The next thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Disarm `slot`.
    Disarm(Slot),
    /// Write chunks `from..to` starting at `offset`, sync, checkpoint.
    Write {
        /// First chunk.
        from: usize,
        /// One past the last.
        to: usize,
        /// Offset of `from`.
        offset: u64,
    },
    /// Read the slot back and compare.
    ReadBack,
    /// Publish the entry.
    Publish,
}

/// The planner: the next effect for `j`.
pub fn plan(j: &Journal) -> Effect {
    match j.phase {
        Phase::Disarm => Effect::Disarm(j.slot),
        Phase::Write { next, offset } if next < j.target.chunks.len() => {
            let mut to = next;
            let mut bytes = 0u64;
            while to < j.target.chunks.len() && bytes < j.checkpoint.max(1) {
                bytes += u64::from(j.target.chunks[to].len);
                to += 1;
            }
            Effect::Write {
                from: next,
                to,
                offset,
            }
        }
        Phase::Write { .. } | Phase::ReadBack => Effect::ReadBack,
        Phase::Publish => Effect::Publish,
    }
}

/// An update was refused or failed; the system stays as it was (committed slot intact).
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// A precondition does not hold.
    #[error("update refused: {0}")]
    Precondition(String),
    /// An I/O operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A fetched chunk does not hash to its index entry.
    #[error("chunk {index} at offset {offset} does not match its hash; nothing of it was written")]
    BadChunk {
        /// Index.
        index: usize,
        /// Offset.
        offset: u64,
    },
    /// The slot read back differs from the manifest.
    #[error("slot {slot:?} read back does not match the signed image hash")]
    ReadBack {
        /// The slot.
        slot: Slot,
    },
}

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> UpdateError {
    move |source| UpdateError::Io { op, source }
}

/// The executor.
pub struct Updater<E> {
    env: E,
    journal: Journal,
    seed: Option<Seed>,
}

impl<E> std::fmt::Debug for Updater<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updater")
            .field("journal", &self.journal.phase)
            .finish()
    }
}

/// Reads a whole slot prefix through [`Disk`].
struct SlotReader<'a, D: Disk> {
    disk: &'a mut D,
    slot: Slot,
    pos: u64,
    end: u64,
}

impl<D: Disk> std::io::Read for SlotReader<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = usize::try_from((self.end - self.pos).min(buf.len() as u64)).unwrap_or(0);
        self.disk.read_at(self.slot, self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<E: Disk + BootLoader + JournalStore + Source> Updater<E> {
    /// Starts an update of the slot other than `running` to `target`, after the
    /// preconditions; saves the first journal.
    pub fn start(
        mut env: E,
        running: Slot,
        target: Target,
        checkpoint: u64,
    ) -> Result<Self, UpdateError> {
        if env.load().map_err(io("reading the journal"))?.is_some() {
            return Err(UpdateError::Precondition(
                "an update is already in progress".into(),
            ));
        }
        let entries = env.entries();
        if !entries
            .iter()
            .any(|e| e.slot == running && e.tries_left.is_none())
        {
            return Err(UpdateError::Precondition(
                "the running slot is not committed".into(),
            ));
        }
        if entries.iter().any(|e| e.tries_left.is_some()) {
            return Err(UpdateError::Precondition(
                "another slot is pending a trial boot".into(),
            ));
        }
        let slot = running.other();
        if target.size > env.slot_size(slot) {
            return Err(UpdateError::Precondition(format!(
                "the image ({} bytes) is larger than slot {slot:?} ({} bytes)",
                target.size,
                env.slot_size(slot)
            )));
        }
        let journal = Journal {
            running,
            slot,
            target,
            phase: Phase::Disarm,
            checkpoint,
        };
        env.save(&journal).map_err(io("saving the journal"))?;
        Ok(Self {
            env,
            journal,
            seed: None,
        })
    }

    /// Continues the update the saved journal describes, if any.
    pub fn resume(env: E) -> Result<Option<Self>, UpdateError> {
        let Some(journal) = env.load().map_err(io("reading the journal"))? else {
            return Ok(None);
        };
        Ok(Some(Self {
            env,
            journal,
            seed: None,
        }))
    }

    /// The journal as it stands.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The environment (to inspect fakes).
    pub fn into_env(self) -> E {
        self.env
    }

    /// Performs the next effect; `Ok(true)` when the update is published and finished.
    pub fn step(&mut self) -> Result<bool, UpdateError> {
        match plan(&self.journal) {
            Effect::Disarm(slot) => {
                self.env.disarm(slot).map_err(io("disarming the slot"))?;
                self.set(Phase::Write { next: 0, offset: 0 })?;
            }
            Effect::Write { from, to, offset } => self.write(from, to, offset)?,
            Effect::ReadBack => {
                let (slot, size) = (self.journal.slot, self.journal.target.size);
                let mut r = SlotReader {
                    disk: &mut self.env,
                    slot,
                    pos: 0,
                    end: size,
                };
                let mut sha = Sha256::new();
                let mut b3 = blake3::Hasher::new();
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = std::io::Read::read(&mut r, &mut buf).map_err(io("reading back"))?;
                    if n == 0 {
                        break;
                    }
                    sha.update(&buf[..n]);
                    b3.update(&buf[..n]);
                }
                let t = &self.journal.target;
                let sha: [u8; 32] = sha.finalize().into();
                if sha != t.sha256 || b3.finalize().as_bytes() != &t.blake3 {
                    // Rewrite from the start next time: the slot is not what was checked.
                    self.set(Phase::Write { next: 0, offset: 0 })?;
                    return Err(UpdateError::ReadBack { slot });
                }
                self.set(Phase::Publish)?;
            }
            Effect::Publish => {
                let t = &self.journal.target;
                let (slot, image) = (self.journal.slot, (t.size, t.sha256));
                self.env
                    .publish(slot, TRIES, image)
                    .map_err(io("publishing the boot entry"))?;
                self.env.clear().map_err(io("clearing the journal"))?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Steps until finished.
    pub fn run(&mut self) -> Result<(), UpdateError> {
        while !self.step()? {}
        Ok(())
    }

    fn set(&mut self, phase: Phase) -> Result<(), UpdateError> {
        let mut j = self.journal.clone();
        j.phase = phase;
        self.env.save(&j).map_err(io("saving the journal"))?;
        self.journal = j;
        Ok(())
    }

    fn write(&mut self, from: usize, to: usize, mut offset: u64) -> Result<(), UpdateError> {
        let running = self.journal.running;
        let slot = self.journal.slot;
        if self.seed.is_none() {
            let end = self.env.slot_size(running);
            let r = SlotReader {
                disk: &mut self.env,
                slot: running,
                pos: 0,
                end,
            };
            let seed = Seed::build(r).map_err(|e| UpdateError::Io {
                op: "building the seed from the running slot",
                source: std::io::Error::other(e.to_string()),
            })?;
            self.seed = Some(seed);
        }
        let chunks = self.journal.target.chunks[from..to].to_vec();
        for (k, c) in chunks.iter().enumerate() {
            let mut data = None;
            if let Some(at) = self.seed.as_ref().and_then(|s| s.offset_of(c)) {
                let mut buf = vec![0u8; c.len as usize];
                self.env
                    .read_at(running, at, &mut buf)
                    .map_err(io("reading the seed"))?;
                if blake3::hash(&buf).as_bytes() == &c.hash {
                    data = Some(buf);
                }
            }
            let data = match data {
                Some(d) => d,
                None => {
                    let d = self
                        .env
                        .fetch(offset, c.len)
                        .map_err(io("fetching a chunk"))?;
                    if d.len() != c.len as usize || blake3::hash(&d).as_bytes() != &c.hash {
                        return Err(UpdateError::BadChunk {
                            index: from + k,
                            offset,
                        });
                    }
                    d
                }
            };
            self.env
                .write_at(slot, offset, &data)
                .map_err(io("writing the slot"))?;
            offset += u64::from(c.len);
        }
        self.env.sync(slot).map_err(io("syncing the slot"))?;
        let phase = if to == self.journal.target.chunks.len() {
            Phase::ReadBack
        } else {
            Phase::Write { next: to, offset }
        };
        self.set(phase)
    }
}
