//! `server.metrics` and `server.info` measurements from `/proc` and `statvfs`.
//!
//! CPU use is a difference between two samples of `/proc/stat`: the previous call's
//! sample if it is at least [`MIN_SAMPLE`] old, else a fresh pair [`MIN_SAMPLE`] apart.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hearth_rpc::RpcError;
use hearth_rpc::methods::server::{CpuMetrics, DiskMetrics, LoadAverage, MemoryMetrics, Metrics};

use crate::ApiError;

const MIN_SAMPLE: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    busy: u64,
    total: u64,
}

/// Parses the aggregate `cpu` line of `/proc/stat`; also returns the CPU count.
pub(crate) fn parse_proc_stat(text: &str) -> Option<(CpuTimes, u32)> {
    let mut lines = text.lines();
    let first = lines.next()?;
    let mut fields = first.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let nums: Vec<u64> = fields.filter_map(|f| f.parse().ok()).collect();
    if nums.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest counted in user).
    let total: u64 = nums.iter().take(8).sum();
    let idle = nums[3] + nums.get(4).copied().unwrap_or(0);
    let cores = text
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    Some((
        CpuTimes {
            busy: total.saturating_sub(idle),
            total,
        },
        u32::try_from(cores).unwrap_or(u32::MAX),
    ))
}

/// Parses `MemTotal` and `MemAvailable` (kB) of `/proc/meminfo`.
pub(crate) fn parse_meminfo(text: &str) -> Option<MemoryMetrics> {
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable")?;
    Some(MemoryMetrics {
        total_bytes: total,
        available_bytes: available,
        used_bytes: total.saturating_sub(available),
    })
}

/// Parses the three load averages of `/proc/loadavg`.
pub(crate) fn parse_loadavg(text: &str) -> Option<LoadAverage> {
    let mut it = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some(LoadAverage {
        one: it.next()??,
        five: it.next()??,
        fifteen: it.next()??,
    })
}

fn read(path: &str) -> Result<String, RpcError> {
    std::fs::read_to_string(path).map_err(|source| {
        ApiError::Io {
            op: "read",
            path: PathBuf::from(path),
            source,
        }
        .to_rpc()
    })
}

fn unparsable(path: &str) -> RpcError {
    ApiError::Document {
        pointer: path.to_owned(),
        reason: "unexpected format".into(),
    }
    .to_rpc()
}

fn cpu_sample() -> Result<(CpuTimes, u32), RpcError> {
    parse_proc_stat(&read("/proc/stat")?).ok_or_else(|| unparsable("/proc/stat"))
}

/// Samples machine metrics, remembering the last CPU sample between calls.
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    last: Mutex<Option<(Instant, CpuTimes)>>,
}

impl Sampler {
    pub(crate) async fn sample(&self, data_dir: &Path) -> Result<Metrics, RpcError> {
        let previous = *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (before_at, before) = match previous {
            Some((at, s)) if at.elapsed() >= MIN_SAMPLE => (at, s),
            _ => {
                let s = cpu_sample()?.0;
                let at = Instant::now();
                tokio::time::sleep(MIN_SAMPLE).await;
                (at, s)
            }
        };
        let (now, cores) = cpu_sample()?;
        let now_at = Instant::now();
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((now_at, now));
        let total = now.total.saturating_sub(before.total);
        let busy = now.busy.saturating_sub(before.busy);
        #[allow(clippy::cast_precision_loss)] // jiffy counts are far below 2^52
        let usage_percent = if total == 0 {
            0.0
        } else {
            busy as f64 * 100.0 / total as f64
        };
        let memory =
            parse_meminfo(&read("/proc/meminfo")?).ok_or_else(|| unparsable("/proc/meminfo"))?;
        let load =
            parse_loadavg(&read("/proc/loadavg")?).ok_or_else(|| unparsable("/proc/loadavg"))?;
        let disk = disk_usage(data_dir)?;
        Ok(Metrics {
            cpu: CpuMetrics {
                usage_percent,
                cores,
                sample_ms: u64::try_from((now_at - before_at).as_millis()).unwrap_or(u64::MAX),
            },
            memory,
            disk,
            load,
        })
    }
}

fn disk_usage(path: &Path) -> Result<DiskMetrics, RpcError> {
    let st = rustix::fs::statvfs(path).map_err(|e| {
        ApiError::Io {
            op: "statvfs",
            path: path.to_path_buf(),
            source: e.into(),
        }
        .to_rpc()
    })?;
    let frsize = st.f_frsize;
    let total = st.f_blocks.saturating_mul(frsize);
    Ok(DiskMetrics {
        total_bytes: total,
        available_bytes: st.f_bavail.saturating_mul(frsize),
        used_bytes: total.saturating_sub(st.f_bfree.saturating_mul(frsize)),
    })
}

/// Bytes used by regular files under `dir` (symlinks not followed; at most 100k entries).
pub(crate) fn dir_usage(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0usize;
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            seen += 1;
            if seen > 100_000 {
                return total;
            }
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                total = total.saturating_add(meta.len());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\nintr 1\n";
        let (t, cores) = parse_proc_stat(stat).unwrap();
        assert_eq!(cores, 2);
        assert_eq!(t.total, 1000);
        assert_eq!(t.busy, 150);
        let mem =
            parse_meminfo("MemTotal:  2048 kB\nMemFree: 10 kB\nMemAvailable: 1024 kB\n").unwrap();
        assert_eq!(mem.total_bytes, 2048 * 1024);
        assert_eq!(mem.used_bytes, 1024 * 1024);
        let load = parse_loadavg("0.50 1.00 2.25 1/100 42\n").unwrap();
        assert!((load.fifteen - 2.25).abs() < 1e-9);
        assert!(parse_proc_stat("intr 1\n").is_none());
        assert!(parse_loadavg("x").is_none());
    }

    #[test]
    fn dir_usage_sums_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), [0u8; 100]).unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/b"), [0u8; 23]).unwrap();
        assert_eq!(dir_usage(d.path()), 123);
    }

    #[tokio::test]
    async fn live_sample_is_plausible() {
        let d = tempfile::tempdir().unwrap();
        let m = Sampler::default().sample(d.path()).await.unwrap();
        assert!(m.cpu.cores >= 1);
        assert!((0.0..=100.0).contains(&m.cpu.usage_percent));
        assert!(m.memory.total_bytes > m.memory.available_bytes);
        assert!(m.disk.total_bytes > 0);
        assert!(m.cpu.sample_ms >= 100);
    }
}
