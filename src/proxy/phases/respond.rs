//! Answers the gateway writes itself (refusals from `request_filter`).

use pingora_core::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

use super::{body, edges, limits};
use crate::proxy::context::{ErrorKind, RequestCtx};
use crate::proxy::errors::{Envelope, ErrorResponse, GatewayError};

/// The gateway's own id for a request, on every answer (as Kong's `X-Kong-Request-Id`).
pub const REQUEST_ID_HEADER: &str = "x-aigate-request-id";

/// Write a JSON error and finish the request. The unread request body is drained first (up to
/// a bound) so the client's connection can be kept alive; a larger one closes it, after a
/// lingering read (see `edges::linger`). A client still waiting for `100 Continue` has sent no
/// body: it gets the answer at once, and the connection closes the same way.
pub async fn refuse(
    session: &mut Session,
    ctx: &mut RequestCtx,
    err: GatewayError,
    envelope: Envelope,
) -> Result<bool> {
    let awaiting = edges::awaits_continue(session, ctx);
    let (close, linger) = match err {
        // The client is too slow: waiting for more of it is pointless.
        GatewayError::RequestTimeout => (true, false),
        // Framing the gateway refuses to interpret: do not read the body it announces.
        GatewayError::UnsupportedTransferCoding | GatewayError::BadFraming { .. } => (true, false),
        // A client that asked to switch protocols may already be sending the new one.
        GatewayError::UpgradeRefused => (true, false),
        // No body was sent; should the client send it anyway, it is discarded after.
        _ if awaiting => (true, true),
        // The body is over the limit: do not read more of it (only discard it after).
        GatewayError::BodyTooLarge { .. } => (true, true),
        _ => {
            let read = body::drain(session).await;
            (!read, !read)
        }
    };
    if close {
        session.set_keepalive(None);
    }
    let r = err.render(ctx.request_id.as_str(), envelope);
    ctx.outcome.kind = Some(ErrorKind::Answered(err.kind()));
    ctx.outcome.error = Some(err);
    write(session, ctx, &r).await?;
    if linger {
        edges::linger(ctx.lingering, session).await;
    }
    Ok(true)
}

/// Write a rendered error response.
pub async fn write(session: &mut Session, ctx: &mut RequestCtx, r: &ErrorResponse) -> Result<()> {
    let mut h = ResponseHeader::build(r.status, Some(5))?;
    h.insert_header(http::header::CONTENT_TYPE, "application/json; charset=utf-8")?;
    h.insert_header(http::header::CONTENT_LENGTH, r.body.len().to_string())?;
    // The gateway's id under both names: SDKs show `x-request-id` with an error.
    h.insert_header("x-request-id", ctx.request_id.as_str())?;
    h.insert_header(REQUEST_ID_HEADER, ctx.request_id.as_str())?;
    if let Some(w) = &r.www_authenticate {
        h.insert_header(http::header::WWW_AUTHENTICATE, &**w)?;
    }
    if let Some(a) = r.allow {
        h.insert_header(http::header::ALLOW, a)?;
    }
    limits::add_headers(ctx, &mut h)?;
    ctx.response.status = r.status;
    ctx.response.bytes_out += r.body.len() as u64;
    session.write_response_header(Box::new(h), false).await?;
    session.write_response_body(Some(r.body.clone()), true).await?;
    ctx.timing.answered = Some(std::time::Instant::now());
    Ok(())
}

/// Answer a request the gateway serves itself with `204 No Content` (a CORS preflight: no
/// `Access-Control-*` grant, so a browser does not send the real request).
pub async fn no_content(session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    if !body::drain(session).await {
        session.set_keepalive(None);
    }
    let mut h = ResponseHeader::build(204, Some(3))?;
    h.insert_header("x-request-id", ctx.request_id.as_str())?;
    h.insert_header(REQUEST_ID_HEADER, ctx.request_id.as_str())?;
    ctx.response.status = 204;
    session.write_response_header(Box::new(h), true).await?;
    ctx.timing.answered = Some(std::time::Instant::now());
    Ok(true)
}
