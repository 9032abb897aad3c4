//! HTTP/1 edges Pingora leaves to the application: `Expect: 100-continue` (Pingora never sends
//! `100 Continue` itself), lingering close after an answer to a client still sending its body
//! (Pingora would close with unread bytes, and the kernel's reset can destroy the answer), and
//! streamed answers to HTTP/1.0 clients (which cannot read chunked framing).

use std::time::Duration;

use pingora_core::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;

use crate::config::settings::Lingering;
use crate::proxy::context::RequestCtx;

/// An HTTP/1.1 request whose client waits for `100 Continue` before it sends its body.
pub fn expects_continue(req: &RequestHeader) -> bool {
    req.version == http::Version::HTTP_11
        && req.headers.get(http::header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Whether the client is still waiting for `100 Continue`, so it has not sent its body.
pub fn awaits_continue(session: &mut Session, ctx: &RequestCtx) -> bool {
    !ctx.body.continue_sent && expects_continue(session.req_header()) && !session.as_downstream_mut().is_body_done()
}

/// Just before the body is read (by the gateway, or by Pingora to forward it): tell a client
/// that waits for it to go on, once.
pub async fn send_continue(session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
    if !awaits_continue(session, ctx) {
        return Ok(());
    }
    ctx.body.continue_sent = true;
    // Pingora turns keep-alive off for any answer written before the body is read, this
    // interim one too; the final answer decides again.
    let keepalive = session.as_downstream().get_keepalive();
    session.as_downstream_mut().write_continue_response().await?;
    session.set_keepalive(keepalive);
    Ok(())
}

/// After an answer to a request whose body was not read whole: close like nginx's lingering
/// close. The answer is complete; the write side is closed (the client sees its end), and the
/// rest of the body is read and discarded — nothing kept — for at most `lingering_time`, with
/// at most `lingering_timeout` of silence and `lingering_max_size` bytes, so the client reads
/// the answer instead of a connection reset.
pub async fn linger(limits: Lingering, session: &mut Session) {
    if limits.time.is_zero() || session.as_downstream_mut().is_body_done() {
        return;
    }
    session.set_keepalive(None);
    session.as_downstream_mut().shutdown().await;
    let deadline = tokio::time::Instant::now() + limits.time;
    let mut left = limits.max_size;
    while left > 0 {
        let idle = deadline.saturating_duration_since(tokio::time::Instant::now()).min(limits.idle);
        if idle == Duration::ZERO {
            break;
        }
        match tokio::time::timeout(idle, session.read_request_body()).await {
            Ok(Ok(Some(b))) => left = left.saturating_sub(b.len() as u64),
            // The body is over, the client closed, or it went silent.
            _ => break,
        }
    }
}

/// A streamed (chunked) answer to an HTTP/1.0 client is sent raw and ended by closing the
/// connection (RFC 9112 §6.1: chunked framing is HTTP/1.1's). Pingora frames it chunked
/// whatever the client's version; without a length or coding it writes until close.
pub fn unchunk_for_http10(session: &mut Session, resp: &mut ResponseHeader) {
    if session.req_header().version < http::Version::HTTP_11
        && resp.headers.contains_key(http::header::TRANSFER_ENCODING)
    {
        resp.remove_header(&http::header::TRANSFER_ENCODING);
        resp.remove_header(&http::header::CONTENT_LENGTH);
        // The written header must say so: the Connection value is chosen before the framing.
        session.set_keepalive(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_continue_is_http_1_1_and_case_insensitive() {
        let mut req = RequestHeader::build("POST", b"/x", None).unwrap();
        assert!(!expects_continue(&req));
        req.insert_header("expect", "100-Continue").unwrap();
        assert!(expects_continue(&req));
        req.set_version(http::Version::HTTP_10);
        assert!(!expects_continue(&req));
        req.set_version(http::Version::HTTP_11);
        req.insert_header("expect", "something-else").unwrap();
        assert!(!expects_continue(&req));
    }
}
