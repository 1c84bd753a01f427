//! Service spec tests: parsing, defaults, validation, schema drift.

use std::path::PathBuf;

use super::*;
use crate::manifest::Manifest;

fn manifest() -> Manifest {
    Manifest::from_json(
        br#"{
        "id": "notes", "title": "Notes", "version": "2.1.0:0", "license": "MIT",
        "packageRepo": "https://example.com/notes-pkg", "upstreamRepo": "https://example.com/notes",
        "description": {"short": "Notes", "long": "Notes with a database."},
        "images": {"main": {"arch": ["x86_64"]}, "db": {"arch": ["x86_64"]}},
        "volumes": ["main", "db"],
        "dependencies": {"bitcoind": {"optional": true}}
    }"#,
    )
    .unwrap()
}

const SPEC: &str = r#"{
  "daemons": [
    {
      "id": "db", "image": "db", "command": ["postgres", "-D", "/data"],
      "env": {"PGDATA": "/data"}, "user": "postgres",
      "mounts": [{"volume": "db", "path": "/data"}],
      "stopSignal": "SIGINT", "stopTimeout": "1m",
      "ready": {"probe": {"tcp": {"port": 5432}}}
    },
    {
      "id": "app", "image": "main", "requires": ["db"],
      "mounts": [{"volume": "main", "path": "/srv", "readOnly": true}],
      "ready": {"probe": {"http": {"port": 8080, "path": "/health"}}, "gracePeriod": "2m"},
      "healthChecks": [
        {"id": "web", "name": "Web interface", "probe": {"http": {"port": 8080}}},
        {"id": "db-conn", "name": "Database", "probe": {"exec": {"command": ["check-db"]}}, "interval": "1m"}
      ]
    }
  ],
  "interfaces": [
    {"id": "ui", "name": "Web UI", "type": "ui", "port": 8080},
    {"id": "peer", "name": "Peers", "type": "p2p", "port": 9000, "protocol": "tcp"}
  ],
  "actions": [
    {"id": "reset-password", "name": "Reset password", "image": "main",
     "command": ["notes-admin", "reset"], "allowedStatuses": "only-stopped", "result": "json",
     "input": {"type": "object", "properties": {"user": {"type": "string"}}}}
  ],
  "backup": {"volumes": ["main"], "hook": {"image": "db", "command": ["pg_dumpall"], "mounts": [{"volume": "db", "path": "/data"}]}},
  "dependencies": [{"id": "bitcoind", "versionRange": ">=25.0:0", "kind": "running", "healthChecks": ["rpc"]}],
  "resources": {"memory": 536870912, "cpuMillicores": 1500, "pids": 512}
}"#;

fn spec() -> ServiceSpec {
    ServiceSpec::from_json(SPEC.as_bytes()).unwrap()
}

fn assert_invalid(spec: &ServiceSpec, needle: &str) {
    // Field names are quoted with backticks in messages; compare without them.
    let err = spec
        .validate(&manifest())
        .unwrap_err()
        .to_string()
        .replace('`', "");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

#[test]
fn a_full_spec_parses_and_validates() {
    let spec = spec();
    spec.validate(&manifest()).unwrap();
    let app = &spec.daemons[1];
    assert_eq!(app.stop_signal, StopSignal::Term);
    assert_eq!(app.stop_timeout, DurationSpec::from_secs(30));
    let ready = app.ready.as_ref().unwrap();
    assert_eq!(ready.interval, DurationSpec::from_secs(1));
    assert_eq!(ready.grace_period, DurationSpec::from_secs(120));
    let Probe::Http(http) = &app.health_checks[0].probe else {
        panic!("http probe expected");
    };
    assert_eq!((http.path.as_str(), http.expected_status), ("/", 200));
    assert_eq!(spec.interfaces[0].tls(), TlsTermination::Host);
    assert_eq!(spec.interfaces[1].tls(), TlsTermination::None);
    assert_eq!(
        spec.actions[0].allowed_statuses,
        AllowedStatuses::OnlyStopped
    );
    assert_eq!(spec.dependencies[0].kind, DependencyKind::Running);
}

#[test]
fn round_trips_through_json() {
    let spec = spec();
    assert_eq!(ServiceSpec::from_json(&spec.to_json()).unwrap(), spec);
}

#[test]
fn unknown_fields_are_refused_at_every_level() {
    let top = SPEC.replacen("\"daemons\"", "\"deamons\": [], \"daemons\"", 1);
    let nested = SPEC.replacen("\"stopSignal\"", "\"stopSignl\": \"x\", \"stopSignal\"", 1);
    let probe = SPEC.replacen("{\"port\": 5432}", "{\"port\": 5432, \"host\": \"x\"}", 1);
    for text in [top, nested, probe] {
        let err = ServiceSpec::from_json(text.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}

#[test]
fn requires_must_name_existing_daemons() {
    let mut spec = spec();
    spec.daemons[1].requires = vec!["database".into()];
    assert_invalid(
        &spec,
        "daemons[1].requires[0]: daemon \"database\" does not exist",
    );
}

#[test]
fn requires_cycles_are_reported_with_the_cycle() {
    let mut spec = spec();
    spec.daemons[0].requires = vec!["app".into()];
    let err = spec.validate(&manifest()).unwrap_err();
    assert!(
        matches!(&err, SpecError::RequiresCycle { cycle } if cycle == "db -> app -> db"),
        "{err}"
    );
    let mut spec = self::spec();
    spec.daemons[0].requires = vec!["db".into()];
    assert_invalid(&spec, "cannot require itself");
}

#[test]
fn ids_must_be_unique_and_well_formed() {
    let mut spec = spec();
    spec.daemons[1].id = "db".into();
    assert!(matches!(
        spec.validate(&manifest()),
        Err(SpecError::DuplicateId { field, .. }) if field == "daemons[1].id"
    ));
    let mut spec = self::spec();
    spec.interfaces[1].id = "Peer".into();
    assert_invalid(&spec, "interfaces[1].id");
    let mut spec = self::spec();
    spec.daemons[1].health_checks[1].id = "web".into();
    assert_invalid(&spec, "daemons[1].healthChecks[1].id");
}

#[test]
fn images_and_volumes_must_exist_in_the_manifest() {
    let mut spec = spec();
    spec.daemons[0].image = "postgres".into();
    assert_invalid(
        &spec,
        "daemons[0].image: image (manifest images) \"postgres\"",
    );
    let mut spec = self::spec();
    spec.daemons[1].mounts[0].volume = "cache".into();
    assert_invalid(&spec, "daemons[1].mounts[0].volume");
    let mut spec = self::spec();
    spec.backup.as_mut().unwrap().volumes = vec!["nope".into()];
    assert_invalid(&spec, "backup.volumes[0]");
    let mut spec = self::spec();
    spec.actions[0].image = "other".into();
    assert_invalid(&spec, "actions[0].image");
}

#[test]
fn ports_must_be_nonzero_and_unique() {
    let mut spec = spec();
    spec.interfaces[0].port = 0;
    assert_invalid(&spec, "interfaces[0].port: port 0");
    let mut spec = self::spec();
    spec.interfaces[1].port = 8080;
    assert_invalid(&spec, "tcp port 8080 is used by another interface");
    let mut spec = self::spec();
    spec.daemons[0].ready.as_mut().unwrap().probe = Probe::Tcp(TcpProbe { port: 0 });
    assert_invalid(&spec, "daemons[0].ready.probe.tcp.port");
}

#[test]
fn durations_must_be_sane() {
    let mut spec = spec();
    spec.daemons[1].health_checks[0].interval = DurationSpec::from_millis(0);
    assert_invalid(
        &spec,
        "daemons[1].healthChecks[0].interval: 0ms is outside 100ms … 24h",
    );
    let mut spec = self::spec();
    spec.daemons[0].stop_timeout = DurationSpec::from_secs(3600);
    assert_invalid(&spec, "daemons[0].stopTimeout");
}

#[test]
fn other_bad_values_are_named() {
    let mut spec = spec();
    spec.daemons[0].command = Some(vec![]);
    assert_invalid(&spec, "daemons[0].command: the command is empty");
    let mut spec = self::spec();
    spec.daemons[0].env.insert("BAD-NAME".into(), "x".into());
    assert_invalid(&spec, "daemons[0].env.BAD-NAME");
    let mut spec = self::spec();
    spec.daemons[0].mounts[0].path = "data".into();
    assert_invalid(&spec, "daemons[0].mounts[0].path");
    let mut spec = self::spec();
    spec.actions[0].input = Some(serde_json::json!({"type": "string"}));
    assert_invalid(&spec, "actions[0].input");
    // Unusable schemas are refused at pack and install time, not when the action runs.
    for (schema, why) in [
        (
            serde_json::json!({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}}),
            "never fetched",
        ),
        (
            serde_json::json!({"type": "object", "properties": {"a": {"pattern": "[a-"}}}),
            "not a usable JSON Schema",
        ),
        (
            serde_json::json!({"type": "object", "properties": {"a": {"format": "colour"}}}),
            "colour",
        ),
    ] {
        let mut spec = self::spec();
        spec.actions[0].input = Some(schema);
        assert_invalid(&spec, "actions[0].input");
        assert_invalid(&spec, why);
    }
    let mut spec = self::spec();
    spec.dependencies[0].kind = DependencyKind::Exists;
    assert_invalid(&spec, "dependencies[0].healthChecks");
    let mut spec = self::spec();
    spec.dependencies[0].id = "lnd".into();
    assert_invalid(&spec, "dependencies[0].id");
    let mut spec = self::spec();
    spec.resources.memory = Some(512);
    assert_invalid(&spec, "resources.memory");
    let mut spec = self::spec();
    spec.daemons.clear();
    assert_invalid(&spec, "at least one daemon");
}

#[test]
fn start_order_puts_required_daemons_first() {
    let mut spec = spec();
    let ids = |spec: &ServiceSpec| -> Vec<String> {
        spec.start_order()
            .unwrap()
            .iter()
            .map(|d| d.id.clone())
            .collect()
    };
    // Declared app-first, but app requires db.
    spec.daemons.reverse();
    assert_eq!(ids(&spec), ["db", "app"]);
    let mut worker = spec.daemons[0].clone();
    worker.id = "worker".into();
    worker.requires = vec!["db".into(), "db".into()];
    spec.daemons.push(worker);
    assert_eq!(ids(&spec), ["db", "app", "worker"]);
    spec.daemons[1].requires = vec!["app".into()];
    assert!(matches!(
        spec.start_order(),
        Err(SpecError::RequiresCycle { .. })
    ));
}

#[test]
fn a_bad_version_range_is_a_parse_error() {
    let text = SPEC.replace(">=25.0:0", ">=>=");
    assert!(ServiceSpec::from_json(text.as_bytes()).is_err());
}

/// The checked-in schema must match the types. To update it after changing the
/// spec types, run: `HEARTH_UPDATE_SCHEMA=1 cargo test -p hearth-s9pk schema`.
#[test]
fn checked_in_schema_matches_the_types() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema/service-spec.schema.json");
    let mut generated = serde_json::to_string_pretty(&ServiceSpec::json_schema()).unwrap();
    generated.push('\n');
    if std::env::var_os("HEARTH_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} is out of date; regenerate it with \
         `HEARTH_UPDATE_SCHEMA=1 cargo test -p hearth-s9pk schema` and commit it",
        path.display()
    );
}

#[test]
fn the_schema_describes_the_top_level_fields() {
    let schema = ServiceSpec::json_schema();
    let properties = schema["properties"].as_object().unwrap();
    for field in [
        "daemons",
        "interfaces",
        "actions",
        "backup",
        "dependencies",
        "resources",
    ] {
        assert!(properties.contains_key(field), "{field}");
    }
    assert_eq!(
        schema["additionalProperties"],
        serde_json::Value::Bool(false)
    );
}

#[test]
fn extra_capabilities_are_a_closed_validated_list() {
    assert!(spec().capabilities.is_empty(), "none unless asked");
    let with = |caps: &str| {
        let mut v: serde_json::Value = serde_json::from_str(SPEC).unwrap();
        v["capabilities"] = serde_json::from_str(caps).unwrap();
        ServiceSpec::from_json(v.to_string().as_bytes())
    };
    let s = with(r#"["net_raw", "ipc_lock"]"#).unwrap();
    assert_eq!(s.capabilities, [Capability::NetRaw, Capability::IpcLock]);
    s.validate(&manifest()).unwrap();
    for refused in [
        r#"["sys_admin"]"#,
        r#"["NET_RAW"]"#,
        r#"["mknod"]"#,
        r#""net_raw""#,
    ] {
        assert!(with(refused).is_err(), "{refused}");
    }
    let s = with(r#"["sys_nice", "sys_nice"]"#).unwrap();
    assert_invalid(&s, "capabilities");
    // Round trip, and absent when empty.
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(
        json["capabilities"],
        serde_json::json!(["sys_nice", "sys_nice"])
    );
    assert!(
        serde_json::to_value(spec())
            .unwrap()
            .get("capabilities")
            .is_none()
    );
}
