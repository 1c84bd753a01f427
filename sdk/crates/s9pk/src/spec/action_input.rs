//! Checks an action's input against its JSON Schema: `hearthd` before it asks the
//! container to run an action, and `hearth-container` again before it runs the command
//! (so a caller that bypasses hearthd is checked too). One implementation for both;
//! [`check_action_schema`] is what `hearth s9pk pack` and install use to refuse a schema
//! that cannot be used, so authors learn at pack time.
//!
//! # Design
//! The JSON Schema keywords forms use (draft 2020-12 names): `type` (string or list),
//! `enum`, `const`, `required`, `properties`, `patternProperties`,
//! `additionalProperties` (`false` or a schema), `dependentRequired`,
//! `minProperties`/`maxProperties`, `items`, `minItems`/`maxItems`, `uniqueItems`,
//! `minimum`/`maximum`, `exclusiveMinimum`/`exclusiveMaximum` (numbers), `multipleOf`,
//! `minLength`/`maxLength` (characters), `pattern`, `format` (asserted: `date-time`,
//! `date`, `time`, `email`, `hostname`, `ipv4`, `ipv6`, `uri`, `uuid`, `regex`),
//! `allOf`/`anyOf`/`oneOf`/`not`, `if`/`then`/`else`, and `$ref` to a place in the same
//! schema (`#`, `#/$defs/name`; `definitions` too). Errors name the failing place as
//! a path from `input` (`input.name`, `input.tags[2]`) with a short message
//! (`required`, `expected string`, `does not match the pattern ^[a-z]+$`).
//!
//! # Invariants (schemas and inputs are untrusted)
//! * No reference is ever fetched: a `$ref` that does not start with `#` makes the
//!   schema unusable, naming the reference.
//! * Patterns are compiled by `regex-lite`: worst case linear in the input (no
//!   backtracking), compiled size capped ([`REGEX_SIZE_LIMIT`]); look-around and
//!   back-references are refused as errors, never run.
//! * Schemas and inputs nested deeper than [`MAX_DEPTH`] are refused before they are
//!   walked, and evaluation (which also follows `$ref`s) stops at [`MAX_EVAL_DEPTH`]:
//!   a reference loop is an error, never a stack overflow; [`check_action_schema`]
//!   finds loops that consume no input statically.
//!
//! # Limitations
//! Not checked: `prefixItems`, `contains`, `propertyNames`, `dependentSchemas`,
//! `unevaluated*`, `$dynamicRef`, `$anchor`s, `$id`-relative references. Patterns use
//! `regex-lite`'s syntax (Perl-like, ASCII classes: `\d` is `[0-9]`), not ECMA-262's in
//! every detail. `email` and `uri` are syntax checks (RFC 5321 address via
//! `email_address`; RFC 3986 characters with a scheme), nothing is resolved.
//!
//! # Rejected alternatives
//! The `jsonschema` crate (0.61, default features off, so no HTTP or TLS), evaluated
//! for full coverage: it worked (the tests of this module passed with it), but in the
//! static musl `hearth-container` it took the release binary from 3.3 MB to 11.2 MB
//! (stripped 2.7 → 9.1 MB), its idle resident memory from 2.1 MB to 3.6 MB per
//! container, and the dependency tree from 93 to 142 crates (its own code ≈ 3.2 MB,
//! plus `regex`, `fancy-regex`, `num-bigint`, `referencing`, …). `hearth-container`
//! runs once per service and exists to be small; the keywords above are what action
//! forms use. `regex-lite` and `email_address` (no dependencies) do the parts that
//! should not be hand-written.

use serde_json::{Map, Value};

/// Where and why `value` does not match `schema`: (path from `input`, message).
pub type InputMismatch = (String, String);

/// Deepest nesting of a schema or an input (objects and arrays) that is checked
/// (also the nesting limit of a pattern).
pub const MAX_DEPTH: usize = 64;
/// [`MAX_DEPTH`] as `regex-lite` takes it.
const PATTERN_NEST_LIMIT: u32 = 64;
/// Deepest evaluation (schema nesting plus `$ref`s followed) before giving up.
pub const MAX_EVAL_DEPTH: usize = 256;
/// Compiled-size limit of one `pattern`.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Formats that are asserted (any other `format` makes the schema unusable).
const FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uuid",
    "regex",
];

/// Checks that `schema` is usable as an action's input schema: nesting depth, known
/// `type`s and `format`s, patterns that compile, `$ref`s that are local, resolve, and
/// do not loop without consuming input. The error is a one-line reason.
pub fn check_action_schema(schema: &Value) -> Result<(), String> {
    if depth(schema) > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    walk_schema(schema, schema, "#")
}

/// Checks `value` (named `path` in errors, usually `"input"`) against `schema`.
///
/// A schema that cannot be used (see [`check_action_schema`]) is reported as a mismatch
/// at `path` whose message starts with `the action's input schema is unusable`.
pub fn check_action_input(schema: &Value, value: &Value, path: &str) -> Result<(), InputMismatch> {
    let unusable = |why: String| {
        (
            path.to_owned(),
            format!("the action's input schema is unusable: {why}"),
        )
    };
    check_action_schema(schema).map_err(unusable)?;
    if depth(value) > MAX_DEPTH {
        return Err((
            path.to_owned(),
            format!("nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    let ctx = Ctx { root: schema };
    match ctx.check(schema, value, path, 0) {
        Ok(()) => Ok(()),
        Err(Failure::Mismatch(at, why)) => Err((at, why)),
        Err(Failure::Schema(why)) => Err(unusable(why)),
    }
}

/// Why a check failed: the input, or the schema (found only while evaluating).
enum Failure {
    Mismatch(String, String),
    Schema(String),
}

fn mismatch(at: &str, why: impl Into<String>) -> Result<(), Failure> {
    Err(Failure::Mismatch(at.to_owned(), why.into()))
}

/// Evaluation context: the root schema, for `$ref`s.
struct Ctx<'a> {
    root: &'a Value,
}

impl<'a> Ctx<'a> {
    fn check(
        &self,
        schema: &Value,
        value: &Value,
        path: &str,
        level: usize,
    ) -> Result<(), Failure> {
        if level > MAX_EVAL_DEPTH {
            return Err(Failure::Schema(format!(
                "evaluation deeper than {MAX_EVAL_DEPTH} levels (a $ref loop?)"
            )));
        }
        let schema = match schema {
            Value::Object(s) => s,
            Value::Bool(false) => return mismatch(path, "no value is allowed here"),
            _ => return Ok(()),
        };
        if let Some(ty) = schema.get("type") {
            let types: Vec<&str> = match ty {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !types.is_empty() && !types.iter().any(|t| has_type(value, t)) {
                return mismatch(path, format!("expected {}", types.join(" or ")));
            }
        }
        if let Some(Value::Array(options)) = schema.get("enum")
            && !options.iter().any(|o| json_eq(o, value))
        {
            return mismatch(path, "not one of the allowed values");
        }
        if let Some(c) = schema.get("const")
            && !json_eq(c, value)
        {
            return mismatch(path, format!("must be {c}"));
        }
        if let Some(Value::String(r)) = schema.get("$ref") {
            let target = resolve(self.root, r).map_err(Failure::Schema)?;
            self.check(target, value, path, level + 1)?;
        }
        self.combinators(schema, value, path, level)?;
        match value {
            Value::Number(_) => check_number(schema, value, path),
            Value::String(s) => check_string(schema, s, path),
            Value::Array(items) => self.check_array(schema, items, path, level),
            Value::Object(fields) => self.check_object(schema, fields, path, level),
            Value::Null | Value::Bool(_) => Ok(()),
        }
    }

    fn combinators(
        &self,
        schema: &Map<String, Value>,
        value: &Value,
        path: &str,
        level: usize,
    ) -> Result<(), Failure> {
        let list = |key: &str| {
            schema
                .get(key)
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
        };
        // `Ok(true)` matches, `Ok(false)` does not, `Err` is a schema failure.
        let matches = |s: &Value| match self.check(s, value, path, level + 1) {
            Ok(()) => Ok(true),
            Err(Failure::Mismatch(..)) => Ok(false),
            Err(e) => Err(e),
        };
        for s in list("allOf") {
            self.check(s, value, path, level + 1)?;
        }
        let any = list("anyOf");
        if !any.is_empty() {
            let mut found = false;
            for s in any {
                if matches(s)? {
                    found = true;
                    break;
                }
            }
            if !found {
                return mismatch(path, "matches none of the allowed forms");
            }
        }
        let one = list("oneOf");
        if !one.is_empty() {
            let mut count = 0;
            for s in one {
                count += usize::from(matches(s)?);
            }
            match count {
                1 => {}
                0 => return mismatch(path, "matches none of the allowed forms"),
                _ => return mismatch(path, "must match exactly one of the allowed forms"),
            }
        }
        if let Some(not) = schema.get("not")
            && matches(not)?
        {
            return mismatch(path, "matches a form that is not allowed");
        }
        if let Some(cond) = schema.get("if") {
            let branch = if matches(cond)? { "then" } else { "else" };
            if let Some(s) = schema.get(branch) {
                self.check(s, value, path, level + 1)?;
            }
        }
        Ok(())
    }

    fn check_array(
        &self,
        schema: &Map<String, Value>,
        items: &[Value],
        path: &str,
        level: usize,
    ) -> Result<(), Failure> {
        let len = items.len() as u64;
        if let Some(min) = count(schema, "minItems")
            && len < min
        {
            return mismatch(path, format!("fewer than {min} items"));
        }
        if let Some(max) = count(schema, "maxItems")
            && len > max
        {
            return mismatch(path, format!("more than {max} items"));
        }
        if schema.get("uniqueItems") == Some(&Value::Bool(true)) {
            for (i, item) in items.iter().enumerate() {
                if items[..i].iter().any(|other| json_eq(other, item)) {
                    return mismatch(path, "has duplicate items");
                }
            }
        }
        if let Some(item_schema) = schema.get("items")
            && !item_schema.is_array()
        {
            for (i, item) in items.iter().enumerate() {
                self.check(item_schema, item, &format!("{path}[{i}]"), level + 1)?;
            }
        }
        Ok(())
    }

    fn check_object(
        &self,
        schema: &Map<String, Value>,
        fields: &Map<String, Value>,
        path: &str,
        level: usize,
    ) -> Result<(), Failure> {
        if let Some(Value::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(name) {
                    return mismatch(&format!("{path}.{name}"), "required");
                }
            }
        }
        if let Some(Value::Object(deps)) = schema.get("dependentRequired") {
            for (field, needs) in deps {
                if !fields.contains_key(field) {
                    continue;
                }
                for name in needs
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if !fields.contains_key(name) {
                        return mismatch(
                            &format!("{path}.{name}"),
                            format!("required when {field} is given"),
                        );
                    }
                }
            }
        }
        let len = fields.len() as u64;
        if let Some(min) = count(schema, "minProperties")
            && len < min
        {
            return mismatch(path, format!("fewer than {min} fields"));
        }
        if let Some(max) = count(schema, "maxProperties")
            && len > max
        {
            return mismatch(path, format!("more than {max} fields"));
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        let patterns = match schema.get("patternProperties") {
            Some(Value::Object(p)) => p
                .iter()
                .map(|(pattern, s)| compile(pattern).map(|re| (re, s)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Failure::Schema)?,
            _ => Vec::new(),
        };
        for (name, field) in fields {
            let field_path = format!("{path}.{name}");
            let mut known = false;
            if let Some(s) = properties.and_then(|p| p.get(name)) {
                known = true;
                self.check(s, field, &field_path, level + 1)?;
            }
            for (re, s) in &patterns {
                if re.is_match(name) {
                    known = true;
                    self.check(s, field, &field_path, level + 1)?;
                }
            }
            match schema.get("additionalProperties") {
                _ if known => {}
                Some(Value::Bool(false)) => return mismatch(&field_path, "unknown field"),
                Some(extra) => self.check(extra, field, &field_path, level + 1)?,
                None => {}
            }
        }
        Ok(())
    }
}

fn count(schema: &Map<String, Value>, key: &str) -> Option<u64> {
    schema.get(key).and_then(Value::as_u64)
}

fn check_number(schema: &Map<String, Value>, value: &Value, path: &str) -> Result<(), Failure> {
    let n = value.as_f64().unwrap_or(f64::NAN);
    let bound = |key: &str| schema.get(key).filter(|b| b.is_number());
    let num = |b: &Value| b.as_f64().unwrap_or(f64::NAN);
    if let Some(b) = bound("minimum")
        && n < num(b)
    {
        return mismatch(path, format!("must be at least {b}"));
    }
    if let Some(b) = bound("maximum")
        && n > num(b)
    {
        return mismatch(path, format!("must be at most {b}"));
    }
    if let Some(b) = bound("exclusiveMinimum")
        && n <= num(b)
    {
        return mismatch(path, format!("must be more than {b}"));
    }
    if let Some(b) = bound("exclusiveMaximum")
        && n >= num(b)
    {
        return mismatch(path, format!("must be less than {b}"));
    }
    if let Some(b) = bound("multipleOf") {
        let m = num(b);
        let q = n / m;
        if m > 0.0 && (q - q.round()).abs() > 1e-9 {
            return mismatch(path, format!("not a multiple of {b}"));
        }
    }
    Ok(())
}

fn check_string(schema: &Map<String, Value>, s: &str, path: &str) -> Result<(), Failure> {
    let len = s.chars().count() as u64;
    if let Some(min) = count(schema, "minLength")
        && len < min
    {
        return mismatch(path, format!("shorter than {min} characters"));
    }
    if let Some(max) = count(schema, "maxLength")
        && len > max
    {
        return mismatch(path, format!("longer than {max} characters"));
    }
    if let Some(Value::String(pattern)) = schema.get("pattern")
        && !compile(pattern).map_err(Failure::Schema)?.is_match(s)
    {
        return mismatch(path, format!("does not match the pattern {pattern}"));
    }
    if let Some(Value::String(format)) = schema.get("format")
        && !format_ok(format, s)
    {
        return mismatch(path, format!("not a valid {format}"));
    }
    Ok(())
}

fn compile(pattern: &str) -> Result<regex_lite::Regex, String> {
    regex_lite::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(PATTERN_NEST_LIMIT)
        .build()
        .map_err(|e| format!("pattern {pattern:?}: {}", one_line(&e.to_string())))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The subschema a local `$ref` points to.
fn resolve<'a>(root: &'a Value, reference: &str) -> Result<&'a Value, String> {
    let Some(pointer) = reference.strip_prefix('#') else {
        return Err(format!(
            "$ref {reference:?} points outside the schema; only local references \
             (\"#/$defs/…\") are allowed, references are never fetched"
        ));
    };
    let decoded = percent_decode(pointer);
    root.pointer(&decoded)
        .ok_or_else(|| format!("$ref {reference:?} points to nothing in the schema"))
}

/// `%XX` escapes of a URI fragment (JSON Pointer segments may contain them).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        };
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(hi * 16 + lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Keywords whose value is one subschema, a list of them, or a map of them.
const ONE: &[&str] = &[
    "additionalProperties",
    "items",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
];
const LIST: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems", "items"];
const MAP: &[&str] = &[
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

/// Checks every subschema of `schema` (at JSON Pointer `at`); depth already bounded.
fn walk_schema(root: &Value, schema: &Value, at: &str) -> Result<(), String> {
    let map = match schema {
        Value::Object(m) => m,
        Value::Bool(_) => return Ok(()),
        _ => return Err(format!("{at}: a schema must be an object or a boolean")),
    };
    if let Some(ty) = map.get("type") {
        let names: Vec<&Value> = match ty {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for name in names {
            let known = name.as_str().is_some_and(|n| {
                [
                    "object", "array", "string", "number", "integer", "boolean", "null",
                ]
                .contains(&n)
            });
            if !known {
                return Err(format!("{at}/type: unknown type {name}"));
            }
        }
    }
    if let Some(Value::String(pattern)) = map.get("pattern") {
        compile(pattern).map_err(|e| format!("{at}/pattern: {e}"))?;
    }
    if let Some(Value::Object(patterns)) = map.get("patternProperties") {
        for pattern in patterns.keys() {
            compile(pattern).map_err(|e| format!("{at}/patternProperties: {e}"))?;
        }
    }
    if let Some(format) = map.get("format")
        && !format.as_str().is_some_and(|f| FORMATS.contains(&f))
    {
        return Err(format!(
            "{at}/format: {format} is not a format that is checked (known: {})",
            FORMATS.join(", ")
        ));
    }
    if let Some(r) = map.get("$ref") {
        let Value::String(r) = r else {
            return Err(format!("{at}/$ref: must be a string"));
        };
        resolve(root, r).map_err(|e| format!("{at}: {e}"))?;
        ref_chain_ends(root, r).map_err(|e| format!("{at}: {e}"))?;
    }
    for key in ONE {
        if let Some(s) = map.get(*key)
            && !s.is_array()
        {
            walk_schema(root, s, &format!("{at}/{key}"))?;
        }
    }
    for key in LIST {
        if let Some(Value::Array(list)) = map.get(*key) {
            for (i, s) in list.iter().enumerate() {
                walk_schema(root, s, &format!("{at}/{key}/{i}"))?;
            }
        }
    }
    for key in MAP {
        if let Some(Value::Object(by_name)) = map.get(*key) {
            for (name, s) in by_name {
                walk_schema(root, s, &format!("{at}/{key}/{}", escape(name)))?;
            }
        }
    }
    Ok(())
}

/// JSON Pointer escaping of one segment.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Follows `$ref` → target → the references it applies to the same value (not to its
/// members), depth first; a reference met again on the current path is a loop that
/// would never end.
fn ref_chain_ends(root: &Value, first: &str) -> Result<(), String> {
    let mut on_path: Vec<&str> = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    // (reference, leaving): a leaving entry pops the reference off the path.
    let mut stack: Vec<(&str, bool)> = vec![(first, false)];
    while let Some((r, leaving)) = stack.pop() {
        if leaving {
            on_path.pop();
            done.push(r);
            continue;
        }
        if on_path.contains(&r) {
            return Err(format!(
                "$ref {first:?} leads back to itself without descending into the input"
            ));
        }
        if done.contains(&r) {
            continue;
        }
        let target = resolve(root, r)?;
        on_path.push(r);
        stack.push((r, true));
        stack.extend(same_instance_refs(target).into_iter().map(|n| (n, false)));
    }
    Ok(())
}

/// `$ref`s a schema applies to the value itself (directly or through `allOf`, `anyOf`,
/// `oneOf`, `not`, `if`, `then`, `else`), not to its members.
fn same_instance_refs(schema: &Value) -> Vec<&str> {
    let mut out = Vec::new();
    let Some(map) = schema.as_object() else {
        return out;
    };
    if let Some(Value::String(r)) = map.get("$ref") {
        out.push(r.as_str());
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(list)) = map.get(key) {
            for s in list {
                out.extend(same_instance_refs(s));
            }
        }
    }
    for key in ["not", "if", "then", "else"] {
        if let Some(s) = map.get(key) {
            out.extend(same_instance_refs(s));
        }
    }
    out
}

/// Nesting depth of objects and arrays, iteratively (a deep value must not overflow
/// the stack here either).
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 1)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Object(m) => {
                deepest = deepest.max(d);
                stack.extend(m.values().map(|c| (c, d + 1)));
            }
            Value::Array(a) => {
                deepest = deepest.max(d);
                stack.extend(a.iter().map(|c| (c, d + 1)));
            }
            _ => {}
        }
        if deepest > MAX_DEPTH {
            break;
        }
    }
    deepest
}

fn has_type(value: &Value, ty: &str) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
    }
}

/// JSON equality as JSON Schema defines it (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "date-time" => is_date_time(s),
        "date" => is_date(s),
        "time" => is_time(s),
        "email" => email_address::EmailAddress::is_valid(s),
        "hostname" => is_hostname(s),
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "uri" => is_uri(s),
        "uuid" => is_uuid(s),
        "regex" => compile(s).is_ok(),
        _ => true,
    }
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// RFC 3339 `full-date`: `YYYY-MM-DD` with a day that exists.
fn is_date(s: &str) -> bool {
    let mut parts = s.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Some(y), Some(m), Some(d)) = (digits(y, 4), digits(m, 2), digits(d, 2)) else {
        return false;
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// RFC 3339 `full-time`: `HH:MM:SS[.frac](Z|±HH:MM)`.
fn is_time(s: &str) -> bool {
    let upper = s.to_ascii_uppercase();
    let (clock, offset_ok) = if let Some(c) = upper.strip_suffix('Z') {
        (c.to_owned(), true)
    } else if upper.len() > 6 {
        let (c, off) = upper.split_at(upper.len() - 6);
        let ok = (off.starts_with('+') || off.starts_with('-'))
            && off.as_bytes().get(3) == Some(&b':')
            && digits(&off[1..3], 2).is_some_and(|h| h < 24)
            && digits(&off[4..6], 2).is_some_and(|m| m < 60);
        (c.to_owned(), ok)
    } else {
        return false;
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (clock.as_str(), None),
    };
    if frac.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let mut parts = hms.split(':');
    let (Some(h), Some(m), Some(sec), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    offset_ok
        && digits(h, 2).is_some_and(|h| h < 24)
        && digits(m, 2).is_some_and(|m| m < 60)
        // 60: a leap second.
        && digits(sec, 2).is_some_and(|s| s <= 60)
}

/// RFC 3339 `date-time`: a date, `T` (or `t`, or a space is not allowed), a time.
fn is_date_time(s: &str) -> bool {
    match s.split_once(['T', 't']) {
        Some((date, time)) => is_date(date) && is_time(time),
        None => false,
    }
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// RFC 3986 URI syntax: a scheme, `:`, and only URI characters (valid `%XX` escapes).
fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&b)) {
            return false;
        }
        i += 1;
    }
    scheme_ok
}

/// `8-4-4-4-12` hex digits.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(schema: &Value, value: &Value) -> Result<(), InputMismatch> {
        check_action_input(schema, value, "input")
    }

    fn err(schema: &Value, value: &Value) -> InputMismatch {
        check(schema, value).unwrap_err()
    }

    /// `schema` accepts `good` and refuses `bad` at `path` with a message containing `why`.
    fn keyword(schema: Value, good: Value, bad: Value, path: &str, why: &str) {
        assert_eq!(check(&schema, &good), Ok(()), "{schema} refused {good}");
        let (at, message) = err(&schema, &bad);
        assert_eq!(at, path, "{schema} on {bad}: {message}");
        assert!(message.contains(why), "{schema} on {bad}: {message:?}");
    }

    #[test]
    fn hello_oci_sign_input() {
        // As in sdk/examples/hello-oci/hearth.toml.
        let schema = json!({"type": "object", "properties": {"name": {"type": "string", "title": "Your name"}}, "required": ["name"]});
        assert!(check(&schema, &json!({"name": "Ada"})).is_ok());
        assert_eq!(
            err(&schema, &json!({})),
            ("input.name".into(), "required".into())
        );
        assert_eq!(
            err(&schema, &json!({"name": 5})),
            ("input.name".into(), "expected string".into())
        );
        assert_eq!(err(&schema, &json!("Ada")).0, "input");
    }

    #[test]
    fn pattern() {
        keyword(
            json!({"properties": {"user": {"type": "string", "pattern": "^[a-z][a-z0-9]*$"}}}),
            json!({"user": "ada42"}),
            json!({"user": "Ada 42"}),
            "input.user",
            "does not match the pattern ^[a-z][a-z0-9]*$",
        );
    }

    #[test]
    fn formats_are_asserted() {
        for (format, good, bad) in [
            ("email", "ada@example.com", "ada at example"),
            ("uri", "https://example.com/a?b=c", "not a uri"),
            ("date-time", "2026-11-24T21:30:00Z", "yesterday at noon"),
        ] {
            keyword(
                json!({"properties": {"v": {"type": "string", "format": format}}}),
                json!({"v": good}),
                json!({"v": bad}),
                "input.v",
                &format!("not a valid {format}"),
            );
        }
    }

    #[test]
    fn ref_to_defs() {
        keyword(
            json!({
                "$defs": {"port": {"type": "integer", "minimum": 1, "maximum": 65535}},
                "properties": {"ports": {"type": "array", "items": {"$ref": "#/$defs/port"}}},
            }),
            json!({"ports": [80, 443]}),
            json!({"ports": [80, 70000]}),
            "input.ports[1]",
            "must be at most 65535",
        );
    }

    #[test]
    fn if_then_else() {
        let schema = json!({
            "properties": {"mode": {"enum": ["smtp", "none"]}},
            "if": {"properties": {"mode": {"const": "smtp"}}},
            "then": {"required": ["host"]},
            "else": {"not": {"required": ["host"]}},
        });
        keyword(
            schema.clone(),
            json!({"mode": "smtp", "host": "mail.example.com"}),
            json!({"mode": "smtp"}),
            "input.host",
            "required",
        );
        keyword(
            schema,
            json!({"mode": "none"}),
            json!({"mode": "none", "host": "x"}),
            "input",
            "not allowed",
        );
    }

    #[test]
    fn enum_min_max_required_additional_properties() {
        keyword(
            json!({"properties": {"level": {"enum": ["low", "high"]}}}),
            json!({"level": "low"}),
            json!({"level": "medium"}),
            "input.level",
            "not one of the allowed values",
        );
        keyword(
            json!({"properties": {"n": {"type": "integer", "minimum": 1, "maximum": 10}}}),
            json!({"n": 10}),
            json!({"n": 0}),
            "input.n",
            "must be at least 1",
        );
        keyword(
            json!({"properties": {"n": {"type": "integer", "minimum": 1, "maximum": 10}}}),
            json!({"n": 1}),
            json!({"n": 11}),
            "input.n",
            "must be at most 10",
        );
        keyword(
            json!({"properties": {"s": {"type": "string", "minLength": 2, "maxLength": 3}}}),
            json!({"s": "abc"}),
            json!({"s": "abcd"}),
            "input.s",
            "longer than 3 characters",
        );
        keyword(
            json!({"type": "object", "required": ["a", "b"]}),
            json!({"a": 1, "b": 2}),
            json!({"a": 1}),
            "input.b",
            "required",
        );
        keyword(
            json!({"properties": {"a": {}}, "additionalProperties": false}),
            json!({"a": 1}),
            json!({"a": 1, "zzz": 2}),
            "input.zzz",
            "unknown field",
        );
        keyword(
            json!({"additionalProperties": {"type": "boolean"}}),
            json!({"x": true}),
            json!({"x": "yes"}),
            "input.x",
            "expected boolean",
        );
    }

    #[test]
    fn other_keywords_name_the_failing_place() {
        let schema = json!({
            "type": "object",
            "properties": {
                "n": {"type": "integer", "exclusiveMinimum": 0, "multipleOf": 2},
                "t": {"type": "array", "items": {"type": "string"}, "uniqueItems": true, "maxItems": 2},
                "m": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "k": {"not": {"const": "x"}},
                "o": {"type": "object", "properties": {"deep": {"type": "array", "items": {"type": "object", "required": ["id"]}}}},
            },
        });
        let ok = json!({"n": 4, "t": ["a", "b"], "m": 3, "k": "y", "o": {"deep": [{"id": 1}]}});
        assert_eq!(check(&schema, &ok), Ok(()));
        for (field, bad, path) in [
            ("n", json!(0), "input.n"),
            ("n", json!(3), "input.n"),
            ("n", json!(2.5), "input.n"),
            ("t", json!(["a", 1]), "input.t[1]"),
            ("t", json!(["a", "a"]), "input.t"),
            ("t", json!(["a", "b", "c"]), "input.t"),
            ("m", json!(true), "input.m"),
            ("k", json!("x"), "input.k"),
            ("o", json!({"deep": [{"id": 1}, {}]}), "input.o.deep[1].id"),
        ] {
            let mut v = ok.clone();
            v[field] = bad.clone();
            assert_eq!(err(&schema, &v).0, path, "{field} = {bad}");
        }
        assert!(check(&json!(true), &json!(1)).is_ok());
        assert_eq!(
            err(&json!(false), &json!(1)),
            ("input".into(), "no value is allowed here".into())
        );
    }

    #[test]
    fn remote_references_are_refused_never_fetched() {
        for r in [
            "https://example.com/schema.json",
            "http://127.0.0.1:1/s.json",
            "file:///etc/passwd",
            "other.json#/x",
        ] {
            let schema = json!({"properties": {"a": {"$ref": r}}});
            let why = check_action_schema(&schema).unwrap_err();
            assert!(why.contains(r), "{r}: {why}");
            // Absolute references reach the retriever, which refuses them; a relative
            // one has no base to resolve against.
            if r.contains(':') {
                assert!(why.contains("never fetched"), "{r}: {why}");
            }
            let (at, message) = err(&schema, &json!({"a": 1}));
            assert_eq!(at, "input");
            assert!(
                message.starts_with("the action's input schema is unusable"),
                "{message}"
            );
        }
        // An `$id` base does not make a relative reference local either.
        let based = json!({"$id": "https://example.com/root.json", "$ref": "defs.json"});
        assert!(check_action_schema(&based).is_err());
    }

    #[test]
    fn malicious_schemas_get_errors_not_hangs() {
        // Deep nesting (deeper than serde_json parses by default): refused before the
        // validator recurses into it.
        let mut deep = json!({"type": "string"});
        for _ in 0..200 {
            deep = json!({"properties": {"a": deep}});
        }
        let why = check_action_schema(&deep).unwrap_err();
        assert!(why.contains("nested deeper than 64"), "{why}");
        // A pattern whose compiled form is huge.
        let huge = json!({"properties": {"a": {"pattern": "(a{1000}){1000}"}}});
        assert!(check_action_schema(&huge).is_err());
        assert!(check(&huge, &json!({"a": "aaa"})).is_err());
        // Catastrophic backtracking for a backtracking engine: linear here.
        let evil = json!({"properties": {"a": {"type": "string", "pattern": "^(a+)+$"}}});
        let input = json!({"a": format!("{}!", "a".repeat(100_000))});
        assert_eq!(err(&evil, &input).0, "input.a");
        // Look-around would need backtracking: refused, not run.
        let lookahead = json!({"pattern": "(?=a)a"});
        assert!(check_action_schema(&lookahead).is_err());
        // Reference loops that consume no input: refused, at pack time and when checking.
        for cycle in [
            json!({"type": "object", "$ref": "#"}),
            json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}),
            // The loop is in the second branch.
            json!({"$defs": {"ok": {"type": "object"}, "a": {"anyOf": [{"$ref": "#/$defs/ok"}, {"not": {"$ref": "#/$defs/a"}}]}}, "$ref": "#/$defs/a"}),
        ] {
            let why = check_action_schema(&cycle).unwrap_err();
            assert!(why.contains("leads back to itself"), "{cycle}: {why}");
            let (at, message) = err(&cycle, &json!({"x": 1}));
            assert_eq!(at, "input");
            assert!(message.contains("leads back to itself"), "{message}");
        }
        // A recursive schema that does consume input is fine.
        let tree = json!({
            "$defs": {"node": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
            "$ref": "#/$defs/node",
        });
        assert_eq!(
            check(&tree, &json!({"children": [{"children": []}]})),
            Ok(())
        );
        // Invalid schemas are reported as such.
        assert!(check_action_schema(&json!({"type": "strnig"})).is_err());
        assert!(check_action_schema(&json!({"pattern": "[a-"})).is_err());
        assert!(check_action_schema(&json!({"format": "no-such-format"})).is_err());
        assert!(check_action_schema(&json!({"$ref": "#/$defs/missing"})).is_err());
    }

    #[test]
    fn deep_input_is_refused() {
        let mut deep = json!(1);
        for _ in 0..200 {
            deep = json!([deep]);
        }
        let (at, message) = err(&json!({}), &deep);
        assert_eq!(at, "input");
        assert!(message.contains("nested deeper"), "{message}");
    }
}
