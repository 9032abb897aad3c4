//! Merged decK entities → the validated [`Config`] model, one function per kind of entity:
//! [`services`], [`consumers`], [`routes`] (and the router), [`plugins`] (each plugin's
//! `config` compiled by the plugin registry), then each route's policies with Kong's
//! precedence. Every problem is collected with its file and place, none stops the others.

mod consumers;
mod plugins;
mod routes;
mod services;

use sha2::{Digest, Sha256};

use super::deck::schema::{DeckConsumer, DeckConsumerGroup, DeckPlugin, DeckRoute, DeckService, EntityRef};
use super::{LoadContext, Loaded, SourceFile};
use crate::core::problems::Problems;
use crate::core::RouteId;
use crate::model::Config;
use crate::plugins::{Compiled, Policies};

/// Where an entity was written: which file, and its place in it (`services[0].routes[1]`).
#[derive(Clone)]
struct Origin {
    file: usize,
    place: String,
}

/// The problems found so far, each placed in its file.
struct Findings<'a> {
    files: &'a [SourceFile],
    problems: Problems,
}

impl Findings<'_> {
    fn problem(&mut self, at: &Origin, sub: &str, what: impl Into<String>, fix: &str) {
        let place = if sub.is_empty() { at.place.clone() } else { format!("{}.{sub}", at.place) };
        let p = self.files[at.file].problem(&place, what.into(), fix);
        self.problems.push(p);
    }

    /// `file:line: place` of an entity's field, to name it in another one's problem.
    fn locate(&self, at: &Origin, sub: &str) -> String {
        let place = if sub.is_empty() { at.place.clone() } else { format!("{}.{sub}", at.place) };
        let f = &self.files[at.file];
        match f.lines.line(&place) {
            Some(line) => format!("{}:{line}: {place}", f.path.display()),
            None => format!("{}: {place}", f.path.display()),
        }
    }
}

/// A reference to another entity (`service: {name: x}`), found with `lookup`, or a problem at
/// `field` saying it is not defined.
fn resolve_ref<T>(
    cx: &mut Findings<'_>,
    at: &Origin,
    field: &str,
    reference: &EntityRef,
    lookup: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    let found = reference.key().and_then(lookup);
    if found.is_none() {
        let fix = match field {
            "service" => "name a service from the services list",
            "route" => "name a route from the routes list",
            _ => "name a consumer (username or id)",
        };
        cx.problem(at, field, format!("{field} \"{}\" is not defined", reference.key().unwrap_or("")), fix);
    }
    found
}

struct PluginEntity<'a> {
    origin: Origin,
    plugin: &'a DeckPlugin,
    service: Option<&'a EntityRef>,
    route: Option<&'a EntityRef>,
    consumer: Option<&'a EntityRef>,
}

impl<'a> PluginEntity<'a> {
    /// A plugin nested in another entity: its scope is that entity.
    fn nested(origin: Origin, plugin: &'a DeckPlugin) -> PluginEntity<'a> {
        PluginEntity { origin, plugin, service: None, route: None, consumer: None }
    }
}

struct RouteEntity<'a> {
    origin: Origin,
    route: &'a DeckRoute,
    /// The service it is nested under, by index into the services list.
    nested_in: Option<usize>,
}

/// Every entity of every file, nested routes and plugins flattened into top-level ones.
struct Entities<'a> {
    services: Vec<(Origin, &'a DeckService)>,
    routes: Vec<RouteEntity<'a>>,
    consumers: Vec<(Origin, &'a DeckConsumer)>,
    consumer_groups: Vec<(Origin, &'a DeckConsumerGroup)>,
    plugins: Vec<PluginEntity<'a>>,
}

impl<'a> Entities<'a> {
    fn collect(files: &'a [SourceFile], cx: &mut Findings<'_>) -> Entities<'a> {
        let mut services: Vec<(Origin, &DeckService)> = Vec::new();
        let mut routes: Vec<RouteEntity> = Vec::new();
        let mut consumers: Vec<(Origin, &DeckConsumer)> = Vec::new();
        let mut consumer_groups: Vec<(Origin, &DeckConsumerGroup)> = Vec::new();
        let mut plugins: Vec<PluginEntity> = Vec::new();
        for (fi, f) in files.iter().enumerate() {
            let o = |place: String| Origin { file: fi, place };
            for (si, s) in f.deck.services.iter().enumerate() {
                let sidx = services.len();
                services.push((o(format!("services[{si}]")), s));
                for (ri, r) in s.routes.iter().enumerate() {
                    let rplace = format!("services[{si}].routes[{ri}]");
                    if r.service.is_some() {
                        cx.problem(
                            &o(rplace.clone()),
                            "service",
                            "a route nested under a service cannot name another service",
                            "remove the service field",
                        );
                    }
                    routes.push(RouteEntity { origin: o(rplace.clone()), route: r, nested_in: Some(sidx) });
                    for (pi, p) in r.plugins.iter().enumerate() {
                        plugins.push(PluginEntity::nested(o(format!("{rplace}.plugins[{pi}]")), p));
                    }
                }
                for (pi, p) in s.plugins.iter().enumerate() {
                    plugins.push(PluginEntity::nested(o(format!("services[{si}].plugins[{pi}]")), p));
                }
            }
            for (ri, r) in f.deck.routes.iter().enumerate() {
                routes.push(RouteEntity { origin: o(format!("routes[{ri}]")), route: r, nested_in: None });
                for (pi, p) in r.plugins.iter().enumerate() {
                    plugins.push(PluginEntity::nested(o(format!("routes[{ri}].plugins[{pi}]")), p));
                }
            }
            for (ci, c) in f.deck.consumers.iter().enumerate() {
                consumers.push((o(format!("consumers[{ci}]")), c));
                for (pi, p) in c.plugins.iter().enumerate() {
                    plugins.push(PluginEntity::nested(o(format!("consumers[{ci}].plugins[{pi}]")), p));
                }
            }
            for (gi, g) in f.deck.consumer_groups.iter().enumerate() {
                consumer_groups.push((o(format!("consumer_groups[{gi}]")), g));
            }
            for (pi, p) in f.deck.plugins.iter().enumerate() {
                plugins.push(PluginEntity {
                    origin: o(format!("plugins[{pi}]")),
                    plugin: p,
                    service: p.service.as_ref(),
                    route: p.route.as_ref(),
                    consumer: p.consumer.as_ref(),
                });
            }
        }
        Entities { services, routes, consumers, consumer_groups, plugins }
    }
}

pub(super) fn build(files: &[SourceFile], digest: String, load: &LoadContext) -> Result<Loaded, Problems> {
    let jwks = &load.jwks;
    jwks.begin_load();
    let mut cx = Findings { files, problems: Problems::default() };
    let entities = Entities::collect(files, &mut cx);
    let services = services::extract_services(&entities, &load.defaults, &mut cx);
    let consumers = consumers::extract_consumers(&entities, &mut cx);
    let mut routes = routes::extract_routes(&entities, &services, &mut cx);
    let plugins = plugins::extract_plugins(&entities, &services, &routes, &consumers, load, &mut cx);
    if !cx.problems.is_empty() {
        return Err(cx.problems);
    }
    for (rid, route) in routes.list.iter_mut().enumerate() {
        route.policies = Policies::resolve(&plugins.instances, RouteId::new(rid), route.service);
        if route.policies.mcp_proxy.is_configured() && route.policies.ai_proxy.is_configured() {
            cx.problem(
                &entities.routes[rid].origin,
                "",
                format!("route \"{}\" has both ai-mcp-proxy and ai-proxy", route.name),
                "serve the MCP server and the LLM on separate routes",
            );
        }
        plugins::check_cost_budgets(route, &entities.routes[rid].origin, &mut cx);
    }
    if !cx.problems.is_empty() {
        return Err(cx.problems);
    }
    let Some(router) = routes::build_router(&routes, &entities, &mut cx) else {
        return Err(cx.problems);
    };

    let mut upstream_hosts: Vec<(String, u16)> =
        services.list.iter().map(|s| (s.endpoint.host.clone(), s.endpoint.port)).collect();
    for i in &plugins.instances {
        if let Compiled::AiProxy(ai) = &i.compiled {
            upstream_hosts.extend(ai.targets.iter().map(|t| (t.endpoint.host.clone(), t.endpoint.port)));
        }
    }
    Ok(Loaded {
        config: Config {
            jwks: jwks.claimed(),
            services: services.list,
            routes: routes.list,
            router,
            consumers,
            digest,
            ai_target_count: plugins.target_count,
        },
        upstream_hosts,
    })
}

/// A stable UUID-shaped id for entities written without one.
fn derived_id(kind: &str, name: &str) -> String {
    let h = Sha256::digest(format!("aigate:{kind}:{name}").as_bytes());
    let x = hex::encode(&h[..16]);
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}
