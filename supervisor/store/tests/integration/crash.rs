//! Crash safety: a writer process is killed with SIGKILL at random moments; every
//! revision it acknowledged must be in the store when it is reopened.
//!
//! The writer is this same test binary re-executed on the ignored test
//! `crash_writer_child` with `HEARTH_STORE_CRASH_WRITER` naming the store file, so the
//! test needs no separately built helper.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hearth_store::{Store, StoreOptions};
use serde_json::{Value, json};

const WRITER_ENV: &str = "HEARTH_STORE_CRASH_WRITER";

fn seed() -> Value {
    json!({"public": {"count": 0}, "private": {"count": 0}})
}

fn options() -> StoreOptions {
    // Compact often so that kills also land inside snapshot transactions.
    let mut o = StoreOptions::default();
    o.snapshot_every = 8;
    o
}

/// The child: mutate forever, printing `rev public private` after each acknowledged
/// mutation. Every fifth mutation touches only `/private`.
#[test]
#[ignore = "helper process for crash_kill9_loses_no_acknowledged_revision"]
fn crash_writer_child() {
    let Some(path) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let store = Store::open_with(Path::new(&path), seed(), options()).unwrap();
    let mut out = std::io::stdout().lock();
    loop {
        let m = store
            .mutate(|doc| {
                let half = if doc["public"]["count"].as_u64().unwrap() % 5 == 4 {
                    "private"
                } else {
                    "public"
                };
                let n = doc[half]["count"].as_u64().unwrap() + 1;
                doc[half]["count"] = json!(n);
                Ok::<_, Infallible>((
                    doc["public"]["count"].as_u64().unwrap(),
                    doc["private"]["count"].as_u64().unwrap(),
                ))
            })
            .unwrap();
        writeln!(out, "ACK {} {} {}", m.revision, m.value.0, m.value.1).unwrap();
        out.flush().unwrap();
    }
}

/// xorshift64: enough randomness for kill timing without a dependency.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn crash_kill9_loses_no_acknowledged_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let exe = std::env::current_exe().unwrap();
    let seed_nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut rng = Rng(u64::from(seed_nanos) | 1);
    let started = Instant::now();
    let mut total_acks = 0;
    let mut kills = 0;
    while kills < 40 && started.elapsed() < Duration::from_secs(30) {
        let mut child = Command::new(&exe)
            .args(["--exact", "integration::crash::crash_writer_child"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env(WRITER_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| {
                    let mut it = l.strip_prefix("ACK ")?.split(' ');
                    let mut next = || it.next()?.parse::<u64>().ok();
                    Some((next()?, next()?, next()?))
                })
                .collect::<Vec<_>>()
        });
        // Sometimes kill during start-up/open, mostly while writing.
        std::thread::sleep(Duration::from_millis(rng.below(250)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        let acks = reader.join().unwrap();
        for &(rev, public, private) in &acks {
            assert_eq!(
                rev,
                public + private,
                "writer acknowledged an inconsistent state"
            );
        }
        total_acks += acks.len();

        let store = Store::open_with(&path, seed(), options())
            .unwrap_or_else(|e| panic!("reopen after kill #{kills} failed: {e}"));
        let rev = store.revision();
        let public = store.get("/public/count").unwrap().as_u64().unwrap();
        let private = store.get("/private/count").unwrap().as_u64().unwrap();
        assert_eq!(
            rev,
            public + private,
            "a revision was lost or applied twice"
        );
        if let Some(&(ack_rev, ack_pub, ack_priv)) = acks.last() {
            assert!(
                rev >= ack_rev,
                "acknowledged revision {ack_rev} lost, store is at {rev}"
            );
            assert!(public >= ack_pub && private >= ack_priv);
        }
    }
    assert!(kills >= 30, "only {kills} kills in 30 s");
    assert!(total_acks > 0, "the writer never acknowledged anything");
    eprintln!(
        "{kills} kills, {total_acks} acknowledged revisions in {:?}",
        started.elapsed()
    );
}
