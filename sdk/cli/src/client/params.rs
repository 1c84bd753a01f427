//! From a method's params JSON Schema to command-line flags, and back to a params object.
//!
//! # Mapping
//! Each top-level property of the params schema becomes one flag, its camelCase name in
//! kebab-case (`oldPassword` → `--old-password`), its description the help text:
//! * `string` → `--name TEXT` (an `enum` of strings lists the choices);
//! * `integer` / `number` → `--limit N`, checked to be a number;
//! * `boolean` → `--force` for true, `--force=false` for false;
//! * `array` → the flag repeated (`--ids 1 --ids 2`), each value mapped by the item type;
//! * anything else (objects, untyped values) → a JSON text, or if that does not parse,
//!   the text as a JSON string (`--value dark` and `--value '{"a":1}'` both work).
//!
//! A `null`-able type (`["integer", "null"]`, from an `Option`) maps like the plain type.
//! A required password property (a string whose name ends in `password`) is prompted
//! for without echo when its flag is missing, instead of being a usage error.
//! A property whose flag would clash with the CLI's own (`--url`, `--json`, …) is
//! spelled `--param-url` etc.
//! Every command also takes an optional positional JSON object (`-` reads it from
//! stdin); flags override its members. A required property's flag is required unless
//! that JSON object is given.
//!
//! # Limitations
//! Only the top level is mapped; deeper structure goes in JSON. `$ref`s are resolved
//! against the schema's own `$defs`, one level deep.
//!
//! # Rejected alternatives
//! Nested flags (`--cpu.cores`) for nested objects: no method needs them yet, and the
//! JSON argument covers them without a second syntax.

use std::io::Read;

use clap::{Arg, ArgAction, ArgMatches, builder::PossibleValuesParser};
use serde_json::{Map, Value};

/// Arg id of the positional JSON params object.
pub(crate) const JSON_ARG: &str = "__json_params";
/// Prefix of the arg ids of property flags (kept apart from `JSON_ARG` and clap's own).
const FLAG_ID_PREFIX: &str = "param:";
/// Flags the CLI itself defines on every command; a property with one of these names
/// gets the flag `--param-NAME` instead (e.g. a future `url` param → `--param-url`).
const RESERVED_FLAGS: &[&str] = &["url", "json", "data-dir", "token", "help", "version"];

/// Errors turning command-line input into a params object.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ParamsError {
    /// Reading the JSON object from stdin failed.
    #[error("reading JSON params from stdin: {0}")]
    ReadStdin(#[source] std::io::Error),
    /// The JSON argument does not parse.
    #[error("params argument is not valid JSON: {0}")]
    Parse(#[source] serde_json::Error),
    /// The JSON argument is not an object.
    #[error("params must be a JSON object like '{{\"message\": \"hi\"}}', got {0}")]
    NotObject(&'static str),
}

/// How a property's command-line text becomes JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Taken as is.
    String,
    /// A JSON integer.
    Integer,
    /// A JSON number.
    Number,
    /// `true` / `false`; the flag alone means `true`.
    Boolean,
    /// The flag repeated; one item each.
    Array(Box<Kind>),
    /// JSON text, or a plain string if it is not JSON.
    Json,
}

/// One top-level property of a params schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ParamSpec {
    /// Name on the wire (`oldPassword`).
    pub(crate) name: String,
    /// Flag name without dashes (`old-password`).
    pub(crate) flag: String,
    /// How the value maps to JSON.
    pub(crate) kind: Kind,
    /// Whether the schema lists it in `required`.
    pub(crate) required: bool,
    /// The property's description.
    pub(crate) help: Option<String>,
    /// Allowed values, from a string `enum`.
    pub(crate) choices: Vec<String>,
    /// A password: if required and not given, it is prompted for instead of being a
    /// usage error (a flag would land in shell history and `ps`).
    pub(crate) secret: bool,
}

/// The flags of a params schema, in the schema's property order.
pub(crate) fn param_specs(schema: &Value) -> Vec<ParamSpec> {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    props
        .iter()
        .map(|(name, prop)| {
            let prop = resolve(schema, prop);
            let flag = kebab_case(name);
            let kind = kind_of(schema, prop);
            ParamSpec {
                secret: kind == Kind::String && name.to_ascii_lowercase().ends_with("password"),
                name: name.clone(),
                flag: if RESERVED_FLAGS.contains(&flag.as_str()) {
                    format!("param-{flag}")
                } else {
                    flag
                },
                kind,
                required: required.contains(&name.as_str()),
                help: prop
                    .get("description")
                    .and_then(Value::as_str)
                    .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" ")),
                choices: string_choices(prop),
            }
        })
        .collect()
}

/// Follows a local `$ref` (`#/$defs/Name`) to its definition.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| root.pointer(pointer))
        .unwrap_or(schema)
}

fn kind_of(root: &Value, schema: &Value) -> Kind {
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let non_null: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
    match non_null.as_slice() {
        ["string"] => Kind::String,
        ["integer"] => Kind::Integer,
        ["number"] => Kind::Number,
        ["boolean"] => Kind::Boolean,
        ["array"] => {
            let item = schema
                .get("items")
                .map(|i| kind_of(root, resolve(root, i)))
                .unwrap_or(Kind::Json);
            match item {
                // Arrays of arrays go in as JSON per item.
                Kind::Array(_) => Kind::Array(Box::new(Kind::Json)),
                other => Kind::Array(Box::new(other)),
            }
        }
        _ => Kind::Json,
    }
}

fn string_choices(schema: &Value) -> Vec<String> {
    schema
        .get("enum")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// `camelCase` / `snake_case` → `kebab-case`.
pub(crate) fn kebab_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('-') {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else if c == '_' {
            out.push('-');
        } else {
            out.push(c);
        }
    }
    out
}

/// Adds the flags of `specs` and the positional JSON argument to `cmd`.
pub(crate) fn add_args(mut cmd: clap::Command, specs: &[ParamSpec]) -> clap::Command {
    cmd = cmd.arg(
        Arg::new(JSON_ARG)
            .value_name("JSON")
            .help("All params as one JSON object ('-' reads it from stdin); flags override it"),
    );
    for spec in specs {
        cmd = cmd.arg(flag_arg(spec));
    }
    cmd
}

fn flag_arg(spec: &ParamSpec) -> Arg {
    let id = format!("{FLAG_ID_PREFIX}{}", spec.name);
    let mut arg = Arg::new(id).long(spec.flag.clone());
    let help = spec.help.clone().unwrap_or_default();
    if spec.secret {
        arg = arg.help(format!(
            "{help} (prompted for without echo if not given: a flag shows in `ps` and \
             shell history)"
        ));
    } else if !help.is_empty() {
        arg = arg.help(help);
    }
    if spec.required && !spec.secret {
        arg = arg.required_unless_present(JSON_ARG);
    }
    let (item, repeated) = match &spec.kind {
        Kind::Array(item) => (item.as_ref(), true),
        other => (other, false),
    };
    arg = arg.value_name(value_name(item, &spec.flag));
    arg = match item {
        Kind::Boolean => arg
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .value_parser(clap::value_parser!(bool)),
        Kind::String if !spec.choices.is_empty() => {
            arg.value_parser(PossibleValuesParser::new(spec.choices.clone()))
        }
        Kind::String => arg,
        Kind::Integer => arg.value_parser(parse_integer),
        Kind::Number => arg.value_parser(parse_number),
        Kind::Json | Kind::Array(_) => arg,
    };
    if repeated {
        arg.action(ArgAction::Append)
    } else {
        arg.action(ArgAction::Set)
    }
}

fn value_name(kind: &Kind, flag: &str) -> String {
    match kind {
        Kind::Integer | Kind::Number => "N".into(),
        Kind::Boolean => "BOOL".into(),
        Kind::Json => "JSON".into(),
        _ => flag.to_ascii_uppercase().replace('-', "_"),
    }
}

fn parse_integer(text: &str) -> Result<Value, String> {
    if let Ok(n) = text.parse::<i64>() {
        return Ok(Value::from(n));
    }
    text.parse::<u64>()
        .map(Value::from)
        .map_err(|_| format!("expected a whole number, got {text:?}"))
}

fn parse_number(text: &str) -> Result<Value, String> {
    if let Ok(v) = parse_integer(text) {
        return Ok(v);
    }
    text.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| format!("expected a number, got {text:?}"))
}

/// JSON text, or the text itself as a string.
fn json_or_string(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// The params object from the JSON argument (if any) and the flags of `specs`.
pub(crate) fn collect(
    matches: &ArgMatches,
    specs: &[ParamSpec],
) -> Result<Map<String, Value>, ParamsError> {
    let mut params = match matches.get_one::<String>(JSON_ARG) {
        Some(text) => parse_json_object(text)?,
        None => Map::new(),
    };
    for spec in specs {
        let id = format!("{FLAG_ID_PREFIX}{}", spec.name);
        let item = match &spec.kind {
            Kind::Array(item) => item.as_ref(),
            other => other,
        };
        let values: Vec<Value> = match item {
            Kind::Boolean => matches
                .get_many::<bool>(&id)
                .map(|vs| vs.map(|b| Value::Bool(*b)).collect())
                .unwrap_or_default(),
            Kind::Integer | Kind::Number => matches
                .get_many::<Value>(&id)
                .map(|vs| vs.cloned().collect())
                .unwrap_or_default(),
            Kind::String => matches
                .get_many::<String>(&id)
                .map(|vs| vs.map(|s| Value::String(s.clone())).collect())
                .unwrap_or_default(),
            Kind::Json | Kind::Array(_) => matches
                .get_many::<String>(&id)
                .map(|vs| vs.map(|s| json_or_string(s)).collect())
                .unwrap_or_default(),
        };
        if values.is_empty() {
            continue;
        }
        let value = match &spec.kind {
            Kind::Array(_) => Value::Array(values),
            _ => values.into_iter().next().unwrap_or(Value::Null),
        };
        params.insert(spec.name.clone(), value);
    }
    Ok(params)
}

/// Required password params that `params` lacks: `(wire name, flag)` pairs, to prompt for.
pub(crate) fn missing_secrets(
    specs: &[ParamSpec],
    params: &Map<String, Value>,
) -> Vec<(String, String)> {
    specs
        .iter()
        .filter(|s| s.secret && s.required && !params.contains_key(&s.name))
        .map(|s| (s.name.clone(), s.flag.clone()))
        .collect()
}

/// Parses a params argument: a JSON object, or `-` to read one from stdin.
pub(crate) fn parse_json_object(text: &str) -> Result<Map<String, Value>, ParamsError> {
    let owned;
    let text = if text == "-" {
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .map_err(ParamsError::ReadStdin)?;
        owned = buf;
        owned.as_str()
    } else {
        text
    };
    match serde_json::from_str(text).map_err(ParamsError::Parse)? {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        Value::Array(_) => Err(ParamsError::NotObject("an array")),
        Value::String(_) => Err(ParamsError::NotObject("a string")),
        Value::Number(_) => Err(ParamsError::NotObject("a number")),
        Value::Bool(_) => Err(ParamsError::NotObject("a boolean")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "message": {"type": "string", "description": "Text to\n send back."},
                "limit": {"type": ["integer", "null"], "format": "uint32"},
                "ratio": {"type": "number"},
                "force": {"type": "boolean"},
                "ids": {"type": "array", "items": {"type": "integer"}},
                "names": {"type": "array", "items": {"type": "string"}},
                "value": {"description": "Any JSON."},
                "level": {"$ref": "#/$defs/Level"},
                "oldPassword": {"type": "string"}
            },
            "required": ["message", "oldPassword"],
            "$defs": {"Level": {"type": "string", "enum": ["info", "error"]}}
        })
    }

    fn command() -> clap::Command {
        add_args(clap::Command::new("t"), &param_specs(&schema()))
    }

    fn parse(args: &[&str]) -> Result<Map<String, Value>, String> {
        let matches = command()
            .try_get_matches_from(std::iter::once("t").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        collect(&matches, &param_specs(&schema())).map_err(|e| e.to_string())
    }

    #[test]
    fn schema_properties_map_to_kinds_and_flags() {
        let specs = param_specs(&schema());
        let by_name = |n: &str| specs.iter().find(|s| s.name == n).unwrap().clone();
        assert_eq!(by_name("message").kind, Kind::String);
        assert_eq!(
            by_name("message").help.as_deref(),
            Some("Text to send back.")
        );
        assert!(by_name("message").required);
        assert_eq!(by_name("limit").kind, Kind::Integer);
        assert!(!by_name("limit").required);
        assert_eq!(by_name("ratio").kind, Kind::Number);
        assert_eq!(by_name("force").kind, Kind::Boolean);
        assert_eq!(by_name("ids").kind, Kind::Array(Box::new(Kind::Integer)));
        assert_eq!(by_name("value").kind, Kind::Json);
        assert_eq!(by_name("level").kind, Kind::String);
        assert_eq!(by_name("level").choices, vec!["info", "error"]);
        assert_eq!(by_name("oldPassword").flag, "old-password");
    }

    #[test]
    fn flags_become_typed_json() {
        let p = parse(&[
            "--message",
            "hi",
            "--old-password",
            "pw",
            "--limit",
            "5",
            "--ratio",
            "0.5",
            "--force",
            "--ids",
            "1",
            "--ids",
            "2",
            "--names",
            "a,b",
            "--value",
            "{\"a\":1}",
            "--level",
            "error",
        ])
        .unwrap();
        assert_eq!(
            Value::Object(p),
            json!({
                "message": "hi", "oldPassword": "pw", "limit": 5, "ratio": 0.5, "force": true,
                "ids": [1, 2], "names": ["a,b"], "value": {"a": 1}, "level": "error"
            })
        );
    }

    #[test]
    fn boolean_false_and_plain_string_for_json_kind() {
        let p = parse(&[
            "--message=x",
            "--old-password=y",
            "--force=false",
            "--value",
            "dark",
        ])
        .unwrap();
        assert_eq!(p["force"], json!(false));
        assert_eq!(p["value"], json!("dark"));
    }

    #[test]
    fn bad_numbers_and_choices_are_refused_by_the_parser() {
        let e = parse(&["--message", "x", "--old-password", "y", "--limit", "many"]).unwrap_err();
        assert!(e.contains("--limit") && e.contains("whole number"), "{e}");
        let e = parse(&["--message", "x", "--old-password", "y", "--level", "loud"]).unwrap_err();
        assert!(e.contains("loud"), "{e}");
    }

    #[test]
    fn required_flags_are_required_unless_json_is_given() {
        let e = parse(&["--old-password", "y"]).unwrap_err();
        assert!(e.contains("--message"), "{e}");
        let p = parse(&[
            r#"{"message": "from json", "oldPassword": "a", "limit": 1}"#,
            "--limit",
            "2",
        ])
        .unwrap();
        assert_eq!(p["message"], json!("from json"));
        // The flag overrides the JSON member.
        assert_eq!(p["limit"], json!(2));
    }

    #[test]
    fn missing_required_passwords_are_prompted_not_usage_errors() {
        // `oldPassword` is required but its absence is not a parse error…
        let p = parse(&["--message", "m"]).unwrap();
        assert!(!p.contains_key("oldPassword"));
        // …it is reported for prompting instead.
        let specs = param_specs(&schema());
        assert_eq!(
            missing_secrets(&specs, &p),
            vec![("oldPassword".to_owned(), "old-password".to_owned())]
        );
        let given = parse(&["--message", "m", "--old-password", "x"]).unwrap();
        assert!(missing_secrets(&specs, &given).is_empty());
        let spec = specs.iter().find(|s| s.name == "oldPassword").unwrap();
        assert!(spec.secret);
        assert!(!specs.iter().find(|s| s.name == "message").unwrap().secret);
    }

    #[test]
    fn json_argument_must_be_an_object() {
        assert!(matches!(
            parse_json_object("[1]"),
            Err(ParamsError::NotObject(_))
        ));
        assert!(matches!(parse_json_object("{"), Err(ParamsError::Parse(_))));
        assert_eq!(parse_json_object("null").unwrap(), Map::new());
    }

    #[test]
    fn params_named_like_global_flags_get_a_prefix() {
        let schema = json!({
            "type": "object",
            "properties": {"url": {"type": "string"}, "json": {"type": "boolean"}},
            "required": ["url"]
        });
        let specs = param_specs(&schema);
        let flags: Vec<&str> = specs.iter().map(|s| s.flag.as_str()).collect();
        assert_eq!(flags, vec!["param-json", "param-url"]);
        // The generated command still validates next to the global `--url` / `--json`.
        let cmd = add_args(
            clap::Command::new("t")
                .arg(Arg::new("url").long("url").global(true))
                .arg(
                    Arg::new("json")
                        .long("json")
                        .action(ArgAction::SetTrue)
                        .global(true),
                ),
            &specs,
        );
        cmd.clone().debug_assert();
        let m = cmd
            .try_get_matches_from(["t", "--param-url", "https://r", "--url", "http://h"])
            .unwrap();
        assert_eq!(
            Value::Object(collect(&m, &specs).unwrap()),
            json!({"url": "https://r"})
        );
    }

    #[test]
    fn kebab_case_conversion() {
        assert_eq!(kebab_case("message"), "message");
        assert_eq!(kebab_case("oldPassword"), "old-password");
        assert_eq!(kebab_case("data_dir"), "data-dir");
        assert_eq!(kebab_case("retryAfterMs"), "retry-after-ms");
    }

    #[test]
    fn every_catalogue_method_gets_a_valid_command() {
        for m in hearth_rpc::catalogue() {
            let specs = param_specs(&m.params_schema);
            add_args(clap::Command::new(m.name), &specs).debug_assert();
            for spec in &specs {
                assert!(
                    spec.help.is_some(),
                    "{}: param {} has no description for --help",
                    m.name,
                    spec.name
                );
            }
        }
    }
}
