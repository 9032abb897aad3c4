//! The request body. Pingora sends the upstream request headers before it reads the body, and
//! forwards a body read in `request_filter` only if it fits its 64 KiB retry buffer. So:
//!
//! - A body whose declared length fits that window is read whole in `request_filter`, checked
//!   and rewritten before any upstream is chosen (a refused request never leaves the gateway), and
//!   handed to Pingora in place of the retry buffer on every attempt (so failover can resend it).
//! - A larger or chunked body is held back chunk by chunk as it arrives; the upstream has the
//!   headers and nothing else until the body is complete and checked. A refused one is never
//!   completed, so the provider never processes it.

use bytes::{Bytes, BytesMut};
use pingora_core::{Error, ErrorType, Result};
use pingora_http::RequestHeader;
use pingora_proxy::Session;

use super::edges;
use super::remember::check_owners;
use crate::ai::anthropic::request::{chat_to_messages, RequestOptions};
use crate::ai::body_scan::Malformed;
use crate::ai::chat_usage::ensure_stream_usage;
use crate::ai::json_body::RequestDoc;
use crate::ai::provider::Dialect;
use crate::ai::refusal::{AiRefusal, BAD_BODY};
use crate::ai::surface::{not_found_message, BodyRule};
use crate::ai::RouteType;
use crate::core::{is_object_id, ObjectKind};
use crate::plugins::ai_proxy::request::{apply_model_only, apply_target};
use crate::plugins::auth::CredentialPlace;
use crate::plugins::mcp_guard::GuardRecord;
use crate::plugins::request_transformer::BodyEncoding;
use crate::proxy::context::{BodyState, RequestCtx};
use crate::proxy::errors::GatewayError;
use crate::proxy::state::ProcessState;

/// Bodies up to this declared length are read before choosing an upstream (Pingora's retry
/// buffer size).
pub const EARLY_WINDOW: u64 = 64 * 1024;
/// How much unread body the gateway reads to keep a refused client's connection alive.
pub const DRAIN_LIMIT: u64 = 64 * 1024;

pub fn declared_length(req: &RequestHeader) -> Option<u64> {
    let v = req.headers.get(http::header::CONTENT_LENGTH)?;
    std::str::from_utf8(v.as_bytes()).ok()?.trim().parse().ok()
}

/// Read and discard the unread body, up to [`DRAIN_LIMIT`]; true when it is all read.
pub async fn drain(session: &mut Session) -> bool {
    if session.as_downstream_mut().is_body_done() {
        return true;
    }
    if declared_length(session.req_header()).is_some_and(|n| n > DRAIN_LIMIT) {
        return false;
    }
    let mut read = 0u64;
    loop {
        match session.read_request_body().await {
            Ok(None) => return true,
            Ok(Some(b)) => {
                read += b.len() as u64;
                if read > DRAIN_LIMIT {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
}

/// Read the whole body now if its declared length fits the early window. `Ok(None)`: it will be
/// held back while Pingora reads it instead.
pub async fn read_early(
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> std::result::Result<Option<Bytes>, GatewayError> {
    if session.as_downstream_mut().is_body_empty() {
        return Ok(Some(Bytes::new()));
    }
    match declared_length(session.req_header()) {
        Some(n) if n <= EARLY_WINDOW => {}
        _ => return Ok(None),
    }
    // A client waiting for `100 Continue` sends the body only once told to.
    if edges::send_continue(session, ctx).await.is_err() {
        return Err(GatewayError::BadRequest { message: "the request body could not be read".into() });
    }
    // Pingora replays the retry buffer to the upstream: it must see these bytes.
    session.as_downstream_mut().enable_retry_buffering();
    let mut first: Option<Bytes> = None;
    let mut more: Option<BytesMut> = None;
    loop {
        match session.read_request_body().await {
            Ok(None) => break,
            Ok(Some(b)) => {
                ctx.body.bytes += b.len() as u64;
                if ctx.body.bytes > ctx.body.limit {
                    return Err(GatewayError::BodyTooLarge { limit: ctx.body.limit });
                }
                match (&first, &mut more) {
                    (None, _) => first = Some(b),
                    (Some(f), None) => {
                        let mut m = BytesMut::with_capacity(EARLY_WINDOW as usize);
                        m.extend_from_slice(f);
                        m.extend_from_slice(&b);
                        more = Some(m);
                    }
                    (Some(_), Some(m)) => m.extend_from_slice(&b),
                }
            }
            Err(e) => {
                return Err(if matches!(e.etype(), ErrorType::ReadTimedout) {
                    GatewayError::RequestTimeout
                } else {
                    GatewayError::BadRequest { message: "the request body could not be read".into() }
                })
            }
        }
    }
    Ok(Some(match more {
        Some(m) => m.freeze(),
        None => first.unwrap_or_default(),
    }))
}

/// Read the body now (unless authentication already did: `early`) and check it with
/// [`inspect`]; one larger than the early window is held back, to be checked when complete.
pub async fn read_and_check(
    shared: &ProcessState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    early: Option<Option<Bytes>>,
) -> std::result::Result<(), GatewayError> {
    let original = match early {
        Some(b) => b,
        None => read_early(session, ctx).await?,
    };
    ctx.body.state = match original {
        Some(original) => {
            let upstream = check_owners(shared, || inspect(shared, ctx, session.req_header(), &original)).await?;
            BodyState::Complete { original, upstream }
        }
        None => BodyState::Pending { chunks: Vec::new(), len: 0 },
    };
    Ok(())
}

/// Kong reads a body without Content-Type as JSON; any other type cannot be inspected.
pub fn check_content_type(req: &RequestHeader) -> std::result::Result<(), GatewayError> {
    let Some(ct) = req.headers.get(http::header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = ct.as_bytes().split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
    if essence.eq_ignore_ascii_case(b"application/json")
        || (essence.len() > 5 && essence[essence.len() - 5..].eq_ignore_ascii_case(b"+json"))
    {
        Ok(())
    } else {
        Err(GatewayError::Ai(AiRefusal::bad_request(
            format!("{BAD_BODY}: the content type must be application/json"),
            "invalid_content_type",
        )))
    }
}

/// Check and rewrite a complete request body: request-transformer's body operations first (as
/// Kong orders them: request-transformer 801 runs before ai-proxy 770), then, on LLM routes,
/// the LLM checks for the current target on the transformed body — so a transformation is
/// never a way around them — and on MCP routes the MCP checks.
pub fn inspect(
    shared: &ProcessState,
    ctx: &mut RequestCtx,
    client: &RequestHeader,
    original: &Bytes,
) -> std::result::Result<Bytes, GatewayError> {
    let generation = ctx.generation.clone();
    let config = &generation.config;
    let consumer = ctx.identity.consumer.map(|c| (c, config.consumers.get(c)));
    let owner = super::remember::owner(shared, ctx).map(str::to_string);
    let route = ctx.routing.route.map(|r| config.route(r));
    let transformed = route
        .and_then(|r| r.policies.request_transformer.for_consumer(ctx.identity.consumer))
        .and_then(|t| {
            let encoding = BodyEncoding::of(client.headers.get(http::header::CONTENT_TYPE).map(|v| v.as_bytes()));
            t.apply_body(client, encoding, original)
        })
        .map(Bytes::from);
    let original = transformed.as_ref().unwrap_or(original);
    if ctx.mcp.is_some() {
        return super::mcp_check::check_body(shared, ctx, client, original);
    }
    let guard = route.and_then(|r| r.policies.mcp_guard.for_consumer(ctx.identity.consumer).cloned());
    let Some(ai) = ctx.ai.as_mut() else {
        return Ok(original.clone());
    };
    let rule = ai.op.body();
    if rule == BodyRule::Json && original.iter().all(u8::is_ascii_whitespace) {
        // Nothing to check (`conversations.create()` with no items may send none).
        return Ok(original.clone());
    }
    let target = &ai.plugin.targets[ai.target];
    let format = ai.plugin.llm_format;
    // One pass: valid JSON, no key twice at any depth, and every id the body names.
    let (mut doc, refs) = RequestDoc::parse_with_refs(original).map_err(AiRefusal::from)?;
    if let Some(m) = &refs.malformed {
        return Err(GatewayError::Ai(malformed(m)));
    }
    if let Some(m) = ai.path_model.as_deref() {
        path_model(&mut doc, m)?;
    }
    let mut facts = match rule {
        BodyRule::Inference { options: true } => {
            Some(apply_target(&mut doc, target, ai.plugin.response_streaming, format)?)
        }
        BodyRule::Inference { options: false } => Some(apply_model_only(&mut doc, target)?),
        BodyRule::Json | BodyRule::Empty => None,
    };
    // Every OpenAI-format chat stream reports its usage (taken out again for a client that did
    // not ask). A translated Anthropic stream always carries its usage.
    ai.usage_added = target.route_type == RouteType::Chat
        && facts.as_ref().is_some_and(|f| f.stream)
        && matches!(rule, BodyRule::Inference { options: true })
        && format == Dialect::OpenAi
        && target.provider.dialect() == Dialect::OpenAi
        && ensure_stream_usage(&mut doc);
    let governs_mcp = guard.is_some();
    // Ownership: every object the body names is the consumer's own; objects no consumer can
    // own through the gateway are not named at all.
    if let Some(owner) = &owner {
        if let Some(field) = &refs.unownable {
            return Err(GatewayError::Ai(AiRefusal::bad_request(
                format!(
                    "`{field}` names a stored object (file, vector store, container, skill or audio) that is not available through this gateway"
                ),
                "unsupported_reference",
            )));
        }
        for r in &refs.owned {
            if !is_object_id(&r.id) || !shared.ownership.owned_by(r.kind, &r.id, owner) {
                let message = match r.kind {
                    ObjectKind::Response if r.field == "previous_response_id" => {
                        format!("Previous response with id '{}' not found.", r.id)
                    }
                    kind => not_found_message(kind, &r.id),
                };
                return Err(GatewayError::Ai(not_found(&message)));
            }
        }
    }
    // A reusable prompt can carry tools the gateway cannot see.
    if let Some(prompt) = &refs.prompt {
        let listed = guard.as_ref().is_some_and(|g| g.allows_prompt(prompt));
        if !listed && (guard.is_some() || owner.is_some()) {
            return Err(GatewayError::Ai(AiRefusal::bad_request(
                format!(
                    "`prompt.id` '{prompt}' is not allowed: a reusable prompt can carry tools and files the gateway cannot check (an operator can list it in ai-mcp-guard's allowed_prompts)"
                ),
                "prompt_not_allowed",
            )));
        }
    }
    if target.route_type == RouteType::Responses {
        ai.has_mcp = refs.mcp;
        if let Some(guard) = guard {
            // A re-render after a failover decides again: keep the latest decisions only.
            ai.mcp = GuardRecord::default();
            guard.apply(&mut doc, &refs, consumer, shared.ownership.as_ref(), &shared.pins, &mut ai.mcp)?;
        }
    }
    if let Some(route) = route {
        // A credential in the body is never sent to an LLM provider.
        let found = ctx.identity.credential_location.as_ref();
        for (i, auth) in route.policies.authenticators.iter().enumerate() {
            let found = found.filter(|(at, _)| *at == i).map(|(_, l)| l);
            auth.strip_credentials(found, true, &mut |place| {
                if place.place == CredentialPlace::BodyField {
                    doc.remove(place.name);
                }
            });
        }
    }
    // Anthropic's MCP connector has the provider call MCP servers the gateway cannot govern
    // (ai-mcp-guard governs the Responses API's MCP tools).
    if format == Dialect::Anthropic && governs_mcp && doc.raw("mcp_servers").is_some_and(|v| v != "null") {
        return Err(GatewayError::Ai(AiRefusal {
            status: 403,
            message: "mcp_servers are not allowed on this route: ai-mcp-guard governs MCP tools, and Anthropic's MCP connector bypasses it".into(),
            kind: "permission_error",
            code: "mcp_not_allowed",
        }));
    }
    let out = if target.translates(format) {
        let options = RequestOptions { refuses_sampling: target.provider_options.refuses_sampling };
        let translated = chat_to_messages(&doc, options)?;
        if let Some(f) = facts.as_mut() {
            f.include_usage = translated.include_usage;
        }
        Bytes::from(translated.body)
    } else if doc.changed() {
        Bytes::from(doc.to_bytes())
    } else {
        original.clone()
    };
    ai.facts = facts;
    ai.rendered_for = Some(ai.target);
    Ok(out)
}

/// The model an Azure-style path names is the request's model: the body may leave it out, or
/// name the same one.
fn path_model(doc: &mut RequestDoc<'_>, model: &str) -> std::result::Result<(), GatewayError> {
    match doc.get::<String>("model") {
        Ok(Some(m)) if !m.is_empty() && m != model => Err(GatewayError::Ai(AiRefusal::bad_request(
            format!("the path names the deployment `{model}` and the body the model `{m}`"),
            "model_mismatch",
        ))),
        Ok(Some(m)) if !m.is_empty() => Ok(()),
        _ => {
            doc.set("model", model);
            Ok(())
        }
    }
}

/// The refusal of a body no policy may let through.
fn malformed(m: &Malformed) -> AiRefusal {
    let message = match m {
        Malformed::NotAnId { field, expected } => format!("`{field}` must be {expected}"),
        Malformed::LooseMcpType { field } => format!(
            "`{field}` is not an exact type name: MCP types are written `mcp`, `mcp_call`, … in lower case without spaces"
        ),
        Malformed::LooseTypeKey { field } => format!("`{field}` is not an exact field name: write it `type`"),
    };
    AiRefusal::bad_request(message, "invalid_type")
}

/// OpenAI's answer for an object that does not exist (or is not the consumer's).
pub fn not_found(message: &str) -> AiRefusal {
    AiRefusal { status: 404, message: message.to_string(), kind: "invalid_request_error", code: "not_found" }
}

/// Make sure the complete body is rendered for the target of this attempt (after a failover
/// the model and options may differ).
pub fn render_for_current_target(
    shared: &ProcessState,
    ctx: &mut RequestCtx,
    client: &RequestHeader,
) -> std::result::Result<(), GatewayError> {
    let needs = match (&ctx.body.state, &ctx.ai) {
        (BodyState::Complete { .. }, Some(ai)) => ai.inference && ai.rendered_for != Some(ai.target),
        _ => false,
    };
    if !needs {
        return Ok(());
    }
    let original = match &ctx.body.state {
        BodyState::Complete { original, .. } => original.clone(),
        _ => return Ok(()),
    };
    let upstream = inspect(shared, ctx, client, &original)?;
    ctx.body.state = BodyState::Complete { original, upstream };
    Ok(())
}

/// `request_body_filter`: what goes upstream for each chunk Pingora read.
pub async fn forward_chunk(
    shared: &ProcessState,
    client: &RequestHeader,
    body: &mut Option<Bytes>,
    end_of_stream: bool,
    ctx: &mut RequestCtx,
) -> Result<()> {
    match &mut ctx.body.state {
        BodyState::Passthrough => {
            if let Some(b) = body {
                ctx.body.bytes += b.len() as u64;
                if ctx.body.bytes > ctx.body.limit {
                    return refuse(ctx, GatewayError::BodyTooLarge { limit: ctx.body.limit });
                }
            }
            Ok(())
        }
        BodyState::Complete { upstream, .. } => {
            // Pingora hands the retry buffer (the original body) once per attempt.
            *body = Some(if end_of_stream { upstream.clone() } else { Bytes::new() });
            Ok(())
        }
        BodyState::Pending { chunks, len } => {
            if let Some(b) = body.take() {
                *len += b.len();
                ctx.body.bytes += b.len() as u64;
                if ctx.body.bytes > ctx.body.limit {
                    return refuse(ctx, GatewayError::BodyTooLarge { limit: ctx.body.limit });
                }
                if !b.is_empty() {
                    chunks.push(b);
                }
            }
            if !end_of_stream {
                // Hold back: an empty chunk is not written upstream.
                *body = Some(Bytes::new());
                return Ok(());
            }
            let original = concat(std::mem::take(chunks), *len);
            ctx.body.state = BodyState::Released;
            match check_owners(shared, || inspect(shared, ctx, client, &original)).await {
                Ok(upstream) => {
                    *body = Some(upstream);
                    Ok(())
                }
                Err(e) => refuse(ctx, e),
            }
        }
        BodyState::Released => {
            // A held-back body cannot be sent twice; retries are refused for it.
            *body = None;
            Ok(())
        }
    }
}

fn refuse(ctx: &mut RequestCtx, e: GatewayError) -> Result<()> {
    let status = e.status();
    ctx.outcome.error = Some(e);
    Err(Error::explain(ErrorType::HTTPStatus(status), "request refused by the gateway"))
}

fn concat(chunks: Vec<Bytes>, len: usize) -> Bytes {
    if chunks.len() == 1 {
        return chunks.into_iter().next().unwrap_or_default();
    }
    let mut out = BytesMut::with_capacity(len);
    for c in chunks {
        out.extend_from_slice(&c);
    }
    out.freeze()
}
