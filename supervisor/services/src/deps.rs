//! Dependencies between installed packages at run time: who waits for whom, who must
//! start first, who may not be uninstalled, and the names a container resolves.
//!
//! # Design
//! Pure functions over the installed entries (`doc::all`), so every rule has a unit
//! test without a store or a runtime. What a dependency is comes from the install:
//! `dependencies.<id> {kind, optional, healthChecks}` (manifest + `hearth.json`), and
//! each package's own health check ids in `container.healthChecks`.
//!
//! * **Ready** ([`unready`]): a required `running` dependency is ready when it is
//!   installed, recorded `running`, and every health check in its own list plus the
//!   dependent's `healthChecks` for it is `success` in its `statusInfo.health` (what
//!   its container reported over `service.sock`). A dependency without health checks
//!   is ready once running and its init reported at least once (`reportedAt`). Reports
//!   only ever belong to the current run (`status.rs` drops them whenever the state
//!   leaves `running`, the supervisor at hearthd start), so a record left `running`
//!   with `success` by a container that is gone never counts.
//! * **Down** ([`down`]): a required `running` dependency of a dependent that runs is
//!   *down* when it is not installed (or being removed), not recorded `running` (the
//!   user stopped it, it died and is being restarted, an update stopped it), or one of
//!   those health checks reported `failure`, or it started again after the dependent
//!   did (it died or was restarted since) and is not ready yet: the connections the
//!   dependent made are gone, and this must not depend on whether the dependent's
//!   step ran while the dependency was briefly not `running`. The dependent's
//!   container is then
//!   stopped and it waits (`waiting`, `waitingFor`, desired unchanged) until the
//!   dependency is ready again, then starts by itself: a service whose database is
//!   gone cannot work, and a clean start once it is back beats a broken connection.
//!   Missing reports are not `failure`: after a hearthd restart (reports dropped) a
//!   dependent that is running is left alone while its dependency's checks report
//!   again. [`affected_by_stop`] names the dependents a stop will put to waiting
//!   (transitively), for `package.stop`'s answer.
//! * **Start first** ([`to_start`]): starting a package also starts, in the same store
//!   mutation, every required `running` dependency it needs, transitively (StartOS
//!   starts `running` dependencies first); the dependent then waits for them.
//! * **Uninstall** ([`dependents`]): a package that another installed package requires
//!   (optional ones aside, either kind) cannot be uninstalled; the refusal lists the
//!   dependents. There is no override: uninstall the dependents first.
//! * **Names** ([`hosts_file`], [`env_name`]): inside a container, `<id>.hearth` (and
//!   `<id>`) resolve to the address of the package itself and of each installed
//!   dependency (any kind), and `HEARTH_<ID>_HOST` (id upper-cased, `-` → `_`) holds
//!   the same address. Addresses are fixed per package at install, so the file only
//!   changes when dependencies are installed; it is rewritten before every start.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use serde_json::Value;

use crate::doc::{InstallState, PackageEntry};
use crate::status::{Desired, RunState};

/// Whether `dep` runs with every check in its own list and in `extra` passing.
pub(crate) fn healthy(dep: &PackageEntry, extra: &[String]) -> bool {
    dep.state_info.state == InstallState::Installed
        && dep.status_info.observed.state == RunState::Running
        && dep.status_info.observed.reported.contains_key("reportedAt")
        && checks_pass(dep, extra)
}

/// Whether every health check of `e` (its own list and `extra`) reported `success`.
pub(crate) fn checks_pass(e: &PackageEntry, extra: &[String]) -> bool {
    check_results(e, extra).all(|r| r == Some("success"))
}

/// The last result reported for each health check of `e` (its own list, then `extra`).
fn check_results<'a>(
    e: &'a PackageEntry,
    extra: &'a [String],
) -> impl Iterator<Item = Option<&'a str>> + 'a {
    let health = e.status_info.observed.reported.get("health");
    e.container
        .health_checks
        .iter()
        .chain(extra)
        .map(move |check| {
            health
                .and_then(|h| h.get(check))
                .and_then(|c| c.get("result"))
                .and_then(Value::as_str)
        })
}

/// The required `running` dependencies of `entry` that are not ready (sorted ids).
pub(crate) fn unready(entry: &PackageEntry, all: &BTreeMap<String, PackageEntry>) -> Vec<String> {
    entry
        .dependencies
        .iter()
        .filter(|(_, info)| info.must_run())
        .filter(|(id, info)| {
            !all.get(*id)
                .is_some_and(|dep| healthy(dep, &info.health_checks))
        })
        .map(|(id, _)| id.clone())
        .collect()
}

/// Whether a check of `e` (its own list and `extra`) reported `failure`.
fn checks_fail(e: &PackageEntry, extra: &[String]) -> bool {
    check_results(e, extra).any(|r| r == Some("failure"))
}

/// Whether `dep`'s current run began after `entry`'s.
fn restarted_since(dep: &PackageEntry, entry: &PackageEntry) -> bool {
    match (
        dep.status_info.observed.started_at,
        entry.status_info.observed.started_at,
    ) {
        (Some(dep_at), Some(at)) => dep_at > at,
        _ => false,
    }
}

/// [`healthy`] without the install state (an update staging still runs the old one).
fn healthy_enough(dep: &PackageEntry, extra: &[String]) -> bool {
    dep.status_info.observed.reported.contains_key("reportedAt") && checks_pass(dep, extra)
}

/// The required `running` dependencies of `entry` that are down (see the module
/// docs; sorted ids): a running dependent of one of them must stop and wait.
pub(crate) fn down(entry: &PackageEntry, all: &BTreeMap<String, PackageEntry>) -> Vec<String> {
    entry
        .dependencies
        .iter()
        .filter(|(_, info)| info.must_run())
        .filter(|(id, info)| {
            all.get(*id).is_none_or(|dep| {
                dep.state_info.state == InstallState::Removing
                    || dep.status_info.observed.state != RunState::Running
                    || checks_fail(dep, &info.health_checks)
                    || (restarted_since(dep, entry) && !healthy_enough(dep, &info.health_checks))
            })
        })
        .map(|(id, _)| id.clone())
        .collect()
}

/// The installed packages meant to run (desired `running` or `restarting`) that need
/// `id` running, directly or through another such package (sorted): stopping `id`
/// makes them stop and wait.
pub(crate) fn affected_by_stop(id: &str, all: &BTreeMap<String, PackageEntry>) -> Vec<String> {
    let mut affected = BTreeSet::new();
    let mut todo = vec![id.to_owned()];
    while let Some(next) = todo.pop() {
        for (other, e) in all {
            let needs = e
                .dependencies
                .get(&next)
                .is_some_and(|info| info.must_run());
            if needs
                && other != id
                && e.status_info.desired != Desired::Stopped
                && e.state_info.state != InstallState::Removing
                && affected.insert(other.clone())
            {
                todo.push(other.clone());
            }
        }
    }
    affected.into_iter().collect()
}

/// `id` and every required `running` dependency it needs, transitively, that is
/// installed (sorted; cycles are harmless).
pub(crate) fn to_start(id: &str, all: &BTreeMap<String, PackageEntry>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![id.to_owned()];
    while let Some(next) = todo.pop() {
        let Some(entry) = all.get(&next) else {
            continue;
        };
        if !seen.insert(next) {
            continue;
        }
        for (dep, info) in &entry.dependencies {
            if info.must_run() && !seen.contains(dep) {
                todo.push(dep.clone());
            }
        }
    }
    seen
}

/// The installed packages (other than `id`) that require `id` (sorted).
pub(crate) fn dependents(id: &str, all: &BTreeMap<String, PackageEntry>) -> Vec<String> {
    all.iter()
        .filter(|(other, e)| {
            other.as_str() != id
                && e.state_info.state != InstallState::Removing
                && e.dependencies.get(id).is_some_and(|info| !info.optional)
        })
        .map(|(other, _)| other.clone())
        .collect()
}

/// The ids whose names a container of `id` resolves: itself, then each installed
/// dependency (any kind, optional ones too), with their host numbers.
pub(crate) fn names(
    id: &str,
    entry: &PackageEntry,
    all: &BTreeMap<String, PackageEntry>,
) -> Vec<(String, u8)> {
    let mut out = vec![(id.to_owned(), entry.container.index)];
    for dep in entry.dependencies.keys() {
        if let Some(d) = all.get(dep)
            && dep != id
        {
            out.push((dep.clone(), d.container.index));
        }
    }
    out
}

/// `/etc/hosts` for a container: localhost, then `<addr> <id>.hearth <id>` per name.
pub(crate) fn hosts_file(names: &[(String, Ipv4Addr)]) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost\n");
    for (id, addr) in names {
        // Writing into a String cannot fail.
        let _ = writeln!(out, "{addr}\t{id}.hearth {id}");
    }
    out
}

/// `HEARTH_<ID>_HOST`: the id upper-cased, `-` → `_`.
pub(crate) fn env_name(id: &str) -> String {
    format!("HEARTH_{}_HOST", id.to_ascii_uppercase().replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::doc::{DependencyInfo, DependencyKind};

    fn entry(index: u8, checks: &[&str], deps: &[(&str, DependencyKind, bool)]) -> PackageEntry {
        let mut e = crate::test_support::entry(index, checks);
        e.dependencies = deps
            .iter()
            .map(|(id, kind, optional)| {
                (
                    (*id).to_owned(),
                    DependencyInfo {
                        kind: *kind,
                        optional: *optional,
                        health_checks: vec![],
                        version_range: None,
                    },
                )
            })
            .collect();
        e
    }

    fn run(e: &mut PackageEntry, health: &[(&str, &str)]) {
        e.status_info.observed.state = RunState::Running;
        let h: serde_json::Map<String, Value> = health
            .iter()
            .map(|(id, r)| ((*id).to_owned(), json!({"result": r})))
            .collect();
        e.status_info
            .observed
            .reported
            .insert("health".into(), Value::Object(h));
        e.status_info
            .observed
            .reported
            .insert("reportedAt".into(), Value::from(1));
    }

    use DependencyKind::{Exists, Running};

    #[test]
    fn running_dependency_is_ready_only_when_running_and_every_check_passes() {
        let app = entry(3, &[], &[("db", Running, false)]);
        let mut all = BTreeMap::from([("db".to_owned(), entry(2, &["ping"], &[]))]);
        assert_eq!(unready(&app, &all), ["db"], "stopped");
        run(all.get_mut("db").unwrap(), &[("ping", "starting")]);
        assert_eq!(unready(&app, &all), ["db"], "check not yet passing");
        run(all.get_mut("db").unwrap(), &[]);
        assert_eq!(unready(&app, &all), ["db"], "nothing reported yet");
        run(all.get_mut("db").unwrap(), &[("ping", "success")]);
        assert!(unready(&app, &all).is_empty());
    }

    #[test]
    fn dependency_without_checks_is_ready_once_running() {
        let app = entry(3, &[], &[("db", Running, false)]);
        let mut all = BTreeMap::from([("db".to_owned(), entry(2, &[], &[]))]);
        run(all.get_mut("db").unwrap(), &[]);
        assert!(unready(&app, &all).is_empty());
    }

    #[test]
    fn dependency_recorded_running_without_a_report_of_this_run_is_not_ready() {
        let app = entry(3, &[], &[("db", Running, false)]);
        let mut all = BTreeMap::from([("db".to_owned(), entry(2, &[], &[]))]);
        // Recorded running, but its init never reported since (a record left by a
        // container that is gone, reports dropped at hearthd start).
        all.get_mut("db").unwrap().status_info.observed.state = RunState::Running;
        assert_eq!(unready(&app, &all), ["db"]);
        run(all.get_mut("db").unwrap(), &[]);
        assert!(unready(&app, &all).is_empty());
    }

    #[test]
    fn dependent_listed_checks_must_pass_too() {
        let mut app = entry(3, &[], &[("db", Running, false)]);
        app.dependencies.get_mut("db").unwrap().health_checks = vec!["primary".into()];
        let mut all = BTreeMap::from([("db".to_owned(), entry(2, &[], &[]))]);
        run(all.get_mut("db").unwrap(), &[]);
        assert_eq!(unready(&app, &all), ["db"]);
        run(all.get_mut("db").unwrap(), &[("primary", "success")]);
        assert!(unready(&app, &all).is_empty());
    }

    #[test]
    fn exists_optional_and_missing_dependencies() {
        let app = entry(
            3,
            &[],
            &[
                ("cfg", Exists, false),
                ("extra", Running, true),
                ("gone", Running, false),
            ],
        );
        let all = BTreeMap::from([
            ("cfg".to_owned(), entry(2, &[], &[])),
            ("extra".to_owned(), entry(4, &[], &[])),
        ]);
        assert_eq!(unready(&app, &all), ["gone"]);
    }

    #[test]
    fn dependency_is_down_when_stopped_gone_or_failing_not_when_reports_are_missing() {
        let mut app = entry(3, &[], &[("db", Running, false), ("cfg", Exists, false)]);
        app.dependencies.get_mut("db").unwrap().health_checks = vec!["primary".into()];
        let mut all = BTreeMap::from([
            ("db".to_owned(), entry(2, &["ping"], &[])),
            ("cfg".to_owned(), entry(4, &[], &[])),
        ]);
        assert_eq!(down(&app, &all), ["db"], "stopped (cfg is only `exists`)");
        run(all.get_mut("db").unwrap(), &[("ping", "success")]);
        assert!(
            down(&app, &all).is_empty(),
            "running, `primary` not reported"
        );
        run(all.get_mut("db").unwrap(), &[]);
        all.get_mut("db")
            .unwrap()
            .status_info
            .observed
            .reported
            .clear();
        assert!(
            down(&app, &all).is_empty(),
            "running without reports (hearthd restarted): not down"
        );
        run(all.get_mut("db").unwrap(), &[("ping", "starting")]);
        assert!(down(&app, &all).is_empty(), "a check still starting");
        run(
            all.get_mut("db").unwrap(),
            &[("ping", "success"), ("primary", "failure")],
        );
        assert_eq!(down(&app, &all), ["db"], "the dependent's check fails");
        run(all.get_mut("db").unwrap(), &[("ping", "failure")]);
        assert_eq!(down(&app, &all), ["db"], "its own check fails");
        run(all.get_mut("db").unwrap(), &[("ping", "success")]);
        all.get_mut("db").unwrap().status_info.observed.state = RunState::Starting;
        assert_eq!(down(&app, &all), ["db"], "being started again (it died)");
        all.get_mut("db").unwrap().status_info.observed.state = RunState::Running;
        // Started again after the dependent (it died, or a restart): down until ready.
        app.status_info.observed.started_at = Some(10);
        all.get_mut("db").unwrap().status_info.observed.started_at = Some(5);
        run(all.get_mut("db").unwrap(), &[("ping", "starting")]);
        assert!(
            down(&app, &all).is_empty(),
            "the run the dependent started with"
        );
        all.get_mut("db").unwrap().status_info.observed.started_at = Some(20);
        assert_eq!(down(&app, &all), ["db"], "a newer run, not ready yet");
        run(
            all.get_mut("db").unwrap(),
            &[("ping", "success"), ("primary", "success")],
        );
        assert!(down(&app, &all).is_empty(), "a newer run, ready");
        all.get_mut("db").unwrap().state_info.state = InstallState::Updating;
        assert!(down(&app, &all).is_empty(), "an update still staging");
        all.get_mut("db").unwrap().state_info.state = InstallState::Removing;
        assert_eq!(down(&app, &all), ["db"]);
        all.remove("db");
        assert_eq!(down(&app, &all), ["db"], "not installed");
    }

    #[test]
    fn stop_affects_dependents_meant_to_run_transitively() {
        let mut all = BTreeMap::from([
            ("db".to_owned(), entry(2, &[], &[])),
            ("api".to_owned(), entry(3, &[], &[("db", Running, false)])),
            ("web".to_owned(), entry(4, &[], &[("api", Running, false)])),
            ("cfg".to_owned(), entry(5, &[], &[("db", Exists, false)])),
            ("opt".to_owned(), entry(6, &[], &[("db", Running, true)])),
            ("idle".to_owned(), entry(7, &[], &[("db", Running, false)])),
        ]);
        for id in ["api", "web", "cfg", "opt"] {
            all.get_mut(id).unwrap().status_info.desired = Desired::Running;
        }
        assert_eq!(affected_by_stop("db", &all), ["api", "web"]);
        assert_eq!(affected_by_stop("api", &all), ["web"]);
        assert!(affected_by_stop("web", &all).is_empty());
    }

    #[test]
    fn start_pulls_in_running_dependencies_transitively() {
        let all = BTreeMap::from([
            (
                "app".to_owned(),
                entry(2, &[], &[("api", Running, false), ("cfg", Exists, false)]),
            ),
            (
                "api".to_owned(),
                entry(3, &[], &[("db", Running, false), ("opt", Running, true)]),
            ),
            ("db".to_owned(), entry(4, &[], &[("api", Running, false)])),
            ("cfg".to_owned(), entry(5, &[], &[])),
            ("opt".to_owned(), entry(6, &[], &[])),
        ]);
        let ids: Vec<String> = to_start("app", &all).into_iter().collect();
        assert_eq!(ids, ["api", "app", "db"], "cycle db<->api is harmless");
        assert!(to_start("missing", &all).is_empty());
    }

    #[test]
    fn dependents_are_required_ones_of_either_kind() {
        let all = BTreeMap::from([
            ("db".to_owned(), entry(2, &[], &[])),
            ("a".to_owned(), entry(3, &[], &[("db", Running, false)])),
            ("b".to_owned(), entry(4, &[], &[("db", Exists, false)])),
            ("c".to_owned(), entry(5, &[], &[("db", Running, true)])),
        ]);
        assert_eq!(dependents("db", &all), ["a", "b"]);
        assert!(dependents("a", &all).is_empty());
    }

    #[test]
    fn names_cover_itself_and_installed_dependencies() {
        let app = entry(3, &[], &[("db", Running, false), ("gone", Exists, true)]);
        let all = BTreeMap::from([("db".to_owned(), entry(2, &[], &[]))]);
        assert_eq!(
            names("app", &app, &all),
            [("app".to_owned(), 3), ("db".to_owned(), 2)]
        );
        let hosts = hosts_file(&[
            ("app".into(), Ipv4Addr::new(10, 88, 0, 3)),
            ("my-db".into(), Ipv4Addr::new(10, 88, 0, 2)),
        ]);
        assert_eq!(
            hosts,
            "127.0.0.1\tlocalhost\n::1\tlocalhost\n10.88.0.3\tapp.hearth app\n\
             10.88.0.2\tmy-db.hearth my-db\n"
        );
        assert_eq!(env_name("my-db"), "HEARTH_MY_DB_HOST");
        assert_eq!(env_name("postgresql"), "HEARTH_POSTGRESQL_HOST");
    }
}
