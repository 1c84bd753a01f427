#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::rc::Rc;

use proptest::prelude::*;
use sha2::{Digest, Sha256};

use crate::*;

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// Disks with durable and unsynced layers, a boot loader, a journal and a source, with a
/// power cut after `budget` primitive operations (unsynced writes are lost). After every
/// operation it checks the invariant.
#[derive(Debug)]
struct World {
    durable: [Vec<u8>; 2],
    pending: [Vec<(u64, Vec<u8>)>; 2],
    entries: Vec<BootEntry>,
    journal: Option<Journal>,
    new_image: Vec<u8>,
    budget: Option<u64>,
    ops: u64,
    fetched: u64,
    corrupt_fetch: bool,
}

fn ix(s: Slot) -> usize {
    match s {
        Slot::A => 0,
        Slot::B => 1,
    }
}

impl World {
    fn tick(&mut self) -> std::io::Result<()> {
        self.check_invariant();
        if let Some(b) = self.budget.as_mut() {
            if *b == 0 {
                return Err(std::io::Error::other("power cut"));
            }
            *b -= 1;
        }
        self.ops += 1;
        Ok(())
    }

    fn power_cut(&mut self) {
        self.pending = [Vec::new(), Vec::new()];
        self.check_invariant();
    }

    /// One good committed entry, and every bootable entry's slot holds its image.
    fn check_invariant(&self) {
        let good = |e: &BootEntry| {
            let n = usize::try_from(e.image_size).unwrap();
            sha(&self.durable[ix(e.slot)][..n]) == e.image_sha256
        };
        assert!(
            self.entries
                .iter()
                .any(|e| e.tries_left.is_none() && good(e)),
            "no good committed entry: {:?}",
            self.entries
        );
        for e in &self.entries {
            assert!(good(e), "bootable entry {e:?} points at unverified content");
        }
    }
}

#[derive(Clone)]
struct Env(Rc<RefCell<World>>);

impl Disk for Env {
    fn slot_size(&self, slot: Slot) -> u64 {
        self.0.borrow().durable[ix(slot)].len() as u64
    }
    fn read_at(&mut self, slot: Slot, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let w = self.0.borrow();
        let mut v = w.durable[ix(slot)].clone();
        for (o, d) in &w.pending[ix(slot)] {
            let o = usize::try_from(*o).unwrap();
            v[o..o + d.len()].copy_from_slice(d);
        }
        let o = usize::try_from(offset).unwrap();
        buf.copy_from_slice(&v[o..o + buf.len()]);
        Ok(())
    }
    fn write_at(&mut self, slot: Slot, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut w = self.0.borrow_mut();
        w.tick()?;
        w.pending[ix(slot)].push((offset, data.to_vec()));
        Ok(())
    }
    fn sync(&mut self, slot: Slot) -> std::io::Result<()> {
        let mut w = self.0.borrow_mut();
        w.tick()?;
        for (o, d) in std::mem::take(&mut w.pending[ix(slot)]) {
            let o = usize::try_from(o).unwrap();
            w.durable[ix(slot)][o..o + d.len()].copy_from_slice(&d);
        }
        Ok(())
    }
}

impl BootLoader for Env {
    fn entries(&self) -> Vec<BootEntry> {
        self.0.borrow().entries.clone()
    }
    fn disarm(&mut self, slot: Slot) -> std::io::Result<()> {
        let mut w = self.0.borrow_mut();
        w.tick()?;
        w.entries.retain(|e| e.slot != slot);
        Ok(())
    }
    fn publish(&mut self, slot: Slot, tries: u8, image: (u64, [u8; 32])) -> std::io::Result<()> {
        let mut w = self.0.borrow_mut();
        w.tick()?;
        w.entries.retain(|e| e.slot != slot);
        w.entries.push(BootEntry {
            slot,
            tries_left: Some(tries),
            image_sha256: image.1,
            image_size: image.0,
        });
        Ok(())
    }
}

impl JournalStore for Env {
    fn load(&self) -> std::io::Result<Option<Journal>> {
        Ok(self.0.borrow().journal.clone())
    }
    fn save(&mut self, j: &Journal) -> std::io::Result<()> {
        let mut w = self.0.borrow_mut();
        w.tick()?;
        w.journal = Some(j.clone());
        Ok(())
    }
    fn clear(&mut self) -> std::io::Result<()> {
        let mut w = self.0.borrow_mut();
        w.tick()?;
        w.journal = None;
        Ok(())
    }
}

impl Source for Env {
    fn fetch(&mut self, offset: u64, len: u32) -> std::io::Result<Vec<u8>> {
        let mut w = self.0.borrow_mut();
        w.tick()?;
        w.fetched += u64::from(len);
        let o = usize::try_from(offset).unwrap();
        let mut d = w.new_image[o..o + len as usize].to_vec();
        if w.corrupt_fetch {
            d[0] ^= 1;
        }
        Ok(d)
    }
}

const SLOT: usize = 600_000;
const CK: u64 = 64 * 1024;

/// Slot A runs `old` (committed), slot B holds an older committed image too.
fn world(old: &[u8], new: &[u8]) -> (Env, Target) {
    let mut a = old.to_vec();
    a.resize(SLOT, 0);
    let b = noise(99, SLOT);
    let d = hearth_ota::chunk::digest(new).unwrap();
    let w = World {
        entries: vec![
            BootEntry {
                slot: Slot::A,
                tries_left: None,
                image_sha256: sha(&a),
                image_size: SLOT as u64,
            },
            BootEntry {
                slot: Slot::B,
                tries_left: None,
                image_sha256: sha(&b),
                image_size: SLOT as u64,
            },
        ],
        durable: [a, b],
        pending: [Vec::new(), Vec::new()],
        journal: None,
        new_image: new.to_vec(),
        budget: None,
        ops: 0,
        fetched: 0,
        corrupt_fetch: false,
    };
    let t = Target {
        size: d.size,
        sha256: d.sha256,
        blake3: d.blake3,
        chunks: d.chunks,
    };
    (Env(Rc::new(RefCell::new(w))), t)
}

fn edited(old: &[u8], seed: u64) -> Vec<u8> {
    let mut new = old.to_vec();
    new.splice(100_000..100_000, noise(seed, 3000));
    new.drain(300_000..301_000);
    new
}

#[test]
fn an_update_without_crashes_writes_the_image_and_publishes_a_trial_entry() {
    let old = noise(1, 500_000);
    let new = edited(&old, 2);
    let (env, t) = world(&old, &new);
    let mut u = Updater::start(env.clone(), Slot::A, t.clone(), CK).unwrap();
    u.run().unwrap();
    let w = env.0.borrow();
    assert_eq!(&w.durable[1][..new.len()], &new[..]);
    assert_eq!(w.journal, None);
    assert!(w.entries.contains(&BootEntry {
        slot: Slot::B,
        tries_left: Some(TRIES),
        image_sha256: t.sha256,
        image_size: t.size,
    }));
    assert!(
        w.entries
            .iter()
            .any(|e| e.slot == Slot::A && e.tries_left.is_none())
    );
    println!("fetched {} of {} bytes", w.fetched, new.len());
    assert!(w.fetched < 200_000, "seed unused: fetched {}", w.fetched);
}

#[test]
fn preconditions_and_bad_chunks_are_refused_with_the_system_intact() {
    let old = noise(1, 500_000);
    let new = edited(&old, 2);
    // Pending trial.
    let (env, t) = world(&old, &new);
    env.0.borrow_mut().entries[1].tries_left = Some(2);
    let e = Updater::start(env.clone(), Slot::A, t.clone(), CK).unwrap_err();
    assert!(e.to_string().contains("pending"), "{e}");
    // Running slot not committed.
    let (env, t) = world(&old, &new);
    env.0.borrow_mut().entries.remove(0);
    let e = Updater::start(env.clone(), Slot::A, t.clone(), CK).unwrap_err();
    assert!(e.to_string().contains("not committed"), "{e}");
    // Too big.
    let (env, mut t) = world(&old, &new);
    t.size = SLOT as u64 + 1;
    let e = Updater::start(env.clone(), Slot::A, t, CK).unwrap_err();
    assert!(e.to_string().contains("larger than slot"), "{e}");
    // Already in progress.
    let (env, t) = world(&old, &new);
    let _u = Updater::start(env.clone(), Slot::A, t.clone(), CK).unwrap();
    let e = Updater::start(env.clone(), Slot::A, t, CK).unwrap_err();
    assert!(e.to_string().contains("already in progress"), "{e}");
    // A corrupted chunk from the source: refused, nothing bootable changes.
    let (env, t) = world(&old, &new);
    env.0.borrow_mut().corrupt_fetch = true;
    let mut u = Updater::start(env.clone(), Slot::A, t, CK).unwrap();
    let e = u.run().unwrap_err();
    assert!(matches!(e, UpdateError::BadChunk { .. }), "{e}");
    let w = env.0.borrow();
    assert_eq!(w.entries.len(), 1, "slot B disarmed, A untouched");
    w.check_invariant();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Power cut after every kind of effect, repeatedly, then resumed: the invariant
    /// holds at every operation and the update ends byte-exact and published.
    #[test]
    fn crash_after_any_effect_and_resume(seed in any::<u64>(), cuts in prop::collection::vec(0u64..70, 1..10)) {
        let old = noise(seed, 500_000);
        let new = edited(&old, seed ^ 5);
        let (env, t) = world(&old, &new);
        let mut started = false;
        let mut cuts = cuts.into_iter();
        loop {
            env.0.borrow_mut().budget = cuts.next();
            let result = if started {
                match Updater::resume(env.clone()).unwrap() {
                    Some(mut u) => u.run(),
                    None => break,
                }
            } else {
                Updater::start(env.clone(), Slot::A, t.clone(), CK).and_then(|mut u| { started = true; u.run() })
            };
            match result {
                Ok(()) => break,
                Err(_) => {
                    if env.0.borrow().journal.is_some() { started = true; }
                    env.0.borrow_mut().power_cut();
                }
            }
        }
        if !started {
            // Cut before the first journal save: nothing happened; start again.
            env.0.borrow_mut().budget = None;
            Updater::start(env.clone(), Slot::A, t.clone(), CK).unwrap().run().unwrap();
        }
        let w = env.0.borrow();
        w.check_invariant();
        prop_assert_eq!(&w.durable[1][..new.len()], &new[..]);
        prop_assert!(w.journal.is_none());
        prop_assert!(w.entries.iter().any(|e| e.slot == Slot::B && e.tries_left == Some(TRIES)));
    }
}
