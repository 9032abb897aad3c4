//! MCP routes (ai-mcp-proxy, `passthrough-listener`): the gateway between MCP clients and an MCP
//! server over Streamable HTTP. Every POST body is read whole (up to the plugin's limit) and
//! checked before a byte of it goes upstream — malformed, oversized and unknown messages are
//! answered with JSON-RPC errors here, refused tool calls too — session ids are bound to the
//! consumer that created them, and answers are read on their way back: `tools/list` results
//! filtered to the consumer's tools (JSON, and SSE event by event as each event completes),
//! pinned, and tool-call outcomes counted. Used by inbound, body, forward, outbound and account.

use std::sync::Arc;

use bytes::Bytes;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use serde_json::Value;

use super::authenticate::EarlyBody;
use super::body;
use super::mcp_check::{event, unsupported_version, SESSION_HEADER, VERSION_HEADER};
use super::respond::refuse;
use crate::consumers::Consumer;
use crate::core::secrets::Scrubber;
use crate::mcp::sse::{event_data, with_data, EventSplitter, Piece};
use crate::mcp::{self, RpcError};
use crate::model::Route;
use crate::plugins::mcp_proxy::McpProxy;
use crate::proxy::context::{McpAnswer, McpState, RequestCtx};
use crate::proxy::errors::{Envelope, GatewayError};
use crate::proxy::state::ProcessState;
use crate::store::pins::{ListedTools, Observation, PinMode};
use crate::telemetry::access_log::McpLog;
use crate::upstream::UpstreamFailure;

fn header<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// `request_filter` on an MCP route, after authentication and acl: refuse what the consumer
/// may not send, check the session, and read and check a POST body.
pub async fn begin(
    shared: &ProcessState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    route: &Route,
    plugin: Arc<McpProxy>,
    early: EarlyBody,
) -> Result<bool> {
    let generation = ctx.generation.clone();
    let config = &generation.config;
    let service = config.service_of(route);
    let consumer = ctx.identity.consumer.map(|c| config.consumers.get(c));
    let refused_entirely = plugin.refused_entirely(consumer);
    let mut st = McpState {
        plugin,
        server_label: service.name.clone(),
        binding: format!("{}\0{}", service.id, consumer.map_or("", |c| c.id.as_str())),
        upstream_session: None,
        events: Vec::new(),
        calls: Vec::new(),
        outcomes: Vec::new(),
        first_pages: Vec::new(),
        lists: false,
        answer: McpAnswer::Unread,
    };
    let env = Envelope::JsonRpc;
    let req = session.req_header();
    let method = req.method.clone();
    // The session the consumer presents must be one the gateway gave it.
    let mut refusal: Option<RpcError> = None;
    if refused_entirely {
        event(&mut st, None, "refused");
        refusal = Some(RpcError::new(403, mcp::INVALID_PARAMS, "You cannot consume this MCP server"));
    } else if ![http::Method::POST, http::Method::GET, http::Method::DELETE].contains(&method) {
        event(&mut st, None, "invalid");
        refusal = Some(RpcError::new(
            405,
            mcp::INVALID_REQUEST,
            "Method Not Allowed: the MCP endpoint takes POST, GET and DELETE",
        ));
    } else if let Some(presented) = req.headers.get(SESSION_HEADER) {
        let server_id = presented.to_str().ok().and_then(|v| shared.sessions.unwrap(v, &st.binding));
        match server_id {
            Some(id) => st.upstream_session = Some(id.to_string()),
            None => {
                // Another consumer's session, or one the gateway never issued: as unknown.
                event(&mut st, None, "session_refused");
                refusal = Some(RpcError::new(404, mcp::INVALID_REQUEST, "Session not found"));
            }
        }
    }
    if refusal.is_none() && method != http::Method::POST {
        if let Some(v) = header(req, VERSION_HEADER).filter(|v| !mcp::VERSIONS.contains(v)) {
            event(&mut st, None, "invalid");
            refusal = Some(unsupported_version(v));
        } else if body::declared_length(req).is_some_and(|n| n > 0)
            || req.headers.contains_key(http::header::TRANSFER_ENCODING)
        {
            event(&mut st, None, "invalid");
            refusal = Some(RpcError::new(400, mcp::INVALID_REQUEST, "a GET or DELETE to the MCP endpoint has no body"));
        }
    }
    if refusal.is_none()
        && method == http::Method::POST
        && !mcp::is_json_content_type(req.headers.get(http::header::CONTENT_TYPE).map(|v| v.as_bytes()))
    {
        event(&mut st, None, "invalid");
        refusal =
            Some(RpcError::new(415, mcp::INVALID_REQUEST, "Unsupported Media Type: the body must be application/json"));
    }
    ctx.mcp = Some(Box::new(st));
    if let Some(r) = refusal {
        return refuse(session, ctx, r.into(), env).await;
    }
    if method != http::Method::POST {
        return Ok(false);
    }
    if let Err(e) = body::read_and_check(shared, session, ctx, early.read.then_some(early.body)).await {
        return refuse(session, ctx, e, env).await;
    }
    Ok(false)
}

/// `upstream_request_filter`: the server gets its own session id back.
pub fn upstream_request(ctx: &RequestCtx, req: &mut RequestHeader) -> Result<()> {
    let Some(st) = ctx.mcp.as_deref() else { return Ok(()) };
    while req.remove_header(SESSION_HEADER).is_some() {}
    if let Some(id) = &st.upstream_session {
        req.insert_header(SESSION_HEADER, id.as_str())?;
    }
    Ok(())
}

/// `upstream_response_filter`: bind a new session id to the consumer, and set up reading the
/// answer (every SSE answer is read event by event: a resumed stream may replay a tool list).
pub fn upstream_response(shared: &ProcessState, resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
    let Some(st) = ctx.mcp.as_deref_mut() else { return Ok(()) };
    if let Some(id) = resp.headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string) {
        resp.insert_header(SESSION_HEADER, shared.sessions.wrap(&id, &st.binding))?;
    }
    let ct = resp.headers.get(http::header::CONTENT_TYPE).map(|v| v.as_bytes().to_ascii_lowercase());
    let sse = ct.as_deref().is_some_and(|c| c.starts_with(b"text/event-stream"));
    // The credentials request-transformer sent the server never reach the client, even echoed.
    let generation = ctx.generation.clone();
    let secrets = ctx.routing.route.and_then(|r| {
        let t = generation.config.route(r).policies.request_transformer.for_consumer(ctx.identity.consumer);
        t.map(|t| t.secrets.clone())
    });
    ctx.response.scrubber = Scrubber::new([secrets, None]);
    let must_read = sse || st.lists || ctx.response.scrubber.is_some();
    let encoded = resp.headers.get_all(http::header::CONTENT_ENCODING).iter().any(|v| {
        let v = v.as_bytes().trim_ascii();
        !v.is_empty() && !v.eq_ignore_ascii_case(b"identity")
    });
    if encoded && must_read {
        // Compressed despite `Accept-Encoding: identity`: a tool list or a credential in it
        // could not be read, so it does not pass.
        let failure = UpstreamFailure::CompressedResponse;
        ctx.outcome.error = Some(GatewayError::Upstream(failure));
        return Err(Error::explain(ErrorType::HTTPStatus(failure.status()), failure.message()).into_up());
    }
    let limit = shared.settings.usage_scan_limit;
    st.answer = if sse {
        resp.remove_header(&http::header::CONTENT_LENGTH);
        McpAnswer::Events(EventSplitter::new(limit))
    } else if st.lists {
        resp.remove_header(&http::header::CONTENT_LENGTH);
        McpAnswer::Held { chunks: Vec::new(), len: 0, overflowed: false }
    } else if !st.calls.is_empty() {
        McpAnswer::Watched { chunks: Vec::new(), len: 0, overflowed: false }
    } else {
        McpAnswer::Unread
    };
    Ok(())
}

/// `response_body_filter` (synchronous, per chunk): complete SSE events go on at once, each
/// read (and a tool list rewritten); a held JSON answer goes on filtered at its end.
pub fn response_chunk(shared: &ProcessState, body: &mut Option<Bytes>, end_of_stream: bool, ctx: &mut RequestCtx) {
    let generation = ctx.generation.clone();
    let consumer = ctx.identity.consumer.map(|c| generation.config.consumers.get(c));
    let Some(st) = ctx.mcp.as_deref_mut() else { return };
    let limit = shared.settings.usage_scan_limit;
    let mut answer = std::mem::take(&mut st.answer);
    match &mut answer {
        McpAnswer::Unread => {}
        McpAnswer::Events(splitter) => {
            let mut pieces = Vec::new();
            if let Some(b) = body.take() {
                splitter.feed(&b, &mut pieces);
            }
            if end_of_stream {
                pieces.extend(splitter.finish());
            }
            let mut out: Vec<Bytes> = Vec::with_capacity(pieces.len());
            for p in pieces {
                match p {
                    Piece::Event(e) => out.push(read_event(shared, st, consumer, e)),
                    Piece::Oversized => {
                        log::warn!("MCP server '{}' sent an event over usage_scan_limit; dropped", st.server_label);
                        event(st, None, "invalid");
                    }
                }
            }
            // One event (the usual case) goes on as the bytes it is, without a copy.
            *body = Some(match out.len() {
                0 => Bytes::new(),
                1 => out.pop().unwrap_or_default(),
                _ => out.concat().into(),
            });
        }
        McpAnswer::Held { chunks, len, overflowed } | McpAnswer::Watched { chunks, len, overflowed } => {
            if let Some(b) = body.as_ref() {
                if !*overflowed {
                    if *len + b.len() > limit {
                        *overflowed = true;
                        chunks.clear();
                    } else {
                        *len += b.len();
                        chunks.push(b.clone());
                    }
                }
            }
            if !end_of_stream {
                if st.lists {
                    *body = Some(Bytes::new());
                }
            } else {
                let whole = Bytes::from(chunks.concat());
                let out = if *overflowed {
                    if st.lists {
                        RpcError::new(502, mcp::INTERNAL_ERROR, "The MCP server's answer is too large to be checked")
                            .body()
                    } else {
                        whole
                    }
                } else {
                    read_json(shared, st, consumer, whole)
                };
                if st.lists {
                    *body = Some(out);
                }
            }
        }
    }
    st.answer = answer;
}

/// One SSE event: passed on as it is unless it carries a tool list (or a tool call's result,
/// which is read for its outcome).
fn read_event(shared: &ProcessState, st: &mut McpState, consumer: Option<&Consumer>, e: Bytes) -> Bytes {
    let Some(data) = event_data(&e) else { return e };
    if !(data.contains("\"tools\"") || (!st.calls.is_empty() && data.contains("\"id\""))) {
        return e;
    }
    let Ok(mut v) = serde_json::from_str::<Value>(&data) else { return e };
    if read_messages(shared, st, consumer, &mut v) {
        with_data(&e, &v.to_string())
    } else {
        e
    }
}

/// A JSON answer (one message or a batch of them), filtered.
fn read_json(shared: &ProcessState, st: &mut McpState, consumer: Option<&Consumer>, whole: Bytes) -> Bytes {
    let Ok(mut v) = serde_json::from_slice::<Value>(&whole) else { return whole };
    if read_messages(shared, st, consumer, &mut v) {
        Bytes::from(v.to_string())
    } else {
        whole
    }
}

/// Read each JSON-RPC message of `v` (an object or an array); true when one was changed.
fn read_messages(shared: &ProcessState, st: &mut McpState, consumer: Option<&Consumer>, v: &mut Value) -> bool {
    match v {
        Value::Array(items) => {
            let mut changed = false;
            for item in items {
                changed |= read_message(shared, st, consumer, item);
            }
            changed
        }
        other => read_message(shared, st, consumer, other),
    }
}

fn read_message(shared: &ProcessState, st: &mut McpState, consumer: Option<&Consumer>, msg: &mut Value) -> bool {
    let id = msg.get("id").cloned();
    if let Some(id) = &id {
        if st.calls.iter().any(|(c, _)| c == id) && (msg.get("result").is_some() || msg.get("error").is_some()) {
            let ok = msg.get("error").is_none() && msg.pointer("/result/isError") != Some(&Value::Bool(true));
            st.outcomes.push((id.clone(), ok));
        }
    }
    let plugin = st.plugin.clone();
    let Some(f) = mcp::tools::filter_result(msg, &|name| plugin.may_use(name, consumer)) else { return false };
    for name in &f.listed {
        shared.metrics.bounded_mcp_labels(&st.server_label, name);
    }
    if f.removed > 0 {
        event(st, None, "narrowed");
    }
    let first_page = id.as_ref().is_some_and(|id| st.first_pages.contains(id));
    if first_page && plugin.pin != PinMode::Off {
        // The server's whole list, before it is narrowed to what this consumer may use.
        let listed = ListedTools { digest: &f.digest, tools: &f.tool_digests, full: true };
        let observed = shared.pins.observe(&st.server_label, listed, plugin.pinned_digest.as_deref(), plugin.pin);
        if let Observation::Changed { accepted, observed } = observed {
            let action = if plugin.pin == PinMode::Block { "blocked" } else { "warned" };
            shared.metrics.mcp_tool_list_changes.with_label_values(&[&st.server_label, action]).inc();
            log::warn!("MCP server '{}' changed its tool list ({accepted} -> {observed}); {action}", st.server_label);
            if plugin.pin == PinMode::Block {
                event(st, None, "blocked");
                let label = &st.server_label;
                *msg = RpcError::new(
                    200,
                    mcp::INTERNAL_ERROR,
                    format!(
                        "The tool list of MCP server '{label}' changed; it is blocked until an operator accepts it"
                    ),
                )
                .with_id(id)
                .to_value();
            }
        }
    }
    true
}

/// `logging`: count the calls (outcome, latency) and decisions.
pub fn account(shared: &ProcessState, ctx: &RequestCtx, consumer: &str, status: u16, total: std::time::Duration) {
    let Some(st) = ctx.mcp.as_deref() else { return };
    let label = st.server_label.as_str();
    let bounded = |tool: &str| {
        if st.plugin.configured(tool) || shared.metrics.mcp_tool_known(label, tool) {
            tool.to_string()
        } else {
            "other".to_string()
        }
    };
    for (id, tool) in &st.calls {
        let ok = st.outcomes.iter().find(|(o, _)| o == id).map(|(_, ok)| *ok);
        let outcome = match ok {
            Some(true) if (200..300).contains(&status) => "success",
            _ => "error",
        };
        shared.metrics.mcp_proxied_call(consumer, label, &bounded(tool), outcome, Some(total));
    }
    for e in &st.events {
        if e.decision == "refused" && e.method.as_deref() == Some("tools/call") {
            shared.metrics.mcp_proxied_call(consumer, label, &bounded(e.tool.as_deref().unwrap_or("")), "denied", None);
        }
        let counted = e.decision != "allowed" || e.method.as_deref().is_some_and(|m| m.starts_with("tools/"));
        if counted {
            shared.metrics.mcp_guard_decisions.with_label_values(&[consumer, label, e.decision]).inc();
        }
    }
}

/// The access log's MCP entries: method, tool and decision of each message — never arguments.
pub fn log_entries(ctx: &RequestCtx) -> impl Iterator<Item = McpLog<'_>> {
    ctx.mcp.iter().flat_map(|st| {
        st.events.iter().map(|e| McpLog {
            server_label: &st.server_label,
            method: e.method.as_deref(),
            tool: e.tool.as_deref(),
            event: e.decision,
        })
    })
}
