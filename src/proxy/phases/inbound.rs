//! `request_filter`: route the request, enforce size limits, authenticate and authorize the
//! consumer, and for LLM routes choose a target and check the body before anything goes upstream.

use pingora_core::Result;
use pingora_http::RequestHeader;
use pingora_proxy::Session;

use super::authenticate::{self, EarlyBody};
use super::body;
use super::headers;
use super::limits;
use super::respond::{self, refuse};
use super::surface::{self, Decision};
use crate::ai::surface::BodyRule;
use crate::core::path::normalize_path;
use crate::core::split_host_port;
use crate::plugins::mcp_guard::GuardRecord;
use crate::plugins::request_transformer::BodyEncoding;
use crate::proxy::context::{AiState, RequestCtx};
use crate::proxy::errors::{Envelope, GatewayError};
use crate::proxy::state::ProcessState;
use crate::upstream::balancer::Tried;
use crate::upstream::UpstreamFailure;

pub async fn handle(shared: &ProcessState, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let generation = ctx.generation.clone();
    let config = &generation.config;

    // ---- head limits, then framing: refuse anything a downstream parser could read differently
    let limits = (shared.settings.max_request_header_size, shared.settings.max_request_headers);
    if let Err(err) = check_head(session.req_header(), limits.0, limits.1) {
        return refuse(session, ctx, err, Envelope::Kong).await;
    }
    let raw_has_length = session.req_header().headers.contains_key(http::header::TRANSFER_ENCODING)
        && session.as_downstream().as_http1().is_some_and(|h1| raw_has_content_length(&h1.get_headers_raw_bytes()));
    if let Err(err) = check_framing(session.req_header(), raw_has_length) {
        return refuse(session, ctx, err, Envelope::Kong).await;
    }
    if !shared.settings.allow_underscores_in_headers {
        // Before any plugin reads a header: `x_api_key` is not a header here, as in nginx.
        headers::drop_underscored(session.req_header_mut());
    }

    // ---- route
    let Some(path) = normalize_path(session.req_header().uri.path()) else {
        let err = GatewayError::BadRequest { message: "the request path is not valid".into() };
        return refuse(session, ctx, err, Envelope::Kong).await;
    };
    ctx.routing.path = path;
    let (host, host_with_port) = request_host(session.req_header());
    let method = session.req_header().method.as_str();
    let Some(m) = config.router.find(method, &host, &host_with_port, &ctx.routing.path) else {
        return refuse(session, ctx, GatewayError::NoRoute, Envelope::Kong).await;
    };
    ctx.routing.route = Some(m.route);
    ctx.routing.matched_len = m.matched_len;
    let route = config.route(m.route);
    let policies = &route.policies;
    let llm = policies.ai_proxy.default.as_ref().or(policies.ai_proxy.by_consumer.values().next());
    let envelope = if let Some(p) = llm {
        Envelope::for_llm(p.llm_format)
    } else if policies.mcp_proxy.is_configured() {
        Envelope::JsonRpc
    } else {
        Envelope::Kong
    };

    // ---- size limit, from the declared length before anything is read
    ctx.body.limit = shared.settings.max_request_body_size;
    if let Some(ai) = policies.ai_proxy.default.as_ref() {
        if let Some(limit) = ai.max_request_body_size {
            ctx.body.limit = limit;
        }
    }
    if let Some(limit) = policies.mcp_proxy.default.as_ref().and_then(|p| p.max_body) {
        ctx.body.limit = limit;
    }
    if body::declared_length(session.req_header()).is_some_and(|n| n > ctx.body.limit) {
        let err = GatewayError::BodyTooLarge { limit: ctx.body.limit };
        return refuse(session, ctx, err, envelope).await;
    }

    // ---- authentication
    let mut early = EarlyBody::default();
    if let Err(err) = authenticate::run(shared, session, ctx, route, &mut early).await {
        // An unreadable early body (408, 413) keeps its envelope; refusals are Kong's.
        let env = if matches!(err, GatewayError::Auth(_)) { Envelope::Kong } else { envelope };
        return refuse(session, ctx, err, env).await;
    }
    let (early_read, early_body) = (early.read, early.body);

    // ---- authorization
    if let Some(acl) = policies.acl.for_consumer(ctx.identity.consumer) {
        if let Err(failure) = acl.check(ctx.identity.consumer.map(|c| config.consumers.get(c))) {
            shared.metrics.auth_failure(&route.name, failure.reason);
            return refuse(session, ctx, GatewayError::Auth(failure), Envelope::Kong).await;
        }
    }

    // ---- rate limits and budgets: a refused request is never read further or sent upstream
    if let Err(err) = limits::admit(shared, session, ctx, config, route).await {
        return refuse(session, ctx, err, envelope).await;
    }

    // ---- MCP routes: every message checked before anything goes upstream
    if let Some(plugin) = policies.mcp_proxy.default.clone() {
        let early = EarlyBody { read: early_read, body: early_body };
        return super::mcp::begin(shared, session, ctx, route, plugin, early).await;
    }

    // ---- LLM routes: the API surface, then a target, then the body before anything goes upstream
    let Some(plugin) = policies.ai_proxy.for_consumer(ctx.identity.consumer).cloned() else {
        return plain_body(shared, session, ctx, route, early_read, early_body, envelope).await;
    };
    if let Some(limit) = plugin.max_request_body_size {
        ctx.body.limit = limit;
    }
    let envelope = Envelope::for_llm(plugin.llm_format);
    let (op, path_model) = match surface::decide(shared, session.req_header(), ctx, &plugin).await {
        Ok(Decision::Operation { op, path_model }) => (op, path_model),
        Ok(Decision::Preflight) => return respond::no_content(session, ctx).await,
        Err(e) => return refuse(session, ctx, e, envelope).await,
    };
    let inference = op.is_inference();
    let has_body = op.body() != BodyRule::Empty;
    let hash_key = hash_key(session.req_header(), &plugin, ctx, config);
    let Some(target) = plugin.balancer.pick(plugin.balancing.algorithm, Tried::default(), hash_key.as_deref()) else {
        return refuse(session, ctx, GatewayError::Upstream(UpstreamFailure::NoHealthyTarget), envelope).await;
    };
    ctx.ai = Some(AiState {
        plugin,
        target,
        tried: Tried::default(),
        op,
        inference,
        path_model,
        facts: None,
        mcp: GuardRecord::default(),
        has_mcp: false,
        usage_added: false,
        rendered_for: None,
    });
    if !has_body {
        // The surface refused a body on this operation: there is nothing to read or check.
        return Ok(false);
    }
    if let Err(e) = body::check_content_type(session.req_header()) {
        return refuse(session, ctx, e, envelope).await;
    }
    let early = early_read.then_some(early_body);
    if let Err(e) = body::read_and_check(shared, session, ctx, early).await {
        return refuse(session, ctx, e, envelope).await;
    }
    Ok(false)
}

/// A body that is not an LLM inference or MCP body: forwarded as it comes, unless
/// request-transformer has body operations for it (then it is read, transformed and sent
/// whole, or held back until complete when it is larger than the early window).
async fn plain_body(
    shared: &ProcessState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    route: &crate::model::Route,
    early_read: bool,
    early_body: Option<bytes::Bytes>,
    envelope: Envelope,
) -> Result<bool> {
    let transforms = route.policies.request_transformer.for_consumer(ctx.identity.consumer).is_some_and(|t| {
        let ct = session.req_header().headers.get(http::header::CONTENT_TYPE).map(|v| v.as_bytes());
        !t.body.is_empty() && BodyEncoding::of(ct) != BodyEncoding::Other
    });
    if !early_read && !transforms {
        return Ok(false);
    }
    let early = early_read.then_some(early_body);
    if let Err(e) = body::read_and_check(shared, session, ctx, early).await {
        return refuse(session, ctx, e, envelope).await;
    }
    Ok(false)
}

/// 431 for a head with more fields than `max_headers` or more bytes than `max_bytes` (request
/// line and fields as they were sent, CRLFs included).
fn check_head(req: &RequestHeader, max_bytes: usize, max_headers: usize) -> Result<(), GatewayError> {
    if req.headers.len() > max_headers {
        return Err(GatewayError::HeadersTooLarge { too_many: true });
    }
    // "METHOD SP target SP HTTP/1.1 CRLF" + fields + final CRLF
    let mut size = req.method.as_str().len() + 1 + req.raw_path().len() + 11 + 2;
    for (name, value) in &req.headers {
        size += name.as_str().len() + 2 + value.len() + 2;
    }
    if size > max_bytes {
        return Err(GatewayError::HeadersTooLarge { too_many: false });
    }
    Ok(())
}

/// Request smuggling defences: one Content-Length at most, never together with
/// Transfer-Encoding, and no transfer coding but `chunked`.
fn check_framing(req: &RequestHeader, raw_has_length: bool) -> Result<(), GatewayError> {
    let te: Vec<&[u8]> = req.headers.get_all(http::header::TRANSFER_ENCODING).iter().map(|v| v.as_bytes()).collect();
    // Pingora drops Content-Length when Transfer-Encoding is present; the raw header tells.
    let cl = req.headers.get_all(http::header::CONTENT_LENGTH).iter().count().max(usize::from(raw_has_length));
    if cl > 1 {
        return Err(GatewayError::BadFraming { message: "more than one Content-Length header" });
    }
    if te.is_empty() {
        return Ok(());
    }
    if cl > 0 {
        return Err(GatewayError::BadRequest {
            message: "both Content-Length and Transfer-Encoding are present".into(),
        });
    }
    if te.len() != 1 || !te[0].trim_ascii().eq_ignore_ascii_case(b"chunked") {
        return Err(GatewayError::UnsupportedTransferCoding);
    }
    Ok(())
}

/// Whether the request head as received had a Content-Length line.
fn raw_has_content_length(raw: &[u8]) -> bool {
    raw.split(|&b| b == b'\n')
        .skip(1)
        .any(|line| line.len() >= 15 && line[..15].eq_ignore_ascii_case(b"content-length:"))
}

/// The request's host: from an absolute-form target if there is one, else the Host header.
fn request_host(req: &RequestHeader) -> (String, String) {
    let raw = match req.uri.authority() {
        Some(a) => a.as_str().to_string(),
        None => req.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_string(),
    };
    let with_port = raw.to_ascii_lowercase();
    let host = split_host_port(&with_port, 0).map(|(h, _)| h).unwrap_or_else(|| with_port.clone());
    (host, with_port)
}

/// The consistent-hashing key: the configured header, else the consumer.
fn hash_key(
    req: &RequestHeader,
    plugin: &crate::plugins::ai_proxy::AiProxy,
    ctx: &RequestCtx,
    config: &crate::model::Config,
) -> Option<Vec<u8>> {
    if plugin.balancing.algorithm != crate::upstream::balancer::Algorithm::ConsistentHashing {
        return None;
    }
    if let Some(h) = &plugin.balancing.hash_on_header {
        if let Some(v) = req.headers.get(h) {
            return Some(v.as_bytes().to_vec());
        }
    }
    ctx.identity.consumer.map(|c| config.consumers.get(c).id.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(fields: &[(&str, String)]) -> RequestHeader {
        let mut req = RequestHeader::build("POST", b"/v1/responses", None).unwrap();
        for (k, v) in fields {
            req.append_header(k.to_string(), v.as_str()).unwrap();
        }
        req
    }

    #[test]
    fn head_limits_count_fields_and_bytes_as_sent() {
        let small = head(&[("host", "x".into()), ("apikey", "k".into())]);
        assert!(check_head(&small, 1024, 100).is_ok());
        // "POST /v1/responses HTTP/1.1\r\n" (29) + "host: x\r\n" (9) + "apikey: k\r\n" (11) + "\r\n"
        let exact = 29 + 9 + 11 + 2;
        assert!(check_head(&small, exact, 100).is_ok());
        assert!(matches!(check_head(&small, exact - 1, 100), Err(GatewayError::HeadersTooLarge { too_many: false })));
        assert!(matches!(check_head(&small, 1024, 1), Err(GatewayError::HeadersTooLarge { too_many: true })));
        let repeated: Vec<(&str, String)> = (0..5).map(|i| ("x-same", i.to_string())).collect();
        assert!(matches!(check_head(&head(&repeated), 1024, 4), Err(GatewayError::HeadersTooLarge { too_many: true })));
        let big = head(&[("cookie", "c".repeat(40 * 1024))]);
        let err = check_head(&big, 32 * 1024, 100).unwrap_err();
        assert_eq!((err.status(), err.kind()), (431, "headers_too_large"));
    }
}
