//! Answers the gateway writes itself (refusals from `request_filter`).

use pingora_core::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

use super::body;
use crate::proxy::context::{ErrorKind, RequestCtx};
use crate::proxy::errors::{Envelope, ErrorResponse, GatewayError};

/// Write a JSON error and finish the request. The unread request body is drained first (up to
/// a bound) so the client's connection can be kept alive; a larger one closes it.
pub async fn refuse(
    session: &mut Session,
    ctx: &mut RequestCtx,
    err: GatewayError,
    envelope: Envelope,
) -> Result<bool> {
    let close = match err {
        // The body is over the limit or the client is too slow: do not read more of it.
        GatewayError::BodyTooLarge { .. } | GatewayError::RequestTimeout => true,
        // Framing the gateway refuses to interpret: do not read the body it announces.
        GatewayError::UnsupportedTransferCoding | GatewayError::BadFraming { .. } => true,
        _ => !body::drain(session).await,
    };
    if close {
        session.set_keepalive(None);
    }
    let r = err.render(ctx.request_id.as_str(), envelope);
    ctx.outcome.kind = Some(ErrorKind::Answered(err.kind()));
    ctx.outcome.error = Some(err);
    write(session, ctx, &r).await?;
    Ok(true)
}

/// Write a rendered error response.
pub async fn write(session: &mut Session, ctx: &mut RequestCtx, r: &ErrorResponse) -> Result<()> {
    let mut h = ResponseHeader::build(r.status, Some(5))?;
    h.insert_header(http::header::CONTENT_TYPE, "application/json; charset=utf-8")?;
    h.insert_header(http::header::CONTENT_LENGTH, r.body.len().to_string())?;
    h.insert_header("x-request-id", ctx.request_id.as_str())?;
    if let Some(w) = &r.www_authenticate {
        h.insert_header(http::header::WWW_AUTHENTICATE, &**w)?;
    }
    ctx.response.status = r.status;
    ctx.response.bytes_out += r.body.len() as u64;
    session.write_response_header(Box::new(h), false).await?;
    session.write_response_body(Some(r.body.clone()), true).await?;
    Ok(())
}
