//! Upstreams: where requests go (peers built from resolved addresses), whom we trust (TLS), how
//! LLM targets are balanced and kept healthy, and how upstream failures are named.

pub mod balancer;
pub mod resolver;
pub mod trust;

use std::net::SocketAddr;
use std::time::Duration;

use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{ErrorSource, ErrorType};

use crate::core::{Endpoint, Timeouts};
use crate::errors::UpstreamFailure;

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
    fn failures_are_named() {
        let e = pingora_core::Error::new(ErrorType::ConnectRefused);
        assert_eq!(classify(&e), UpstreamFailure::ConnectRefused);
        assert_eq!(classify(&pingora_core::Error::new(ErrorType::InvalidCert)), UpstreamFailure::TlsFailure);
        assert_eq!(classify(&pingora_core::Error::new(ErrorType::ReadTimedout)), UpstreamFailure::ReadTimeout);
    }
}
