//! The response: headers from the upstream, then body chunks, which go to the client as they are
//! while a bounded side view keeps what accounting needs (usage, MCP items).

use std::time::Instant;

use bytes::Bytes;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

use super::remember::{owner, record_as_it_streams, record_at_end};
use super::respond::REQUEST_ID_HEADER;
use super::{edges, failure, headers, limits};
use crate::ai::anthropic::answer::AnswerTranslator;
use crate::ai::chat_usage::UsageChunkFilter;
use crate::ai::response::StreamFacts;
use crate::ai::surface::Records;
use crate::core::secrets::Scrubber;
use crate::proxy::context::{BodyState, RequestCtx, ResponseScan};
use crate::proxy::errors::GatewayError;
use crate::proxy::state::ProcessState;
use crate::upstream::UpstreamFailure;

pub fn upstream_response(
    shared: &ProcessState,
    session: &Session,
    resp: &mut ResponseHeader,
    ctx: &mut RequestCtx,
) -> Result<()> {
    let now = Instant::now();
    ctx.upstream.ttfb = ctx.upstream.started.map(|t| now.duration_since(t));
    ctx.response.status = resp.status.as_u16();
    ctx.response.upstream_request_id = upstream_request_id(resp);
    if ctx.mcp.is_some() {
        return super::mcp::upstream_response(shared, resp, ctx);
    }
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
    // The answer is the client's from here (no failover, no retry after an answer): the
    // client's body as sent, kept to render it for another target, is let go rather than held
    // for the rest of a long stream (a 60 KB chat history would stay 60 KB per stream).
    if let BodyState::Complete { original, .. } = &mut ctx.body.state {
        *original = Bytes::new();
    }
    let plugin = ai.plugin.clone();
    let target = &plugin.targets[ai.target];
    // The provider key and injected MCP credentials never reach the client, even echoed.
    let guard = ctx.routing.route.and_then(|r| {
        ctx.generation.config.route(r).policies.mcp_guard.for_consumer(ctx.identity.consumer).map(|g| g.secrets.clone())
    });
    ctx.response.scrubber = Scrubber::new([Some(plugin.secrets.clone()), guard]);
    if ctx.response.scrubber.is_some() && is_compressed(resp) {
        // Compressed despite `Accept-Encoding: identity`: it cannot be checked for them.
        let failure = UpstreamFailure::CompressedResponse;
        failure::record_failure_kind(shared, ctx, failure.kind());
        ctx.outcome.error = Some(GatewayError::Upstream(failure));
        return Err(Error::explain(ErrorType::HTTPStatus(failure.status()), failure.message()).into_up());
    }
    plugin.balancer.health(ai.target).report_success(ctx.upstream.ttfb.unwrap_or_default());
    // Providers' cookies are not the client's business (Kong drops them too), nor is the
    // operator's provider account.
    resp.remove_header(&http::header::SET_COOKIE);
    headers::strip_account_response(resp);
    if plugin.model_name_header {
        match (&target.model_header, ai.facts.as_ref()) {
            (Some(h), _) => resp.insert_header("x-kong-llm-model", h.clone())?,
            (None, Some(f)) => {
                resp.insert_header("x-kong-llm-model", format!("{}/{}", target.provider.as_str(), f.model))?
            }
            (None, None) => {}
        }
    }
    ctx.response.dialect = target.provider.dialect();
    let is_sse =
        resp.headers.get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if target.translates(plugin.llm_format) {
        // An OpenAI-format client of an Anthropic target gets OpenAI's format, errors included.
        let limit = shared.settings.usage_scan_limit.max(TRANSLATE_LIMIT);
        let translator = if !resp.status.is_success() {
            let client = AnswerTranslator::client_status(status);
            resp.set_status(client)?;
            ctx.response.status = client;
            resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
            AnswerTranslator::error(status, limit)
        } else if !ai.inference {
            return Ok(());
        } else if is_sse {
            let include_usage = ai.facts.as_ref().is_some_and(|f| f.include_usage);
            AnswerTranslator::stream(include_usage, unix_now(), limit)
        } else {
            resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
            AnswerTranslator::message(unix_now(), limit)
        };
        // The body changes length: it goes out chunked.
        resp.remove_header(&http::header::CONTENT_LENGTH);
        ctx.response.translation = Some(Box::new(translator));
        return Ok(());
    }
    if !resp.status.is_success() {
        return Ok(());
    }
    let records = ai.op.records();
    let record = records != Records::Nothing && owner(shared, ctx).is_some();
    if !ai.inference && !record {
        return Ok(());
    }
    if resp.headers.contains_key(http::header::CONTENT_ENCODING) {
        // Compressed despite `Accept-Encoding: identity`: usage cannot be read (counted as missing).
        return Ok(());
    }
    ctx.response.records = record.then_some(records);
    if is_sse && ai.usage_added {
        // The usage chunk the client did not ask for is taken out: the length changes.
        resp.remove_header(&http::header::CONTENT_LENGTH);
        ctx.response.usage_filter = Some(Box::new(UsageChunkFilter::new()));
    }
    ctx.response.scan = if is_sse {
        let stream = StreamFacts::new(shared.settings.usage_scan_limit);
        // A Responses stream names the objects it creates as it goes: they are recorded as
        // their events pass.
        let stream = if ctx.response.records == Some(Records::Response) { stream.with_objects() } else { stream };
        ResponseScan::Sse(Box::new(stream))
    } else {
        ResponseScan::Json { chunks: Vec::new(), len: 0, overflowed: false }
    };
    Ok(())
}

pub fn response_headers(session: &mut Session, resp: &mut ResponseHeader, ctx: &mut RequestCtx) -> Result<()> {
    // The gateway's id in its own header; the upstream's `x-request-id` passes unchanged.
    resp.insert_header(REQUEST_ID_HEADER, ctx.request_id.as_str())?;
    // After the upstream's account headers (its x-ratelimit-*) were removed: these are the
    // gateway's own limits.
    limits::add_headers(ctx, resp)?;
    if ctx.response.status == 0 {
        ctx.response.status = resp.status.as_u16();
    }
    edges::unchunk_for_http10(session, resp);
    Ok(())
}

/// The upstream's id for the request: `x-request-id` (OpenAI, most services) or `request-id`
/// (Anthropic), if it is a short printable value.
fn upstream_request_id(resp: &ResponseHeader) -> Option<http::HeaderValue> {
    let v = resp.headers.get("x-request-id").or_else(|| resp.headers.get("request-id"))?;
    let b = v.as_bytes();
    // A clone shares the parsed header's bytes: nothing is copied.
    (!b.is_empty() && b.len() <= 200 && b.iter().all(u8::is_ascii_graphic)).then(|| v.clone())
}

/// A body in a content coding the gateway cannot read.
fn is_compressed(resp: &ResponseHeader) -> bool {
    resp.headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().trim_ascii().is_empty() && !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"))
}

/// The most of an answer held to be translated whole (a JSON answer; stream events are
/// translated one by one), unless `usage_scan_limit` is larger.
const TRANSLATE_LIMIT: usize = 16 * 1024 * 1024;

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Runs on the worker thread for every chunk: a JSON answer's chunks are kept (refcounted, up to
/// the limit) to be read whole at the end; a stream is read as it passes (a translated answer
/// is rewritten here, event by event).
pub fn response_chunk(shared: &ProcessState, body: &mut Option<Bytes>, end_of_stream: bool, ctx: &mut RequestCtx) {
    if ctx.mcp.is_some() {
        super::mcp::response_chunk(shared, body, end_of_stream, ctx);
    }
    // A translated answer is translated first: the scrubber sees what the client gets.
    if let Some(t) = ctx.response.translation.as_mut() {
        *body = t.feed(body.take(), end_of_stream);
    }
    if let Some(scrubber) = ctx.response.scrubber.as_mut() {
        scrubber.apply(body, end_of_stream);
    }
    let filtered = ctx.response.usage_filter.is_some();
    if let Some(b) = body.as_ref() {
        if !filtered {
            ctx.response.bytes_out += b.len() as u64;
        }
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
        // Ownership is recorded before the bytes holding a new id reach the client, so the
        // client can never use the id before the gateway knows whose it is.
        record_as_it_streams(shared, ctx, b, first_chunk);
    }
    // The client sees what it asked for (the scanner above saw everything).
    if let Some(f) = ctx.response.usage_filter.as_mut() {
        *body = f.filter(body.take(), end_of_stream);
        ctx.response.bytes_out += body.as_ref().map_or(0, |b| b.len() as u64);
    }
    if end_of_stream {
        // Whole-answer facts (output items, MCP approval requests, a budget's usage) before the
        // last bytes go out, so they are known, and charged, before the client can act on them.
        ctx.response.early_facts = record_at_end(shared, ctx);
    }
}
