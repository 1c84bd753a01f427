//! Processes: spawning, signalling, reaping — the PID 1 duties.
//!
//! # Design
//! `SIGCHLD`, `SIGTERM` and `SIGINT` are blocked in every thread (before any thread
//! starts) and taken synchronously by one signal thread with `sigwait`. On `SIGCHLD`
//! it reaps *every* exited child with `waitpid(-1, WNOHANG)` — daemons, probes,
//! actions and orphans re-parented to us — and routes each exit by pid ([`Route`]).
//!
//! Spawning and reaping share one lock ([`Reaper::spawn`]): a child is registered
//! before the reaper can see it exit, and the standard library's own `waitpid` on a
//! child whose `exec` failed cannot race with ours (it would otherwise panic).
//! Because of that, nothing here uses `Child::wait`: exits only come from the reaper.
//!
//! Each daemon, probe and action runs in its own process group, so a stop signal or
//! a timeout kill reaches the shell wrappers' children too.
//!
//! # Rejected alternatives
//! A `SIGCHLD` handler (async-signal-safety; `unsafe`), signalfd (needs the same
//! masking and a poll loop for no gain here), `Child::wait` per process (misses
//! orphans and races with a reaper).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_s9pk::spec::{DaemonSpec, StopSignal};
use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, killpg, pthread_sigmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::image::{ImageConfig, merge_env};
use crate::supervisor::ExitInfo;

/// Where a reaped child's exit goes.
pub(crate) enum Route {
    /// A daemon: to the runtime loop.
    Daemon,
    /// A probe or action waiting on this channel.
    Oneshot(Sender<ExitInfo>),
}

/// Errors of the PID 1 plumbing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProcessError {
    /// `pthread_sigmask` failed.
    #[error("block signals SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPWR: {0}")]
    BlockSignals(Errno),
    /// `prctl(PR_SET_CHILD_SUBREAPER)` failed.
    #[error("become child subreaper (prctl PR_SET_CHILD_SUBREAPER): {0}")]
    Subreaper(Errno),
    /// The signal thread could not be started.
    #[error("spawn signal thread: {0}")]
    SignalThread(io::Error),
}

/// Registry of live children and their exit routes.
pub(crate) struct Reaper {
    routes: Mutex<HashMap<i32, Route>>,
    on_daemon_exit: Box<dyn Fn(i32, ExitInfo) + Send + Sync>,
}

impl Reaper {
    /// `on_daemon_exit` receives exits routed [`Route::Daemon`].
    pub(crate) fn new(on_daemon_exit: impl Fn(i32, ExitInfo) + Send + Sync + 'static) -> Self {
        Self {
            routes: Mutex::new(HashMap::new()),
            on_daemon_exit: Box::new(on_daemon_exit),
        }
    }

    /// Spawns `cmd` in a new process group and registers its exit route.
    pub(crate) fn spawn(&self, cmd: &mut Command, route: Route) -> io::Result<(Child, i32)> {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        reset_signals_in_child(cmd.process_group(0));
        let child = cmd.spawn()?;
        let pid = i32::try_from(child.id()).map_err(|_| io::Error::other("pid out of range"))?;
        routes.insert(pid, route);
        Ok((child, pid))
    }

    /// Reaps every exited child and routes its exit.
    pub(crate) fn reap_all(&self) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let (pid, exit) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), ExitInfo::Code(code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    (pid.as_raw(), ExitInfo::Signal(sig as i32))
                }
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(error) => {
                    tracing::warn!(%error, "waitpid");
                    return;
                }
            };
            match routes.remove(&pid) {
                Some(Route::Daemon) => (self.on_daemon_exit)(pid, exit),
                Some(Route::Oneshot(tx)) => {
                    let _ = tx.send(exit);
                }
                None => tracing::debug!(pid, %exit, "reaped orphan"),
            }
        }
    }
}

/// Signals whose disposition children get reset to the default: we may have
/// inherited them ignored (a shell starts background jobs with `SIGINT` and
/// `SIGQUIT` ignored), and ignored dispositions survive `exec`.
const RESET_IN_CHILD: [Signal; 13] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGPIPE,
    Signal::SIGALRM,
    Signal::SIGTERM,
    Signal::SIGCHLD,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGPWR,
];

/// Makes the child start with no blocked signals and default dispositions. The
/// standard library does not reset the mask on every spawn path, and our mask blocks
/// `SIGTERM`/`SIGINT`/`SIGCHLD`: without this a daemon could never be stopped
/// gracefully.
#[allow(unsafe_code)]
fn reset_signals_in_child(cmd: &mut Command) {
    let hook = || -> io::Result<()> {
        pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
            .map_err(io::Error::from)?;
        for s in RESET_IN_CHILD {
            // SAFETY: installing SIG_DFL registers no handler of ours, so nothing can
            // run in signal context; sigaction is async-signal-safe.
            unsafe { nix::sys::signal::signal(s, nix::sys::signal::SigHandler::SigDfl) }
                .map_err(io::Error::from)?;
        }
        Ok(())
    };
    // SAFETY: the hook runs between fork and exec and only calls async-signal-safe
    // functions (pthread_sigmask, sigaction) on stack data; it allocates nothing
    // (nix's SigSet is a plain sigset_t and errors are plain errno values).
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Blocks the signals the signal thread takes; call before starting any thread.
pub(crate) fn block_signals() -> Result<SigSet, ProcessError> {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGPWR,
    ] {
        set.add(s);
    }
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(ProcessError::BlockSignals)?;
    Ok(set)
}

/// Makes orphans of our descendants our children (when not PID 1, e.g. in tests).
pub(crate) fn become_subreaper() -> Result<(), ProcessError> {
    nix::sys::prctl::set_child_subreaper(true).map_err(ProcessError::Subreaper)
}

/// Starts the signal thread: reaps on `SIGCHLD`, calls `on_stop` on `SIGTERM`/`SIGINT`
/// and `SIGPWR` (LXC's default halt signal),
/// ignores `SIGHUP` and `SIGQUIT` (a stray terminal signal must not kill PID 1's work).
pub(crate) fn spawn_signal_thread(
    set: SigSet,
    reaper: Arc<Reaper>,
    on_stop: impl Fn(&'static str) + Send + 'static,
) -> Result<(), ProcessError> {
    std::thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                match set.wait() {
                    Ok(Signal::SIGCHLD) => reaper.reap_all(),
                    Ok(sig @ (Signal::SIGTERM | Signal::SIGINT | Signal::SIGPWR)) => {
                        on_stop(sig.as_str())
                    }
                    Ok(sig) => tracing::info!(signal = sig.as_str(), "ignored signal"),
                    Err(error) => tracing::warn!(%error, "sigwait"),
                }
            }
        })
        .map(drop)
        .map_err(ProcessError::SignalThread)
}

/// The `nix` signal for a stop signal.
pub(crate) fn to_signal(signal: StopSignal) -> Signal {
    match signal {
        StopSignal::Term => Signal::SIGTERM,
        StopSignal::Int => Signal::SIGINT,
        StopSignal::Quit => Signal::SIGQUIT,
        StopSignal::Hup => Signal::SIGHUP,
        StopSignal::Usr1 => Signal::SIGUSR1,
        StopSignal::Usr2 => Signal::SIGUSR2,
        StopSignal::Kill => Signal::SIGKILL,
    }
}

/// Sends `signal` to the process group led by `pid` (a gone group is not an error).
pub(crate) fn signal_group(pid: i32, signal: Signal) {
    match killpg(Pid::from_raw(pid), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(error) => tracing::warn!(pid, %signal, %error, "killpg"),
    }
}

/// How to run a command: argv, environment, user, working directory.
#[derive(Debug, Clone, Default)]
pub(crate) struct Invocation {
    /// Argument vector (non-empty).
    pub(crate) argv: Vec<String>,
    /// Added environment.
    pub(crate) env: Vec<(String, String)>,
    /// User name or uid (`name`, `1000`, `1000:1000`).
    pub(crate) user: Option<String>,
    /// Working directory.
    pub(crate) workdir: Option<String>,
}

impl Invocation {
    /// The invocation of a daemon (and of its exec probes, with `argv` replaced), with
    /// its image's defaults if known.
    pub(crate) fn of_daemon(
        spec: &DaemonSpec,
        image: Option<&ImageConfig>,
    ) -> Result<Self, String> {
        Self::with_image(
            &format!("daemon {}", spec.id),
            spec.command.as_deref(),
            &spec.env,
            spec.user.as_ref(),
            spec.workdir.as_ref(),
            image,
        )
    }

    /// Spec fields laid over the image's defaults: a missing command is the image's
    /// `entrypoint ++ cmd`, user and workdir default to the image's, env is merged.
    pub(crate) fn with_image(
        what: &str,
        command: Option<&[String]>,
        env: &BTreeMap<String, String>,
        user: Option<&String>,
        workdir: Option<&String>,
        image: Option<&ImageConfig>,
    ) -> Result<Self, String> {
        let argv = match command {
            Some(c) => c.to_vec(),
            None => image.map(|i| i.command.clone()).unwrap_or_default(),
        };
        if argv.is_empty() {
            return Err(format!(
                "{what} has no command and its image has no entrypoint or cmd (is --images-dir right?)"
            ));
        }
        let base = image.map(|i| i.env.as_slice()).unwrap_or_default();
        Ok(Self {
            argv,
            env: merge_env(base, env.iter().map(|(k, v)| (k.clone(), v.clone()))),
            user: user.cloned().or_else(|| image.and_then(|i| i.user.clone())),
            workdir: workdir
                .cloned()
                .or_else(|| image.and_then(|i| i.workdir.clone())),
        })
    }

    /// A `Command` for it (user resolved through `/etc/passwd`).
    pub(crate) fn command(&self) -> Result<Command, String> {
        let Some((program, args)) = self.argv.split_first() else {
            return Err("empty command".into());
        };
        let mut cmd = Command::new(program);
        cmd.args(args).envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.workdir {
            cmd.current_dir(dir);
        }
        if let Some(user) = &self.user {
            let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
            let (uid, gid) = resolve_user(user, &passwd)?;
            cmd.uid(uid).gid(gid);
        }
        Ok(cmd)
    }
}

/// Resolves `name`, `uid` or `uid:gid` against `/etc/passwd` content.
pub(crate) fn resolve_user(user: &str, passwd: &str) -> Result<(u32, u32), String> {
    if let Some((u, g)) = user.split_once(':') {
        let parse = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("invalid user {user:?}"))
        };
        return Ok((parse(u)?, parse(g)?));
    }
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if let [name, _, uid, gid, ..] = fields[..]
            && (name == user || uid == user)
            && let (Ok(uid), Ok(gid)) = (uid.parse(), gid.parse())
        {
            return Ok((uid, gid));
        }
    }
    match user.parse::<u32>() {
        Ok(uid) => Ok((uid, uid)),
        Err(_) => Err(format!("unknown user {user:?} (not in /etc/passwd)")),
    }
}

/// Result of a one-off command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Output {
    /// How it ended.
    pub(crate) exit: ExitInfo,
    /// Standard output (at most the cap).
    pub(crate) stdout: Vec<u8>,
    /// Standard error (at most the cap).
    pub(crate) stderr: Vec<u8>,
}

/// Errors of a one-off command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    /// It could not be started.
    #[error("spawn {program:?}: {reason}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        reason: String,
    },
    /// It ran longer than allowed and was killed.
    #[error("{program:?} timed out after {timeout:?} and was killed")]
    Timeout {
        /// The program.
        program: String,
        /// The limit.
        timeout: Duration,
    },
}

/// Runs a command to completion with `stdin` as input, killing its process group
/// after `timeout`; keeps at most `cap` bytes of each output stream.
pub(crate) fn run_command(
    reaper: &Reaper,
    invocation: &Invocation,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    cap: usize,
) -> Result<Output, RunError> {
    let program = invocation.argv.first().cloned().unwrap_or_default();
    let spawn_err = |reason: String| RunError::Spawn {
        program: program.clone(),
        reason,
    };
    let mut cmd = invocation.command().map_err(spawn_err)?;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let (tx, rx) = mpsc::channel();
    let (mut child, pid) = reaper
        .spawn(&mut cmd, Route::Oneshot(tx))
        .map_err(|e| spawn_err(e.to_string()))?;
    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), stdin) {
        // A command that does not read its input must not block us.
        let _ = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || pipe.write_all(&input));
    }
    let out = child.stdout.take().map(|p| read_capped(p, cap));
    let err = child.stderr.take().map(|p| read_capped(p, cap));
    let exit = match rx.recv_timeout(timeout) {
        Ok(exit) => exit,
        Err(_) => {
            signal_group(pid, Signal::SIGKILL);
            let _ = rx.recv_timeout(Duration::from_secs(5));
            return Err(RunError::Timeout { program, timeout });
        }
    };
    let join = |h: Option<Option<std::thread::JoinHandle<Vec<u8>>>>| {
        h.flatten().and_then(|h| h.join().ok()).unwrap_or_default()
    };
    Ok(Output {
        exit,
        stdout: join(out),
        stderr: join(err),
    })
}

/// Reads a pipe to its end on a thread, keeping `cap` bytes (`None`: no thread).
fn read_capped(
    pipe: impl Read + Send + 'static,
    cap: usize,
) -> Option<std::thread::JoinHandle<Vec<u8>>> {
    let reader = move || {
        let mut buf = Vec::new();
        let mut limited = pipe.take(u64::try_from(cap).unwrap_or(u64::MAX));
        let _ = limited.read_to_end(&mut buf);
        // Drain the rest so the writer is not blocked on a full pipe.
        let _ = io::copy(&mut limited.into_inner(), &mut io::sink());
        buf
    };
    // Without a thread the output is lost (and a chatty command may block until its
    // timeout), but nothing else breaks.
    std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(reader)
        .ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nbitcoin:x:1000:1001::/home:/bin/sh\n";

    #[test]
    fn users_resolve_by_name_uid_or_pair() {
        assert_eq!(resolve_user("bitcoin", PASSWD), Ok((1000, 1001)));
        assert_eq!(resolve_user("1000", PASSWD), Ok((1000, 1001)));
        assert_eq!(resolve_user("2000", PASSWD), Ok((2000, 2000)));
        assert_eq!(resolve_user("5:6", PASSWD), Ok((5, 6)));
        assert!(
            resolve_user("nobody-here", PASSWD)
                .unwrap_err()
                .contains("unknown user")
        );
    }
}
