//! Upstreams: where requests go (peers built from resolved addresses), whom we trust (TLS), how
//! LLM targets are balanced and kept healthy, and how upstream failures are named.

pub mod balancer;
pub mod resolver;
pub mod trust;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{ErrorSource, ErrorType};

use crate::core::{Endpoint, Timeouts};

/// What went wrong with an upstream, named in the answer and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    DnsFailure,
    ConnectRefused,
    ConnectTimeout,
    TlsFailure,
    ReadTimeout,
    WriteTimeout,
    ConnectionClosed,
    InvalidResponse,
    /// A compressed answer on a route whose answers are checked for the gateway's credentials.
    CompressedResponse,
    NoHealthyTarget,
    Other,
}

impl UpstreamFailure {
    pub fn kind(self) -> &'static str {
        match self {
            UpstreamFailure::DnsFailure => "dns_failure",
            UpstreamFailure::ConnectRefused => "connect_refused",
            UpstreamFailure::ConnectTimeout => "connect_timeout",
            UpstreamFailure::TlsFailure => "tls_failure",
            UpstreamFailure::ReadTimeout => "read_timeout",
            UpstreamFailure::WriteTimeout => "write_timeout",
            UpstreamFailure::ConnectionClosed => "upstream_closed",
            UpstreamFailure::InvalidResponse => "invalid_response",
            UpstreamFailure::CompressedResponse => "compressed_response",
            UpstreamFailure::NoHealthyTarget => "no_healthy_target",
            UpstreamFailure::Other => "upstream_error",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            UpstreamFailure::ConnectTimeout | UpstreamFailure::ReadTimeout | UpstreamFailure::WriteTimeout => 504,
            UpstreamFailure::NoHealthyTarget => 503,
            _ => 502,
        }
    }

    pub fn is_timeout(self) -> bool {
        matches!(self, UpstreamFailure::ConnectTimeout | UpstreamFailure::ReadTimeout | UpstreamFailure::WriteTimeout)
    }

    pub fn message(self) -> &'static str {
        match self {
            UpstreamFailure::DnsFailure => "The upstream host name could not be resolved",
            UpstreamFailure::ConnectRefused => "The upstream server refused the connection",
            UpstreamFailure::ConnectTimeout => "The upstream server is timed out (connect)",
            UpstreamFailure::TlsFailure => "The upstream server's TLS certificate or handshake was rejected",
            UpstreamFailure::ReadTimeout => "The upstream server is timed out (read)",
            UpstreamFailure::WriteTimeout => "The upstream server is timed out (write)",
            UpstreamFailure::ConnectionClosed => "The upstream server closed the connection",
            UpstreamFailure::InvalidResponse => "An invalid response was received from the upstream server",
            UpstreamFailure::CompressedResponse => {
                "The upstream answered with a compressed body, which the gateway cannot check for its credentials"
            }
            UpstreamFailure::NoHealthyTarget => "No healthy upstream target is available",
            UpstreamFailure::Other => "An error occurred while talking to the upstream server",
        }
    }
}

/// A peer for `endpoint` at a resolved address. Built from a `SocketAddr`, so nothing here
/// resolves names. TLS peers always send SNI and verify the certificate and host name, unless
/// the service disables `tls_verify`.
pub fn build_peer(
    addr: SocketAddr,
    endpoint: &Endpoint,
    timeouts: &Timeouts,
    idle: Duration,
    verify: bool,
) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, endpoint.tls, endpoint.host.clone());
    let o = &mut peer.options;
    o.connection_timeout = Some(timeouts.connect);
    o.total_connection_timeout = Some(timeouts.connect);
    o.read_timeout = Some(timeouts.read);
    o.write_timeout = Some(timeouts.write);
    o.idle_timeout = Some(idle);
    o.verify_cert = verify;
    o.verify_hostname = verify;
    peer
}

/// Name an upstream-side Pingora error.
pub fn classify(e: &pingora_core::Error) -> UpstreamFailure {
    use ErrorType::*;
    match e.etype() {
        ConnectTimedout | TLSHandshakeTimedout => UpstreamFailure::ConnectTimeout,
        ConnectRefused | ConnectNoRoute => UpstreamFailure::ConnectRefused,
        TLSHandshakeFailure | InvalidCert | HandshakeError | TLSWantX509Lookup => UpstreamFailure::TlsFailure,
        ReadTimedout => UpstreamFailure::ReadTimeout,
        WriteTimedout => UpstreamFailure::WriteTimeout,
        ConnectionClosed | ReadError | WriteError => UpstreamFailure::ConnectionClosed,
        InvalidHTTPHeader | H1Error | H2Error | InvalidH2 => UpstreamFailure::InvalidResponse,
        _ => UpstreamFailure::Other,
    }
}

/// Whether the error came from the upstream side (as opposed to the client or the gateway).
pub fn is_upstream(e: &pingora_core::Error) -> bool {
    matches!(e.esource(), ErrorSource::Upstream)
}

/// Whether an attempt failed the way a connection the upstream closed under the request fails,
/// before any byte of an answer: writing the request failed (`Broken pipe`, a reset), or reading
/// found the end of the stream or a reset with nothing of a response header read — TLS closes
/// without `close_notify` included, which Pingora itself never retries. On a reused (pooled)
/// connection that means the upstream closed it while idle, as its keep-alive timeout struck,
/// and never saw the request. Timeouts are not this: a slow upstream may be working on it.
pub fn closed_before_answer(e: &pingora_core::Error) -> bool {
    use ErrorType::*;
    if !is_upstream(e) || !matches!(e.etype(), ConnectionClosed | ReadError | WriteError) {
        return false;
    }
    // Pingora says how much of a response header it had read when a read failed.
    let mut at = Some(e);
    while let Some(err) = at {
        if let Some(ctx) = &err.context {
            if header_bytes_read(ctx.as_str()).is_some_and(|n| n > 0) {
                return false;
            }
        }
        at = err.cause.as_ref().and_then(|c| c.downcast_ref::<Box<pingora_core::Error>>()).map(|b| &**b);
    }
    true
}

/// `N` in Pingora's "while reading response headers, bytes already read: N".
fn header_bytes_read(context: &str) -> Option<usize> {
    let at = context.find("bytes already read: ")? + "bytes already read: ".len();
    let digits = context[at..].bytes().take_while(u8::is_ascii_digit).count();
    context[at..at + digits].parse().ok()
}

/// Make the peer's attempt use a new connection, not a pooled one: a group key no pooled
/// connection has (the pool is looked up by a hash that includes it). The attempt's request
/// then asks for the connection to be closed after it, since nobody could reuse it.
pub fn use_fresh_connection(peer: &mut HttpPeer) {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    peer.group_key = NEXT.fetch_add(1, Ordering::Relaxed) | (1 << 63);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_verify_and_time_out() {
        let e = Endpoint { tls: true, host: "api.openai.com".into(), port: 443, path: "/".into() };
        let t =
            Timeouts { connect: Duration::from_secs(1), read: Duration::from_secs(2), write: Duration::from_secs(3) };
        let p = build_peer("127.0.0.1:9443".parse().unwrap(), &e, &t, Duration::from_secs(60), true);
        assert_eq!(p.sni, "api.openai.com");
        assert!(p.options.verify_cert && p.options.verify_hostname);
        assert_eq!(p.options.read_timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn a_close_before_any_answer_byte_is_told_from_a_cut_answer() {
        use pingora_core::Error;
        let up = |t: ErrorType, context: &'static str| {
            let mut e = Error::explain(t, context);
            e.esource = ErrorSource::Upstream;
            e
        };
        assert!(closed_before_answer(&up(ErrorType::WriteError, "while writing body")));
        assert!(closed_before_answer(&up(
            ErrorType::ConnectionClosed,
            "while reading response headers, bytes already read: 0"
        )));
        let tls_eof = up(ErrorType::ReadError, "while reading response headers, bytes already read: 0");
        assert!(closed_before_answer(&tls_eof.more_context("peer 127.0.0.1:443")));
        // Part of a header had arrived: the upstream saw the request.
        let partial = up(ErrorType::ReadError, "while reading response headers, bytes already read: 17");
        assert!(!closed_before_answer(&partial.more_context("peer 127.0.0.1:443")));
        // Timeouts, invalid answers and the client's side are something else.
        assert!(!closed_before_answer(&up(ErrorType::ReadTimedout, "read")));
        assert!(!closed_before_answer(&up(ErrorType::InvalidHTTPHeader, "bad")));
        assert!(!closed_before_answer(&Error::explain(ErrorType::WriteError, "client went away")));
        let mut peer = HttpPeer::new("127.0.0.1:443", true, "api.openai.com".into());
        use_fresh_connection(&mut peer);
        let first = peer.group_key;
        use_fresh_connection(&mut peer);
        assert!(first != 0 && peer.group_key != first);
    }

    #[test]
    fn failures_are_named() {
        let e = pingora_core::Error::new(ErrorType::ConnectRefused);
        assert_eq!(classify(&e), UpstreamFailure::ConnectRefused);
        assert_eq!(classify(&pingora_core::Error::new(ErrorType::InvalidCert)), UpstreamFailure::TlsFailure);
        assert_eq!(classify(&pingora_core::Error::new(ErrorType::ReadTimedout)), UpstreamFailure::ReadTimeout);
    }
}
