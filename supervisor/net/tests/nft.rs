//! The rendered rules against the real `nft` of this host. Needs root (`nft` talks to the
//! kernel even in check mode) and `nftables` (ci/deps.sh); `make test` runs it as root.
//! Nothing here changes the host's rules: checks change nothing, and applies happen in
//! a network namespace made for the test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::Command;

use hearth_net::firewall::examples;
use hearth_net::{Firewall, Nft, render};

fn require_root() {
    assert!(
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0),
        "root_* tests need root (nft talks to the kernel)"
    );
}

/// The content of an insta snapshot file (after its `---` header).
fn snapshot_body(text: &str) -> &str {
    let rest = text.strip_prefix("---\n").expect("insta header");
    let end = rest.find("\n---\n").expect("end of the insta header");
    &rest[end + 5..]
}

#[test]
fn root_nft_accepts_every_golden_snapshot() {
    require_root();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/snapshots");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "snap") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut check = Command::new("nft");
        check.args(["-c", "-f", "-"]);
        if let Err(e) = hearth_cmd::text(check, Some(snapshot_body(&text))) {
            panic!("{}: {e}", path.display());
        }
        checked += 1;
    }
    assert!(
        checked >= examples::all().len(),
        "only {checked} snapshots in {}",
        dir.display()
    );
    // And what the renderer makes now (equal to the snapshots when the golden tests pass).
    for (name, model) in examples::all() {
        let rules = render(&model).unwrap();
        Nft::command(["nft"])
            .check(&rules)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// A network namespace for the test, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("hearth-net-test-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(ok.success(), "ip netns add {name}");
        Netns(name)
    }
    fn nft(&self) -> Nft {
        Nft::command(["ip", "netns", "exec", &self.0, "nft"])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn root_applying_replaces_only_hearths_tables_and_is_idempotent() {
    require_root();
    let ns = Netns::new();
    let nft = ns.nft();
    // Someone else's table, which no apply may touch.
    let mut other = Command::new("ip");
    other.args(["netns", "exec", &ns.0, "nft", "-f", "-"]);
    hearth_cmd::text(other, Some("table inet other {\n\tchain keep {\n\t}\n}\n")).unwrap();

    let dependent = render(&examples::dependent()).unwrap();
    nft.apply(&dependent).unwrap();
    let once = nft.list().unwrap();
    nft.apply(&dependent).unwrap();
    assert_eq!(nft.list().unwrap(), once, "applying twice changes nothing");
    assert!(
        once.contains("pg-client to its dependency postgresql"),
        "{once}"
    );

    nft.apply(&render(&examples::two_independent()).unwrap())
        .unwrap();
    let now = nft.list().unwrap();
    assert!(!now.contains("pg-client"), "old rules left: {now}");
    assert!(now.contains("port_hva"), "{now}");
    assert!(
        now.contains("table inet other"),
        "foreign table touched: {now}"
    );
    assert_eq!(now.matches("table inet hearth").count(), 1, "{now}");
    assert_eq!(now.matches("table bridge hearth").count(), 1, "{now}");

    // A ruleset nft refuses halfway (its deletes already read) leaves the previous rules
    // in place: one transaction.
    let script = format!(
        "{{ cat; echo 'table inet hearth {{ chain x {{ bogus; }} }}'; }} | ip netns exec {} nft -f -",
        ns.0
    );
    let broken = Nft::command(["sh", "-c", &script]);
    let err = broken.apply(&dependent).unwrap_err();
    assert!(err.to_string().contains("bogus"), "{err}");
    assert_eq!(nft.list().unwrap(), now);
}
