//! Per-request state, carried through the proxy phases.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::ai::anthropic::answer::AnswerTranslator;
use crate::ai::chat_usage::UsageChunkFilter;
use crate::ai::provider::Dialect;
use crate::ai::response::StreamFacts;
use crate::ai::surface::{Operation, Records};
use crate::config::settings::Lingering;
use crate::core::secrets::Scrubber;
use crate::core::{ConsumerId, RouteId};
use crate::plugins::ai_proxy::request::RequestFacts;
use crate::plugins::ai_proxy::AiProxy;
use crate::plugins::ai_rate_limiting::Ticket;
use crate::plugins::auth::{Credential, CredentialLocation};
use crate::plugins::mcp_guard::GuardRecord;
use crate::plugins::mcp_proxy::McpProxy;
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
    /// A stream, read event by event as it passes (nothing of it kept).
    Sse(Box<StreamFacts>),
}

/// The LLM part of a request.
pub struct AiState {
    pub plugin: Arc<AiProxy>,
    pub target: usize,
    pub tried: Tried,
    /// The operation of the route's API this request is (decided before any upstream work).
    pub op: Operation,
    /// An inference call (create, compact, input_tokens): the body is checked and rewritten,
    /// the answer's usage counted.
    pub inference: bool,
    /// The model an Azure-style path names (`/openai/deployments/{model}/chat/completions`).
    pub path_model: Option<String>,
    pub facts: Option<RequestFacts>,
    /// The target the complete body was last rendered for.
    pub rendered_for: Option<usize>,
    /// ai-mcp-guard's decisions on this request.
    pub mcp: GuardRecord,
    /// The request hands MCP tools (or MCP items) to the model.
    pub has_mcp: bool,
    /// A chat stream sent upstream with `stream_options.include_usage` the client did not
    /// ask for: the usage chunk is removed from what the client receives.
    pub usage_added: bool,
}

/// What the gateway decided about one MCP message, for metrics and the access log.
pub struct McpEvent {
    pub method: Option<String>,
    pub tool: Option<String>,
    /// allowed, refused, narrowed, blocked, invalid, unknown_method, session_refused
    pub decision: &'static str,
}

/// How an MCP answer is being read.
#[derive(Default)]
pub enum McpAnswer {
    /// Passed through unread (no tool list or tool call in the request).
    #[default]
    Unread,
    /// An SSE answer, event by event (tool lists rewritten, call outcomes read).
    Events(crate::mcp::sse::EventSplitter),
    /// A JSON answer held whole (it may carry a tool list to filter), up to the limit.
    Held { chunks: Vec<Bytes>, len: usize, overflowed: bool },
    /// A JSON answer passed on as it comes, a copy kept (up to the limit) for call outcomes.
    Watched { chunks: Vec<Bytes>, len: usize, overflowed: bool },
}

/// The MCP part of a request (routes with ai-mcp-proxy).
pub struct McpState {
    pub plugin: Arc<McpProxy>,
    /// The MCP server's label: its service's name (metrics, pins, the log).
    pub server_label: String,
    /// What session ids are bound to: the service and the consumer.
    pub binding: String,
    /// The session id the server issued, unwrapped from the client's.
    pub upstream_session: Option<String>,
    /// Decisions on the request's messages.
    pub events: Vec<McpEvent>,
    /// `tools/call` requests forwarded: their id and tool, for outcomes and latency.
    pub calls: Vec<(serde_json::Value, String)>,
    /// Outcomes read from the answer: request id → success.
    pub outcomes: Vec<(serde_json::Value, bool)>,
    /// Ids of `tools/list` requests for a first page (no cursor): their answer is pinned.
    pub first_pages: Vec<serde_json::Value>,
    /// The request holds a `tools/list`: a JSON answer is held and filtered.
    pub lists: bool,
    pub answer: McpAnswer,
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

/// Everything the phases learn about one request, in groups by what it is about.
pub struct RequestCtx {
    /// The configuration this request is served by (a reload does not change it mid-request).
    pub generation: Arc<Generation>,
    pub metrics: Arc<Metrics>,
    pub connection: Option<Arc<ConnectionGuard>>,
    pub request_id: RequestId,
    /// The bounds of a lingering close after an early answer (from the settings).
    pub lingering: Lingering,
    pub routing: Routing,
    pub identity: Identity,
    pub body: RequestBody,
    /// The LLM part, on routes with ai-proxy.
    pub ai: Option<AiState>,
    /// The MCP part, on routes with ai-mcp-proxy.
    pub mcp: Option<Box<McpState>>,
    pub upstream: Upstream,
    pub timing: Timing,
    pub response: Response,
    pub outcome: Outcome,
    pub limits: Limits,
}

/// The rate limits and budgets in force on the request.
#[derive(Default)]
pub struct Limits {
    /// Headers the limits add to the answer (Kong's `RateLimit-*`, `X-AI-RateLimit-*`, …).
    pub headers: Vec<crate::plugins::limits::LimitHeader>,
    /// An admitted request's budget, charged with what it used when its answer completes.
    pub charge: Option<PendingCharge>,
    /// The limit that refused the request: plugin and window (the access log says it).
    pub refused_by: Option<(&'static str, String)>,
}

/// Whose budgets an admitted LLM request is charged to.
pub struct PendingCharge {
    /// Whom the route's ai-rate-limiting-advanced (for the request's consumer) charges.
    pub ticket: Ticket,
}

/// Where the request goes in the configuration.
#[derive(Default)]
pub struct Routing {
    /// The normalised path (what was routed is what goes upstream).
    pub path: String,
    pub route: Option<RouteId>,
    /// How much of the path the route's prefix or regex matched.
    pub matched_len: usize,
}

/// Who the caller is.
#[derive(Default)]
pub struct Identity {
    pub consumer: Option<ConsumerId>,
    /// How it proved it (for `X-Credential-Identifier`; never the secret).
    pub credential: Option<Credential>,
    /// An authentication plugin let it through as its `anonymous` consumer.
    pub anonymous: bool,
    /// Where an authentication plugin found the credential (the plugin's index in the route's
    /// authenticators), for it to strip before forwarding.
    pub credential_location: Option<(usize, CredentialLocation)>,
}

/// The request body, as far as the gateway has read it.
pub struct RequestBody {
    pub state: BodyState,
    /// The size limit in force (the gateway's, or the LLM plugin's own).
    pub limit: u64,
    /// Bytes read from the client so far.
    pub bytes: u64,
    /// `100 Continue` was sent to a client that asked for it.
    pub continue_sent: bool,
}

/// The upstream attempts.
#[derive(Default)]
pub struct Upstream {
    pub addr: Option<SocketAddr>,
    pub attempts: u32,
    /// When the current attempt's request was sent.
    pub started: Option<Instant>,
    /// From sending the request to the upstream's first byte.
    pub ttfb: Option<Duration>,
    /// The upstream answered a status that fails over; the next target is already chosen.
    pub failover_pending: bool,
    /// A pooled connection was closed under this request: its later attempts each use a new
    /// connection, closed after it.
    pub fresh: bool,
}

/// When the request arrived and when the gateway was done with it.
pub struct Timing {
    pub started: Instant,
    /// When the request was handed upstream (the gateway's own time ends there).
    pub gateway_done: Option<Instant>,
    /// When the gateway's own answer was written (a lingering close may follow).
    pub answered: Option<Instant>,
}

/// The answer, as it goes to the client.
pub struct Response {
    pub status: u16,
    pub bytes_out: u64,
    /// The side view kept for accounting.
    pub scan: ResponseScan,
    /// What a successful answer adds to the consumer's objects (when ownership applies).
    pub records: Option<Records>,
    /// The answer's own id was recorded already.
    pub id_recorded: bool,
    /// Item ids recorded from this answer (bounded).
    pub items_recorded: usize,
    /// Facts read from the response before its last bytes went out (MCP requests, budgets), so
    /// its approval requests are known, and its usage charged, before the client can act on it.
    pub early_facts: Option<crate::ai::response::ResponseFacts>,
    /// Masks the gateway's credentials in the answer (LLM routes).
    pub scrubber: Option<Scrubber>,
    /// The upstream's own id for the request (`x-request-id`), for the access log.
    pub upstream_request_id: Option<http::HeaderValue>,
    /// The wire format of the upstream's answer, for reading its usage.
    pub dialect: Dialect,
    /// An Anthropic answer translated for an OpenAI-format client (it also reads the usage).
    pub translation: Option<Box<AnswerTranslator>>,
    /// What the response tells later requests (owners, approvals, pins) is already remembered.
    pub remembered: bool,
    /// Removes the usage chunk the client did not ask for from a chat stream.
    pub usage_filter: Option<Box<UsageChunkFilter>>,
}

/// How the request ended, when not well.
#[derive(Default)]
pub struct Outcome {
    /// The gateway's own refusal or failure, to answer and to log.
    pub error: Option<GatewayError>,
    /// What the access log calls it.
    pub kind: Option<ErrorKind>,
}

/// The access log's `error`: the gateway's answer, or a client that left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The client went away before an answer; nobody to answer (a 499 in the logs).
    ClientClosed,
    /// The gateway answered with its own error ([`GatewayError::kind`]).
    Answered(&'static str),
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ClientClosed => "client_closed",
            ErrorKind::Answered(kind) => kind,
        }
    }
}

impl RequestCtx {
    pub fn client_ip(&self) -> Option<std::net::IpAddr> {
        self.connection.as_ref().and_then(|c| c.client_ip)
    }

    pub fn new(generation: Arc<Generation>, metrics: Arc<Metrics>, request_id: RequestId) -> RequestCtx {
        metrics.in_flight.inc();
        RequestCtx {
            generation,
            metrics,
            connection: None,
            request_id,
            lingering: Lingering::default(),
            routing: Routing::default(),
            identity: Identity::default(),
            body: RequestBody { state: BodyState::Passthrough, limit: u64::MAX, bytes: 0, continue_sent: false },
            ai: None,
            mcp: None,
            upstream: Upstream::default(),
            timing: Timing { started: Instant::now(), gateway_done: None, answered: None },
            response: Response {
                status: 0,
                bytes_out: 0,
                scan: ResponseScan::None,
                records: None,
                id_recorded: false,
                items_recorded: 0,
                early_facts: None,
                scrubber: None,
                upstream_request_id: None,
                dialect: Dialect::OpenAi,
                translation: None,
                remembered: false,
                usage_filter: None,
            },
            outcome: Outcome::default(),
            limits: Limits::default(),
        }
    }
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}
