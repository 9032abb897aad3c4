//! The response: headers from the upstream, then body chunks, which go to the client as they are
//! while a bounded side view keeps what accounting needs (usage, MCP items).

use std::time::Instant;

use bytes::Bytes;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

use super::failure;
use super::remember::{facts_of, record_owner, remember_mcp};
use crate::ai::sse::SseScanner;
use crate::proxy::context::{RequestCtx, ResponseScan};
use crate::proxy::state::ProcessState;

pub fn upstream_response(
    shared: &ProcessState,
    session: &Session,
    resp: &mut ResponseHeader,
    ctx: &mut RequestCtx,
) -> Result<()> {
    let now = Instant::now();
    ctx.upstream.ttfb = ctx.upstream.started.map(|t| now.duration_since(t));
    ctx.response.status = resp.status.as_u16();
    let Some(ai) = &ctx.ai else { return Ok(()) };
    let status = ctx.response.status;
    if ai.plugin.balancing.failover.status_fails(status) {
        failure::record_failure_kind(shared, ctx, failure::status_kind(status));
        // Fail over only if another target can take it; otherwise the client gets this answer.
        if failure::body_replayable(session, ctx) && failure::fail_over(shared, ctx) {
            ctx.upstream.failover_pending = true;
            return Err(Error::explain(ErrorType::HTTPStatus(status), "upstream answered a failover status").into_up());
        }
    }
    let Some(ai) = &ctx.ai else { return Ok(()) };
    let plugin = ai.plugin.clone();
    let target = &plugin.targets[ai.target];
    plugin.balancer.health(ai.target).report_success(ctx.upstream.ttfb.unwrap_or_default());
    // Providers' cookies are not the client's business (Kong drops them too).
    resp.remove_header(&http::header::SET_COOKIE);
    if plugin.model_name_header {
        match (&target.model_header, ai.facts.as_ref()) {
            (Some(h), _) => resp.insert_header("x-kong-llm-model", h.clone())?,
            (None, Some(f)) => resp.insert_header("x-kong-llm-model", format!("{}/{}", target.provider, f.model))?,
            (None, None) => {}
        }
    }
    if !ai.inference || !resp.status.is_success() {
        return Ok(());
    }
    if resp.headers.contains_key(http::header::CONTENT_ENCODING) {
        // Compressed despite `Accept-Encoding: identity`: usage cannot be read (counted as missing).
        return Ok(());
    }
    let is_sse =
        resp.headers.get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let responses = plugin.targets[ai.target].route_type == crate::ai::RouteType::Responses;
    ctx.response.record_owner = responses && shared.settings.response_ownership && ctx.identity.consumer.is_some();
    ctx.response.scan = if is_sse {
        ResponseScan::Sse(Box::new(SseScanner::new(shared.settings.usage_scan_limit)))
    } else {
        ResponseScan::Json { chunks: Vec::new(), len: 0, overflowed: false }
    };
    Ok(())
}

pub fn response_headers(resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
    resp.insert_header("x-request-id", ctx.request_id.as_str())?;
    if ctx.response.status == 0 {
        ctx.response.status = resp.status.as_u16();
    }
    Ok(())
}

/// The top-level `"id"` of a JSON object whose first field it is (OpenAI writes it first).
fn leading_id(b: &[u8]) -> Option<String> {
    let head = &b[..b.len().min(1024)];
    let at = memchr::memmem::find(head, b"\"id\"")?;
    let mut rest = head[at + 4..].iter().skip_while(|c| c.is_ascii_whitespace());
    if rest.next() != Some(&b':') {
        return None;
    }
    let mut rest = rest.skip_while(|c| c.is_ascii_whitespace());
    if rest.next() != Some(&b'"') {
        return None;
    }
    let id: Vec<u8> = rest.take_while(|&&c| c != b'"').copied().collect();
    let ok =
        !id.is_empty() && id.len() <= 256 && id.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-');
    ok.then(|| String::from_utf8_lossy(&id).into_owned())
}

/// Runs on the worker thread for every chunk: no parsing here, only refcounted slices kept.
pub fn response_chunk(shared: &ProcessState, body: &mut Option<Bytes>, end_of_stream: bool, ctx: &mut RequestCtx) {
    if let Some(b) = body.as_ref() {
        ctx.response.bytes_out += b.len() as u64;
        let first_chunk = ctx.response.bytes_out == b.len() as u64;
        match &mut ctx.response.scan {
            ResponseScan::None => {}
            ResponseScan::Json { chunks, len, overflowed } => {
                if !*overflowed {
                    if *len + b.len() > shared.settings.usage_scan_limit {
                        *overflowed = true;
                        chunks.clear();
                    } else {
                        *len += b.len();
                        chunks.push(b.clone());
                    }
                }
            }
            ResponseScan::Sse(scanner) => scanner.feed(b),
        }
        // Ownership is recorded before the bytes holding the new id reach the client, so the
        // client can never use the id before the gateway knows whose it is.
        if ctx.response.record_owner {
            let id = match &ctx.response.scan {
                ResponseScan::Json { .. } if first_chunk => leading_id(b),
                ResponseScan::Sse(scanner) => scanner.created_response_id(),
                _ => None,
            };
            if let Some(id) = id {
                record_owner(shared, ctx, &id);
            }
        }
    }
    if end_of_stream {
        if let ResponseScan::Sse(scanner) = &mut ctx.response.scan {
            scanner.finish();
        }
        // MCP answers: read them before the last bytes go out, so their approval requests are
        // recorded before the client can answer them.
        if ctx.ai.as_ref().is_some_and(|a| a.has_mcp) {
            let facts = facts_of(&mut ctx.response.scan);
            remember_mcp(shared, ctx, &facts);
            ctx.response.early_facts = Some(facts);
        }
    }
}
