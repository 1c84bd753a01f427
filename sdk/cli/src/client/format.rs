//! Human-readable rendering of RPC results (the default; `--json` prints raw JSON).
//!
//! # Rules
//! * `null` prints nothing (a method that returns nothing succeeded quietly).
//! * Strings print as they are, numbers and booleans as JSON.
//! * An object prints one `key: value` line per member, values aligned; a nested object
//!   or array prints below its key, indented by two spaces. `null` members print `-`.
//! * An array of objects prints as a table: one column per key (in order of first
//!   appearance), a header line, columns padded to the widest cell.
//! * An array of scalars prints one per line; inside an object, comma-separated.
//! * An empty array or object prints `(none)`.
//! * A member whose key ends in `Ms` holding a whole number from the year 2000 on is a
//!   Unix timestamp in milliseconds (the API's convention, e.g. `createdMs`) and prints
//!   as UTC RFC 3339, `2026-11-24T19:29:42Z`; smaller values are durations and stay.
//!
//! Keys stay as the server spells them (`uptimeSecs`), so the output can be matched with
//! `--json` and the method's documentation.
//!
//! # Rejected alternatives
//! Rendering from the result's JSON Schema (titles, units): the schema is optional for
//! `hearth rpc` and the value alone is always there; one renderer for both is simpler.

use serde_json::{Map, Value};

/// Indentation of nested values.
const INDENT: &str = "  ";

/// The human form of `value`, ending with a newline unless it is empty.
pub(crate) fn human(value: &Value) -> String {
    let mut out = String::new();
    render(value, "", &mut out);
    out
}

fn render(value: &Value, indent: &str, out: &mut String) {
    match value {
        Value::Null => {}
        Value::Array(items) if items.is_empty() => line(out, indent, "(none)"),
        Value::Object(map) if map.is_empty() => line(out, indent, "(none)"),
        Value::Array(items) if items.iter().all(Value::is_object) => table(items, indent, out),
        Value::Array(items) if items.iter().all(is_scalar) => {
            for item in items {
                line(out, indent, &scalar(item));
            }
        }
        Value::Array(items) => {
            for item in items {
                line(out, indent, "-");
                render(item, &format!("{indent}{INDENT}"), out);
            }
        }
        Value::Object(map) => object(map, indent, out),
        Value::String(s) => {
            for l in s.lines() {
                line(out, indent, l);
            }
            if s.is_empty() {
                line(out, indent, "");
            }
        }
        other => line(out, indent, &scalar(other)),
    }
}

fn object(map: &Map<String, Value>, indent: &str, out: &mut String) {
    let width = map.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    let nested_indent = format!("{indent}{INDENT}");
    for (key, value) in map {
        match timestamp(key, value).or_else(|| inline(value)) {
            Some(text) => {
                let pad = " ".repeat(width - key.chars().count());
                line(out, indent, &format!("{key}:{pad} {text}"));
            }
            None => {
                line(out, indent, &format!("{key}:"));
                render(value, &nested_indent, out);
            }
        }
    }
}

/// The one-line form of a member value, or `None` if it needs lines of its own.
fn inline(value: &Value) -> Option<String> {
    match value {
        Value::Array(items) if items.is_empty() => Some("(none)".into()),
        Value::Object(map) if map.is_empty() => Some("(none)".into()),
        Value::Array(items) if items.iter().all(is_scalar) => {
            let joined = items.iter().map(scalar).collect::<Vec<_>>().join(", ");
            (joined.chars().count() <= 80).then_some(joined)
        }
        Value::String(s) if s.contains('\n') => None,
        v if is_scalar(v) => Some(scalar(v)),
        _ => None,
    }
}

fn table(rows: &[Value], indent: &str, out: &mut String) {
    let mut columns: Vec<&str> = Vec::new();
    for row in rows {
        if let Value::Object(map) = row {
            for key in map.keys() {
                if !columns.contains(&key.as_str()) {
                    columns.push(key);
                }
            }
        }
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| match row.get(*c) {
                    None => "-".to_owned(),
                    Some(v) => timestamp(c, v).unwrap_or_else(|| cell(v)),
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let header: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
    for row in std::iter::once(&header).chain(&cells) {
        let mut text = String::new();
        for (i, value) in row.iter().enumerate() {
            if i + 1 == row.len() {
                text.push_str(value);
            } else {
                text.push_str(value);
                text.push_str(&" ".repeat(widths[i] - value.chars().count() + 2));
            }
        }
        line(out, indent, text.trim_end());
    }
}

/// A table cell: scalars as in [`scalar`] with newlines escaped, anything else as
/// compact JSON.
fn cell(value: &Value) -> String {
    if is_scalar(value) {
        scalar(value).replace('\n', "\\n")
    } else {
        value.to_string()
    }
}

/// 2000-01-01T00:00:00Z in ms: smaller `…Ms` values are durations, not timestamps.
const EPOCH_2000_MS: u64 = 946_684_800_000;

/// The RFC 3339 form of a `…Ms` member holding a Unix timestamp in milliseconds.
fn timestamp(key: &str, value: &Value) -> Option<String> {
    let ms = value.as_u64()?;
    if !key.ends_with("Ms") || ms < EPOCH_2000_MS {
        return None;
    }
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

/// Days since 1970-01-01 → proleptic Gregorian (year, month, day); Howard Hinnant's
/// `civil_from_days`, for non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn line(out: &mut String, indent: &str, text: &str) {
    out.push_str(indent);
    out.push_str(text);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn null_prints_nothing_and_scalars_print_plainly() {
        assert_eq!(human(&Value::Null), "");
        assert_eq!(human(&json!("hi there")), "hi there\n");
        assert_eq!(human(&json!(42)), "42\n");
        assert_eq!(human(&json!(true)), "true\n");
    }

    #[test]
    fn object_prints_aligned_key_value_lines() {
        let v = json!({"arch": "x86_64", "uptimeSecs": 12, "hostname": null});
        assert_eq!(
            human(&v),
            "arch:       x86_64\nhostname:   -\nuptimeSecs: 12\n"
        );
    }

    #[test]
    fn nested_object_and_lists_are_indented_or_inlined() {
        let v = json!({
            "cpu": {"cores": 2, "usagePercent": 3.5},
            "ids": [1, 2, 3],
            "empty": [],
        });
        assert_eq!(
            human(&v),
            "cpu:\n  cores:        2\n  usagePercent: 3.5\nempty: (none)\nids:   1, 2, 3\n"
        );
    }

    #[test]
    fn array_of_objects_prints_an_aligned_table() {
        let v = json!([
            {"id": "a1", "name": "backup-script", "lastUsedMs": null},
            {"id": "b22", "name": "x", "extra": {"k": 1}},
        ]);
        // Columns in order of first appearance; serde_json maps iterate sorted.
        assert_eq!(
            human(&v),
            "id   lastUsedMs  name           extra\n\
             a1   -           backup-script  -\n\
             b22  -           x              {\"k\":1}\n"
        );
    }

    #[test]
    fn table_cells_stay_on_one_line() {
        let v = json!([{"message": "two\nlines", "n": 1}]);
        assert_eq!(human(&v), "message     n\ntwo\\nlines  1\n");
    }

    #[test]
    fn multi_line_strings_and_empty_values() {
        assert_eq!(human(&json!({"text": "a\nb"})), "text:\n  a\n  b\n");
        assert_eq!(human(&json!([])), "(none)\n");
        assert_eq!(human(&json!({})), "(none)\n");
        assert_eq!(human(&json!(["a", "b"])), "a\nb\n");
    }

    #[test]
    fn millisecond_timestamps_print_as_utc_dates() {
        let v = json!({"createdMs": 1_795_548_582_064_u64, "sampleMs": 101, "lastUsedMs": null});
        assert_eq!(
            human(&v),
            "createdMs:  2026-11-24T19:29:42Z\nlastUsedMs: -\nsampleMs:   101\n"
        );
        let rows = json!([{"timestampMs": 951_782_400_000_u64, "n": 1}]);
        assert_eq!(human(&rows), "n  timestampMs\n1  2000-02-29T00:00:00Z\n");
        // Not an `…Ms` key: the number stays a number.
        assert_eq!(
            human(&json!({"id": 1_795_548_582_064_u64})),
            "id: 1795548582064\n"
        );
    }

    #[test]
    fn calendar_conversion_matches_known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(20_453), (2025, 12, 31));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }

    #[test]
    fn table_inside_object_is_indented() {
        let v = json!({"entries": [{"cursor": 1, "level": "INFO"}], "endCursor": 1});
        assert_eq!(
            human(&v),
            "endCursor: 1\nentries:\n  cursor  level\n  1       INFO\n"
        );
    }
}
