//! A reproducible `newc` cpio writer for the initramfs.
//!
//! # Design
//! Entries are collected in a `BTreeMap` keyed by path, so the archive is sorted and parents
//! come before children; every entry gets owner 0:0, the recipe's mtime and inode numbers in
//! that order. Parent directories are added implicitly. The archive is not compressed (the
//! kernel reads plain newc, and it keeps the bytes easy to compare).
//!
//! # Rejected alternatives
//! `cpio`/`bsdcpio` from a file list: their inode numbers and mtimes come from the build
//! host, so two builds differ.

use std::collections::BTreeMap;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Dir,
    File {
        data: Vec<u8>,
        executable: bool,
    },
    /// A character device (`/dev/console`).
    CharDev {
        major: u32,
        minor: u32,
    },
}

/// An in-memory initramfs.
#[derive(Debug, Default)]
pub(crate) struct Archive {
    entries: BTreeMap<String, Node>,
}

impl Archive {
    /// Adds an entry at `path` (relative, `a/b/c`), with its parent directories.
    pub(crate) fn add(&mut self, path: &str, node: Node) {
        let path = path.trim_matches('/');
        let mut parent = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |(_, p)| p)
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            self.entries.entry(parent.clone()).or_insert(Node::Dir);
        }
        self.entries.insert(path.to_owned(), node);
    }

    /// Serialises the archive.
    pub(crate) fn to_bytes(&self, mtime: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mtime = u32::try_from(mtime).unwrap_or(u32::MAX);
        for (ino, (path, node)) in (1u32..).zip(&self.entries) {
            let (mode, data, nlink, rdev): (u32, &[u8], u32, (u32, u32)) = match node {
                Node::Dir => (0o040755, &[], 2, (0, 0)),
                Node::File { data, executable } => (
                    if *executable { 0o100755 } else { 0o100644 },
                    data,
                    1,
                    (0, 0),
                ),
                Node::CharDev { major, minor } => (0o020600, &[], 1, (*major, *minor)),
            };
            header(&mut out, ino, mode, nlink, mtime, data.len(), rdev, path);
            out.extend_from_slice(data);
            pad4(&mut out);
        }
        header(&mut out, 0, 0, 1, 0, 0, (0, 0), "TRAILER!!!");
        out
    }
}

#[allow(clippy::too_many_arguments)]
fn header(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u32,
    size: usize,
    rdev: (u32, u32),
    name: &str,
) {
    let size = u32::try_from(size).unwrap_or(u32::MAX);
    let namesize = u32::try_from(name.len() + 1).unwrap_or(u32::MAX);
    let fields = [
        ino, mode, 0, 0, nlink, mtime, size, 0, 0, rdev.0, rdev.1, namesize, 0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sorted_with_parents_and_readable_by_cpio() {
        let mut a = Archive::default();
        a.add(
            "lib/modules/x/m.ko",
            Node::File {
                data: b"mod".to_vec(),
                executable: false,
            },
        );
        a.add(
            "init",
            Node::File {
                data: b"#!/bin/sh\n".to_vec(),
                executable: true,
            },
        );
        a.add("dev/console", Node::CharDev { major: 5, minor: 1 });
        let bytes = a.to_bytes(1_700_000_000);
        assert_eq!(bytes, a.to_bytes(1_700_000_000), "deterministic");
        assert_eq!(bytes.len() % 4, 0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.cpio");
        std::fs::write(&path, &bytes).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("cpio -itv --quiet < {}", path.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8(out.stdout).unwrap();
        let names: Vec<&str> = listing
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "dev",
                "dev/console",
                "init",
                "lib",
                "lib/modules",
                "lib/modules/x",
                "lib/modules/x/m.ko"
            ]
        );
        assert!(listing.contains("-rwxr-xr-x"), "{listing}");
        assert!(listing.contains("crw-------"), "{listing}");
    }
}
