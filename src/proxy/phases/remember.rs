//! What the gateway remembers from an LLM response, for the requests that follow it: who owns
//! the objects it creates (a response and its output items, a conversation and its items, a
//! stored chat completion), which consumer received an MCP approval request, and whether a
//! pinned MCP server's tool list changed. Ids are recorded before the bytes holding them reach
//! the client (the outbound phase calls in as chunks pass), so a client can never use an id
//! before the gateway knows whose it is; what matters only later is left to the account phase.

use bytes::Bytes;

use super::limits;
use crate::ai::answer_id::leading_id;
use crate::ai::provider::Dialect;
use crate::ai::response::{self, list_item_ids, EventObject, McpItem, ResponseFacts, MAX_ITEM_IDS};
use crate::ai::surface::Records;
use crate::core::ObjectKind;
use crate::proxy::context::{RequestCtx, ResponseScan};
use crate::proxy::state::ProcessState;
use crate::store::ownership::collect_misses;
use crate::store::pins::{ListedTools, Observation, PinMode};

/// The consumer whose objects are checked and recorded, when ownership applies (the setting is
/// on and the route identifies consumers).
pub fn owner<'a>(shared: &ProcessState, ctx: &'a RequestCtx) -> Option<&'a str> {
    if !shared.settings.response_ownership {
        return None;
    }
    ctx.identity.consumer.map(|c| ctx.generation.config.consumers.get(c).id.as_str())
}

/// Run a check that asks the ownership store; when a shared (cluster) store did not know some
/// ids here, they are fetched from it and the check runs again. With a store of this process
/// alone, the check runs once.
pub async fn check_owners<T>(shared: &ProcessState, mut check: impl FnMut() -> T) -> T {
    let (out, misses) = collect_misses(&mut check);
    if misses.is_empty() {
        return out;
    }
    shared.ownership.fetch(&misses).await;
    check()
}

/// Facts from the side view of the response, in the upstream's dialect.
pub fn facts_of(scan: &mut ResponseScan, dialect: Dialect) -> ResponseFacts {
    match scan {
        ResponseScan::Json { chunks, overflowed: false, .. } => match chunks.len() {
            0 => ResponseFacts::default(),
            1 => response::from_json_in(&chunks[0], dialect),
            _ => response::from_json_in(&chunks.concat(), dialect),
        },
        ResponseScan::Sse(stream) => {
            stream.finish();
            stream.take_facts()
        }
        _ => ResponseFacts::default(),
    }
}

/// A chunk of the answer is about to go to the client: record the ids it announces first.
pub fn record_as_it_streams(shared: &ProcessState, ctx: &mut RequestCtx, chunk: &Bytes, first_chunk: bool) {
    let Some(records) = ctx.response.records else { return };
    let mut found: Vec<(ObjectKind, String)> = Vec::new();
    match (&mut ctx.response.scan, records) {
        (ResponseScan::Json { .. }, Records::Response | Records::Conversation | Records::ChatCompletion)
            if first_chunk =>
        {
            if let Some(id) = leading_id(chunk) {
                found.push((own_kind(records), id));
            }
        }
        (ResponseScan::Sse(stream), Records::ChatCompletion) if !ctx.response.id_recorded => {
            if let Some(id) = &stream.scanner().first_data_id {
                found.push((ObjectKind::ChatCompletion, id.clone()));
            }
        }
        (ResponseScan::Sse(stream), Records::Response) => {
            for object in stream.take_objects() {
                found.push(match object {
                    EventObject::Response(id) => (ObjectKind::Response, id),
                    EventObject::Item(id) => (ObjectKind::Item, id),
                });
            }
        }
        _ => {}
    }
    for (kind, id) in found {
        record(shared, ctx, kind, &id);
    }
}

/// The answer is complete and its last bytes are about to go out: record what only the whole
/// answer tells (a JSON response's output items, a list's items, an id that was not first) and,
/// for MCP answers, approval requests and tool lists. Returns the facts read, if any, for the
/// account phase.
pub fn record_at_end(shared: &ProcessState, ctx: &mut RequestCtx) -> Option<ResponseFacts> {
    if let ResponseScan::Sse(stream) = &mut ctx.response.scan {
        stream.finish();
    }
    // A budget's charge, before the last bytes go out (so the client cannot start its next
    // request before this one's usage counts). A translated answer's usage is the translator's.
    if ctx.limits.charge.is_some() {
        if let Some(u) = ctx.response.translation.as_ref().and_then(|t| t.facts().usage) {
            limits::charge(ctx, &u);
        }
    }
    let charging = ctx.limits.charge.is_some() && ctx.response.translation.is_none();
    let has_mcp = ctx.ai.as_ref().is_some_and(|a| a.has_mcp);
    let records = ctx.response.records;
    if records == Some(Records::ItemList) {
        if let ResponseScan::Json { chunks, overflowed: false, .. } = &ctx.response.scan {
            let ids = if chunks.len() == 1 { list_item_ids(&chunks[0]) } else { list_item_ids(&chunks.concat()) };
            for id in ids {
                record(shared, ctx, ObjectKind::Item, &id);
            }
        }
        return None;
    }
    let json = matches!(ctx.response.scan, ResponseScan::Json { .. });
    let remembers = has_mcp
        || (records == Some(Records::Response) && json)
        || (records.is_some_and(|r| r != Records::Nothing) && !ctx.response.id_recorded);
    if !remembers && !charging {
        return None;
    }
    let facts = facts_of(&mut ctx.response.scan, ctx.response.dialect);
    if let Some(u) = &facts.usage {
        limits::charge(ctx, u);
    }
    if let Some(records) = records {
        if !ctx.response.id_recorded {
            if let Some(id) = &facts.response_id {
                record(shared, ctx, own_kind(records), id);
            }
        }
        if records == Records::Response {
            for id in &facts.item_ids {
                record(shared, ctx, ObjectKind::Item, id);
            }
        }
    }
    if has_mcp {
        remember_mcp(shared, ctx, &facts);
    }
    // What the account phase would remember is done (a charge alone leaves it to that phase).
    ctx.response.remembered = remembers;
    Some(facts)
}

/// After a successful MCP answer: record its approval requests as the consumer's, and check
/// pinned tool lists.
pub fn remember_mcp(shared: &ProcessState, ctx: &mut RequestCtx, facts: &ResponseFacts) {
    let generation = ctx.generation.clone();
    let config = &generation.config;
    let owner = ctx.identity.consumer.map(|c| config.consumers.get(c).id.clone());
    let guard =
        ctx.routing.route.and_then(|r| config.route(r).policies.mcp_guard.for_consumer(ctx.identity.consumer).cloned());
    for item in &facts.mcp {
        match item {
            McpItem::ApprovalRequest { id, server_label, tool } if !id.is_empty() => {
                if let Some(owner) = &owner {
                    let what = Some((server_label.clone(), tool.clone()));
                    shared.ownership.record(ObjectKind::McpApprovalRequest, id, owner, what);
                }
            }
            McpItem::ListTools { server_label, digest, tool_digests, .. } => {
                let Some(rule) = guard
                    .as_ref()
                    .and_then(|g| g.servers.iter().find(|r| &r.label == server_label && r.pin != PinMode::Off))
                else {
                    continue;
                };
                // Only a list made under the server's own filter is its full list.
                let full = ctx.ai.as_ref().and_then(|a| a.mcp.full_listing(server_label)).unwrap_or(false);
                let listed = ListedTools { digest, tools: tool_digests, full };
                if let Observation::Changed { accepted, observed } =
                    shared.pins.observe(server_label, listed, rule.pinned_digest.as_deref(), rule.pin)
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

/// Whose object the answer's own id is.
fn own_kind(records: Records) -> ObjectKind {
    match records {
        Records::Conversation => ObjectKind::Conversation,
        Records::ChatCompletion => ObjectKind::ChatCompletion,
        Records::Response | Records::ItemList | Records::Nothing => ObjectKind::Response,
    }
}

/// Record one object as the consumer's (an answer's items: at most [`MAX_ITEM_IDS`]).
fn record(shared: &ProcessState, ctx: &mut RequestCtx, kind: ObjectKind, id: &str) {
    if kind == ObjectKind::Item {
        if ctx.response.items_recorded >= MAX_ITEM_IDS {
            return;
        }
        ctx.response.items_recorded += 1;
    } else if ctx.response.records.is_some_and(|r| own_kind(r) == kind) {
        ctx.response.id_recorded = true;
    }
    if !crate::core::is_object_id(id) {
        return;
    }
    if let Some(owner) = owner(shared, ctx) {
        shared.ownership.record(kind, id, owner, None);
    }
}
