//! What the gateway remembers from an LLM response, for the requests that follow it: who owns a
//! new Responses object, which consumer received an MCP approval request, and whether a pinned
//! MCP server's tool list changed. The outbound phase does it before the last bytes reach the
//! client when they matter early (MCP answers, new ids); the account phase does it otherwise.

use crate::ai::provider::Dialect;
use crate::ai::response::{self, McpItem, ResponseFacts};
use crate::proxy::context::{RequestCtx, ResponseScan};
use crate::proxy::state::ProcessState;
use crate::store::pins::{Observation, PinMode};

/// Facts from the side view of the response, in the upstream's dialect.
pub fn facts_of(scan: &mut ResponseScan, dialect: Dialect) -> ResponseFacts {
    match scan {
        ResponseScan::Json { chunks, overflowed: false, .. } => match chunks.len() {
            0 => ResponseFacts::default(),
            1 => response::from_json_in(&chunks[0], dialect),
            _ => response::from_json_in(&chunks.concat(), dialect),
        },
        ResponseScan::Sse(scanner) => {
            scanner.finish();
            response::from_stream(scanner)
        }
        _ => ResponseFacts::default(),
    }
}

/// After a successful answer: record the response as the consumer's (if the stream did not
/// already), its MCP approval requests, and check pinned tool lists.
pub fn remember_mcp(shared: &ProcessState, ctx: &mut RequestCtx, facts: &ResponseFacts) {
    let generation = ctx.generation.clone();
    let config = &generation.config;
    let owner = ctx.identity.consumer.map(|c| config.consumers.get(c).id.clone());
    if ctx.response.record_owner {
        if let Some(id) = &facts.response_id {
            record_owner(shared, ctx, id);
        }
    }
    let guard =
        ctx.routing.route.and_then(|r| config.route(r).policies.mcp_guard.for_consumer(ctx.identity.consumer).cloned());
    for item in &facts.mcp {
        match item {
            McpItem::ApprovalRequest { id, server_label, tool } if !id.is_empty() => {
                if let Some(owner) = &owner {
                    shared.ownership.record(id, owner, Some((server_label.clone(), tool.clone())));
                }
            }
            McpItem::ListTools { server_label, digest, .. } => {
                let Some(rule) = guard
                    .as_ref()
                    .and_then(|g| g.servers.iter().find(|r| &r.label == server_label && r.pin != PinMode::Off))
                else {
                    continue;
                };
                if let Observation::Changed { accepted, observed } =
                    shared.pins.observe(server_label, digest, rule.pinned_digest.as_deref(), rule.pin)
                {
                    let action = if rule.pin == PinMode::Block { "blocked" } else { "warned" };
                    shared.metrics.mcp_tool_list_changes.with_label_values(&[server_label, action]).inc();
                    log::warn!(
                        "MCP server '{server_label}' changed its tool list ({accepted} -> {observed}); {action}"
                    );
                }
            }
            _ => {}
        }
    }
}

/// Record a new Responses object as the consumer's.
pub fn record_owner(shared: &ProcessState, ctx: &mut RequestCtx, id: &str) {
    ctx.response.record_owner = false;
    if let Some(c) = ctx.identity.consumer {
        shared.ownership.record(id, &ctx.generation.config.consumers.get(c).id, None);
    }
}
