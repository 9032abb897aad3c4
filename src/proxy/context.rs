//! Per-request state, carried through the proxy phases.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::ai::sse::SseScanner;
use crate::core::{ConsumerId, RouteId};
use crate::plugins::ai_proxy::request::RequestFacts;
use crate::plugins::ai_proxy::AiProxy;
use crate::plugins::auth::{Credential, CredentialLocation};
use crate::plugins::mcp_guard::GuardEvent;
use crate::proxy::errors::GatewayError;
use crate::proxy::state::{Generation, RequestId};
use crate::telemetry::metrics::Metrics;
use crate::upstream::balancer::Tried;

/// The request body, as far as the gateway has it.
#[derive(Default)]
pub enum BodyState {
    /// Not inspected: forwarded as Pingora reads it.
    #[default]
    Passthrough,
    /// Read whole before choosing an upstream; `upstream` is what the current attempt sends.
    Complete { original: Bytes, upstream: Bytes },
    /// Larger than the early window: the part read so far, the rest still arriving. It is held
    /// back from the upstream until complete and checked.
    Pending { chunks: Vec<Bytes>, len: usize },
    /// A pending body has been checked and released; it cannot be sent again.
    Released,
}

/// What the response is, for accounting.
pub enum ResponseScan {
    None,
    /// A JSON body: chunks kept (refcounted, no copy) up to the limit.
    Json {
        chunks: Vec<Bytes>,
        len: usize,
        overflowed: bool,
    },
    Sse(Box<SseScanner>),
}

/// The LLM part of a request.
pub struct AiState {
    pub plugin: Arc<AiProxy>,
    pub target: usize,
    pub tried: Tried,
    /// Inference request (POST to the API root): the body is checked and rewritten.
    pub inference: bool,
    /// Path after the route's prefix, appended to the target's path (`/resp_123/cancel`).
    pub suffix: String,
    pub facts: Option<RequestFacts>,
    /// The target the complete body was last rendered for.
    pub rendered_for: Option<usize>,
    /// ai-mcp-guard's decisions on this request.
    pub mcp_events: Vec<GuardEvent>,
    /// The request hands MCP tools (or MCP items) to the model.
    pub has_mcp: bool,
    pub started_at: Option<Instant>,
}

/// Counts client connections: one guard per connection, carried across its keep-alive
/// requests; the gauge goes down when the last holder drops it.
pub struct ConnectionGuard {
    metrics: Arc<Metrics>,
    /// The client's address, read once per connection (a getpeername each time otherwise).
    pub client_ip: Option<std::net::IpAddr>,
}

impl ConnectionGuard {
    pub fn new(metrics: Arc<Metrics>, client_ip: Option<std::net::IpAddr>) -> Arc<ConnectionGuard> {
        metrics.connections.inc();
        Arc::new(ConnectionGuard { metrics, client_ip })
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics.connections.dec();
    }
}

pub struct RequestCtx {
    pub started: Instant,
    pub generation: Arc<Generation>,
    pub metrics: Arc<Metrics>,
    pub connection: Option<Arc<ConnectionGuard>>,
    pub request_id: RequestId,
    pub path: String,
    pub route: Option<RouteId>,
    pub matched_len: usize,
    pub consumer: Option<ConsumerId>,
    pub credential: Option<Credential>,
    pub anonymous: bool,
    /// Where an authentication plugin found the credential (the plugin's index in the route's
    /// authenticators), for it to strip before forwarding.
    pub credential_location: Option<(usize, CredentialLocation)>,
    pub body: BodyState,
    pub body_limit: u64,
    pub body_bytes: u64,
    pub ai: Option<AiState>,
    pub upstream_addr: Option<SocketAddr>,
    pub attempts: u32,
    /// Set when the request is sent upstream (per attempt).
    pub upstream_started: Option<Instant>,
    pub gateway_done: Option<Instant>,
    pub upstream_ttfb: Option<std::time::Duration>,
    pub status: u16,
    pub bytes_out: u64,
    pub scan: ResponseScan,
    /// The gateway's own refusal or failure, to answer and to log.
    pub error: Option<GatewayError>,
    pub error_kind: Option<&'static str>,
    /// The upstream answered a status that fails over; the next target is already chosen.
    pub failover_pending: bool,
    /// The response creates a Responses object to record as the consumer's.
    pub record_owner: bool,
    /// Facts read from the response before its last bytes went out (MCP requests), so its
    /// approval requests are known before the client can answer them.
    pub early_facts: Option<crate::ai::response::ResponseFacts>,
}

impl RequestCtx {
    pub fn client_ip(&self) -> Option<std::net::IpAddr> {
        self.connection.as_ref().and_then(|c| c.client_ip)
    }

    pub fn new(generation: Arc<Generation>, metrics: Arc<Metrics>, request_id: RequestId) -> RequestCtx {
        metrics.in_flight.inc();
        RequestCtx {
            started: Instant::now(),
            generation,
            metrics,
            connection: None,
            request_id,
            path: String::new(),
            route: None,
            matched_len: 0,
            consumer: None,
            credential: None,
            anonymous: false,
            credential_location: None,
            body: BodyState::Passthrough,
            body_limit: u64::MAX,
            body_bytes: 0,
            ai: None,
            upstream_addr: None,
            attempts: 0,
            upstream_started: None,
            gateway_done: None,
            upstream_ttfb: None,
            status: 0,
            bytes_out: 0,
            scan: ResponseScan::None,
            error: None,
            error_kind: None,
            failover_pending: false,
            record_owner: false,
            early_facts: None,
        }
    }
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}
