//! Prometheus metrics. Families are registered once in a registry of our own; the handles a
//! request needs are resolved once per (route, consumer) and per (LLM target, consumer) and then
//! reused, so the request path does no label hashing. Every label value is bounded by
//! configuration: consumers and routes are configured names, unknown MCP servers and tools beyond
//! a cap are counted as `other`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::Duration;

use prometheus::{
    Counter, CounterVec, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

use crate::ai::response::{McpItem, Usage};
use crate::core::ConsumerId;

/// Buckets from 100 µs (the gateway's own work) to 5 min (long streams).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// Distinct MCP server labels, and tool names per server, before `other` is used.
pub const MAX_MCP_SERVERS: usize = 64;
pub const MAX_MCP_TOOLS_PER_SERVER: usize = 64;

pub struct Metrics {
    pub registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    upstream_ttfb: HistogramVec,
    gateway_latency: HistogramVec,
    bandwidth: IntCounterVec,
    auth_failures: IntCounterVec,
    upstream_errors: IntCounterVec,
    llm_requests: IntCounterVec,
    llm_tokens: IntCounterVec,
    llm_usage_missing: IntCounterVec,
    llm_cost: CounterVec,
    mcp_calls: IntCounterVec,
    mcp_call_duration: HistogramVec,
    mcp_list_tools: IntCounterVec,
    mcp_approval_requests: IntCounterVec,
    pub mcp_guard_decisions: IntCounterVec,
    pub mcp_tool_list_changes: IntCounterVec,
    pub in_flight: IntGauge,
    pub connections: IntGauge,
    pub config_reloads: IntCounterVec,
    pub config_last_reload: Gauge,
    pub access_log_dropped: IntCounter,
    pub target_health_changes: IntCounterVec,
    ratelimit_decisions: IntCounterVec,
    ratelimit_remaining: GaugeVec,
    ratelimit_backend_errors: [IntCounter; 2],
    cluster_store_errors: IntCounterVec,
    mcp_labels: Mutex<HashMap<String, HashSet<String>>>,
}

/// The two rate-limiting plugins, as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitPlugin {
    RateLimiting = 0,
    AiRateLimiting = 1,
}

impl LimitPlugin {
    /// The plugin's decK name.
    pub fn name(self) -> &'static str {
        match self {
            LimitPlugin::RateLimiting => "rate-limiting",
            LimitPlugin::AiRateLimiting => "ai-rate-limiting-advanced",
        }
    }
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Metric definitions are constants; a failure here is a programming error found by tests.
    match r {
        Ok(v) => v,
        Err(e) => panic!("metric definition rejected: {e}"),
    }
}

impl Metrics {
    pub fn new(version: &str) -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = must(IntCounterVec::new(Opts::new(name, help), labels));
            must(registry.register(Box::new(c.clone())));
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let h = must(HistogramVec::new(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()), labels));
            must(registry.register(Box::new(h.clone())));
            h
        };
        let rc = &["service", "route", "consumer"];
        let m = Metrics {
            requests: counter("aigate_http_requests_total", "HTTP requests answered, by service, route, consumer and status code.", &["service", "route", "consumer", "code"]),
            request_duration: histogram("aigate_http_request_duration_seconds", "Time from the request's arrival to the end of its response, in seconds.", rc),
            upstream_ttfb: histogram("aigate_upstream_ttfb_seconds", "Time from sending the request upstream to the first byte of the upstream's response, in seconds.", rc),
            gateway_latency: histogram("aigate_gateway_latency_seconds", "Time the gateway spent on a request before handing it to the upstream (routing, authentication, body checks), in seconds; the whole answer time for requests the gateway answered itself.", rc),
            bandwidth: counter("aigate_http_bandwidth_bytes_total", "Body bytes received from clients (ingress) and sent to them (egress).", &["service", "route", "consumer", "direction"]),
            auth_failures: counter("aigate_auth_failures_total", "Requests refused by authentication or authorization, by route and reason.", &["route", "reason"]),
            upstream_errors: counter("aigate_upstream_errors_total", "Failed upstream attempts, by service, route and kind of failure.", &["service", "route", "kind"]),
            llm_requests: counter("aigate_llm_requests_total", "LLM requests, by consumer, provider, model, route type, mode (oneshot or stream) and status code.", &["consumer", "provider", "model", "route_type", "mode", "status"]),
            llm_tokens: counter("aigate_llm_tokens_total", "Tokens exactly as the provider's usage reported them, by type (input, output, total, cached, cache_write, reasoning); input includes cached and cache_write tokens for every provider.", &["consumer", "provider", "model", "token_type"]),
            llm_usage_missing: counter("aigate_llm_usage_missing_total", "Successful LLM responses whose usage was absent or unreadable; their tokens are not guessed.", &["consumer", "provider", "model", "mode"]),
            llm_cost: {
                let c = must(CounterVec::new(Opts::new("aigate_llm_cost_total", "Cost of the tokens used, from model.options input_cost and output_cost (per million tokens)."), &["consumer", "provider", "model"]));
                must(registry.register(Box::new(c.clone())));
                c
            },
            mcp_calls: counter("aigate_mcp_calls_total", "MCP tool calls for a consumer, by server label, tool, outcome (success, error, denied) and source (hosted: the provider called the tool, read from mcp_call items; proxied: the client called it through ai-mcp-proxy).", &["consumer", "server_label", "tool", "outcome", "source"]),
            mcp_call_duration: histogram("aigate_mcp_call_duration_seconds", "Time from a tools/call request's arrival to the end of its answer through ai-mcp-proxy, in seconds, by server label and tool.", &["server_label", "tool"]),
            mcp_list_tools: counter("aigate_mcp_list_tools_total", "MCP tool listings the provider made for a consumer (mcp_list_tools items).", &["consumer", "server_label"]),
            mcp_approval_requests: counter("aigate_mcp_approval_requests_total", "MCP approval requests the provider returned (mcp_approval_request items).", &["consumer", "server_label", "tool"]),
            mcp_guard_decisions: counter("aigate_mcp_guard_decisions_total", "ai-mcp-guard decisions on MCP tools in requests: allowed, narrowed, refused, injected, approval_forced.", &["consumer", "server_label", "decision"]),
            mcp_tool_list_changes: counter("aigate_mcp_tool_list_changes_total", "Changes of a pinned MCP server's tool list digest.", &["server_label", "action"]),
            in_flight: {
                let g = must(IntGauge::new("aigate_http_requests_in_flight", "Requests being processed."));
                must(registry.register(Box::new(g.clone())));
                g
            },
            connections: {
                let g = must(IntGauge::new("aigate_http_connections_active", "Client connections that have sent at least one request and are still open."));
                must(registry.register(Box::new(g.clone())));
                g
            },
            config_reloads: counter("aigate_config_reloads_total", "Configuration reloads, by result (success or failure).", &["result"]),
            config_last_reload: {
                let g = must(Gauge::new("aigate_config_last_reload_success_timestamp_seconds", "Unix time of the last successful configuration load."));
                must(registry.register(Box::new(g.clone())));
                g
            },
            access_log_dropped: {
                let c = must(IntCounter::new("aigate_access_log_dropped_total", "Access log lines dropped because the writer could not keep up."));
                must(registry.register(Box::new(c.clone())));
                c
            },
            target_health_changes: counter("aigate_llm_target_health_changes_total", "LLM targets taken out after repeated failures (state down) or put back (state up).", &["provider", "model", "state"]),
            ratelimit_decisions: counter("aigate_ratelimit_decisions_total", "Rate-limit and budget decisions, by consumer, plugin and decision (allowed or limited).", &["consumer", "plugin", "decision"]),
            ratelimit_remaining: {
                let g = must(GaugeVec::new(Opts::new("aigate_ratelimit_remaining", "What a consumer has left in a window, as this gateway counts it when scraped: requests (rate-limiting), tokens or cost (ai-rate-limiting-advanced); window as in the plugin's headers (minute, minute-openai). Limits counted by consumer only."), &["consumer", "plugin", "window"]));
                must(registry.register(Box::new(g.clone())));
                g
            },
            ratelimit_backend_errors: {
                let c = counter("aigate_ratelimit_backend_errors_total", "Requests whose limits were decided without the shared counters (Redis failed, timed out or is known down: fault-tolerant plugins count on this node), or answered 500 for it (fault_tolerant false).", &["plugin"]);
                [c.with_label_values(&["rate-limiting"]), c.with_label_values(&["ai-rate-limiting-advanced"])]
            },
            cluster_store_errors: counter("aigate_cluster_store_errors_total", "Failed reads and writes of the cluster store on Redis (cluster_redis), by store (ownership, pins).", &["store"]),
            registry,
            mcp_labels: Mutex::new(HashMap::new()),
        };
        let build = must(IntGaugeVec::new(
            Opts::new("aigate_build_info", "Build information; the value is always 1."),
            &["version"],
        ));
        must(m.registry.register(Box::new(build.clone())));
        build.with_label_values(&[version]).set(1);
        m
    }

    /// Handles for one (route, consumer) pair. `route`/`service` are "" for unrouted requests.
    pub fn route_handles(&self, service: &str, route: &str, consumer: &str) -> RouteHandles {
        let l = &[service, route, consumer];
        RouteHandles {
            labels: [service.to_string(), route.to_string(), consumer.to_string()],
            codes: Default::default(),
            duration: self.request_duration.with_label_values(l),
            ttfb: self.upstream_ttfb.with_label_values(l),
            gateway: self.gateway_latency.with_label_values(l),
            ingress: self.bandwidth.with_label_values(&[service, route, consumer, "ingress"]),
            egress: self.bandwidth.with_label_values(&[service, route, consumer, "egress"]),
        }
    }

    pub fn requests_counter(&self, labels: &[String; 3], code: u16) -> IntCounter {
        let code = code.to_string();
        self.requests.with_label_values(&[&labels[0], &labels[1], &labels[2], &code])
    }

    pub fn auth_failure(&self, route: &str, reason: &str) {
        self.auth_failures.with_label_values(&[route, reason]).inc();
    }

    pub fn upstream_error(&self, service: &str, route: &str, kind: &str) {
        self.upstream_errors.with_label_values(&[service, route, kind]).inc();
    }

    /// Handles for one (LLM target, consumer) pair.
    pub fn llm_handles(&self, consumer: &str, provider: &str, model: &str, route_type: &str) -> LlmHandles {
        let tok = |t: &str| self.llm_tokens.with_label_values(&[consumer, provider, model, t]);
        LlmHandles {
            labels: [consumer.to_string(), provider.to_string(), model.to_string(), route_type.to_string()],
            input: tok("input"),
            output: tok("output"),
            total: tok("total"),
            cached: tok("cached"),
            cache_write: tok("cache_write"),
            reasoning: tok("reasoning"),
            ok_oneshot: OnceLock::new(),
            ok_stream: OnceLock::new(),
            missing_oneshot: self.llm_usage_missing.with_label_values(&[consumer, provider, model, "oneshot"]),
            missing_stream: self.llm_usage_missing.with_label_values(&[consumer, provider, model, "stream"]),
            cost: self.llm_cost.with_label_values(&[consumer, provider, model]),
        }
    }

    pub fn llm_request(&self, h: &LlmHandles, stream: bool, status: u16) {
        if status == 200 {
            let slot = if stream { &h.ok_stream } else { &h.ok_oneshot };
            slot.get_or_init(|| {
                let [c, p, m, rt] = &h.labels;
                let mode = if stream { "stream" } else { "oneshot" };
                self.llm_requests.with_label_values(&[c.as_str(), p, m, rt, mode, "200"])
            })
            .inc();
            return;
        }
        let mode = if stream { "stream" } else { "oneshot" };
        let status = status.to_string();
        let [c, p, m, rt] = &h.labels;
        self.llm_requests.with_label_values(&[c, p, m, rt, mode, &status]).inc();
    }

    /// Handles for one (consumer, limit plugin) pair.
    /// A plugin instance's handles for one consumer (`None`: requests without one, which
    /// have no remaining-budget gauges), with a gauge per window in `windows`' order.
    pub fn limit_handles(&self, consumer: Option<&str>, plugin: LimitPlugin, windows: &[&str]) -> LimitHandles {
        let label = consumer.unwrap_or("");
        let remaining = match consumer {
            Some(c) => {
                windows.iter().map(|w| self.ratelimit_remaining.with_label_values(&[c, plugin.name(), w])).collect()
            }
            None => Vec::new(),
        };
        LimitHandles {
            allowed_total: self.ratelimit_decisions.with_label_values(&[label, plugin.name(), "allowed"]),
            limited: self.ratelimit_decisions.with_label_values(&[label, plugin.name(), "limited"]),
            remaining,
        }
    }

    /// A request whose limits were decided without the shared counters.
    pub fn limit_backend_error(&self, plugin: LimitPlugin) {
        self.ratelimit_backend_errors[plugin as usize].inc();
    }

    /// A failed read or write of the cluster store (`ownership`, `pins`).
    pub fn cluster_store_error(&self, store: &str) -> IntCounter {
        self.cluster_store_errors.with_label_values(&[store])
    }

    /// Count the MCP items of a response for a consumer, with bounded labels.
    pub fn mcp_items(&self, consumer: &str, items: &[McpItem]) {
        for item in items {
            match item {
                McpItem::Call { server_label, tool, ok } => {
                    let (server, tool) = self.bounded_mcp_labels(server_label, tool);
                    let outcome = if *ok { "success" } else { "error" };
                    self.mcp_calls.with_label_values(&[consumer, &server, &tool, outcome, "hosted"]).inc();
                }
                McpItem::ListTools { server_label, .. } => {
                    let (server, _) = self.bounded_mcp_labels(server_label, "");
                    self.mcp_list_tools.with_label_values(&[consumer, &server]).inc();
                }
                McpItem::ApprovalRequest { server_label, tool, .. } => {
                    let (server, tool) = self.bounded_mcp_labels(server_label, tool);
                    self.mcp_approval_requests.with_label_values(&[consumer, &server, &tool]).inc();
                }
            }
        }
    }

    /// A tool call made through ai-mcp-proxy (`tool` already bounded by the caller).
    pub fn mcp_proxied_call(&self, consumer: &str, server: &str, tool: &str, outcome: &str, took: Option<Duration>) {
        self.mcp_calls.with_label_values(&[consumer, server, tool, outcome, "proxied"]).inc();
        if let Some(d) = took {
            self.mcp_call_duration.with_label_values(&[server, tool]).observe(d.as_secs_f64());
        }
    }

    /// Whether `tool` is a label already in use for `server` (a tool its server listed).
    pub fn mcp_tool_known(&self, server: &str, tool: &str) -> bool {
        self.mcp_labels.lock().is_ok_and(|seen| seen.get(server).is_some_and(|t| t.contains(tool)))
    }

    /// A server label as a metric label if it already is one, else `other` — for labels that
    /// must not take one of the capped places (servers the guard refused and does not know).
    pub fn known_mcp_label(&self, server: &str) -> String {
        match self.mcp_labels.lock() {
            Ok(seen) if seen.contains_key(server) => server.to_string(),
            _ => "other".into(),
        }
    }

    /// A server label and tool name as metric labels: kept while under the caps, else `other`.
    pub fn bounded_mcp_labels(&self, server: &str, tool: &str) -> (String, String) {
        let Ok(mut seen) = self.mcp_labels.lock() else {
            return ("other".into(), "other".into());
        };
        let server_known = seen.contains_key(server);
        if !server_known && seen.len() >= MAX_MCP_SERVERS {
            return ("other".into(), "other".into());
        }
        let tools = seen.entry(server.to_string()).or_default();
        if tool.is_empty() {
            return (server.to_string(), String::new());
        }
        if tools.contains(tool) || tools.len() < MAX_MCP_TOOLS_PER_SERVER {
            tools.insert(tool.to_string());
            (server.to_string(), tool.to_string())
        } else {
            (server.to_string(), "other".into())
        }
    }

    /// The exposition text.
    pub fn render(&self) -> Vec<u8> {
        use prometheus::Encoder;
        let mut out = Vec::with_capacity(64 * 1024);
        let encoder = prometheus::TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut out) {
            log::error!("encoding metrics failed: {e}");
        }
        out
    }
}

/// Status codes with a pre-resolved counter; others are looked up when they happen.
const COMMON_CODES: [u16; 16] = [200, 201, 204, 400, 401, 403, 404, 408, 413, 429, 431, 499, 500, 502, 503, 504];

pub struct RouteHandles {
    labels: [String; 3],
    codes: [OnceLock<IntCounter>; 16],
    duration: Histogram,
    ttfb: Histogram,
    gateway: Histogram,
    ingress: IntCounter,
    egress: IntCounter,
}

/// What one finished request contributes to the per-route metrics.
pub struct RequestRecord {
    pub status: u16,
    pub total: Duration,
    pub upstream_ttfb: Option<Duration>,
    pub gateway: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl RouteHandles {
    pub fn record(&self, metrics: &Metrics, r: &RequestRecord) {
        match COMMON_CODES.iter().position(|&c| c == r.status) {
            Some(i) => self.codes[i].get_or_init(|| metrics.requests_counter(&self.labels, r.status)).inc(),
            None => metrics.requests_counter(&self.labels, r.status).inc(),
        }
        self.duration.observe(r.total.as_secs_f64());
        if let Some(t) = r.upstream_ttfb {
            self.ttfb.observe(t.as_secs_f64());
        }
        self.gateway.observe(r.gateway.as_secs_f64());
        if r.bytes_in > 0 {
            self.ingress.inc_by(r.bytes_in);
        }
        if r.bytes_out > 0 {
            self.egress.inc_by(r.bytes_out);
        }
    }
}

pub struct LlmHandles {
    labels: [String; 4],
    ok_oneshot: OnceLock<IntCounter>,
    ok_stream: OnceLock<IntCounter>,
    input: IntCounter,
    output: IntCounter,
    total: IntCounter,
    cached: IntCounter,
    cache_write: IntCounter,
    reasoning: IntCounter,
    missing_oneshot: IntCounter,
    missing_stream: IntCounter,
    cost: Counter,
}

impl LlmHandles {
    pub fn usage(&self, u: &Usage, input_cost: Option<f64>, output_cost: Option<f64>) {
        self.input.inc_by(u.input);
        self.output.inc_by(u.output);
        self.total.inc_by(u.total);
        self.cached.inc_by(u.cached);
        self.cache_write.inc_by(u.cache_write);
        self.reasoning.inc_by(u.reasoning);
        let cost =
            input_cost.unwrap_or(0.0) * u.input as f64 / 1e6 + output_cost.unwrap_or(0.0) * u.output as f64 / 1e6;
        if cost > 0.0 {
            self.cost.inc_by(cost);
        }
    }

    pub fn usage_missing(&self, stream: bool) {
        if stream {
            self.missing_stream.inc();
        } else {
            self.missing_oneshot.inc();
        }
    }
}

/// A consumer's decision counters for one limit plugin, and its remaining-budget gauges (one
/// per configured window: labels bounded by the configuration).
pub struct LimitHandles {
    /// Admitted requests, as exported: counted on the request path in [`LimitMetrics`] and
    /// added here when scraped, and when the plugin instance is dropped (after a reload).
    allowed_total: IntCounter,
    limited: IntCounter,
    /// One gauge per window of the plugin instance, in its order.
    remaining: Vec<Gauge>,
}

impl LimitHandles {
    /// The remaining-budget gauges, in the plugin's window order (set when scraped, never on
    /// the request path).
    pub fn remaining(&self) -> &[Gauge] {
        &self.remaining
    }
}

/// A limit plugin instance's metrics: each consumer's handles, made on its first decision,
/// and the requests admitted since the last scrape, counted per worker thread in dense
/// arrays of their own.
///
/// The admitted count is the one a request always writes. Kept in the consumer's handles, it
/// cost a chain of cold loads per decision (the handles, then their count's line) and, when
/// both workers counted the same consumer, moved that line between their caches. A thread's
/// counts of all consumers here fit in a few pages that stay in its cache.
pub struct LimitMetrics {
    handles: HandleTable<LimitHandles>,
    /// A line per worker thread: its counts by consumer slot, in chunks made on first use (an
    /// instance that sees few consumers holds few).
    allowed: Box<[Line]>,
}

type Line = Box<[OnceLock<Box<Chunk>>]>;

const CHUNK: usize = 1024;
type Chunk = [AtomicU32; CHUNK];

/// Lines of counts per plugin instance: one per core (at most 8); threads beyond share them
/// (still exact: the counts are atomic).
static LINES: LazyLock<usize> =
    LazyLock::new(|| std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8));

impl LimitMetrics {
    pub fn new(consumers: usize) -> LimitMetrics {
        let handles = HandleTable::new(consumers);
        let chunks = handles.slots.len().div_ceil(CHUNK);
        let allowed = (0..*LINES).map(|_| (0..chunks).map(|_| OnceLock::new()).collect()).collect();
        LimitMetrics { handles, allowed }
    }

    /// One more request admitted for `consumer` (`None`: requests without one), exported at
    /// the next [`LimitMetrics::fold`]. The consumer's handles are made by `make` on its first
    /// decision, and not read here.
    pub fn allow(&self, consumer: Option<ConsumerId>, make: impl FnOnce() -> LimitHandles) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local!(static LINE: usize = NEXT.fetch_add(1, Ordering::Relaxed));
        self.handles.get_ref(consumer, make);
        let slot = self.handles.slot_of(consumer);
        let line = &self.allowed[LINE.with(|l| *l) % self.allowed.len()];
        if let Some(chunk) = line.get(slot / CHUNK) {
            let chunk = chunk.get_or_init(|| Box::new([const { AtomicU32::new(0) }; CHUNK]));
            chunk[slot % CHUNK].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One more request refused for `consumer`.
    pub fn limit(&self, consumer: Option<ConsumerId>, make: impl FnOnce() -> LimitHandles) {
        self.handles.get_ref(consumer, make).limited.inc();
    }

    /// Add the requests admitted since the last fold to the exported counters.
    pub fn fold(&self) {
        for line in self.allowed.iter() {
            for (c, chunk) in line.iter().enumerate() {
                let Some(chunk) = chunk.get() else { continue };
                for (i, n) in chunk.iter().enumerate() {
                    if n.load(Ordering::Relaxed) == 0 {
                        continue;
                    }
                    let n = n.swap(0, Ordering::Relaxed);
                    if let Some(h) = self.handles.slots.get(c * CHUNK + i).and_then(|s| s.get()) {
                        h.allowed_total.inc_by(u64::from(n));
                    }
                }
            }
        }
    }

    /// The consumers whose handles were made so far: (consumer index, handles).
    pub fn filled(&self) -> impl Iterator<Item = (usize, &Arc<LimitHandles>)> {
        self.handles.filled()
    }
}

impl Drop for LimitMetrics {
    fn drop(&mut self) {
        self.fold();
    }
}

/// A lazily filled table of handles, one slot per consumer plus one for "no consumer".
pub struct HandleTable<T> {
    slots: Vec<OnceLock<Arc<T>>>,
}

impl<T> HandleTable<T> {
    pub fn new(consumers: usize) -> HandleTable<T> {
        HandleTable { slots: (0..=consumers).map(|_| OnceLock::new()).collect() }
    }

    pub fn get(&self, consumer: Option<ConsumerId>, make: impl FnOnce() -> T) -> Arc<T> {
        self.get_ref(consumer, make).clone()
    }

    /// The consumers' slots filled so far: (consumer index, handles); the "no consumer" slot
    /// is not listed.
    pub fn filled(&self) -> impl Iterator<Item = (usize, &Arc<T>)> {
        let consumers = self.slots.len() - 1;
        self.slots[..consumers].iter().enumerate().filter_map(|(i, s)| s.get().map(|h| (i, h)))
    }

    /// The handles without taking a reference count (for use within the request's phase).
    pub fn get_ref(&self, consumer: Option<ConsumerId>, make: impl FnOnce() -> T) -> &Arc<T> {
        self.slots[self.slot_of(consumer)].get_or_init(|| Arc::new(make()))
    }

    /// A consumer's slot: its index, or the last one for "no consumer" (and out of range).
    fn slot_of(&self, consumer: Option<ConsumerId>) -> usize {
        let last = self.slots.len() - 1;
        consumer.map_or(last, |c| c.index().min(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admitted_requests_counted_by_several_threads_are_all_exported() {
        let m = Arc::new(Metrics::new("0.1.0"));
        // 2,000 consumers: their counts span two chunks.
        let lm = Arc::new(LimitMetrics::new(2000));
        let alex = Some(ConsumerId::new(1500));
        let handles = || m.limit_handles(Some("alex"), LimitPlugin::RateLimiting, &["minute"]);
        let line = r#"aigate_ratelimit_decisions_total{consumer="alex",decision="allowed",plugin="rate-limiting"}"#;
        let shown = |m: &Metrics| {
            let text = String::from_utf8(m.render()).unwrap();
            text.lines().find(|l| l.starts_with(line)).map(|l| l[line.len()..].trim().to_string())
        };
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (lm, m) = (Arc::clone(&lm), Arc::clone(&m));
                std::thread::spawn(move || {
                    let handles = || m.limit_handles(Some("alex"), LimitPlugin::RateLimiting, &["minute"]);
                    (0..1000).for_each(|_| lm.allow(alex, handles));
                    lm.allow(None, || m.limit_handles(None, LimitPlugin::RateLimiting, &[]));
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        // Not exported until folded (a scrape folds first).
        assert_eq!(shown(&m).as_deref(), Some("0"));
        lm.fold();
        assert_eq!(shown(&m).as_deref(), Some("4000"));
        lm.fold();
        assert_eq!(shown(&m).as_deref(), Some("4000"));
        let anonymous = r#"aigate_ratelimit_decisions_total{consumer="",decision="allowed",plugin="rate-limiting"} 4"#;
        assert!(String::from_utf8(m.render()).unwrap().lines().any(|l| l == anonymous));
        // The instance dropped (a reload) folds what it still holds.
        lm.allow(alex, handles);
        lm.limit(alex, handles);
        drop(lm);
        assert_eq!(shown(&m).as_deref(), Some("4001"));
        assert_eq!((handles().allowed_total.get(), handles().limited.get()), (4001, 1));
    }

    #[test]
    fn renders_with_help_and_type() {
        let m = Metrics::new("0.1.0");
        let h = m.route_handles("svc", "route", "alex");
        h.record(
            &m,
            &RequestRecord {
                status: 200,
                total: Duration::from_millis(3),
                upstream_ttfb: Some(Duration::from_millis(2)),
                gateway: Duration::from_micros(300),
                bytes_in: 10,
                bytes_out: 20,
            },
        );
        h.record(
            &m,
            &RequestRecord {
                status: 418,
                total: Duration::from_millis(3),
                upstream_ttfb: None,
                gateway: Duration::from_micros(300),
                bytes_in: 0,
                bytes_out: 0,
            },
        );
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains("# HELP aigate_http_requests_total"));
        assert!(text.contains("# TYPE aigate_http_request_duration_seconds histogram"));
        assert!(text
            .contains("aigate_http_requests_total{code=\"200\",consumer=\"alex\",route=\"route\",service=\"svc\"} 1"));
        assert!(text.contains("code=\"418\""));
        assert!(text.contains("aigate_build_info{version=\"0.1.0\"} 1"));
        assert!(text.contains("aigate_http_bandwidth_bytes_total{consumer=\"alex\",direction=\"egress\",route=\"route\",service=\"svc\"} 20"));
    }

    #[test]
    fn mcp_labels_are_capped() {
        let m = Metrics::new("x");
        for i in 0..(MAX_MCP_TOOLS_PER_SERVER + 10) {
            m.mcp_items("c", &[McpItem::Call { server_label: "gitmcp".into(), tool: format!("tool{i}"), ok: true }]);
        }
        for i in 0..(MAX_MCP_SERVERS + 10) {
            m.mcp_items(
                "c",
                &[McpItem::ListTools {
                    server_label: format!("srv{i}"),
                    tools: vec![],
                    digest: String::new(),
                    tool_digests: vec![],
                }],
            );
        }
        let text = String::from_utf8(m.render()).unwrap();
        let calls = text.lines().filter(|l| l.starts_with("aigate_mcp_calls_total{")).count();
        assert!(text.contains("source=\"hosted\""));
        assert_eq!(calls, MAX_MCP_TOOLS_PER_SERVER + 1);
        assert!(text.contains("tool=\"other\""));
        let lists = text.lines().filter(|l| l.starts_with("aigate_mcp_list_tools_total{")).count();
        assert!(lists <= MAX_MCP_SERVERS + 1, "{lists}");
        assert!(text.contains("server_label=\"other\""));
    }

    #[test]
    fn usage_and_cost() {
        let m = Metrics::new("x");
        let h = m.llm_handles("alex", "openai", "gpt-4o", "llm/v1/responses");
        h.usage(
            &Usage { input: 1_000_000, output: 500_000, total: 1_500_000, cached: 0, cache_write: 0, reasoning: 0 },
            Some(2.5),
            Some(10.0),
        );
        m.llm_request(&h, true, 200);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains("aigate_llm_tokens_total{consumer=\"alex\",model=\"gpt-4o\",provider=\"openai\",token_type=\"input\"} 1000000"));
        assert!(text.contains("aigate_llm_cost_total{consumer=\"alex\",model=\"gpt-4o\",provider=\"openai\"} 7.5"));
        assert!(text.contains("mode=\"stream\""));
    }

    #[test]
    fn handle_table() {
        let t: HandleTable<u32> = HandleTable::new(2);
        assert_eq!(*t.get(Some(ConsumerId::new(1)), || 7), 7);
        assert_eq!(*t.get(Some(ConsumerId::new(1)), || 8), 7);
        assert_eq!(*t.get(None, || 9), 9);
        assert_eq!(*t.get(Some(ConsumerId::new(99)), || 10), 9);
    }
}
