//! `LxcRuntime`: [`ContainerRuntime`] on unprivileged LXC 5 driven through `lxc-*` tools.
//!
//! Layout under the runtime's LXC path (`-P`), one directory per container:
//! ```text
//! <lxc path>/<id>/hearth.json   the ContainerSpec (written first: the source of truth)
//! <lxc path>/<id>/config        rendered LXC config (rewritten on create and start)
//! <lxc path>/<id>/seccomp       the seccomp policy the config names
//! <lxc path>/<id>/lower/        the image squashfs, read-only, idmapped 0→the spec's base
//! <lxc path>/<id>/rootfs/       overlay: lower + <data dir>/upper (+ <data dir>/work)
//! <lxc path>/<id>/lxc.log, console.log
//! ```
//! Design: containers are started with `lxc-start -d`, so their monitor and init are not
//! children of hearthd and keep running when it restarts; a new `LxcRuntime` on the same
//! path finds them in `list` (directories with `hearth.json`) and reads their state with
//! `lxc-info`. The `lxc-*` tools talk to a container's monitor over an abstract Unix socket,
//! which is per network namespace: hearthd must run in the host network namespace, where
//! `lxc-start` ran. Host mounts (lower, rootfs) persist until `destroy`; `start` re-creates
//! them when missing (after a reboot). Volume, RPC and init bind mounts are made by LXC in
//! the container's mount namespace (see `config`), so they never exist on the host.
//!
//! Invariants: operations on one container are serialised (a busy set + condvar; other
//! containers are not held up by a slow stop); `list` takes no guard; `destroy` removes the
//! container directory only after both host mounts are gone, and never recursively, so a
//! mount that could not be removed is never descended into.
//!
//! Limitations: the cgroup version is detected once per runtime; serialisation is per
//! process (two runtimes on one LXC path must not act on the same container at once).
//!
//! Rejected: `lxc-start -f <file>` (with the config at LXC's default place, `lxc-info`,
//! `lxc-stop` and `lxc-attach` find a container by name alone, also after a restart);
//! unmounting the root on `stop` (a restart would pay the loop + idmap setup again, and
//! the mounts are cheap to keep); `lxc-destroy` (it deletes the rootfs directory
//! recursively, which here is a live overlay over the service's data).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::bridge::ensure_bridge;
use crate::config::{AppArmor, CgroupVersion, RenderPaths, SECCOMP_POLICY, render_config};
use crate::mount::{
    IdmapUserns, MountError, idmap_userns, is_mount_point, mount_overlay, mount_squashfs_idmapped,
    shift_ids, unmount_detach,
};
use crate::runtime::{ContainerRuntime, ExecOutput, RuntimeError};
use crate::spec::{
    ContainerId, ContainerSpec, ContainerState, ContainerStatus, DeviceKind, ID_MAP_COUNT, IdMap,
    SpecError,
};
use crate::stats::{ContainerStats, read_stats};
use crate::tool;

const SPEC_FILE: &str = "hearth.json";

/// Unprivileged LXC containers under one LXC path.
#[derive(Debug)]
pub struct LxcRuntime {
    lxc_path: PathBuf,
    cgroup: CgroupVersion,
    apparmor: AppArmor,
    /// Containers with an operation in progress; one operation per container at a time.
    busy: Mutex<BTreeSet<ContainerId>>,
    released: Condvar,
    /// The idmap user namespaces, one per id range, made on first use and shared by all
    /// image mounts with that range.
    userns: Mutex<BTreeMap<IdMap, Arc<IdmapUserns>>>,
}

/// Marks a container busy until dropped.
struct Busy<'a> {
    runtime: &'a LxcRuntime,
    id: ContainerId,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut busy = self.runtime.busy.lock().unwrap_or_else(|p| p.into_inner());
        busy.remove(&self.id);
        self.runtime.released.notify_all();
    }
}

/// Paths of one container's directory.
struct Dirs {
    dir: PathBuf,
    spec: PathBuf,
    config: PathBuf,
    lower: PathBuf,
    rootfs: PathBuf,
    log: PathBuf,
    console: PathBuf,
    seccomp: PathBuf,
}

impl LxcRuntime {
    /// A runtime keeping its containers under `lxc_path` (created, mode 0711 so that the
    /// containers' unprivileged root can traverse to its rootfs).
    pub fn new(lxc_path: impl Into<PathBuf>) -> Result<Self, io::Error> {
        let lxc_path = lxc_path.into();
        fs::create_dir_all(&lxc_path)?;
        fs::set_permissions(&lxc_path, fs::Permissions::from_mode(0o711))?;
        let cgroup = detect_cgroup_version();
        let apparmor = AppArmor::detect();
        tracing::debug!(path = %lxc_path.display(), ?cgroup, ?apparmor, "lxc runtime");
        Ok(Self {
            lxc_path,
            cgroup,
            apparmor,
            busy: Mutex::new(BTreeSet::new()),
            released: Condvar::new(),
            userns: Mutex::new(BTreeMap::new()),
        })
    }

    /// The cgroup version limits are written for.
    pub fn cgroup_version(&self) -> CgroupVersion {
        self.cgroup
    }

    /// The container's host mount points `(lower, rootfs)`, for inspection by tests and tools.
    pub fn mount_points(&self, id: &ContainerId) -> (PathBuf, PathBuf) {
        let d = self.dirs(id);
        (d.lower, d.rootfs)
    }

    fn dirs(&self, id: &ContainerId) -> Dirs {
        let dir = self.lxc_path.join(id.as_str());
        Dirs {
            spec: dir.join(SPEC_FILE),
            config: dir.join("config"),
            lower: dir.join("lower"),
            rootfs: dir.join("rootfs"),
            log: dir.join("lxc.log"),
            console: dir.join("console.log"),
            seccomp: dir.join("seccomp"),
            dir,
        }
    }

    fn userns(&self, map: IdMap) -> Result<Arc<IdmapUserns>, MountError> {
        let lock = || self.userns.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = lock().get(&map) {
            return Ok(Arc::clone(u));
        }
        // Made without the lock held (it spawns a process); a concurrent caller may win,
        // and either namespace maps the same ids.
        let fresh = Arc::new(idmap_userns(map)?);
        Ok(Arc::clone(lock().entry(map).or_insert(fresh)))
    }

    /// Waits until no other operation runs on `id`, then holds it until the guard drops.
    fn guard(&self, id: &ContainerId) -> Busy<'_> {
        // The set stays consistent through a panic (insert/remove are atomic), so a
        // poisoned lock is taken over.
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while busy.contains(id) {
            busy = self.released.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        busy.insert(id.clone());
        Busy {
            runtime: self,
            id: id.clone(),
        }
    }

    fn load_spec(&self, id: &ContainerId) -> Result<Option<ContainerSpec>, RuntimeError> {
        let path = self.dirs(id).spec;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io_err("reading", id, &path, source)),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io_err(
                "parsing",
                id,
                &path,
                io::Error::new(io::ErrorKind::InvalidData, e),
            )
        })
    }

    fn require_spec(&self, id: &ContainerId) -> Result<ContainerSpec, RuntimeError> {
        self.load_spec(id)?
            .ok_or_else(|| RuntimeError::NotFound { id: id.clone() })
    }

    fn lxc(
        &self,
        tool_name: &str,
        id: &ContainerId,
        op: &'static str,
        extra: &[&str],
    ) -> Result<String, RuntimeError> {
        let path = self.lxc_path.to_string_lossy();
        let mut args = vec!["-n", id.as_str(), "-P", &path];
        args.extend_from_slice(extra);
        tool::run(tool_name, &args).map_err(|source| RuntimeError::Tool {
            id: id.clone(),
            op,
            source: Box::new(source),
        })
    }

    fn query_state(&self, id: &ContainerId) -> Result<ContainerState, RuntimeError> {
        // A create that failed before writing the config defined nothing LXC knows.
        if !self.dirs(id).config.exists() {
            return Ok(ContainerState::Stopped);
        }
        let out = self.lxc("lxc-info", id, "state", &["-s", "-p"])?;
        Ok(parse_lxc_info(&out))
    }

    /// Mounts lower and rootfs if they are not mounted, and the directories LXC needs.
    fn ensure_rootfs(&self, spec: &ContainerSpec, d: &Dirs) -> Result<(), RuntimeError> {
        let id = &spec.id;
        let mnt = |source| RuntimeError::Mount {
            id: id.clone(),
            source,
        };
        let upper = spec.data_dir.join("upper");
        let work = spec.data_dir.join("work");
        for dir in [&d.lower, &d.rootfs, &upper, &work] {
            fs::create_dir_all(dir).map_err(|e| io_err("creating directory", id, dir, e))?;
        }
        let base = spec.id_map.host_base;
        // The upper root is the container's `/`, owned by its root: an owner that is
        // another range's root means the container changed range (the shared range before
        // ranges were per package): its files move along, the root last.
        let owner = std::os::unix::fs::MetadataExt::uid(
            &fs::metadata(&upper).map_err(|e| io_err("stat", id, &upper, e))?,
        );
        let old = IdMap {
            host_base: owner,
            count: ID_MAP_COUNT,
        };
        if owner != base && old.is_delegated() {
            shift_ids(&upper, old, spec.id_map).map_err(mnt)?;
        }
        std::os::unix::fs::chown(&upper, Some(base), Some(base))
            .map_err(|e| io_err("chown", id, &upper, e))?;
        let lower_guard = if is_mount_point(&d.lower).map_err(mnt)? {
            None
        } else {
            let userns = self.userns(spec.id_map).map_err(mnt)?;
            Some(mount_squashfs_idmapped(&spec.image, &d.lower, &userns).map_err(mnt)?)
        };
        if !is_mount_point(&d.rootfs).map_err(mnt)? {
            mount_overlay(&d.lower, &upper, &work, &d.rootfs)
                .map_err(mnt)?
                .keep();
        }
        if let Some(g) = lower_guard {
            g.keep();
        }
        // Mount points LXC needs, and a sticky /tmp, when the image lacks them.
        for (name, mode) in [
            ("dev", 0o755),
            ("proc", 0o555),
            ("sys", 0o555),
            ("tmp", 0o1777),
        ] {
            let p = d.rootfs.join(name);
            if !p.exists() {
                fs::create_dir(&p).map_err(|e| io_err("creating directory", id, &p, e))?;
                fs::set_permissions(&p, fs::Permissions::from_mode(mode))
                    .map_err(|e| io_err("chmod", id, &p, e))?;
                std::os::unix::fs::chown(&p, Some(base), Some(base))
                    .map_err(|e| io_err("chown", id, &p, e))?;
            }
        }
        Ok(())
    }

    fn write_config(&self, spec: &ContainerSpec, d: &Dirs) -> Result<(), RuntimeError> {
        write_atomic(&d.seccomp, SECCOMP_POLICY.as_bytes())
            .map_err(|e| io_err("writing", &spec.id, &d.seccomp, e))?;
        let paths = RenderPaths {
            rootfs: &d.rootfs,
            log_file: &d.log,
            console_log: &d.console,
            seccomp: &d.seccomp,
            apparmor: self.apparmor,
        };
        write_atomic(
            &d.config,
            render_config(spec, &paths, self.cgroup).as_bytes(),
        )
        .map_err(|e| io_err("writing", &spec.id, &d.config, e))
    }

    fn unmount_all(&self, id: &ContainerId, d: &Dirs) -> Result<(), RuntimeError> {
        for target in [&d.rootfs, &d.lower] {
            unmount_detach(target).map_err(|source| RuntimeError::Mount {
                id: id.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

impl ContainerRuntime for LxcRuntime {
    fn create(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        spec.validate()?;
        check_devices(spec)?;
        let _g = self.guard(&spec.id);
        let id = &spec.id;
        let d = self.dirs(id);
        if let Some(existing) = self.load_spec(id)? {
            let running = !matches!(self.query_state(id)?, ContainerState::Stopped);
            if existing != *spec {
                if running {
                    return Err(RuntimeError::Busy {
                        id: id.clone(),
                        op: "create with a different spec",
                    });
                }
                // Image or data dir may have changed: remount from scratch.
                self.unmount_all(id, &d)?;
            }
        }
        fs::create_dir_all(&d.dir).map_err(|e| io_err("creating directory", id, &d.dir, e))?;
        fs::set_permissions(&d.dir, fs::Permissions::from_mode(0o711))
            .map_err(|e| io_err("chmod", id, &d.dir, e))?;
        let json = serde_json::to_vec_pretty(spec)
            .map_err(|e| io_err("serialising", id, &d.spec, io::Error::other(e)))?;
        // Persist the definition first: a failed create is still found by destroy.
        write_atomic(&d.spec, &json).map_err(|e| io_err("writing", id, &d.spec, e))?;
        self.ensure_rootfs(spec, &d)?;
        self.write_config(spec, &d)?;
        tracing::info!(container = %id, "created");
        Ok(())
    }

    fn start(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let _g = self.guard(id);
        let spec = self.require_spec(id)?;
        if let ContainerState::Running { .. } = self.query_state(id)? {
            return Ok(());
        }
        let d = self.dirs(id);
        let net = &spec.network;
        ensure_bridge(&net.bridge, net.gateway, net.prefix_len).map_err(|source| {
            RuntimeError::Tool {
                id: id.clone(),
                op: "bridge setup",
                source: Box::new(source),
            }
        })?;
        self.ensure_rootfs(&spec, &d)?;
        self.write_config(&spec, &d)?;
        // Only this start's messages: the log is truncated first.
        fs::write(&d.log, b"").map_err(|e| io_err("truncating", id, &d.log, e))?;
        let path = self.lxc_path.to_string_lossy();
        tool::run("lxc-start", ["-n", id.as_str(), "-P", &path, "-d"]).map_err(|source| {
            RuntimeError::StartFailed {
                id: id.clone(),
                source: Box::new(source),
                log: error_lines(&d.log),
            }
        })?;
        // `lxc-start -d` returns once LXC saw the container RUNNING; an init that exits at
        // once is reported by the next `state`, as any later death is.
        let state = self.query_state(id)?;
        tracing::info!(container = %id, ?state, "started");
        Ok(())
    }

    fn stop(&self, id: &ContainerId, timeout: Duration) -> Result<(), RuntimeError> {
        let _g = self.guard(id);
        self.require_spec(id)?;
        if self.query_state(id)? == ContainerState::Stopped {
            return Ok(());
        }
        let secs = timeout.as_secs().to_string();
        let graceful = if timeout.as_secs() == 0 {
            self.lxc("lxc-stop", id, "stop", &["-k"])
        } else {
            // lxc-stop sends lxc.signal.halt (SIGTERM) and kills after the timeout.
            self.lxc("lxc-stop", id, "stop", &["-t", &secs])
        };
        if let Err(e) = graceful {
            tracing::warn!(container = %id, error = %e, "graceful stop failed; killing");
            if self.query_state(id)? != ContainerState::Stopped {
                self.lxc("lxc-stop", id, "kill", &["-k"])?;
            }
        }
        match self.query_state(id)? {
            ContainerState::Stopped => {
                tracing::info!(container = %id, "stopped");
                Ok(())
            }
            state => Err(RuntimeError::Timeout {
                id: id.clone(),
                op: "stop",
                after: timeout,
                state,
            }),
        }
    }

    fn destroy(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let _g = self.guard(id);
        let d = self.dirs(id);
        if !d.dir.exists() {
            return Ok(());
        }
        if self.query_state(id)? != ContainerState::Stopped {
            self.lxc("lxc-stop", id, "kill", &["-k"])?;
        }
        self.unmount_all(id, &d)?;
        for dir in [&d.lower, &d.rootfs] {
            match fs::remove_dir(dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("removing directory", id, dir, e));
                }
                _ => {}
            }
        }
        // Only plain files are left (config, spec, logs); never recurse.
        let entries = fs::read_dir(&d.dir).map_err(|e| io_err("listing", id, &d.dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| io_err("listing", id, &d.dir, e))?.path();
            fs::remove_file(&path).map_err(|e| io_err("removing", id, &path, e))?;
        }
        fs::remove_dir(&d.dir).map_err(|e| io_err("removing directory", id, &d.dir, e))?;
        tracing::info!(container = %id, "destroyed");
        Ok(())
    }

    fn state(&self, id: &ContainerId) -> Result<ContainerState, RuntimeError> {
        let _g = self.guard(id);
        self.require_spec(id)?;
        self.query_state(id)
    }

    fn list(&self) -> Result<Vec<ContainerStatus>, RuntimeError> {
        let entries = fs::read_dir(&self.lxc_path).map_err(|source| RuntimeError::List {
            path: self.lxc_path.clone(),
            source,
        })?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| ContainerId::new(n).ok())
            else {
                continue;
            };
            if !entry.path().join(SPEC_FILE).exists() {
                continue;
            }
            let state = self.query_state(&id)?;
            out.push(ContainerStatus { id, state });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn exec(&self, id: &ContainerId, argv: &[String]) -> Result<ExecOutput, RuntimeError> {
        // The guard covers only the check: a long command must not block stop or destroy.
        {
            let _g = self.guard(id);
            self.require_spec(id)?;
            if !matches!(self.query_state(id)?, ContainerState::Running { .. }) {
                return Err(RuntimeError::NotRunning {
                    id: id.clone(),
                    op: "exec",
                });
            }
        }
        let path = self.lxc_path.to_string_lossy();
        let mut args = vec!["-n", id.as_str(), "-P", &path, "--clear-env", "--"];
        args.extend(argv.iter().map(String::as_str));
        let out = tool::output("lxc-attach", &args).map_err(|source| RuntimeError::Tool {
            id: id.clone(),
            op: "exec",
            source: Box::new(source),
        })?;
        Ok(ExecOutput {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    fn stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError> {
        let _g = self.guard(id);
        self.require_spec(id)?;
        let ContainerState::Running { pid } = self.query_state(id)? else {
            return Err(RuntimeError::NotRunning {
                id: id.clone(),
                op: "stats",
            });
        };
        read_stats(self.cgroup, id.as_str(), pid).map_err(|source| RuntimeError::Stats {
            id: id.clone(),
            source,
        })
    }
}

/// Parses `lxc-info -s -p` output (`State: RUNNING`, `PID: 123`).
fn parse_lxc_info(out: &str) -> ContainerState {
    let field = |name: &str| {
        out.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    let pid = field("PID").and_then(|p| p.parse::<u32>().ok());
    match field("State").as_deref() {
        Some("RUNNING") => match pid {
            Some(pid) => ContainerState::Running { pid },
            None => ContainerState::Starting,
        },
        Some("STARTING") => ContainerState::Starting,
        Some("STOPPING" | "ABORTING") => ContainerState::Stopping,
        Some("FROZEN" | "FREEZING") => ContainerState::Frozen,
        Some("THAWED") => pid.map_or(ContainerState::Starting, |pid| ContainerState::Running {
            pid,
        }),
        _ => ContainerState::Stopped,
    }
}

/// Each requested device must be the node of that type and number on this host.
fn check_devices(spec: &ContainerSpec) -> Result<(), SpecError> {
    use rustix::fs::{FileType, major, minor, stat};
    for dev in &spec.devices {
        let mismatch = |problem: String| SpecError::DeviceMismatch {
            path: dev.path.clone(),
            problem,
        };
        let st = stat(&dev.path).map_err(|e| mismatch(e.to_string()))?;
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::CharacterDevice => DeviceKind::Char,
            FileType::BlockDevice => DeviceKind::Block,
            other => return Err(mismatch(format!("is a {other:?}, not a device node"))),
        };
        let found = (kind, major(st.st_rdev), minor(st.st_rdev));
        if found != (dev.kind, dev.major, dev.minor) {
            return Err(mismatch(format!(
                "host node is {found:?}, spec says {:?}",
                (dev.kind, dev.major, dev.minor)
            )));
        }
    }
    Ok(())
}

/// The last ten ERROR lines of an LXC log, joined with " | ".
fn error_lines(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let errors: Vec<&str> = text.lines().filter(|l| l.contains(" ERROR ")).collect();
    errors[errors.len().saturating_sub(10)..].join(" | ")
}

/// cgroup v2 if `/sys/fs/cgroup` is the unified hierarchy, else v1.
fn detect_cgroup_version() -> CgroupVersion {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        CgroupVersion::V2
    } else {
        CgroupVersion::V1
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

fn io_err(op: &'static str, id: &ContainerId, path: &Path, source: io::Error) -> RuntimeError {
    RuntimeError::Io {
        op,
        id: id.clone(),
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
mod tests {
    use super::*;

    #[test]
    fn devices_must_match_the_host_node() {
        let mut spec = crate::spec::tests::minimal_spec();
        let null = crate::spec::DeviceSpec {
            path: "/dev/null".into(),
            kind: DeviceKind::Char,
            major: 1,
            minor: 3,
            read_only: false,
        };
        spec.devices = vec![null.clone()];
        check_devices(&spec).unwrap();
        for wrong in [
            crate::spec::DeviceSpec {
                minor: 5,
                ..null.clone()
            },
            crate::spec::DeviceSpec {
                kind: DeviceKind::Block,
                ..null.clone()
            },
            crate::spec::DeviceSpec {
                path: "/etc/passwd".into(),
                ..null.clone()
            },
            crate::spec::DeviceSpec {
                path: "/dev/no-such-device".into(),
                ..null.clone()
            },
        ] {
            spec.devices = vec![wrong.clone()];
            assert!(
                matches!(check_devices(&spec), Err(SpecError::DeviceMismatch { .. })),
                "{wrong:?}"
            );
        }
    }

    #[test]
    fn lxc_info_states() {
        assert_eq!(
            parse_lxc_info("State:          RUNNING\nPID:            4242\n"),
            ContainerState::Running { pid: 4242 }
        );
        assert_eq!(
            parse_lxc_info("State:          STOPPED\n"),
            ContainerState::Stopped
        );
        assert_eq!(
            parse_lxc_info("State: STOPPING\nPID: 1\n"),
            ContainerState::Stopping
        );
        assert_eq!(
            parse_lxc_info("State: STARTING\n"),
            ContainerState::Starting
        );
        assert_eq!(
            parse_lxc_info("State: FROZEN\nPID: 9\n"),
            ContainerState::Frozen
        );
    }
}
