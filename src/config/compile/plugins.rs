//! decK `plugins` (top-level with references, or nested in a service, route or consumer) →
//! compiled plugins with their scope. Each plugin's `config` is compiled by the plugin
//! registry; what is checked here is the scope: references that exist, authentication plugins
//! never scoped to a consumer, one configuration per plugin and scope.

use std::collections::HashSet;
use std::sync::Arc;

use super::routes::Routes;
use super::services::Services;
use super::{resolve_ref, Entities, Findings, Origin};
use crate::config::LoadContext;
use crate::consumers::Consumers;
use crate::core::{ConsumerId, RouteId, ServiceId};
use crate::plugins::{self, CompileContext, Compiled, Instance, PluginKind};

/// A plugin's scope: kind, service, route, consumer.
type Scope = (PluginKind, Option<ServiceId>, Option<RouteId>, Option<ConsumerId>);

pub(super) struct Plugins {
    pub instances: Vec<Instance>,
    /// LLM targets of all plugins together; target ids are `0..target_count`.
    pub target_count: usize,
}

pub(super) fn extract_plugins(
    entities: &Entities<'_>,
    services: &Services,
    routes: &Routes<'_>,
    consumers: &Consumers,
    load: &LoadContext,
    cx: &mut Findings<'_>,
) -> Plugins {
    let mut out = Plugins { instances: Vec::new(), target_count: 0 };
    let mut scopes_seen: HashSet<Scope> = HashSet::new();
    for pe in &entities.plugins {
        let p = pe.plugin;
        let Some(kind) = PluginKind::from_name(&p.name) else {
            cx.problem(
                &pe.origin,
                "name",
                format!("plugin \"{}\" is not supported by aigate", p.name),
                &format!("remove it, or use one of: {}", PluginKind::known_names()),
            );
            continue;
        };
        // Scope: explicit references, or the entity the plugin is nested in.
        let service =
            pe.service.and_then(|r| resolve_ref(cx, &pe.origin, "service", r, |k| services.index.get(k).copied()));
        let route = pe.route.and_then(|r| resolve_ref(cx, &pe.origin, "route", r, |k| routes.index.get(k).copied()));
        let consumer = pe.consumer.and_then(|r| resolve_ref(cx, &pe.origin, "consumer", r, |k| consumers.find(k)));
        let (service, route, consumer) = match nested_owner(&pe.origin, entities) {
            Some(Owner::Service(i)) => (Some(ServiceId::new(i)), route, consumer),
            Some(Owner::Route(i)) => (service, Some(RouteId::new(i)), consumer),
            Some(Owner::Consumer(i)) => {
                // Consumers are added in order, skipping invalid ones: find by label.
                let c = entities.consumers[i].1;
                (service, route, c.username.as_deref().or(c.custom_id.as_deref()).and_then(|k| consumers.find(k)))
            }
            None => (service, route, consumer),
        };
        if kind == PluginKind::McpProxy && consumer.is_some() {
            cx.problem(
                &pe.origin,
                "consumer",
                "ai-mcp-proxy cannot be scoped to a consumer (as in Kong): its ACLs name consumers",
                "scope it to the MCP server's route or service",
            );
            continue;
        }
        if kind.is_auth() && consumer.is_some() {
            cx.problem(
                &pe.origin,
                "consumer",
                format!("{} cannot be scoped to a consumer: it is what identifies the consumer", kind.name()),
                "scope it to a service or route, or make it global",
            );
            continue;
        }
        if p.consumer_group.is_some() {
            cx.problem(
                &pe.origin,
                "consumer_group",
                "plugins scoped to a consumer group are not supported by aigate",
                "scope the plugin to the consumers, a route or a service instead",
            );
            continue;
        }
        if let Some(protocols) = &p.protocols {
            if protocols.iter().any(|x| x != "http" && x != "https" && x != "grpc" && x != "grpcs") {
                cx.problem(&pe.origin, "protocols", "only http and https are supported", "use [http, https]");
            }
        }
        // The instance's identity: its id, else its name and scope (stable across reloads and
        // the same on every gateway loading these files).
        let instance = p.id.clone().unwrap_or_else(|| {
            let or_dash = |v: Option<&str>| v.unwrap_or("-").to_string();
            format!(
                "{}:{}:{}:{}",
                kind.name(),
                or_dash(service.map(|s| services.list[s.index()].id.as_str())),
                or_dash(route.map(|r| routes.list[r.index()].id.as_str())),
                or_dash(consumer.map(|c| consumers.get(c).id.as_str())),
            )
        });
        let compile_cx = CompileContext {
            consumers,
            jwks: &load.jwks,
            health: &load.health,
            llm_plain_http_hosts: &load.llm_plain_http_hosts,
            counters: &load.counters,
            trusted_ca: load.trusted_ca.as_deref(),
            instance: &instance,
        };
        let compiled = match plugins::compile(kind, p.config.as_ref(), &compile_cx) {
            Ok(mut c) => {
                if let Compiled::AiProxy(ai) = &mut c {
                    if let Some(ai) = Arc::get_mut(ai) {
                        for t in &mut ai.targets {
                            t.id = out.target_count;
                            out.target_count += 1;
                        }
                    }
                }
                c
            }
            Err(issues) => {
                for issue in issues {
                    let sub =
                        if issue.path.is_empty() { "config".to_string() } else { format!("config.{}", issue.path) };
                    cx.problem(&pe.origin, &sub, format!("{}: {}", kind.name(), issue.what), &issue.fix);
                }
                continue;
            }
        };
        if p.enabled == Some(false) {
            continue;
        }
        let slot = kind.slot();
        if !scopes_seen.insert((slot, service, route, consumer)) {
            cx.problem(
                &pe.origin,
                "name",
                format!("{} is configured twice for the same scope", kind.name()),
                "keep one configuration per scope (ai-proxy and ai-proxy-advanced count as one)",
            );
            continue;
        }
        out.instances.push(Instance { kind: slot, service, route, consumer, compiled });
    }
    out
}

/// The entity a nested plugin is written under, by its index in the flattened lists.
enum Owner {
    Service(usize),
    Route(usize),
    Consumer(usize),
}

/// For a nested plugin (`services[1].plugins[0]`), the entity it is nested in.
fn nested_owner(origin: &Origin, entities: &Entities<'_>) -> Option<Owner> {
    let owner = origin.place.rsplit_once(".plugins[")?.0;
    let at = |o: &Origin| o.file == origin.file && o.place == owner;
    if let Some(i) = entities.routes.iter().position(|r| at(&r.origin)) {
        return Some(Owner::Route(i));
    }
    if let Some(i) = entities.services.iter().position(|(o, _)| at(o)) {
        return Some(Owner::Service(i));
    }
    entities.consumers.iter().position(|(o, _)| at(o)).map(Owner::Consumer)
}

/// A cost budget (ai-rate-limiting-advanced with `tokens_count_strategy: cost`) needs the
/// prices of every LLM target its route can use: without them every request would cost 0
/// and the budget would never be enforced.
pub(super) fn check_cost_budgets(route: &crate::model::Route, origin: &Origin, cx: &mut Findings<'_>) {
    let p = &route.policies;
    let counts_cost =
        p.ai_rate_limiting.default.iter().chain(p.ai_rate_limiting.by_consumer.values()).any(|b| b.counts_cost());
    if !counts_cost {
        return;
    }
    let targets = p.ai_proxy.default.iter().chain(p.ai_proxy.by_consumer.values()).flat_map(|ai| ai.targets.iter());
    for t in targets {
        if t.options.input_cost.is_none() || t.options.output_cost.is_none() {
            cx.problem(
                origin,
                "",
                format!(
                    "route \"{}\": ai-rate-limiting-advanced counts cost, but an ai-proxy target (model {}) has no input_cost/output_cost",
                    route.name,
                    t.model.as_deref().unwrap_or("from the request")
                ),
                "set model.options.input_cost and output_cost (per million tokens) on every target of the route",
            );
            return;
        }
    }
}
