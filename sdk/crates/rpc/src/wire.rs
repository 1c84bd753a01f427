//! JSON-RPC 2.0 request and response objects as Hearth sends and accepts them.
//!
//! Differences from the letter of JSON-RPC 2.0, for StartOS compatibility: `jsonrpc` may
//! be omitted, and a request without `id` is answered anyway (with `"id": null`). A
//! successful mutating call's response carries `"revision"`: the state revision it
//! produced, so a client can wait for that patch on the live stream.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::RpcError;

/// A request id: a string, a number or `null` (absent ids are answered as `null`).
pub type Id = Value;

/// One JSON-RPC request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// `"2.0"`; optional on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonrpc: Option<String>,
    /// Request id, echoed in the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
    /// `noun.verb` method name.
    pub method: String,
    /// Params object; absent means `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

/// `result` or `error` of a response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResponsePayload {
    /// The method's result.
    Result(Value),
    /// The failure.
    Error(RpcError),
}

/// One JSON-RPC response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Always `"2.0"`.
    pub jsonrpc: String,
    /// The request's id (`null` when it had none or could not be read).
    pub id: Id,
    /// Result or error.
    #[serde(flatten)]
    pub payload: ResponsePayload,
    /// Revision produced by a successful mutating call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

impl Response {
    /// A success response.
    pub fn result(id: Id, result: Value, revision: Option<u64>) -> Response {
        Response {
            jsonrpc: crate::JSONRPC_VERSION.to_owned(),
            id,
            payload: ResponsePayload::Result(result),
            revision,
        }
    }

    /// An error response.
    pub fn error(id: Id, error: RpcError) -> Response {
        Response {
            jsonrpc: crate::JSONRPC_VERSION.to_owned(),
            id,
            payload: ResponsePayload::Error(error),
            revision: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use serde_json::json;

    #[test]
    fn startos_style_request_without_id_and_version_parses() {
        let r: Result<Request, _> =
            serde_json::from_value(json!({"method": "server.echo", "params": {"message": "x"}}));
        let r = r.ok();
        assert_eq!(r.as_ref().map(|r| r.method.as_str()), Some("server.echo"));
        assert_eq!(r.and_then(|r| r.id), None);
    }

    #[test]
    fn response_serializes_flat() {
        let ok = serde_json::to_value(Response::result(json!(1), json!("hi"), Some(7)));
        assert_eq!(
            ok.ok(),
            Some(json!({"jsonrpc": "2.0", "id": 1, "result": "hi", "revision": 7}))
        );
        let err = serde_json::to_value(Response::error(
            Value::Null,
            RpcError::new(ErrorCode::MethodNotFound, "no"),
        ))
        .unwrap_or_default();
        assert_eq!(err["id"], Value::Null);
        assert_eq!(err["error"]["code"], -32601);
        assert!(err.get("result").is_none());
        assert!(err.get("revision").is_none());
    }
}
