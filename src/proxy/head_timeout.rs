//! `client_header_timeout`: how long a client may stay silent while sending a request head.
//!
//! Pingora reads every request head, the first on a connection included, under the session's
//! keep-alive timer, which it sets to a fixed 60 s for a new connection before any `ProxyHttp`
//! hook runs. This wraps the proxy application to set that timer from the settings on every
//! session it is handed: a client that sends part of a head and then stalls (slowloris) is
//! dropped after `client_header_timeout`, and so is an idle keep-alive connection. The timer
//! applies to each read, as Pingora has no overall deadline for a head.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;

pub struct HeadTimeout<A> {
    inner: Arc<A>,
    /// Whole seconds, at least 1 (Pingora's keep-alive timer is in seconds; 0 means none).
    seconds: u64,
}

impl<A> HeadTimeout<A> {
    pub fn new(inner: A, seconds: u64) -> Self {
        HeadTimeout { inner: Arc::new(inner), seconds: seconds.max(1) }
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> HttpServerApp for HeadTimeout<A> {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        // A connection Pingora marked as not to be reused (shutting down) stays so; its head
        // is read under the read timeout instead (replaced by `client_body_timeout` once the
        // head is in).
        if !*shutdown.borrow() && session.get_keepalive().is_some() {
            session.set_keepalive(Some(self.seconds));
        }
        session.set_read_timeout(Some(Duration::from_secs(self.seconds)));
        self.inner.process_new_http(session, shutdown).await
    }

    fn h2_options(&self) -> Option<pingora_core::protocols::http::v2::server::H2Options> {
        self.inner.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.inner.server_options()
    }

    async fn http_cleanup(&self) {
        self.inner.http_cleanup().await
    }

    async fn process_custom_session(self: Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        self.inner.clone().process_custom_session(stream, shutdown).await
    }
}
