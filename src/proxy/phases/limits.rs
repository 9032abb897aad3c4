//! Rate limits and budgets on a request: admitted or refused in `inbound` (after
//! authentication and authorization, before anything is read or sent upstream), their headers
//! on whatever answer the client gets, and — for an admitted LLM request — what it used charged
//! to its budgets as soon as its answer is complete (`outbound`), or at the latest when it is
//! logged (`account`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use prometheus::Gauge;
use smallvec::SmallVec;

use crate::ai::response::Usage;
use crate::core::ConsumerId;
use crate::model::{Config, Route};
use crate::plugins::limits::{Verdict, Who};
use crate::proxy::context::{PendingCharge, RequestCtx};
use crate::proxy::errors::GatewayError;
use crate::proxy::state::ProcessState;
use crate::telemetry::metrics::{LimitHandles, LimitMetrics, LimitPlugin};

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// rate-limiting, then ai-rate-limiting-advanced (Kong's order): the first refusal is the
/// answer. A request rate-limiting counted stays counted when the budget refuses it, as in Kong.
pub async fn admit(
    shared: &ProcessState,
    session: &Session,
    ctx: &mut RequestCtx,
    config: &Config,
    route: &Route,
) -> Result<(), GatewayError> {
    let consumer = ctx.identity.consumer;
    let rl = route.policies.rate_limiting.for_consumer(consumer);
    let ai = route.policies.ai_rate_limiting.for_consumer(consumer);
    if rl.is_none() && ai.is_none() {
        return Ok(());
    }
    let now = now_ms();
    let client_ip = ctx.client_ip();
    let who = Who {
        consumer: consumer.map(|c| config.consumers.get(c).id.as_str()),
        consumer_index: consumer,
        credential: ctx.identity.credential.as_ref().and_then(|c| c.identifier(&config.consumers)),
        client_ip,
        service: config.service_of(route).id.as_str(),
        headers: &session.req_header().headers,
        path: &ctx.routing.path,
    };
    let rl_verdict = match rl {
        Some(rl) => Some(rl.admit(&who, now).await),
        None => None,
    };
    let stopped = matches!(&rl_verdict, Some(Err(_))) || matches!(&rl_verdict, Some(Ok(v)) if v.refused.is_some());
    let ai_verdict = match ai {
        Some(ai) if !stopped => Some(ai.admit(&who, now).await),
        _ => None,
    };
    let label = consumer.map(|c| config.consumers.get(c).label.as_str());
    if let (Some(plugin), Some(v)) = (rl, rl_verdict) {
        let handles = || shared.metrics.limit_handles(label, LimitPlugin::RateLimiting, &plugin.window_labels());
        decide(shared, ctx, LimitPlugin::RateLimiting, (&plugin.metrics, handles), v)?;
    }
    if let (Some(plugin), Some(v)) = (ai, ai_verdict) {
        let handles = || shared.metrics.limit_handles(label, LimitPlugin::AiRateLimiting, &plugin.window_labels());
        let v = v.map(|(v, ticket)| {
            ctx.limits.charge = Some(PendingCharge { ticket });
            v
        });
        decide(shared, ctx, LimitPlugin::AiRateLimiting, (&plugin.metrics, handles), v)?;
    }
    Ok(())
}

/// Count a plugin's decision (`handles`: makes the consumer's metric handles on its first
/// decision), keep its headers, and turn a refusal into the answer.
fn decide(
    shared: &ProcessState,
    ctx: &mut RequestCtx,
    plugin: LimitPlugin,
    (metrics, handles): (&LimitMetrics, impl FnOnce() -> LimitHandles),
    verdict: Result<Verdict, crate::store::ratelimit::Unavailable>,
) -> Result<(), GatewayError> {
    let v = match verdict {
        Ok(v) => v,
        Err(e) => {
            shared.metrics.limit_backend_error(plugin);
            log::debug!("{}: counters unavailable ({}); answering 500 (fault_tolerant is false)", plugin.name(), e.0);
            ctx.limits.charge = None;
            return Err(GatewayError::LimitsUnavailable);
        }
    };
    if v.degraded {
        shared.metrics.limit_backend_error(plugin);
    }
    if ctx.limits.headers.is_empty() {
        ctx.limits.headers = v.headers;
    } else {
        ctx.limits.headers.extend(v.headers);
    }
    match v.refused {
        None => {
            metrics.allow(ctx.identity.consumer, handles);
            Ok(())
        }
        Some(r) => {
            metrics.limit(ctx.identity.consumer, handles);
            ctx.limits.charge = None;
            ctx.limits.refused_by = Some((r.plugin, r.window.clone()));
            Err(GatewayError::RateLimited(Box::new(r)))
        }
    }
}

/// The limits' headers on an answer (proxied or the gateway's own).
///
/// Written into the header map directly, with the names parsed when the configuration was
/// loaded: Pingora's `insert_header` parses, copies and hashes each name twice to keep its
/// spelling, which made the limits' headers the largest part of their cost per request. The
/// answer's names then go out as HTTP/2 writes them (standard names titled, others in lower
/// case), which HTTP/1 clients read the same.
pub fn add_headers(ctx: &RequestCtx, resp: &mut ResponseHeader) -> pingora_core::Result<()> {
    if ctx.limits.headers.is_empty() {
        return Ok(());
    }
    let mut parts: http::response::Parts = std::mem::replace(resp, ResponseHeader::build_no_case(200, Some(0))?).into();
    parts.headers.reserve(ctx.limits.headers.len());
    for (name, value) in &ctx.limits.headers {
        parts.headers.insert(name.clone(), value.clone());
    }
    *resp = ResponseHeader::from(parts);
    Ok(())
}

/// Bring the limits' metrics up to date, when they are scraped: the admitted requests each
/// worker counted since the last scrape are added to `aigate_ratelimit_decisions_total`, and
/// the remaining-budget gauges of every consumer the current configuration's limits decided on
/// are set from the counts as this process sees them now. The request path never writes
/// either: a consumer's counter or gauge written by both workers moved its cache line between
/// them on every request, and a gauge set at a decision kept showing an ended window's
/// remainder. When several plugin instances give a consumer a window of the same name, the
/// gauge shows the least left.
pub fn refresh_metrics(config: &Config) {
    let now = now_ms();
    let mut least = Least::default();
    let mut seen = HashSet::new();
    for route in &config.routes {
        let p = &route.policies;
        for rl in p.rate_limiting.default.iter().chain(p.rate_limiting.by_consumer.values()) {
            if seen.insert(Arc::as_ptr(rl) as usize) {
                rl.metrics.fold();
                let read = |c, id: &str| rl.remaining_now(c, id, now);
                least.read(config, LimitPlugin::RateLimiting, &rl.window_labels(), &rl.metrics, read);
            }
        }
        for ai in p.ai_rate_limiting.default.iter().chain(p.ai_rate_limiting.by_consumer.values()) {
            if seen.insert(Arc::as_ptr(ai) as usize) {
                ai.metrics.fold();
                let read = |c, id: &str| ai.remaining_now(c, id, now);
                least.read(config, LimitPlugin::AiRateLimiting, &ai.window_labels(), &ai.metrics, read);
            }
        }
    }
    for (value, gauge) in least.0.into_values() {
        gauge.set(value);
    }
}

/// The least remaining per (consumer, plugin, window), with its gauge.
#[derive(Default)]
struct Least<'a>(HashMap<(usize, LimitPlugin, &'a str), (f64, &'a Gauge)>);

impl<'a> Least<'a> {
    /// Read what each consumer a plugin instance decided on has left (`read`: by consumer
    /// index and id), keeping the least per window name.
    fn read(
        &mut self,
        config: &Config,
        plugin: LimitPlugin,
        labels: &[&'a str],
        metrics: &'a LimitMetrics,
        read: impl Fn(ConsumerId, &str) -> Option<SmallVec<[f64; 8]>>,
    ) {
        for (c, handles) in metrics.filled() {
            let id = ConsumerId::new(c);
            let Some(values) = read(id, &config.consumers.get(id).id) else { continue };
            for ((label, v), gauge) in labels.iter().zip(values).zip(handles.remaining()) {
                let e = self.0.entry((c, plugin, *label)).or_insert((v, gauge));
                if v < e.0 {
                    *e = (v, gauge);
                }
            }
        }
    }
}

/// Charge what the request used to its budgets (once).
pub fn charge(ctx: &mut RequestCtx, usage: &Usage) {
    let Some(pending) = ctx.limits.charge.take() else { return };
    let (Some(ai), Some(route)) = (&ctx.ai, ctx.routing.route) else { return };
    // The plugin that admitted the request (the request's configuration is the one it was
    // admitted under).
    let route = ctx.generation.config.route(route);
    let Some(plugin) = route.policies.ai_rate_limiting.for_consumer(ctx.identity.consumer) else { return };
    let target = &ai.plugin.targets[ai.target];
    let amount = plugin.amount(usage, target.options.input_cost, target.options.output_cost);
    plugin.charge(&pending.ticket, target.provider.as_str(), amount, now_ms());
}
