//! When an upstream attempt fails: retry on a fresh connection when a pooled one turned out to be
//! dead, fail over to the next LLM target per `failover_criteria`, and otherwise answer the
//! client with a JSON error naming the kind of failure.

use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorSource, ErrorType, RetryType};
use pingora_proxy::{FailToProxy, Session};

use super::{edges, respond};
use crate::proxy::context::{BodyState, ErrorKind, RequestCtx};
use crate::proxy::errors::{Envelope, GatewayError};
use crate::proxy::state::ProcessState;
use crate::upstream::{classify, closed_before_answer, is_upstream, UpstreamFailure};

/// The metric kind of a pooled connection closed under a request, which was sent again.
pub const STALE_CONNECTION: &str = "stale_connection";

/// Whether the request body can be sent again on another attempt.
pub fn body_replayable(session: &Session, ctx: &RequestCtx) -> bool {
    match &ctx.body.state {
        BodyState::Complete { .. } => true,
        BodyState::Pending { len, .. } => *len == 0,
        BodyState::Released => false,
        BodyState::Passthrough => ctx.body.bytes == 0 || !session.as_ref().retry_buffer_truncated(),
    }
}

fn record_failure(shared: &ProcessState, ctx: &RequestCtx, failure: UpstreamFailure) {
    record_failure_kind(shared, ctx, failure.kind());
}

pub fn record_failure_kind(shared: &ProcessState, ctx: &RequestCtx, kind: &str) {
    let config = &ctx.generation.config;
    let (service, route) = match ctx.routing.route {
        Some(r) => {
            let route = config.route(r);
            (config.service_of(route).name.as_str(), route.name.as_str())
        }
        None => ("", ""),
    };
    shared.metrics.upstream_error(service, route, kind);
}

/// Whether a failure counts under the target's `failover_criteria`.
fn counts_for_failover(ctx: &RequestCtx, failure: Option<UpstreamFailure>, status: Option<u16>) -> bool {
    let Some(ai) = ctx.ai.as_ref() else { return false };
    let criteria = &ai.plugin.balancing.failover;
    match (failure, status) {
        (Some(f), _) if f.is_timeout() => criteria.timeout,
        (Some(_), _) => criteria.error,
        (None, Some(code)) => criteria.status_fails(code),
        (None, None) => false,
    }
}

/// Record a failure of the current LLM target (passive health) and move the request to the
/// next untried target, if the retry budget allows. Returns whether there is one.
pub fn fail_over(shared: &ProcessState, ctx: &mut RequestCtx) -> bool {
    let attempts = ctx.upstream.attempts;
    let Some(ai) = ctx.ai.as_mut() else { return false };
    let plugin = ai.plugin.clone();
    if plugin.balancer.health(ai.target).report_failure() {
        let t = &plugin.targets[ai.target];
        shared
            .metrics
            .target_health_changes
            .with_label_values(&[t.provider.as_str(), t.model.as_deref().unwrap_or("other"), "down"])
            .inc();
        log::warn!("LLM target {} ({}) taken out after repeated failures", ai.target, t.endpoint.authority());
    }
    ai.tried.add(ai.target);
    if attempts > plugin.balancing.retries {
        return false;
    }
    match plugin.balancer.pick(plugin.balancing.algorithm, ai.tried, None) {
        Some(next) => {
            ai.target = next;
            true
        }
        None => false,
    }
}

/// The metric kind for an upstream answer that triggered a failover.
pub fn status_kind(status: u16) -> &'static str {
    match status {
        429 => "http_429",
        500 => "http_500",
        502 => "http_502",
        503 => "http_503",
        504 => "http_504",
        _ => "http_5xx",
    }
}

/// `fail_to_connect`: nothing was sent; another attempt is always safe for the body.
pub fn on_connect_error(shared: &ProcessState, ctx: &mut RequestCtx, mut e: Box<Error>) -> Box<Error> {
    let failure = classify(&e);
    record_failure(shared, ctx, failure);
    let retry = if ctx.ai.is_some() {
        counts_for_failover(ctx, Some(failure), None) && fail_over(shared, ctx)
    } else {
        // Another address of the same host may answer; the same address will not.
        let config = &ctx.generation.config;
        let (retries, addresses) = ctx.routing.route.map_or((0, 0), |r| {
            let s = config.service_of(config.route(r));
            (s.retries, shared.resolver.address_count(&s.endpoint.host, s.endpoint.port))
        });
        failure == UpstreamFailure::ConnectRefused && addresses > 1 && ctx.upstream.attempts <= retries
    };
    e.set_retry(retry);
    e
}

/// `error_while_proxy`: the connection was made (or reused) and something failed after.
pub fn on_proxy_error(
    shared: &ProcessState,
    peer: &HttpPeer,
    session: &mut Session,
    ctx: &mut RequestCtx,
    e: Box<Error>,
    client_reused: bool,
) -> Box<Error> {
    let mut e = e.more_context(format!("peer {peer}"));
    if ctx.outcome.error.is_some() {
        // The gateway refused the request (body check): final.
        e.set_retry(false);
        return e;
    }
    let nothing_sent_downstream = session.response_written().is_none();
    let replayable = body_replayable(session, ctx) && nothing_sent_downstream;
    let no_answer_yet = ctx.response.status == 0;
    // A pooled connection the upstream closed under the request (its keep-alive timeout struck
    // as the gateway reused it): the upstream never saw the request, so it is sent again —
    // whatever the method — on a fresh connection, for the rest of the request's attempts.
    if client_reused && closed_before_answer(&e) && replayable && no_answer_yet {
        ctx.upstream.fresh = true;
        record_failure_kind(shared, ctx, STALE_CONNECTION);
        log::debug!(
            "request {}: a pooled upstream connection was closed under it; sending it again on a fresh one: {e}",
            ctx.request_id.as_str()
        );
        e.set_retry(true);
        return e;
    }
    // What Pingora itself knows to be safe to send again (an HTTP/2 stream refused, or a
    // connection going away, before any answer).
    if e.retry == RetryType::Decided(true) && replayable && no_answer_yet {
        e.set_retry(true);
        return e;
    }
    if std::mem::take(&mut ctx.upstream.failover_pending) {
        // upstream_response_filter turned a failover status into this error and already
        // moved the request to the next target.
        ctx.response.status = 0;
        ctx.upstream.ttfb = None;
        e.set_retry(true);
        return e;
    }
    let failure = if is_upstream(&e) { Some(classify(&e)) } else { None };
    if let Some(f) = failure {
        record_failure(shared, ctx, f);
    }
    let retry = replayable && failure.is_some() && counts_for_failover(ctx, failure, None) && fail_over(shared, ctx);
    if retry {
        // The next attempt starts over.
        ctx.response.status = 0;
        ctx.upstream.ttfb = None;
    }
    e.set_retry(retry);
    e
}

/// `fail_to_proxy`: answer the client with the gateway's JSON error, if it can still be told.
pub async fn answer(_shared: &ProcessState, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
    let err = match ctx.outcome.error.clone() {
        Some(err) => err,
        None => match e.esource() {
            ErrorSource::Upstream => match e.etype() {
                ErrorType::HTTPStatus(_) => GatewayError::Upstream(UpstreamFailure::InvalidResponse),
                _ => GatewayError::Upstream(classify(e)),
            },
            ErrorSource::Downstream => match e.etype() {
                ErrorType::ReadTimedout => GatewayError::RequestTimeout,
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => {
                    // The client is gone: nobody to answer.
                    ctx.outcome.kind = Some(ErrorKind::ClientClosed);
                    return FailToProxy { error_code: 0, can_reuse_downstream: false };
                }
                _ => GatewayError::BadRequest { message: "the request could not be read".into() },
            },
            _ => match e.etype() {
                ErrorType::HTTPStatus(code) if *code == 413 => GatewayError::BodyTooLarge { limit: ctx.body.limit },
                _ => GatewayError::Internal,
            },
        },
    };
    ctx.outcome.kind = Some(ErrorKind::Answered(err.kind()));
    let code = err.status();
    if session.response_written().is_some() {
        // Mid-response: the connection is closed so the client sees the stream end.
        ctx.outcome.error = Some(err);
        return FailToProxy { error_code: code, can_reuse_downstream: false };
    }
    let envelope = match (&ctx.ai, &ctx.mcp) {
        (Some(ai), _) => Envelope::for_llm(ai.plugin.llm_format),
        (None, Some(_)) => Envelope::JsonRpc,
        (None, None) => Envelope::Kong,
    };
    let rendered = err.render(ctx.request_id.as_str(), envelope);
    ctx.outcome.error = Some(err);
    // Pingora closes the client connection after a failed proxy attempt: say so in the answer,
    // or a client would send its next request on a closed connection.
    session.set_keepalive(None);
    let can_reuse = false;
    if let Err(write_err) = respond::write(session, ctx, &rendered).await {
        log::debug!("could not send the error response: {write_err}");
        return FailToProxy { error_code: code, can_reuse_downstream: false };
    }
    // A client still sending its body (a 413 mid-stream) reads the answer, not a reset; a
    // client too slow to send it is not waited for.
    if !matches!(ctx.outcome.error, Some(GatewayError::RequestTimeout)) {
        edges::linger(ctx.lingering, session).await;
    }
    FailToProxy { error_code: code, can_reuse_downstream: can_reuse }
}
