//! Our binaries as a Debian package, built from `debian/` and installed into the image root
//! by mmdebstrap (so dpkg knows every file we ship, and `Depends` pulls in what
//! `hearth-init` runs: `ip`, `sfdisk`, `mkfs.ext4`).
//!
//! # Design
//! `debian/control` is a normal source-package control file; its binary stanza is turned
//! into `DEBIAN/control` the way `dpkg-gencontrol` would (`Version` from the recipe,
//! `Architecture` from the target, `Installed-Size` computed, `Maintainer` and friends from
//! the source stanza). `debian/hearth.install` maps each binary input of the build
//! (`hearth-init`, `hearthd`, `hearth-container`, `hearth`) to a directory, `debian/hearth.dirs`
//! lists empty directories, `debian/copyright` goes to `/usr/share/doc/hearth/`. The tree is
//! staged with fixed modes (0755/0644) and mtimes (`source_date_epoch`), then
//! `dpkg-deb --root-owner-group -Zgzip --build` packs it under `SOURCE_DATE_EPOCH`, so the
//! same inputs give the same `.deb` (gzip rather than xz: xz's output depends on whether it
//! runs multi-threaded).
//!
//! # Rejected alternatives
//! `dpkg-buildpackage` + debhelper: it would run cargo inside the package build (offline
//! vendoring, a second toolchain) while the binaries are already built and tested; the
//! result would be the same files with more moving parts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::tool::{self, ToolError};

/// Binary inputs the install list may name.
pub(crate) const BINARIES: &[&str] = &["hearth-init", "hearthd", "hearth-container", "hearth"];

/// Building the package failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DebError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file under `debian/` is invalid.
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// dpkg-deb or md5sum failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DebError {
    let path = path.to_owned();
    move |source| DebError::Io { op, path, source }
}

/// One deb822 paragraph: fields in order, values with continuation lines joined by `\n`.
type Stanza = Vec<(String, String)>;

fn parse_control(text: &str) -> Result<Vec<Stanza>, String> {
    let mut out: Vec<Stanza> = Vec::new();
    let mut cur: Stanza = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else if line.starts_with(' ') || line.starts_with('\t') {
            let Some(last) = cur.last_mut() else {
                return Err(format!("line {}: continuation without a field", i + 1));
            };
            last.1.push('\n');
            last.1.push_str(line);
        } else if let Some((k, v)) = line.split_once(':') {
            if k.is_empty() || k.contains(' ') {
                return Err(format!("line {}: bad field name {k:?}", i + 1));
            }
            cur.push((k.to_owned(), v.trim().to_owned()));
        } else {
            return Err(format!("line {}: not a field: {line:?}", i + 1));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn field<'a>(s: &'a Stanza, name: &str) -> Option<&'a str> {
    s.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `DEBIAN/control` for `version`/`arch` from `debian/control`'s text.
pub(crate) fn binary_control(
    control: &str,
    version: &str,
    arch: &str,
    installed_kib: u64,
) -> Result<String, String> {
    let stanzas = parse_control(control)?;
    let [source, binary] = stanzas.as_slice() else {
        return Err(format!(
            "expected a source stanza and one binary stanza, found {} stanzas",
            stanzas.len()
        ));
    };
    let Some(package) = field(binary, "Package") else {
        return Err("the binary stanza has no Package field".into());
    };
    let archs = field(binary, "Architecture").unwrap_or("");
    if !archs.split_whitespace().any(|a| a == arch || a == "any") {
        return Err(format!(
            "package {package} is not built for {arch} (Architecture: {archs})"
        ));
    }
    let mut out = format!("Package: {package}\n");
    if let Some(src) = field(source, "Source")
        && src != package
    {
        out.push_str(&format!("Source: {src}\n"));
    }
    out.push_str(&format!("Version: {version}\nArchitecture: {arch}\n"));
    let Some(maintainer) = field(source, "Maintainer") else {
        return Err("the source stanza has no Maintainer field".into());
    };
    out.push_str(&format!(
        "Maintainer: {maintainer}\nInstalled-Size: {installed_kib}\n"
    ));
    for name in [
        "Pre-Depends",
        "Depends",
        "Recommends",
        "Conflicts",
        "Breaks",
        "Replaces",
        "Provides",
    ] {
        if let Some(v) = field(binary, name) {
            out.push_str(&format!("{name}: {v}\n"));
        }
    }
    for name in ["Section", "Priority", "Homepage"] {
        if let Some(v) = field(binary, name).or_else(|| field(source, name)) {
            out.push_str(&format!("{name}: {v}\n"));
        }
    }
    let Some(desc) = field(binary, "Description") else {
        return Err("the binary stanza has no Description".into());
    };
    out.push_str(&format!("Description: {desc}\n"));
    Ok(out)
}

/// `(binary name, destination dir)` pairs of an install list.
pub(crate) fn parse_install(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [name, dir] = parts.as_slice() else {
            return Err(format!("line {}: expected `BINARY DIR`", i + 1));
        };
        if !BINARIES.contains(name) {
            return Err(format!(
                "line {}: unknown binary {name:?} (known: {})",
                i + 1,
                BINARIES.join(", ")
            ));
        }
        check_rel(dir).map_err(|r| format!("line {}: {r}", i + 1))?;
        out.push(((*name).to_owned(), dir.trim_matches('/').to_owned()));
    }
    Ok(out)
}

fn check_rel(dir: &str) -> Result<(), String> {
    let d = dir.trim_matches('/');
    if d.is_empty() || d.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(format!("bad directory {dir:?}"));
    }
    Ok(())
}

/// Inputs of the package build.
#[derive(Debug)]
pub(crate) struct DebInputs<'a> {
    pub(crate) debian_dir: &'a Path,
    pub(crate) version: &'a str,
    /// Debian architecture (`Target::debian_arch`).
    pub(crate) arch: &'static str,
    /// Binary name (one of [`BINARIES`]) → file.
    pub(crate) binaries: &'a BTreeMap<&'static str, PathBuf>,
    pub(crate) epoch: u64,
}

/// Names in `Depends` of `control` (an already generated binary control) that `packages`
/// (recipe entries, `name`, `name=version` or `name/suite`) does not list; only the first
/// alternative of each dependency is considered.
pub(crate) fn missing_depends(control: &str, packages: &[String]) -> Vec<String> {
    let listed: Vec<&str> = packages
        .iter()
        .map(|p| p.split(['=', '/']).next().unwrap_or(p))
        .collect();
    control
        .lines()
        .find_map(|l| l.strip_prefix("Depends:"))
        .unwrap_or("")
        .split(',')
        .filter_map(|d| {
            d.split('|')
                .next()
                .and_then(|a| a.split_whitespace().next())
                .map(|n| n.split(':').next().unwrap_or(n).to_owned())
        })
        .filter(|n| !n.is_empty() && !listed.contains(&n.as_str()))
        .collect()
}

/// mmdebstrap options installing `deb` at the end of the customize phase: the package is
/// copied into the chroot and installed with `dpkg --install` (its dependencies are
/// recipe packages, see [`missing_depends`]; no network, no apt cache involved).
pub(crate) fn install_hooks(deb: &Path) -> Vec<String> {
    let quoted = deb.to_string_lossy().replace('\'', "'\\''");
    vec![format!(
        "--customize-hook=cp '{quoted}' \"$1\"/tmp/hearth.deb && chroot \"$1\" dpkg --install \
         /tmp/hearth.deb && rm -f \"$1\"/tmp/hearth.deb"
    )]
}

/// Checks `debian/` without building (the recipe step, before any slow step): the control
/// file and install list parse, the package is built for the architecture, and every dependency of
/// the package is in the recipe's `packages`.
pub(crate) fn check(inp: &DebInputs<'_>, packages: &[String]) -> Result<(), DebError> {
    let arch = inp.arch;
    let control = read(&inp.debian_dir.join("control"))?;
    let generated =
        binary_control(&control, inp.version, arch, 0).map_err(|reason| DebError::Invalid {
            path: inp.debian_dir.join("control"),
            reason,
        })?;
    let missing = missing_depends(&generated, packages);
    if !missing.is_empty() {
        return Err(DebError::Invalid {
            path: inp.debian_dir.join("control"),
            reason: format!(
                "the hearth package depends on {}, which the recipe's packages do not list",
                missing.join(", ")
            ),
        });
    }
    let install = inp.debian_dir.join("hearth.install");
    parse_install(&read(&install)?).map_err(|reason| DebError::Invalid {
        path: install,
        reason,
    })?;
    Ok(())
}

fn read(path: &Path) -> Result<String, DebError> {
    std::fs::read_to_string(path).map_err(io("reading", path))
}

/// Stages and builds the package into `out_dir`; returns the `.deb` path. Binaries of the
/// install list that were not given are left out, with a warning.
pub(crate) fn build(inp: &DebInputs<'_>, work: &Path, out_dir: &Path) -> Result<PathBuf, DebError> {
    use std::os::unix::fs::PermissionsExt;
    let arch = inp.arch;
    let control_path = inp.debian_dir.join("control");
    let control = read(&control_path)?;
    let install_path = inp.debian_dir.join("hearth.install");
    let install = parse_install(&read(&install_path)?).map_err(|reason| DebError::Invalid {
        path: install_path.clone(),
        reason,
    })?;
    let dirs_path = inp.debian_dir.join("hearth.dirs");
    let mut dirs: Vec<String> = Vec::new();
    if dirs_path.exists() {
        for line in read(&dirs_path)?.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            check_rel(line).map_err(|reason| DebError::Invalid {
                path: dirs_path.clone(),
                reason,
            })?;
            dirs.push(line.trim_matches('/').to_owned());
        }
    }

    let stage = work.join("deb");
    if stage.exists() {
        std::fs::remove_dir_all(&stage).map_err(io("removing", &stage))?;
    }
    let mkdir = |p: &Path| -> Result<(), DebError> {
        std::fs::create_dir_all(p).map_err(io("creating", p))
    };
    mkdir(&stage.join("DEBIAN"))?;
    let mut files: Vec<(PathBuf, u32)> = Vec::new();
    for (name, dir) in &install {
        let Some(src) = inp.binaries.get(name.as_str()) else {
            println!("    warning: {name} not given (--{name}): left out of the package");
            continue;
        };
        mkdir(&stage.join(dir))?;
        let dest = stage.join(dir).join(name);
        std::fs::copy(src, &dest).map_err(io("copying binary", src))?;
        files.push((dest, 0o755));
    }
    for d in &dirs {
        mkdir(&stage.join(d))?;
    }
    let copyright = inp.debian_dir.join("copyright");
    if copyright.exists() {
        let doc = stage.join("usr/share/doc/hearth");
        mkdir(&doc)?;
        std::fs::copy(&copyright, doc.join("copyright")).map_err(io("copying", &copyright))?;
        files.push((doc.join("copyright"), 0o644));
    }
    let mut kib = 0u64;
    for (f, mode) in &files {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(*mode))
            .map_err(io("chmod", f))?;
        kib += std::fs::metadata(f)
            .map_err(io("reading", f))?
            .len()
            .div_ceil(1024);
    }
    let md5 = tool::run(
        "sh",
        &[
            "-c",
            "cd \"$1\" && find . -path ./DEBIAN -prune -o -type f -print | sed 's,^\\./,,' \
             | LC_ALL=C sort | xargs -r md5sum",
            "sh",
            &stage.to_string_lossy(),
        ],
        inp.epoch,
        None,
    )?;
    let control_text =
        binary_control(&control, inp.version, arch, kib).map_err(|reason| DebError::Invalid {
            path: control_path.clone(),
            reason,
        })?;
    for (name, text) in [("control", control_text), ("md5sums", md5)] {
        let p = stage.join("DEBIAN").join(name);
        std::fs::write(&p, text).map_err(io("writing", &p))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))
            .map_err(io("chmod", &p))?;
    }
    fix_tree(&stage, inp.epoch)?;
    std::fs::create_dir_all(out_dir).map_err(io("creating", out_dir))?;
    let deb = out_dir.join(format!("hearth_{}_{arch}.deb", inp.version));
    tool::run(
        "dpkg-deb",
        &[
            "--root-owner-group".as_ref(),
            "-Zgzip".as_ref(),
            "-z9".as_ref(),
            "--build".as_ref(),
            stage.as_os_str(),
            deb.as_os_str(),
        ],
        inp.epoch,
        None,
    )?;
    Ok(deb)
}

/// Directories 0755, every mtime `epoch` (children first, so directory times stick).
fn fix_tree(dir: &Path, epoch: u64) -> Result<(), DebError> {
    use std::os::unix::fs::PermissionsExt;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
    for e in std::fs::read_dir(dir).map_err(io("listing", dir))? {
        let p = e.map_err(io("listing", dir))?.path();
        let meta = std::fs::symlink_metadata(&p).map_err(io("reading", &p))?;
        if meta.is_dir() {
            fix_tree(&p, epoch)?;
        } else {
            std::fs::File::options()
                .write(true)
                .open(&p)
                .and_then(|f| f.set_modified(t))
                .map_err(io("setting mtime of", &p))?;
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(io("chmod", dir))?;
    std::fs::File::open(dir)
        .and_then(|f| f.set_modified(t))
        .map_err(io("setting mtime of", dir))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn repo_debian() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../debian")
    }

    #[test]
    fn control_is_generated_from_the_source_stanzas() {
        let text = std::fs::read_to_string(repo_debian().join("control")).unwrap();
        let c = binary_control(&text, "0.1.0", "amd64", 42).unwrap();
        assert!(
            c.starts_with("Package: hearth\nVersion: 0.1.0\nArchitecture: amd64\nMaintainer: "),
            "{c}"
        );
        assert!(
            c.contains("\nInstalled-Size: 42\n") && c.contains("\nDepends: iproute2"),
            "{c}"
        );
        assert!(c.contains("\n .\n"), "continuation lines kept: {c}");
        let err = binary_control(&text, "0.1.0", "riscv64", 0).unwrap_err();
        assert!(err.contains("not built for riscv64"), "{err}");
        assert!(binary_control("Package: x\n", "1", "amd64", 0).is_err());
    }

    #[test]
    fn install_list_is_checked() {
        let text = std::fs::read_to_string(repo_debian().join("hearth.install")).unwrap();
        let list = parse_install(&text).unwrap();
        assert!(
            list.contains(&("hearthd".into(), "usr/bin".into())),
            "{list:?}"
        );
        assert!(
            parse_install("hearthd ../bin\n")
                .unwrap_err()
                .contains("bad directory")
        );
        assert!(
            parse_install("sshd usr/bin\n")
                .unwrap_err()
                .contains("unknown binary")
        );
        assert!(parse_install("hearthd\n").is_err());
    }

    /// Needs dpkg-deb (any Debian system).
    #[test]
    fn package_is_reproducible_and_lists_our_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut bins = BTreeMap::new();
        for name in ["hearth-init", "hearthd"] {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\necho {name}\n")).unwrap();
            bins.insert(name, p);
        }
        let debian = repo_debian();
        let inp = DebInputs {
            debian_dir: &debian,
            version: "0.1.0",
            arch: "amd64",
            binaries: &bins,
            epoch: 1_735_689_600,
        };
        let pkgs: Vec<String> = ["iproute2", "fdisk=2.38", "e2fsprogs/bookworm"]
            .map(String::from)
            .to_vec();
        check(&inp, &pkgs).unwrap();
        let err = check(&inp, &pkgs[..2]).unwrap_err().to_string();
        assert!(
            err.contains("depends on e2fsprogs, which the recipe"),
            "{err}"
        );
        let hooks = install_hooks(Path::new("/o'ut/hearth.deb"));
        assert!(hooks[0].contains("cp '/o'\\''ut/hearth.deb'"), "{hooks:?}");
        let a = build(&inp, &dir.path().join("w1"), &dir.path().join("o1")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let b = build(&inp, &dir.path().join("w2"), &dir.path().join("o2")).unwrap();
        assert_eq!(a.file_name().unwrap(), "hearth_0.1.0_amd64.deb");
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let contents =
            tool::run("dpkg-deb", &["--contents".as_ref(), a.as_os_str()], 0, None).unwrap();
        assert!(
            contents.contains("root/root") && contents.contains("./usr/bin/hearthd"),
            "{contents}"
        );
        assert!(contents.contains("./usr/sbin/hearth-init"), "{contents}");
        assert!(contents.contains("./media/hearth/data/"), "{contents}");
        assert!(contents.contains("2025-01-01 00:00"), "{contents}");
        assert!(
            !contents.contains("hearth-container"),
            "not given, left out: {contents}"
        );
        let info = tool::run("dpkg-deb", &["--info".as_ref(), a.as_os_str()], 0, None).unwrap();
        assert!(
            info.contains("Version: 0.1.0") && info.contains("Depends: iproute2"),
            "{info}"
        );
    }
}
