//! The initramfs: `hearth-init` as `/init`, `/dev/console`, the kernel modules the recipe
//! lists (plus dependencies, skipping built-ins) with a trimmed `modules.dep`, and
//! `/etc/hearth/modules` telling `hearth-init` what to load.
//!
//! Compressed modules (`.ko.xz`, `.ko.zst`, `.ko.gz`, as newer Debian kernels ship them)
//! are stored decompressed as `.ko`, and `modules.dep` names them so: `hearth-init` loads
//! them with a plain `finit_module`, which needs no in-kernel decompression support.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::cpio::{Archive, Node};
use crate::tool::{self, ToolError};

/// Compressed module suffixes and the program that decompresses each (`PROGRAM -dc FILE`).
const COMPRESSED: &[(&str, &str)] = &[(".ko.xz", "xz"), (".ko.zst", "zstd"), (".ko.gz", "gzip")];

/// The path a module has in the initramfs (compression suffix dropped) and the program
/// that decompresses it, if any.
fn stored_path(path: &str) -> (String, Option<&'static str>) {
    for (suffix, program) in COMPRESSED {
        if let Some(stem) = path.strip_suffix(suffix) {
            return (format!("{stem}.ko"), Some(program));
        }
    }
    (path.to_owned(), None)
}

/// A `modules.dep` line with every path as stored in the initramfs.
fn stored_line(line: &str) -> String {
    let (path, deps) = line.split_once(':').unwrap_or((line, ""));
    let mut out = format!("{}:", stored_path(path.trim()).0);
    for d in deps.split_whitespace() {
        out.push(' ');
        out.push_str(&stored_path(d).0);
    }
    out
}

/// Building the initramfs failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InitramfsError {
    /// A file could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A compressed module could not be decompressed.
    #[error("decompressing kernel module: {0}")]
    Decompress(#[from] ToolError),
    /// A module is neither built in nor in `modules.dep`.
    #[error("kernel module {name} is neither built into kernel {release} nor in its modules.dep")]
    UnknownModule { name: String, release: String },
}

fn norm(path_or_name: &str) -> String {
    let base = path_or_name.rsplit('/').next().unwrap_or(path_or_name);
    base.split(".ko").next().unwrap_or(base).replace('-', "_")
}

/// Resolves `wanted` against `modules.dep` / `modules.builtin`: the `modules.dep` lines to
/// ship (sorted) and the names to load (built-ins dropped).
pub(crate) fn resolve(
    dep: &str,
    builtin: &str,
    wanted: &[String],
    release: &str,
) -> Result<(Vec<String>, Vec<String>), InitramfsError> {
    let builtins: BTreeSet<String> = builtin.lines().map(norm).collect();
    let mut by_name: BTreeMap<String, (&str, Vec<&str>)> = BTreeMap::new();
    for line in dep.lines() {
        if let Some((path, rest)) = line.split_once(':') {
            by_name.insert(norm(path), (path.trim(), rest.split_whitespace().collect()));
        }
    }
    let mut lines = BTreeSet::new();
    let mut load = Vec::new();
    let mut queue: Vec<String> = Vec::new();
    for name in wanted {
        let n = norm(name);
        if builtins.contains(&n) {
            continue;
        }
        if !by_name.contains_key(&n) {
            return Err(InitramfsError::UnknownModule {
                name: name.clone(),
                release: release.to_owned(),
            });
        }
        load.push(n.clone());
        queue.push(n);
    }
    while let Some(n) = queue.pop() {
        let Some((path, deps)) = by_name.get(&n) else {
            continue;
        };
        let mut line = format!("{path}:");
        for d in deps {
            line.push(' ');
            line.push_str(d);
        }
        if lines.insert(line) {
            queue.extend(deps.iter().map(|d| norm(d)));
        }
    }
    Ok((lines.into_iter().collect(), load))
}

/// Builds the initramfs bytes.
pub(crate) fn build(
    hearth_init: &Path,
    modules_dir: &Path,
    release: &str,
    wanted: &[String],
    epoch: u64,
) -> Result<Vec<u8>, InitramfsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| InitramfsError::Io {
            op: "reading",
            path: p.to_owned(),
            source,
        })
    };
    let text = |p: &Path| read(p).map(|b| String::from_utf8_lossy(&b).into_owned());
    let dep = text(&modules_dir.join("modules.dep"))?;
    let builtin = text(&modules_dir.join("modules.builtin"))?;
    let (lines, load) = resolve(&dep, &builtin, wanted, release)?;
    let mut a = Archive::default();
    a.add(
        "init",
        Node::File {
            data: read(hearth_init)?,
            executable: true,
        },
    );
    a.add("dev/console", Node::CharDev { major: 5, minor: 1 });
    for dir in ["proc", "sys", "sysroot"] {
        a.add(dir, Node::Dir);
    }
    let base = format!("lib/modules/{release}");
    for line in &lines {
        let path = line.split(':').next().unwrap_or_default();
        let src = modules_dir.join(path);
        let (stored, program) = stored_path(path);
        let data = match program {
            Some(program) => {
                tool::run_bytes(program, &["-dc".as_ref(), src.as_os_str()], epoch, None)?
            }
            None => read(&src)?,
        };
        a.add(
            &format!("{base}/{stored}"),
            Node::File {
                data,
                executable: false,
            },
        );
    }
    let lines: Vec<String> = lines.iter().map(|l| stored_line(l)).collect();
    let mut dep_text = lines.join("\n");
    dep_text.push('\n');
    a.add(
        &format!("{base}/modules.dep"),
        Node::File {
            data: dep_text.into_bytes(),
            executable: false,
        },
    );
    a.add(
        "etc/hearth/modules",
        Node::File {
            data: load
                .iter()
                .map(|m| format!("{m}\n"))
                .collect::<String>()
                .into_bytes(),
            executable: false,
        },
    );
    Ok(a.to_bytes(epoch))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn resolves_dependencies_and_skips_builtins() {
        let dep = "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko\n\
                   kernel/lib/crc16.ko:\nkernel/fs/jbd2/jbd2.ko:\nkernel/fs/other.ko:\n";
        let builtin = "kernel/drivers/block/virtio_blk.ko\n";
        let wanted = ["virtio-blk".to_owned(), "ext4".to_owned()];
        let (lines, load) = resolve(dep, builtin, &wanted, "6.1").unwrap();
        assert_eq!(load, ["ext4"]);
        assert_eq!(
            lines,
            [
                "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko",
                "kernel/fs/jbd2/jbd2.ko:",
                "kernel/lib/crc16.ko:",
            ]
        );
        let err = resolve(dep, builtin, &["nope".to_owned()], "6.1").unwrap_err();
        assert!(matches!(err, InitramfsError::UnknownModule { .. }));
        assert!(err.to_string().contains("nope") && err.to_string().contains("6.1"));
    }

    #[test]
    fn compressed_modules_are_named_and_resolved_as_plain_ko() {
        let dep = "kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz kernel/fs/jbd2/jbd2.ko.zst\n\
                   kernel/lib/crc16.ko.xz:\nkernel/fs/jbd2/jbd2.ko.zst:\n";
        let (lines, load) = resolve(dep, "", &["ext4".to_owned()], "6.12").unwrap();
        assert_eq!(load, ["ext4"]);
        assert_eq!(
            stored_line(&lines[0]),
            "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko"
        );
        assert_eq!(stored_line("kernel/lib/crc16.ko:"), "kernel/lib/crc16.ko:");
        assert_eq!(
            stored_path("a/b.ko.gz"),
            ("a/b.ko".to_owned(), Some("gzip"))
        );
    }

    /// Needs `xz` (xz-utils): a real `.ko.xz` is stored decompressed under its `.ko` name.
    #[test]
    fn xz_module_is_stored_decompressed() {
        let dir = tempfile::tempdir().unwrap();
        let mods = dir.path().join("lib/modules/6.12");
        std::fs::create_dir_all(mods.join("kernel/fs")).unwrap();
        std::fs::write(mods.join("kernel/fs/squashfs.ko"), b"\x7fELF-module-bytes").unwrap();
        tool::run("xz", &[mods.join("kernel/fs/squashfs.ko")], 0, None).unwrap();
        std::fs::write(mods.join("modules.dep"), "kernel/fs/squashfs.ko.xz:\n").unwrap();
        std::fs::write(mods.join("modules.builtin"), "").unwrap();
        let init = dir.path().join("init");
        std::fs::write(&init, b"init").unwrap();
        let bytes = build(&init, &mods, "6.12", &["squashfs".to_owned()], 0).unwrap();
        let find = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(find(b"lib/modules/6.12/kernel/fs/squashfs.ko\0"));
        assert!(!find(b"squashfs.ko.xz"));
        assert!(find(b"\x7fELF-module-bytes"));
    }
}
