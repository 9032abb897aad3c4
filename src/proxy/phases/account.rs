//! `logging`: after the response is done, count the request in the metrics (per route and
//! consumer), read exact token usage and MCP activity from the side view, and write the access
//! log line.

use pingora_proxy::Session;

use super::limits;
use super::remember::{facts_of, remember_mcp};
use crate::ai::response::{McpItem, ResponseFacts};
use crate::proxy::context::{ErrorKind, RequestCtx, ResponseScan};
use crate::proxy::state::ProcessState;
use crate::telemetry::access_log::{now_rfc3339, Entry, McpLog, RateLimitLog, Tokens};
use crate::telemetry::metrics::RequestRecord;

pub fn finish(shared: &ProcessState, session: &mut Session, e: Option<&pingora_core::Error>, ctx: &mut RequestCtx) {
    // Up to the gateway's own answer: a lingering close after it is not the request's time.
    let total = ctx.timing.answered.unwrap_or_else(std::time::Instant::now).duration_since(ctx.timing.started);
    let status = match session.response_written() {
        Some(h) => h.status.as_u16(),
        // The client left before an answer (nginx's 499).
        None if e.is_some() && ctx.outcome.error.is_none() => 499,
        None => ctx.response.status,
    };
    let gateway = ctx.timing.gateway_done.map_or(total, |t| t.duration_since(ctx.timing.started));
    let generation = ctx.generation.clone();
    let config = &generation.config;
    let consumer_label = ctx.identity.consumer.map(|c| config.consumers.get(c).label.as_str());
    let (route_name, service_name) = match ctx.routing.route {
        Some(r) => {
            let route = config.route(r);
            (Some(route.name.as_str()), Some(config.service_of(route).name.as_str()))
        }
        None => (None, None),
    };
    let handles = match ctx.routing.route {
        Some(r) => generation.route_metrics[r.index()].get(ctx.identity.consumer, || {
            shared.metrics.route_handles(
                service_name.unwrap_or(""),
                route_name.unwrap_or(""),
                consumer_label.unwrap_or(""),
            )
        }),
        None => generation.unrouted_metrics.get(None, || shared.metrics.route_handles("", "", "")),
    };
    let bytes_in = ctx.body.bytes.max(session.as_downstream().body_bytes_read() as u64);
    handles.record(
        &shared.metrics,
        &RequestRecord {
            status,
            total,
            upstream_ttfb: ctx.upstream.ttfb,
            gateway,
            bytes_in,
            bytes_out: ctx.response.bytes_out,
        },
    );

    // LLM accounting.
    let mut facts = ResponseFacts::default();
    let mut usage_missing = None;
    let mut mode = None;
    let mut model_label: Option<String> = None;
    let mut remember = false;
    let mut already_remembered = false;
    if let Some(ai) = &ctx.ai {
        if ai.inference {
            let target = &ai.plugin.targets[ai.target];
            let stream =
                matches!(ctx.response.scan, ResponseScan::Sse(_)) || ai.facts.as_ref().is_some_and(|f| f.stream);
            mode = Some(if stream { "stream" } else { "oneshot" });
            facts = match (ctx.response.early_facts.take(), &ctx.response.translation) {
                (Some(f), _) => f,
                (None, Some(t)) => {
                    let f = t.facts();
                    ResponseFacts { usage: f.usage, model: f.model, failed: f.failed, ..ResponseFacts::default() }
                }
                (None, None) => facts_of(&mut ctx.response.scan, ctx.response.dialect),
            };
            already_remembered = ctx.response.remembered;
            let model = bounded_model(target.model.as_deref(), facts.model.as_deref());
            let llm = generation.llm_metrics[target.id].get(ctx.identity.consumer, || {
                shared.metrics.llm_handles(
                    consumer_label.unwrap_or(""),
                    target.provider.as_str(),
                    &model,
                    target.route_type.as_str(),
                )
            });
            shared.metrics.llm_request(&llm, stream, status);
            if (200..300).contains(&status) && ai.op.has_usage() {
                match &facts.usage {
                    Some(u) => llm.usage(u, target.options.input_cost, target.options.output_cost),
                    None => {
                        llm.usage_missing(stream);
                        usage_missing = Some(true);
                    }
                }
            }
            shared.metrics.mcp_items(consumer_label.unwrap_or(""), &facts.mcp);
            model_label = Some(model);
            remember = (200..300).contains(&status);
        }
        // ai-mcp-guard's decisions, with bounded labels: a label the guard does not know never
        // takes one of the capped places of a real server.
        for e in &ai.mcp.events {
            let label = if e.configured {
                shared.metrics.bounded_mcp_labels(&e.server_label, "").0
            } else {
                shared.metrics.known_mcp_label(&e.server_label)
            };
            shared
                .metrics
                .mcp_guard_decisions
                .with_label_values(&[consumer_label.unwrap_or(""), &label, e.decision])
                .inc();
        }
        // A deleted object is gone for its owner too.
        if let Some((kind, id)) = ai.op.deletes().filter(|_| (200..300).contains(&status)) {
            shared.ownership.forget(kind, id);
        }
    }

    // Not charged yet (the answer ended without its last chunk): charged now.
    if let Some(u) = &facts.usage {
        limits::charge(ctx, u);
    }
    if remember && !already_remembered {
        remember_mcp(shared, ctx, &facts);
    }
    super::mcp::account(shared, ctx, consumer_label.unwrap_or(""), status, total);

    if shared.access_log.enabled() {
        let guard_events: &[crate::plugins::mcp_guard::GuardEvent] = ctx.ai.as_ref().map_or(&[], |a| &a.mcp.events);
        let to_ms = |d: std::time::Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        let mcp: Vec<McpLog> = facts
            .mcp
            .iter()
            .map(|m| match m {
                McpItem::Call { server_label, tool, ok } => McpLog {
                    server_label,
                    method: None,
                    tool: Some(tool),
                    event: if *ok { "call" } else { "call_error" },
                },
                McpItem::ListTools { server_label, .. } => {
                    McpLog { server_label, method: None, tool: None, event: "list_tools" }
                }
                McpItem::ApprovalRequest { server_label, tool, .. } => {
                    McpLog { server_label, method: None, tool: Some(tool), event: "approval_request" }
                }
            })
            .chain(guard_events.iter().map(|e| McpLog {
                server_label: &e.server_label,
                method: None,
                tool: e.tool.as_deref(),
                event: e.decision,
            }))
            .chain(super::mcp::log_entries(ctx))
            .collect();
        let entry = Entry {
            time: now_rfc3339(),
            request_id: ctx.request_id.as_str(),
            client_ip: ctx.client_ip().map(|ip| ip.to_string()),
            consumer: consumer_label,
            route: route_name,
            service: service_name,
            method: session.req_header().method.as_str(),
            path: &ctx.routing.path,
            status,
            duration_ms: to_ms(total),
            upstream_ttfb_ms: ctx.upstream.ttfb.map(to_ms),
            gateway_ms: to_ms(gateway),
            bytes_in,
            bytes_out: ctx.response.bytes_out,
            upstream_addr: ctx.upstream.addr.map(|a| a.to_string()),
            upstream_request_id: ctx.response.upstream_request_id.as_ref().and_then(|v| v.to_str().ok()),
            upstream_attempts: (ctx.upstream.attempts > 1).then_some(ctx.upstream.attempts),
            error: ctx.outcome.kind.map(ErrorKind::as_str),
            model: model_label.as_deref(),
            mode,
            tokens: facts.usage.map(|u| Tokens { input: u.input, output: u.output, total: u.total }),
            usage_missing,
            mcp,
            rate_limit: ctx.limits.refused_by.as_ref().map(|(plugin, window)| RateLimitLog { plugin, window }),
        };
        if !shared.access_log.write(&entry) {
            shared.metrics.access_log_dropped.inc();
        }
    }
}

/// The model label: the configured model, or the reported one when nothing is configured is
/// not a bounded value, so it becomes `other`.
fn bounded_model(configured: Option<&str>, _reported: Option<&str>) -> String {
    configured.unwrap_or("other").to_string()
}
