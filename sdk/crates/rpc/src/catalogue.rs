//! The [`Method`] trait and the runtime view of the table, [`MethodInfo`].

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who may call a method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Auth {
    /// Anyone who can reach the server, logged in or not (login, setup, echo, discover).
    Public,
    /// A logged-in session, an API token or the local CLI cookie.
    Authenticated,
}

impl Auth {
    /// The wire name (`"public"` / `"authenticated"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Auth::Public => "public",
            Auth::Authenticated => "authenticated",
        }
    }
}

/// One RPC method: a zero-sized marker type carrying the method's contract.
pub trait Method {
    /// `noun.verb` name, e.g. `server.echo`.
    const NAME: &'static str;
    /// What the method does, written for humans and LLM agents alike.
    const DESCRIPTION: &'static str;
    /// Who may call it.
    const AUTH: Auth;
    /// Whether a successful call changes durable state (and so yields a revision).
    const MUTATES: bool;
    /// Whether a call may destroy or end something the user cannot get back by
    /// calling another method (data, a service's uptime, a session, a token, the
    /// machine's uptime). MCP marks such tools `destructiveHint: true`.
    const DESTRUCTIVE: bool = false;
    /// Whether the result may reveal secrets (log lines of services and of hearthd
    /// can contain passwords or credentials), so a `read`-scoped API token may not call it.
    const READS_SECRETS: bool = false;
    /// Parameters (a JSON object on the wire).
    type Params: DeserializeOwned + Serialize + JsonSchema + Send + 'static;
    /// Result.
    type Result: Serialize + DeserializeOwned + JsonSchema + Send + 'static;
}

/// The runtime description of one method, as listed by [`catalogue`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MethodInfo {
    /// `noun.verb` name.
    pub name: &'static str,
    /// Description for humans and LLMs.
    pub description: &'static str,
    /// Who may call it.
    pub auth: Auth,
    /// Whether it changes durable state.
    pub mutates: bool,
    /// Whether it may destroy or end something ([`Method::DESTRUCTIVE`]).
    pub destructive: bool,
    /// Whether its result may reveal secrets ([`Method::READS_SECRETS`]).
    pub reads_secrets: bool,
    /// JSON Schema of the params object.
    pub params_schema: Value,
    /// JSON Schema of the result.
    pub result_schema: Value,
}

impl MethodInfo {
    /// The description of method `M`, schemas included.
    pub fn of<M: Method>() -> MethodInfo {
        MethodInfo {
            name: M::NAME,
            description: M::DESCRIPTION,
            auth: M::AUTH,
            mutates: M::MUTATES,
            destructive: M::DESTRUCTIVE,
            reads_secrets: M::READS_SECRETS,
            params_schema: schemars::schema_for!(M::Params).to_value(),
            result_schema: schemars::schema_for!(M::Result).to_value(),
        }
    }
}

impl MethodInfo {
    /// Whether a `read`-scoped API token may call it: it changes nothing and reveals
    /// no secrets.
    pub fn read_scope(&self) -> bool {
        read_scope(self.mutates, self.reads_secrets)
    }
}

/// Whether a method with these properties is open to `read`-scoped API tokens.
pub const fn read_scope(mutates: bool, reads_secrets: bool) -> bool {
    !mutates && !reads_secrets
}

/// Every method, in declaration order (grouped by noun).
pub fn catalogue() -> Vec<MethodInfo> {
    crate::methods::all()
}

/// The description of one method by name.
pub fn method_info(name: &str) -> Option<MethodInfo> {
    catalogue().into_iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn valid_name(name: &str) -> bool {
        let parts: Vec<&str> = name.split('.').collect();
        parts.len() >= 2
            && parts.iter().all(|p| {
                !p.is_empty()
                    && !p.starts_with('-')
                    && !p.ends_with('-')
                    && p.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            })
    }

    #[test]
    fn names_are_unique_and_noun_verb() {
        let cat = catalogue();
        let names: BTreeSet<&str> = cat.iter().map(|m| m.name).collect();
        assert_eq!(names.len(), cat.len(), "duplicate method names");
        for m in &cat {
            assert!(valid_name(m.name), "bad method name {}", m.name);
        }
    }

    #[test]
    fn every_method_is_described_and_params_are_objects() {
        for m in catalogue() {
            assert!(
                m.description.len() >= 30,
                "{}: description too short for an LLM to use",
                m.name
            );
            assert_eq!(
                m.params_schema.get("type"),
                Some(&Value::from("object")),
                "{}: params must be a JSON object",
                m.name
            );
        }
    }

    #[test]
    fn session_and_setup_entry_points_are_public_the_rest_not() {
        let public: BTreeSet<&str> = catalogue()
            .into_iter()
            .filter(|m| m.auth == Auth::Public)
            .map(|m| m.name)
            .collect();
        let expected: BTreeSet<&str> = [
            "auth.login",
            "rpc.discover",
            "server.echo",
            "setup.complete",
            "setup.status",
        ]
        .into_iter()
        .collect();
        assert_eq!(public, expected);
    }

    #[test]
    fn destructive_methods_mutate_and_read_scope_is_what_it_says() {
        let cat = catalogue();
        for m in &cat {
            assert!(
                !m.destructive || m.mutates,
                "{} destroys without mutating",
                m.name
            );
        }
        let destructive: BTreeSet<&str> = cat
            .iter()
            .filter(|m| m.destructive)
            .map(|m| m.name)
            .collect();
        for name in [
            "server.shutdown",
            "server.restart",
            "package.uninstall",
            "package.stop",
            "auth.token.revoke",
            "auth.password.change",
        ] {
            assert!(destructive.contains(name), "{name} must be destructive");
        }
        let read: BTreeSet<&str> = cat
            .iter()
            .filter(|m| m.read_scope())
            .map(|m| m.name)
            .collect();
        assert!(read.contains("server.info") && read.contains("package.list"));
        for name in [
            "server.logs",
            "package.logs",
            "auth.token.create",
            "db.put.ui",
        ] {
            assert!(
                !read.contains(name),
                "{name} must not be open to read tokens"
            );
        }
    }

    #[test]
    fn token_scope_is_a_required_string_enum() {
        let m = method_info("auth.token.create").unwrap();
        let schema = &m.params_schema;
        let required = schema["required"].as_array().unwrap();
        assert!(required.contains(&Value::from("scope")), "{schema}");
        let scope = &schema["properties"]["scope"];
        let resolved = match scope.get("$ref").and_then(Value::as_str) {
            Some(r) => schema
                .pointer(r.trim_start_matches('#'))
                .unwrap_or(&Value::Null),
            None => scope,
        };
        assert_eq!(resolved["type"], "string", "{schema}");
        assert_eq!(
            resolved["enum"],
            serde_json::json!(["read", "admin"]),
            "{schema}"
        );
    }

    #[test]
    fn method_info_finds_by_name() {
        let m = method_info("db.put.ui").expect("db.put.ui is declared");
        assert!(m.mutates);
        assert_eq!(m.auth, Auth::Authenticated);
        assert!(method_info("no.such").is_none());
    }
}
