//! One test per transition of the daemon state machine, with a fake clock and a fake
//! [`Processes`].

use std::time::{Duration, Instant};

use hearth_s9pk::spec::{ServiceSpec, StopSignal};

use super::policy::RestartPolicy;
use super::status::HealthResult;
use super::*;

#[derive(Default)]
struct Fake {
    next_pid: i32,
    spawned: Vec<(usize, i32)>,
    signals: Vec<(i32, StopSignal)>,
    probes: Vec<ProbeRequest>,
    fail_spawn: bool,
}

impl Processes for Fake {
    fn spawn(&mut self, index: usize, spec: &DaemonSpec) -> Result<i32, String> {
        if self.fail_spawn {
            return Err(format!(
                "spawn {:?}: No such file or directory",
                spec.command
            ));
        }
        self.next_pid += 1;
        let pid = 100 + self.next_pid;
        self.spawned.push((index, pid));
        Ok(pid)
    }
    fn signal_group(&mut self, pid: i32, signal: StopSignal) {
        self.signals.push((pid, signal));
    }
    fn probe(&mut self, request: ProbeRequest) {
        self.probes.push(request);
    }
    fn note(&mut self, _daemon: &str, _message: &str) {}
}

struct Clock {
    t0: Instant,
    ms: u64,
}

impl Clock {
    fn new() -> Self {
        Self {
            t0: Instant::now(),
            ms: 0,
        }
    }
    fn now(&self) -> Now {
        Now {
            mono: self.t0 + Duration::from_millis(self.ms),
            wall_ms: 1_700_000_000_000 + self.ms,
        }
    }
    fn advance(&mut self, ms: u64) -> Now {
        self.ms += ms;
        self.now()
    }
}

fn spec(json: &str) -> ServiceSpec {
    ServiceSpec::from_json(json.as_bytes()).unwrap()
}

/// `db` (ready by tcp probe, 10s grace), `web` requires `db` and has a health check.
fn two_daemons() -> ServiceSpec {
    spec(
        r#"{"daemons":[
      {"id":"web","image":"main","command":["web"],"requires":["db"],"stopTimeout":"5s",
       "healthChecks":[{"id":"http","name":"Web","probe":{"http":{"port":80}},
                        "interval":"10s","gracePeriod":"20s"}]},
      {"id":"db","image":"main","command":["db"],"stopSignal":"SIGINT","stopTimeout":"3s",
       "ready":{"probe":{"tcp":{"port":5432}},"interval":"1s","gracePeriod":"10s"}}
    ]}"#,
    )
}

fn policy() -> RestartPolicy {
    RestartPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(8),
        stable_after: Duration::from_secs(60),
        crash_limit: 3,
        crash_window: Duration::from_secs(100),
    }
}

const DB: usize = 0;
const WEB: usize = 1;

fn ready(sup: &mut Supervisor, fake: &Fake, now: Now) {
    let probe = fake
        .probes
        .iter()
        .rfind(|p| p.daemon == DB && p.kind == ProbeKind::Ready)
        .unwrap()
        .clone();
    sup.on_probe(
        ProbeOutcome {
            daemon: DB,
            generation: probe.generation,
            kind: ProbeKind::Ready,
            result: Ok(()),
        },
        now,
    );
}

/// Brings both daemons to `running`; returns (db pid, web pid).
fn running(sup: &mut Supervisor, fake: &mut Fake, clock: &mut Clock) -> (i32, i32) {
    sup.start().unwrap();
    sup.tick(clock.now(), fake);
    let now = clock.advance(1000);
    sup.tick(now, fake);
    ready(sup, fake, now);
    sup.tick(now, fake);
    let pid = |i| match sup.state(i) {
        State::Running { pid } => pid,
        other => panic!("daemon {i} is {other:?}"),
    };
    (pid(DB), pid(WEB))
}

#[test]
fn new_orders_by_requires_and_starts_stopped() {
    let sup = Supervisor::new(&two_daemons(), policy()).unwrap();
    let ids: Vec<_> = sup.specs().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["db", "web"]);
    assert_eq!(sup.state(DB), State::Stopped);
    assert_eq!(sup.next_deadline(), None);
}

#[test]
fn stopped_to_waiting_on_start_then_starting_requires_first() {
    let mut sup = Supervisor::new(&two_daemons(), policy()).unwrap();
    let mut fake = Fake::default();
    let clock = Clock::new();
    sup.start().unwrap();
    assert_eq!(sup.state(WEB), State::Waiting);
    sup.tick(clock.now(), &mut fake);
    assert!(matches!(sup.state(DB), State::Starting { .. }));
    // web waits until db is ready.
    assert_eq!(sup.state(WEB), State::Waiting);
    assert_eq!(fake.spawned.len(), 1);
    let status = sup.status(clock.now());
    assert_eq!(status.daemons[1].health[0].result, HealthResult::Waiting);
}

#[test]
fn starting_to_running_on_readiness_and_dependent_starts() {
    let mut sup = Supervisor::new(&two_daemons(), policy()).unwrap();
    let mut fake = Fake::default();
    let mut clock = Clock::new();
    sup.start().unwrap();
    sup.tick(clock.now(), &mut fake);
    // The readiness probe is due one interval after the spawn.
    assert!(fake.probes.is_empty());
    let now = clock.advance(1000);
    sup.tick(now, &mut fake);
    assert_eq!(fake.probes.len(), 1);
    // A failed probe is retried one interval later, the daemon stays starting.
    sup.on_probe(
        ProbeOutcome {
            daemon: DB,
            generation: 1,
            kind: ProbeKind::Ready,
            result: Err("refused".into()),
        },
        now,
    );
    assert!(matches!(sup.state(DB), State::Starting { .. }));
    assert_eq!(
        sup.next_deadline(),
        Some(clock.now().mono + Duration::from_secs(1))
    );
    ready(&mut sup, &fake, now);
    assert!(matches!(sup.state(DB), State::Running { .. }));
    assert_eq!(sup.status(now).daemons[0].readiness_failure, None);
    sup.tick(now, &mut fake);
    assert!(matches!(sup.state(WEB), State::Running { .. }));
    // web has no readiness probe: its health check runs at once.
    assert!(
        fake.probes
            .iter()
            .any(|p| p.daemon == WEB && p.kind == ProbeKind::Health(0))
    );
}

#[test]
fn stale_probe_results_are_ignored() {
    let mut sup = Supervisor::new(&two_daemons(), policy()).unwrap();
    let mut fake = Fake::default();
    let clock = Clock::new();
    sup.start().unwrap();
    sup.tick(clock.now(), &mut fake);
    sup.on_probe(
        ProbeOutcome {
            daemon: DB,
            generation: 0,
            kind: ProbeKind::Ready,
            result: Ok(()),
        },
        clock.now(),
    );
    assert!(matches!(sup.state(DB), State::Starting { .. }));
}

#[test]
fn health_failures_within_grace_are_starting_then_failure() {
    let mut sup = Supervisor::new(&two_daemons(), policy()).unwrap();
    let mut fake = Fake::default();
    let mut clock = Clock::new();
    running(&mut sup, &mut fake, &mut clock);
    let fail = |sup: &mut Supervisor, now| {
        sup.on_probe(
            ProbeOutcome {
                daemon: WEB,
                generation: 1,
                kind: ProbeKind::Health(0),
                result: Err("GET / returned 503".into()),
            },
            now,
        )
    };
    fail(&mut sup, clock.now());
    assert_eq!(
        sup.status(clock.now()).daemons[1].health[0].result,
        HealthResult::Starting
    );
    let now = clock.advance(20_000);
    fail(&mut sup, now);
    assert_eq!(
        sup.status(now).daemons[1].health[0].result,
        HealthResult::Failure {
            message: "GET / returned 503".into()
        }
    );
    sup.on_probe(
        ProbeOutcome {
            daemon: WEB,
            generation: 1,
            kind: ProbeKind::Health(0),
            result: Ok(()),
        },
        now,
    );
    assert_eq!(
        sup.status(now).daemons[1].health[0].result,
        HealthResult::Success
    );
}

#[test]
fn running_to_backing_off_on_exit_then_restart() {
    let mut sup = Supervisor::new(&two_daemons(), policy()).unwrap();
    let mut fake = Fake::default();
    let mut clock = Clock::new();
    let (_, web) = running(&mut sup, &mut fake, &mut clock);
    assert!(sup.on_exit(web, ExitInfo::Code(1), clock.now(), &mut fake));
    assert!(matches!(sup.state(WEB), State::BackingOff { .. }));
    // Leftovers in its process group are killed.
    assert_eq!(fake.signals, vec![(web, StopSignal::Kill)]);
    let status = sup.status(clock.now());
    assert_eq!(status.daemons[1].retry_in_ms, Some(1000));
    assert_eq!(
        status.daemons[1].last_error.as_deref(),
        Some("exited unexpectedly (exit status 1)")
    );
    // Not yet.
    sup.tick(clock.advance(999), &mut fake);
    assert!(matches!(sup.state(WEB), State::BackingOff { .. }));
    sup.tick(clock.advance(1), &mut fake);
    assert!(matches!(sup.state(WEB), State::Running { .. }));
    assert_eq!(sup.status(clock.now()).daemons[1].restarts, 1);
}

#[test]
fn repeated_failures_become_a_crash_loop_until_start() {
    let mut sup = Supervisor::new(&two_daemons(), policy()).unwrap();
    let mut fake = Fake::default();
    let mut clock = Clock::new();
    running(&mut sup, &mut fake, &mut clock);
    for _ in 0..3 {
        let pid = sup.state(WEB).pid().unwrap();
        sup.on_exit(pid, ExitInfo::Code(1), clock.now(), &mut fake);
        sup.tick(clock.advance(10_000), &mut fake);
    }
    assert_eq!(sup.state(WEB), State::CrashLoop);
    assert!(
        sup.status(clock.now()).daemons[1]
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("crash loop: 3 failures")
    );
    sup.start().unwrap();
    sup.tick(clock.now(), &mut fake);
    assert!(matches!(sup.state(WEB), State::Running { .. }));
    assert_eq!(sup.status(clock.now()).daemons[1].restarts, 0);
}

#[test]
fn spawn_failure_is_reported_and_backs_off() {
    let mut sup = Supervisor::new(&two_daemons(), policy()).unwrap();
    let mut fake = Fake {
        fail_spawn: true,
        ..Fake::default()
    };
    let clock = Clock::new();
    sup.start().unwrap();
    sup.tick(clock.now(), &mut fake);
    assert!(matches!(sup.state(DB), State::BackingOff { .. }));
    let status = sup.status(clock.now());
    assert!(
        status.daemons[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("No such file or directory")
    );
}

#[test]
fn starting_past_grace_is_stopped_and_restarted() {
    let mut sup = Supervisor::new(&two_daemons(), policy()).unwrap();
    let mut fake = Fake::default();
    let mut clock = Clock::new();
    sup.start().unwrap();
    sup.tick(clock.now(), &mut fake);
    let pid = sup.state(DB).pid().unwrap();
    sup.tick(clock.advance(10_000), &mut fake);
    assert!(matches!(
        sup.state(DB),
        State::Stopping {
            then_restart: true,
            ..
        }
    ));
    assert_eq!(fake.signals, vec![(pid, StopSignal::Int)]);
    sup.on_exit(pid, ExitInfo::Signal(2), clock.now(), &mut fake);
    assert_eq!(fake.signals[1], (pid, StopSignal::Kill));
    assert!(matches!(sup.state(DB), State::BackingOff { .. }));
    assert!(
        sup.status(clock.now()).daemons[0]
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("not ready within")
    );
}

#[test]
fn stop_goes_in_reverse_order_and_kills_after_timeout() {
    let mut sup = Supervisor::new(&two_daemons(), policy()).unwrap();
    let mut fake = Fake::default();
    let mut clock = Clock::new();
    let (db, web) = running(&mut sup, &mut fake, &mut clock);
    sup.stop();
    sup.tick(clock.now(), &mut fake);
    // Only web (the dependent) is signalled first.
    assert_eq!(fake.signals, vec![(web, StopSignal::Term)]);
    assert!(matches!(sup.state(DB), State::Running { .. }));
    // web ignores SIGTERM: SIGKILL after its 5s stop timeout.
    sup.tick(clock.advance(4_999), &mut fake);
    assert_eq!(fake.signals.len(), 1);
    sup.tick(clock.advance(1), &mut fake);
    assert_eq!(fake.signals[1], (web, StopSignal::Kill));
    sup.on_exit(web, ExitInfo::Signal(9), clock.now(), &mut fake);
    assert_eq!(sup.state(WEB), State::Stopped);
    sup.tick(clock.now(), &mut fake);
    assert_eq!(fake.signals[3], (db, StopSignal::Int));
    sup.on_exit(db, ExitInfo::Code(0), clock.now(), &mut fake);
    assert_eq!(sup.state(DB), State::Stopped);
    assert!(sup.status(clock.now()).all_down);
    assert_eq!(
        sup.status(clock.now()).daemons[1].health[0].result,
        HealthResult::Disabled
    );
}

#[test]
fn exit_while_stopping_is_stopped_not_restarted() {
    let mut sup = Supervisor::new(&two_daemons(), policy()).unwrap();
    let mut fake = Fake::default();
    let mut clock = Clock::new();
    let (_, web) = running(&mut sup, &mut fake, &mut clock);
    sup.stop();
    sup.tick(clock.now(), &mut fake);
    sup.on_exit(web, ExitInfo::Code(0), clock.now(), &mut fake);
    sup.tick(clock.advance(60_000), &mut fake);
    assert_eq!(sup.state(WEB), State::Stopped);
    assert_eq!(fake.spawned.len(), 2);
}

#[test]
fn backing_off_and_waiting_become_stopped_on_stop() {
    let mut sup = Supervisor::new(&two_daemons(), policy()).unwrap();
    let mut fake = Fake::default();
    let mut clock = Clock::new();
    let (db, _) = running(&mut sup, &mut fake, &mut clock);
    sup.on_exit(db, ExitInfo::Code(3), clock.now(), &mut fake);
    assert!(matches!(sup.state(DB), State::BackingOff { .. }));
    sup.stop();
    sup.tick(clock.now(), &mut fake);
    assert_eq!(sup.state(DB), State::Stopped);
}

#[test]
fn restart_stops_everything_then_starts_again() {
    let mut sup = Supervisor::new(&two_daemons(), policy()).unwrap();
    let mut fake = Fake::default();
    let mut clock = Clock::new();
    let (db, web) = running(&mut sup, &mut fake, &mut clock);
    sup.restart().unwrap();
    sup.tick(clock.now(), &mut fake);
    sup.on_exit(web, ExitInfo::Signal(15), clock.now(), &mut fake);
    sup.tick(clock.now(), &mut fake);
    sup.on_exit(db, ExitInfo::Signal(2), clock.now(), &mut fake);
    sup.tick(clock.now(), &mut fake);
    assert_eq!(sup.desired(), Desired::Running);
    assert!(matches!(sup.state(DB), State::Starting { .. }));
    assert_eq!(fake.spawned.len(), 3);
}

#[test]
fn shutdown_finishes_when_all_down_and_refuses_start() {
    let mut sup = Supervisor::new(&two_daemons(), policy()).unwrap();
    let mut fake = Fake::default();
    let mut clock = Clock::new();
    let (db, web) = running(&mut sup, &mut fake, &mut clock);
    sup.shutdown();
    assert_eq!(sup.start(), Err(RequestError::ShuttingDown));
    sup.tick(clock.now(), &mut fake);
    assert!(!sup.finished());
    sup.on_exit(web, ExitInfo::Code(0), clock.now(), &mut fake);
    sup.tick(clock.now(), &mut fake);
    sup.on_exit(db, ExitInfo::Code(0), clock.now(), &mut fake);
    assert!(sup.finished());
}

#[test]
fn unknown_pids_are_not_daemons() {
    let mut sup = Supervisor::new(&two_daemons(), policy()).unwrap();
    let mut fake = Fake::default();
    assert!(!sup.on_exit(4242, ExitInfo::Code(0), Clock::new().now(), &mut fake));
}

#[test]
fn start_while_stopping_starts_again_after_the_exit() {
    let mut sup = Supervisor::new(&two_daemons(), policy()).unwrap();
    let mut fake = Fake::default();
    let mut clock = Clock::new();
    let (_, web) = running(&mut sup, &mut fake, &mut clock);
    sup.stop();
    sup.tick(clock.now(), &mut fake);
    assert!(matches!(sup.state(WEB), State::Stopping { .. }));
    sup.start().unwrap();
    sup.on_exit(web, ExitInfo::Signal(15), clock.now(), &mut fake);
    assert_eq!(sup.state(WEB), State::Stopped);
    sup.tick(clock.now(), &mut fake);
    assert!(matches!(sup.state(WEB), State::Running { pid } if pid != web));
    // Not counted as a failure.
    assert_eq!(sup.status(clock.now()).daemons[1].restarts, 0);
    assert_eq!(sup.status(clock.now()).daemons[1].last_error, None);
}

#[test]
fn hurry_kills_everything_at_once() {
    let mut sup = Supervisor::new(&two_daemons(), policy()).unwrap();
    let mut fake = Fake::default();
    let mut clock = Clock::new();
    let (db, web) = running(&mut sup, &mut fake, &mut clock);
    sup.shutdown();
    sup.tick(clock.now(), &mut fake);
    assert_eq!(fake.signals, vec![(web, StopSignal::Term)]);
    // Second request: web (already stopping) and db (waiting for web) are killed now.
    sup.hurry();
    sup.tick(clock.now(), &mut fake);
    assert_eq!(
        fake.signals[1..],
        [(web, StopSignal::Kill), (db, StopSignal::Kill)]
    );
    assert!(matches!(
        sup.state(DB),
        State::Stopping { kill_at: None, .. }
    ));
    sup.on_exit(web, ExitInfo::Signal(9), clock.now(), &mut fake);
    sup.on_exit(db, ExitInfo::Signal(9), clock.now(), &mut fake);
    assert!(sup.finished());
}
