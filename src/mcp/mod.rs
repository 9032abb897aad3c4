//! The Model Context Protocol as the gateway sees it on the wire (Streamable HTTP, revisions
//! 2025-03-26, 2025-06-18 and 2025-11-25): what a client may POST — JSON-RPC requests,
//! notifications and responses, batches only in 2025-03-26 — parsed whole and classified here
//! ([`parse_post`]), the JSON-RPC error answers the gateway gives ([`RpcError`]), tool lists
//! ([`tools`]), SSE answers split into events ([`sse`]) and session ids bound to a consumer
//! ([`session`]). It knows nothing of consumers, plugins or the proxy.

pub mod session;
pub mod sse;
pub mod tools;

use bytes::Bytes;
use serde_json::Value;

/// The protocol revisions the gateway speaks.
pub const VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];
/// The revision a request without `MCP-Protocol-Version` is read as (the spec's rule).
pub const DEFAULT_VERSION: &str = "2025-03-26";

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;

/// Client-to-server requests of the 2025 revisions (tasks are 2025-11-25's).
const REQUESTS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/result",
    "tasks/list",
    "tasks/cancel",
];

/// Client-to-server notifications of the 2025 revisions.
const NOTIFICATIONS: &[&str] = &[
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "notifications/tasks/status",
];

/// Whether `method` is a request (or, with `notification`, a notification) a 2025 client sends.
pub fn known_method(method: &str, notification: bool) -> bool {
    if notification {
        NOTIFICATIONS.contains(&method)
    } else {
        REQUESTS.contains(&method)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    /// The client answering a request of the server's (sampling, elicitation, roots).
    Response,
}

/// One JSON-RPC message of a POST body, as far as the gateway reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: Kind,
    /// The id as written (a string or an integer); none for notifications.
    pub id: Option<Value>,
    pub method: Option<String>,
    /// `params.name` of a `tools/call`.
    pub tool: Option<String>,
    /// A `tools/list` asking for a later page (`params.cursor`).
    pub cursor: bool,
}

/// A POST body: one message, or a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    pub messages: Vec<Message>,
    pub batch: bool,
}

impl Post {
    pub fn requests(&self) -> impl Iterator<Item = &Message> {
        self.messages.iter().filter(|m| m.kind == Kind::Request)
    }
}

/// A JSON-RPC error the gateway answers with, and the HTTP status it goes with.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub status: u16,
    pub code: i64,
    pub message: String,
    /// The request's id when it could be read (else `null`, as JSON-RPC says).
    pub id: Option<Value>,
}

impl RpcError {
    pub fn new(status: u16, code: i64, message: impl Into<String>) -> RpcError {
        RpcError { status, code, message: message.into(), id: None }
    }

    pub fn with_id(mut self, id: Option<Value>) -> RpcError {
        self.id = id;
        self
    }

    pub fn to_value(&self) -> Value {
        serde_json::json!({
            "jsonrpc": "2.0",
            "id": self.id.clone().unwrap_or(Value::Null),
            "error": {"code": self.code, "message": self.message},
        })
    }

    pub fn body(&self) -> Bytes {
        Bytes::from(self.to_value().to_string())
    }
}

/// Whether a JSON-RPC id is one MCP allows: a string or an integer (never null).
fn valid_id(id: &Value) -> bool {
    id.is_string() || id.is_i64() || id.is_u64()
}

/// Read one message; `Err` names what is wrong with it.
fn message(v: &Value) -> Result<Message, &'static str> {
    let Value::Object(o) = v else { return Err("a JSON-RPC message must be an object") };
    if o.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err("\"jsonrpc\" must be \"2.0\"");
    }
    let id = o.get("id");
    if id.is_some_and(|id| !valid_id(id)) {
        return Err("\"id\" must be a string or an integer");
    }
    match (o.get("method"), o.contains_key("result"), o.contains_key("error")) {
        (Some(m), false, false) => {
            let method = m.as_str().ok_or("\"method\" must be a string")?.to_string();
            if let Some(p) = o.get("params") {
                if !p.is_object() && !p.is_array() {
                    return Err("\"params\" must be an object");
                }
            }
            let tool = if method == "tools/call" && id.is_some() {
                let name = o.get("params").and_then(|p| p.get("name")).and_then(Value::as_str);
                Some(name.ok_or("tools/call needs params.name, a string")?.to_string())
            } else {
                None
            };
            let cursor =
                method == "tools/list" && o.get("params").and_then(|p| p.get("cursor")).is_some_and(|c| !c.is_null());
            let kind = if id.is_some() { Kind::Request } else { Kind::Notification };
            Ok(Message { kind, id: id.cloned(), method: Some(method), tool, cursor })
        }
        (None, true, false) | (None, false, true) => {
            if id.is_none() {
                return Err("a JSON-RPC response needs an \"id\"");
            }
            Ok(Message { kind: Kind::Response, id: id.cloned(), method: None, tool: None, cursor: false })
        }
        _ => Err("not a JSON-RPC request, notification or response"),
    }
}

/// Parse a POST body whole: a JSON-RPC message, or (when `batches` is allowed: 2025-03-26) a
/// non-empty array of them. Anything else is an [`RpcError`] (400, or 415 for a body that is
/// not JSON by its Content-Type).
pub fn parse_post(body: &[u8], batches: bool) -> Result<Post, RpcError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| RpcError::new(400, PARSE_ERROR, "Parse error: the body is not a JSON-RPC message"))?;
    match value {
        Value::Array(items) => {
            if !batches {
                return Err(RpcError::new(
                    400,
                    INVALID_REQUEST,
                    "Invalid Request: JSON-RPC batches are not supported in this protocol version",
                ));
            }
            if items.is_empty() {
                return Err(RpcError::new(400, INVALID_REQUEST, "Invalid Request: the batch is empty"));
            }
            let mut messages = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let m = message(item).map_err(|e| {
                    RpcError::new(400, INVALID_REQUEST, format!("Invalid Request: batch element {i}: {e}"))
                        .with_id(item.get("id").filter(|id| valid_id(id)).cloned())
                })?;
                messages.push(m);
            }
            let responses = messages.iter().filter(|m| m.kind == Kind::Response).count();
            if responses != 0 && responses != messages.len() {
                return Err(RpcError::new(
                    400,
                    INVALID_REQUEST,
                    "Invalid Request: a batch holds either requests and notifications, or responses",
                ));
            }
            Ok(Post { messages, batch: true })
        }
        v => {
            let m = message(&v).map_err(|e| {
                RpcError::new(400, INVALID_REQUEST, format!("Invalid Request: {e}"))
                    .with_id(v.get("id").filter(|id| valid_id(id)).cloned())
            })?;
            Ok(Post { messages: vec![m], batch: false })
        }
    }
}

/// Whether a content type is JSON (`application/json`, `+json`); absent counts as JSON.
pub fn is_json_content_type(ct: Option<&[u8]>) -> bool {
    let Some(ct) = ct else { return true };
    let essence = ct.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
    essence.eq_ignore_ascii_case(b"application/json") || essence.to_ascii_lowercase().ends_with(b"+json")
}

#[cfg(test)]
mod tests;
