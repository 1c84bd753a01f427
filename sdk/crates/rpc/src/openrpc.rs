//! `rpc.discover`: the catalogue rendered as an OpenRPC 1.3 document.
//!
//! Params use OpenRPC's `by-name` structure: each property of a method's params schema
//! becomes one content descriptor. Hearth-specific metadata travels in extension fields
//! (`x-hearth-auth`, `x-hearth-mutates`, `x-hearth-destructive`, `x-hearth-read-scope`) and the error codes in `x-hearth-errors`.

use serde_json::{Map, Value, json};

use crate::{ErrorCode, MethodInfo, catalogue};

/// The OpenRPC document for every method of the catalogue.
pub fn openrpc_document(server_version: &str) -> Value {
    let methods: Vec<Value> = catalogue().iter().map(method_object).collect();
    let errors: Vec<Value> = ErrorCode::ALL
        .iter()
        .map(|c| json!({"code": c.code(), "kind": c.kind(), "retryable": c.retryable()}))
        .collect();
    json!({
        "openrpc": "1.3.2",
        "info": {
            "title": "Hearth",
            "version": server_version,
            "description": "JSON-RPC 2.0 API of hearthd. POST requests to /rpc/v1; \
                live state at /ws/db (WebSocket).",
        },
        "methods": methods,
        "x-hearth-errors": errors,
    })
}

fn method_object(m: &MethodInfo) -> Value {
    let schema = &m.params_schema;
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let params: Vec<Value> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(name, prop)| {
                    let mut prop = prop.clone();
                    // Inline references need the definitions next to them.
                    if let (Some(defs), Some(obj)) = (schema.get("$defs"), prop.as_object_mut()) {
                        obj.insert("$defs".into(), defs.clone());
                    }
                    json!({
                        "name": name,
                        "required": required.contains(&name.as_str()),
                        "schema": prop,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let mut obj = Map::new();
    obj.insert("name".into(), Value::from(m.name));
    obj.insert("description".into(), Value::from(m.description));
    obj.insert("paramStructure".into(), Value::from("by-name"));
    obj.insert("params".into(), Value::Array(params));
    obj.insert(
        "result".into(),
        json!({"name": "result", "schema": m.result_schema}),
    );
    obj.insert("x-hearth-auth".into(), Value::from(m.auth.as_str()));
    obj.insert("x-hearth-mutates".into(), Value::from(m.mutates));
    obj.insert("x-hearth-destructive".into(), Value::from(m.destructive));
    obj.insert("x-hearth-read-scope".into(), Value::from(m.read_scope()));
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_every_method_with_params() {
        let doc = openrpc_document("0.1.0");
        let methods = doc["methods"].as_array().cloned().unwrap_or_default();
        assert_eq!(methods.len(), catalogue().len());
        let echo = methods
            .iter()
            .find(|m| m["name"] == "server.echo")
            .cloned()
            .unwrap_or_default();
        assert_eq!(echo["params"][0]["name"], "message");
        assert_eq!(echo["params"][0]["required"], true);
        assert_eq!(echo["params"][0]["schema"]["type"], "string");
        assert_eq!(echo["x-hearth-auth"], "public");
        let put = methods
            .iter()
            .find(|m| m["name"] == "db.put.ui")
            .cloned()
            .unwrap_or_default();
        assert_eq!(put["x-hearth-mutates"], true);
        assert_eq!(doc["info"]["version"], "0.1.0");
    }
}
