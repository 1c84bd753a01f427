//! Resource use of a running container, read from its cgroup counters.
//!
//! Design: the container's cgroup is found from its init's `/proc/<pid>/cgroup`, cut at
//! the `lxc.payload.<id>` component (LXC creates it under the cgroup `lxc-start` ran in, so
//! its absolute path depends on how hearthd was started; and processes inside may have
//! moved init into a child cgroup). The counters read are hierarchical, so they cover every
//! process of the container:
//! - v1: `memory.usage_in_bytes`, `pids.current`, `cpuacct.usage` (ns);
//! - v2: `memory.current`, `pids.current`, `cpu.stat` `usage_usec`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::CgroupVersion;

/// Resource use of one container at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerStats {
    /// Memory charged to the container (page cache included), bytes.
    pub memory_bytes: u64,
    /// Tasks (processes and threads) in the container.
    pub pids: u64,
    /// CPU time used since the container started.
    pub cpu_time: Duration,
}

/// Reading a cgroup counter failed.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file did not hold what the kernel documents.
    #[error("unexpected content in {path}: {content:?}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held (trimmed).
        content: String,
    },
    /// The process is in no cgroup of this controller.
    #[error("process {pid} has no {controller} cgroup")]
    NoCgroup {
        /// The process.
        pid: u32,
        /// The controller (empty for v2).
        controller: String,
    },
}

/// Reads the counters of the container whose init is `pid`.
pub(crate) fn read_stats(
    version: CgroupVersion,
    id: &str,
    pid: u32,
) -> Result<ContainerStats, StatsError> {
    let proc_cgroup = PathBuf::from(format!("/proc/{pid}/cgroup"));
    let text = read(&proc_cgroup)?;
    let root = Path::new("/sys/fs/cgroup");
    let dir = |controller: &str| {
        cgroup_path(&text, version, controller, id)
            .map(|(mount, rel)| root.join(mount).join(rel))
            .ok_or_else(|| StatsError::NoCgroup {
                pid,
                controller: controller.to_owned(),
            })
    };
    match version {
        CgroupVersion::V1 => Ok(ContainerStats {
            memory_bytes: read_u64(&dir("memory")?.join("memory.usage_in_bytes"))?,
            pids: read_u64(&dir("pids")?.join("pids.current"))?,
            cpu_time: Duration::from_nanos(read_u64(&dir("cpuacct")?.join("cpuacct.usage"))?),
        }),
        CgroupVersion::V2 => {
            let d = dir("")?;
            let cpu_stat = d.join("cpu.stat");
            let stat = read(&cpu_stat)?;
            let usec = stat
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| StatsError::Parse {
                    path: cpu_stat.clone(),
                    content: stat.trim().to_owned(),
                })?;
            Ok(ContainerStats {
                memory_bytes: read_u64(&d.join("memory.current"))?,
                pids: read_u64(&d.join("pids.current"))?,
                cpu_time: Duration::from_micros(usec),
            })
        }
    }
}

/// From `/proc/<pid>/cgroup` text: (mount dir under /sys/fs/cgroup, path relative to it)
/// of `controller` (v1) or the unified hierarchy (v2), cut after `lxc.payload.<id>`.
fn cgroup_path(
    proc_cgroup: &str,
    version: CgroupVersion,
    controller: &str,
    id: &str,
) -> Option<(String, String)> {
    let (mount, path) = proc_cgroup.lines().find_map(|line| {
        let (_, rest) = line.split_once(':')?;
        let (controllers, path) = rest.split_once(':')?;
        let hit = match version {
            CgroupVersion::V1 => controllers.split(',').any(|c| c == controller),
            CgroupVersion::V2 => controllers.is_empty(),
        };
        hit.then(|| {
            let mount = match version {
                CgroupVersion::V1 => controllers.to_owned(),
                CgroupVersion::V2 => String::new(),
            };
            (mount, path)
        })
    })?;
    let payload = format!("lxc.payload.{id}");
    let mut rel = Vec::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        rel.push(part);
        if part == payload {
            break;
        }
    }
    Some((mount, rel.join("/")))
}

fn read(path: &Path) -> Result<String, StatsError> {
    std::fs::read_to_string(path).map_err(|source| StatsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_u64(path: &Path) -> Result<u64, StatsError> {
    let text = read(path)?;
    text.trim().parse().map_err(|_| StatsError::Parse {
        path: path.to_owned(),
        content: text.trim().to_owned(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
mod tests {
    use super::*;

    const V1: &str = "12:pids:/lxc.payload.web/init.scope\n\
                      5:cpu,cpuacct:/system.slice/hearthd.service/lxc.payload.web\n\
                      4:memory:/lxc.payload.web\n\
                      1:name=systemd:/lxc.payload.web\n\
                      0::/lxc.payload.web\n";

    #[test]
    fn v1_paths_per_controller_cut_at_the_payload() {
        let p = |c| cgroup_path(V1, CgroupVersion::V1, c, "web");
        assert_eq!(
            p("memory"),
            Some(("memory".into(), "lxc.payload.web".into()))
        );
        assert_eq!(p("pids"), Some(("pids".into(), "lxc.payload.web".into())));
        assert_eq!(
            p("cpuacct"),
            Some((
                "cpu,cpuacct".into(),
                "system.slice/hearthd.service/lxc.payload.web".into()
            ))
        );
        assert_eq!(p("blkio"), None);
    }

    #[test]
    fn v2_path_is_the_unified_line() {
        let text = "0::/hearth.slice/lxc.payload.db/app\n";
        assert_eq!(
            cgroup_path(text, CgroupVersion::V2, "", "db"),
            Some((String::new(), "hearth.slice/lxc.payload.db".into()))
        );
    }
}
