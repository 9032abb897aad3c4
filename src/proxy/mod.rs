//! The proxy: Pingora's `ProxyHttp` implementation, the life of a request phase by phase. Each
//! hook is short and hands the work to [`phases`], which use the process [`state`] (what
//! survives configuration reloads), the request's [`context`], and answer refusals and failures
//! with [`errors`].

pub mod context;
pub mod errors;
pub mod head_timeout;
pub mod phases;
pub mod state;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use context::{ConnectionGuard, ErrorKind, RequestCtx};
use state::ProcessState;

/// The gateway as Pingora runs it: each hook hands its phase of the request to `phases`.
pub struct Proxy {
    pub shared: Arc<ProcessState>,
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        let s = &self.shared;
        let mut ctx = RequestCtx::new(s.current.load_full(), s.metrics.clone(), s.next_request_id());
        ctx.lingering = s.settings.lingering();
        ctx
    }

    fn init_downstream_modules(&self, _modules: &mut pingora_core::modules::http::HttpModules) {
        // No response compression: SSE must pass through as it comes.
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        if ctx.connection.is_none() {
            let ip = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
            ctx.connection = Some(ConnectionGuard::new(ctx.metrics.clone(), ip));
        }
        session.set_read_timeout(Some(self.shared.settings.client_body_timeout));
        // Answer pipelined requests in order instead of dropping them.
        session.as_downstream_mut().set_pipelining_enabled(true);
        if self.shared.draining.load(Ordering::Relaxed) {
            session.set_keepalive(None);
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let answered = phases::inbound::handle(&self.shared, session, ctx).await?;
        if !answered {
            // Going upstream: Pingora reads the body next, so a client waiting for
            // `100 Continue` may send it now.
            phases::edges::send_continue(session, ctx).await?;
        }
        Ok(answered)
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        phases::forward::choose_peer(&self.shared, session, ctx)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        phases::forward::rewrite_request(&self.shared, session, req, ctx)
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        phases::body::forward_chunk(&self.shared, session.req_header(), body, end_of_stream, ctx).await
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        phases::outbound::upstream_response(&self.shared, session, resp, ctx)
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        phases::outbound::response_headers(session, resp, ctx)
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        phases::outbound::response_chunk(&self.shared, body, end_of_stream, ctx);
        Ok(None)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        e: Box<pingora_core::Error>,
    ) -> Box<pingora_core::Error> {
        phases::failure::on_connect_error(&self.shared, ctx, e)
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<pingora_core::Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<pingora_core::Error> {
        phases::failure::on_proxy_error(&self.shared, peer, session, ctx, e, client_reused)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &pingora_core::Error, ctx: &mut RequestCtx) -> FailToProxy {
        phases::failure::answer(&self.shared, session, e, ctx).await
    }

    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, error: &pingora_core::Error) -> bool {
        if ctx.outcome.kind == Some(ErrorKind::ClientClosed) {
            // A client hanging up is the client's business (nginx logs it at info); the access
            // log records it as a 499.
            log::debug!("client closed the connection: {error}");
            return true;
        }
        // Refusals the gateway decided on are not errors of the gateway.
        ctx.outcome.error.as_ref().is_some_and(|e| e.status() < 500)
    }

    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        _ctx: &RequestCtx,
        _error: &pingora_core::Error,
        _context: pingora_proxy::ProxyWarnLogContext,
    ) -> bool {
        // Retries and failovers are counted in aigate_upstream_errors_total and the access log.
        true
    }

    fn request_summary(&self, session: &Session, ctx: &RequestCtx) -> String {
        // Pingora's summary prints the full URI, whose query may hold a key: log only the path.
        format!("{} {} request_id={}", session.req_header().method, ctx.routing.path, ctx.request_id.as_str())
    }

    async fn logging(&self, session: &mut Session, e: Option<&pingora_core::Error>, ctx: &mut RequestCtx) {
        phases::account::finish(&self.shared, session, e, ctx);
    }

    fn persist_connection_context(
        &self,
        _session: &Session,
        ctx: &RequestCtx,
    ) -> Option<Box<dyn std::any::Any + Send + Sync>> {
        ctx.connection.clone().map(|c| Box::new(c) as Box<dyn std::any::Any + Send + Sync>)
    }

    fn on_connection_reuse(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
        prev: Box<dyn std::any::Any + Send + Sync>,
    ) {
        if let Ok(guard) = prev.downcast::<Arc<ConnectionGuard>>() {
            ctx.connection = Some(*guard);
        }
    }
}
