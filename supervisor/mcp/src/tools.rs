//! `tools/list` and `tools/call`: the RPC method table seen as MCP tools.

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth_rpc::{MethodInfo, RpcError};
use rmcp::model::{CallToolResult, ContentBlock, Tool, ToolAnnotations};
use serde_json::Value;

/// Whether a method is offered as a tool: all but first-boot setup (`setup.*`, which
/// an authenticated agent has no use for) and `auth.login` (an MCP client is already
/// authenticated, and a login only yields a cookie an MCP client cannot keep).
/// `auth.logout` stays: it ends a cookie session and does nothing for API tokens.
pub(crate) fn exposed(name: &str) -> bool {
    !(name.starts_with("setup.") || name == "auth.login")
}

/// The tool list, built once from the method catalogue.
#[derive(Debug)]
pub(crate) struct ToolTable {
    tools: Vec<Tool>,
    by_name: BTreeMap<String, usize>,
}

impl ToolTable {
    pub(crate) fn from_catalogue(methods: &[MethodInfo]) -> ToolTable {
        let mut tools = Vec::new();
        let mut by_name = BTreeMap::new();
        for m in methods.iter().filter(|m| exposed(m.name)) {
            let Some(schema) = m.params_schema.as_object() else {
                tracing::warn!(
                    method = m.name,
                    "params schema is not an object; not offered as a tool"
                );
                continue;
            };
            // Hints from the method table: read-only = changes nothing; destructive =
            // may end or delete something (uninstall, stop, shutdown, token revoke …).
            let annotations = ToolAnnotations::new()
                .read_only(!m.mutates)
                .destructive(m.destructive)
                .open_world(false);
            let tool = Tool::new(m.name, m.description, Arc::new(schema.clone()))
                .with_annotations(annotations);
            by_name.insert(m.name.to_owned(), tools.len());
            tools.push(tool);
        }
        ToolTable { tools, by_name }
    }

    pub(crate) fn tools(&self) -> Vec<Tool> {
        self.tools.clone()
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }
}

/// A successful call: the result as JSON text, and as structured content when it is an
/// object (MCP's `structuredContent` must be an object).
pub(crate) fn success(result: Value) -> CallToolResult {
    let text = serde_json::to_string_pretty(&result).unwrap_or_else(|_| result.to_string());
    let mut out = CallToolResult::success(vec![ContentBlock::text(text)]);
    if result.is_object() {
        out.structured_content = Some(result);
    }
    out
}

/// A failed call as an `isError` result: the message for the model to read, then the
/// whole RPC error (code, kind, retryable, data) as JSON.
pub(crate) fn failure(error: &RpcError) -> CallToolResult {
    let detail = serde_json::to_value(error).unwrap_or(Value::Null);
    CallToolResult::error(vec![
        ContentBlock::text(error.message.clone()),
        ContentBlock::text(detail.to_string()),
    ])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly by design
mod tests {
    use super::*;

    #[test]
    fn every_method_but_setup_and_login_is_a_tool_with_its_schema() {
        let catalogue = hearth_rpc::catalogue();
        let table = ToolTable::from_catalogue(&catalogue);
        for m in &catalogue {
            let offered = table.contains(m.name);
            assert_eq!(offered, exposed(m.name), "{}", m.name);
            if offered {
                let tool = &table.tools[table.by_name[m.name]];
                assert_eq!(tool.description.as_deref(), Some(m.description));
                assert_eq!(Value::Object((*tool.input_schema).clone()), m.params_schema);
                let ro = tool.annotations.as_ref().and_then(|a| a.read_only_hint);
                assert_eq!(ro, Some(!m.mutates), "{}", m.name);
                let d = tool.annotations.as_ref().and_then(|a| a.destructive_hint);
                assert_eq!(d, Some(m.destructive), "{}", m.name);
            }
        }
        let hint = |name: &str| {
            let tool = &table.tools[table.by_name[name]];
            let a = tool.annotations.as_ref().unwrap();
            (a.read_only_hint, a.destructive_hint)
        };
        for name in [
            "package.uninstall",
            "package.stop",
            "server.shutdown",
            "server.restart",
            "auth.token.revoke",
        ] {
            assert_eq!(hint(name), (Some(false), Some(true)), "{name}");
        }
        assert_eq!(hint("server.info"), (Some(true), Some(false)));
        assert_eq!(hint("package.start").1, Some(false));
        assert!(table.contains("server.info"));
        assert!(!table.contains("auth.login"));
        assert!(!table.contains("setup.complete"));
    }

    #[test]
    fn results_and_errors_render_for_a_model() {
        let ok = success(serde_json::json!({"hostname": "hearth"}));
        assert_eq!(ok.is_error, Some(false));
        assert_eq!(
            ok.structured_content,
            Some(serde_json::json!({"hostname": "hearth"}))
        );
        let scalar = success(serde_json::json!("pong"));
        assert!(scalar.structured_content.is_none());

        let err = failure(&RpcError::invalid_params("message", "expected a string"));
        assert_eq!(err.is_error, Some(true));
        let text = serde_json::to_string(&err.content).unwrap();
        assert!(text.contains("invalid params at `message`"), "{text}");
        assert!(text.contains("-32602"), "{text}");
    }
}
