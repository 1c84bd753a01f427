//! The runtime loop: feeds events and the real clock into the [`Supervisor`] and
//! carries out its effects with real processes.
//!
//! # Design
//! One thread owns the supervisor. Everything else (signal thread, probe threads,
//! RPC threads) sends it an [`Event`] over one channel; the loop waits on that channel
//! until the supervisor's next deadline, handles the event, calls `tick`, and pushes
//! `status.changed` to every connected client when the status changed (a client
//! gets the current status as its first `status.changed` when it connects).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Weak};
use std::time::Instant;

use hearth_rpc::{ErrorCode, RpcError};
use hearth_s9pk::spec::{DaemonSpec, StopSignal};
use serde_json::{Value, json};

use crate::health::run_probe;
use crate::image::ImageConfig;
use crate::logs::{Logs, capture, unix_ms};
use crate::process::{Invocation, Reaper, Route, signal_group, to_signal};
use crate::rpc::{Client, Control, Reply};
use crate::supervisor::status::ServiceStatus;
use crate::supervisor::{ExitInfo, Now, ProbeOutcome, ProbeRequest, Processes, Supervisor};

/// Inputs of the runtime loop.
pub(crate) enum Event {
    /// A daemon process ended.
    Exited {
        /// Its pid.
        pid: i32,
        /// How.
        exit: ExitInfo,
    },
    /// A probe finished.
    Probe(ProbeOutcome),
    /// `SIGTERM`/`SIGINT` arrived.
    Signal(&'static str),
    /// An RPC request.
    Control(Control, Reply),
    /// A client connected (receives notifications).
    Client(Arc<Client>),
}

/// The real [`Processes`].
pub(crate) struct RealProcesses {
    /// Spawns and reaps.
    pub(crate) reaper: Arc<Reaper>,
    /// Back into the loop (probe results).
    pub(crate) events: Sender<Event>,
    /// Daemon output.
    pub(crate) logs: Logs,
    /// Each daemon's invocation, by start-order index.
    pub(crate) invocations: Vec<Result<Invocation, String>>,
}

impl RealProcesses {
    /// Invocations for daemons in start order.
    pub(crate) fn invocations<'a>(
        specs: impl Iterator<Item = &'a DaemonSpec>,
        images: &BTreeMap<String, ImageConfig>,
    ) -> Vec<Result<Invocation, String>> {
        specs
            .map(|d| Invocation::of_daemon(d, images.get(&d.image)))
            .collect()
    }
}

impl Processes for RealProcesses {
    fn spawn(&mut self, index: usize, spec: &DaemonSpec) -> Result<i32, String> {
        let invocation = self
            .invocations
            .get(index)
            .cloned()
            .unwrap_or_else(|| Err("unknown daemon".into()))?;
        let mut cmd = invocation.command()?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let program = invocation.argv.first().cloned().unwrap_or_default();
        let (mut child, pid) = self
            .reaper
            .spawn(&mut cmd, Route::Daemon)
            .map_err(|e| format!("spawn {program:?}: {e}"))?;
        tracing::info!(daemon = %spec.id, pid, "daemon started");
        if let Some(out) = child.stdout.take() {
            capture(Arc::clone(&self.logs), spec.id.clone(), "stdout", out);
        }
        if let Some(err) = child.stderr.take() {
            capture(Arc::clone(&self.logs), spec.id.clone(), "stderr", err);
        }
        Ok(pid)
    }

    fn signal_group(&mut self, pid: i32, signal: StopSignal) {
        signal_group(pid, to_signal(signal));
    }

    fn probe(&mut self, request: ProbeRequest) {
        let reaper = Arc::clone(&self.reaper);
        let events = self.events.clone();
        let invocation = self
            .invocations
            .get(request.daemon)
            .and_then(|i| i.clone().ok());
        let spawned = std::thread::Builder::new()
            .name("probe".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                let result = run_probe(
                    &request.probe,
                    request.timeout,
                    invocation.as_ref(),
                    &reaper,
                );
                let _ = events.send(Event::Probe(ProbeOutcome {
                    daemon: request.daemon,
                    generation: request.generation,
                    kind: request.kind,
                    result,
                }));
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "spawn probe thread");
        }
    }

    fn note(&mut self, daemon: &str, message: &str) {
        tracing::info!(daemon, "{message}");
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.push(daemon, "hearth", message.to_owned(), unix_ms());
    }
}

fn now() -> Now {
    Now {
        mono: Instant::now(),
        wall_ms: unix_ms(),
    }
}

/// Status without time-varying fields, to detect changes.
fn fingerprint(status: &ServiceStatus) -> ServiceStatus {
    let mut s = status.clone();
    s.daemons.iter_mut().for_each(|d| d.retry_in_ms = None);
    s
}

/// Runs until shutdown completes.
pub(crate) fn run(mut sup: Supervisor, mut procs: RealProcesses, events: Receiver<Event>) {
    let mut clients: Vec<Weak<Client>> = Vec::new();
    sup.tick(now(), &mut procs);
    let mut last = fingerprint(&sup.status(now()));
    loop {
        let event = match sup.next_deadline() {
            Some(deadline) => {
                match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(e) => Some(e),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            None => match events.recv() {
                Ok(e) => Some(e),
                Err(_) => return,
            },
        };
        if let Some(event) = event {
            handle(&mut sup, &mut procs, &mut clients, event);
        }
        sup.tick(now(), &mut procs);
        let status = sup.status(now());
        let print = fingerprint(&status);
        if print != last {
            last = print;
            notify(&mut clients, &status);
        }
        if sup.finished() {
            tracing::info!("all daemons stopped; exiting");
            return;
        }
    }
}

fn handle(
    sup: &mut Supervisor,
    procs: &mut RealProcesses,
    clients: &mut Vec<Weak<Client>>,
    event: Event,
) {
    match event {
        Event::Exited { pid, exit } => {
            sup.on_exit(pid, exit, now(), procs);
        }
        Event::Probe(outcome) => sup.on_probe(outcome, now()),
        Event::Signal(name) if sup.shutting_down() => {
            tracing::info!(signal = name, "second stop request: killing everything");
            sup.hurry();
        }
        Event::Signal(name) => {
            tracing::info!(signal = name, "stopping everything");
            sup.shutdown();
        }
        Event::Client(client) => {
            // A new client first gets the current status, then every change.
            let mut one = vec![Arc::downgrade(&client)];
            notify(&mut one, &sup.status(now()));
            clients.extend(one);
        }
        Event::Control(request, reply) => {
            let result = match request {
                Control::Status => Ok(()),
                Control::Start => sup.start(),
                Control::Stop => {
                    sup.stop();
                    Ok(())
                }
                Control::Restart => sup.restart(),
                Control::Shutdown => {
                    sup.shutdown();
                    Ok(())
                }
            };
            let answer = match result {
                Ok(()) if request == Control::Status => {
                    serde_json::to_value(sup.status(now())).map_err(|_| RpcError::internal())
                }
                Ok(()) => Ok(json!(null)),
                Err(e) => Err(RpcError::new(ErrorCode::InvalidRequest, e.to_string())),
            };
            let _ = reply.send(answer);
        }
    }
}

fn notify(clients: &mut Vec<Weak<Client>>, status: &ServiceStatus) {
    let message: Value = json!({
        "jsonrpc": "2.0",
        "method": "status.changed",
        "params": status,
    });
    clients.retain(|weak| match weak.upgrade() {
        Some(client) => client.send(&message).is_ok(),
        None => false,
    });
}
