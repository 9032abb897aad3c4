//! The check of an MCP POST body (ai-mcp-proxy): every JSON-RPC message parsed and judged —
//! unknown methods, unsupported protocol versions, tool ACLs, a blocked tool list — before a
//! byte of it goes upstream. Used by the body phase (bodies read early or held back) and by
//! `mcp` (which records what the answer must be read for).

use bytes::Bytes;
use pingora_http::RequestHeader;
use serde_json::Value;

use crate::consumers::Consumer;
use crate::mcp::{self, Kind, Message, RpcError};
use crate::proxy::context::{McpEvent, McpState, RequestCtx};
use crate::proxy::errors::GatewayError;
use crate::proxy::state::ProcessState;
use crate::store::pins::PinMode;

pub const SESSION_HEADER: &str = "mcp-session-id";
pub const VERSION_HEADER: &str = "mcp-protocol-version";
/// Decisions logged per request at most (a batch can hold many messages).
const MAX_LOGGED: usize = 32;

fn header<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

pub fn event(st: &mut McpState, m: Option<&Message>, decision: &'static str) {
    if st.events.len() < MAX_LOGGED {
        st.events.push(McpEvent {
            method: m.and_then(|m| m.method.clone()),
            tool: m.and_then(|m| m.tool.clone()),
            decision,
        });
    }
}

pub fn unsupported_version(v: &str) -> RpcError {
    RpcError::new(
        400,
        mcp::INVALID_REQUEST,
        format!("Bad Request: Unsupported protocol version: {v}. Supported versions: {}", mcp::VERSIONS.join(", ")),
    )
}

/// Check a complete POST body (after request-transformer's body operations): every message
/// parsed and judged; the body goes upstream unchanged only if all pass.
pub fn check_body(
    shared: &ProcessState,
    ctx: &mut RequestCtx,
    client: &RequestHeader,
    body: &Bytes,
) -> std::result::Result<Bytes, GatewayError> {
    let generation = ctx.generation.clone();
    let consumer = ctx.identity.consumer.map(|c| generation.config.consumers.get(c));
    let Some(st) = ctx.mcp.as_deref_mut() else { return Ok(body.clone()) };
    let version = header(client, VERSION_HEADER);
    let batches = version.is_none_or(|v| v == mcp::DEFAULT_VERSION);
    let post = match mcp::parse_post(body, batches) {
        Ok(p) => p,
        Err(e) => {
            event(st, None, "invalid");
            return Err(e.into());
        }
    };
    let blocked = st.plugin.pin == PinMode::Block && shared.pins.blocked(&st.server_label).is_some();
    let mut refusals: Vec<(usize, RpcError)> = Vec::new();
    for (i, m) in post.messages.iter().enumerate() {
        if let Some(r) = judge(st, consumer, m, version, blocked) {
            refusals.push((i, r));
        }
    }
    let Some((_, first)) = refusals.first() else { return Ok(body.clone()) };
    // Nothing of a refused body is forwarded.
    st.calls.clear();
    st.lists = false;
    if !post.batch {
        return Err(first.clone().into());
    }
    let (status, code) = (first.status, first.code);
    let answers: Vec<Value> = post
        .messages
        .iter()
        .enumerate()
        .filter_map(|(i, m)| match refusals.iter().find(|(at, _)| *at == i) {
            Some((_, r)) => Some(r.to_value()),
            None if m.kind == Kind::Request => Some(
                RpcError::new(status, mcp::INVALID_REQUEST, "Not forwarded: another message of the batch was refused")
                    .with_id(m.id.clone())
                    .to_value(),
            ),
            None => None,
        })
        .collect();
    let body = Bytes::from(Value::Array(answers).to_string());
    Err(GatewayError::Mcp { status, code, body })
}

/// The gateway's verdict on one message: `None` to forward it.
fn judge(
    st: &mut McpState,
    consumer: Option<&Consumer>,
    m: &Message,
    version: Option<&str>,
    blocked: bool,
) -> Option<RpcError> {
    let method = m.method.as_deref()?;
    if !mcp::known_method(method, m.kind == Kind::Notification) {
        event(st, Some(m), "unknown_method");
        // A request is answered (so a client can fall back, as the 2026 `server/discover`
        // probe does); a notification that cannot be accepted gets 400.
        let status = if m.kind == Kind::Request { 200 } else { 400 };
        return Some(
            RpcError::new(status, mcp::METHOD_NOT_FOUND, format!("Method not found: {method}")).with_id(m.id.clone()),
        );
    }
    if let Some(v) = version.filter(|v| !mcp::VERSIONS.contains(v)) {
        event(st, Some(m), "invalid");
        return Some(unsupported_version(v).with_id(m.id.clone()));
    }
    let denied = st.plugin.denied_status;
    match method {
        "tools/call" | "tools/list" if blocked => {
            event(st, Some(m), "blocked");
            let label = &st.server_label;
            Some(
                RpcError::new(
                    denied,
                    mcp::INTERNAL_ERROR,
                    format!(
                        "The tool list of MCP server '{label}' changed; it is blocked until an operator accepts it"
                    ),
                )
                .with_id(m.id.clone()),
            )
        }
        "tools/call" => {
            let tool = m.tool.as_deref().unwrap_or_default();
            if st.plugin.may_use(tool, consumer) {
                event(st, Some(m), "allowed");
                if let Some(id) = &m.id {
                    st.calls.push((id.clone(), tool.to_string()));
                }
                None
            } else {
                event(st, Some(m), "refused");
                Some(
                    RpcError::new(
                        denied,
                        mcp::INVALID_PARAMS,
                        format!("Tool '{tool}' is not allowed for this consumer"),
                    )
                    .with_id(m.id.clone()),
                )
            }
        }
        "tools/list" => {
            st.lists = true;
            if !m.cursor {
                st.first_pages.extend(m.id.clone());
            }
            event(st, Some(m), "allowed");
            None
        }
        _ => {
            event(st, Some(m), "allowed");
            None
        }
    }
}
