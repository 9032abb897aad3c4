//! Merged decK entities → the validated [`Config`] model.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::deck::schema::{DeckConsumer, DeckPlugin, DeckRoute, DeckService, EntityRef};
use super::{LoadContext, Loaded, SourceFile};
use crate::consumers::{parse_key, Consumer, Consumers};
use crate::core::problems::Problems;
use crate::core::{ConsumerId, Endpoint, RouteId, ServiceId, Timeouts};
use crate::model::router::{RouteSpec, Router};
use crate::model::{Config, PathHandling, Route, Service};
use crate::plugins::openid_connect::JwksRegistry;
use crate::plugins::{self, CompileContext, Compiled, Instance, PluginKind, Policies};

/// Where an entity was written: which file, and its place in it (`services[0].routes[1]`).
#[derive(Clone)]
struct Origin {
    file: usize,
    place: String,
}

struct Ctx<'a> {
    files: &'a [SourceFile],
    problems: Problems,
}

impl Ctx<'_> {
    fn problem(&mut self, at: &Origin, sub: &str, what: impl Into<String>, fix: &str) {
        let place = if sub.is_empty() { at.place.clone() } else { format!("{}.{sub}", at.place) };
        let p = self.files[at.file].problem(&place, what.into(), fix);
        self.problems.push(p);
    }
}

struct PluginEntity<'a> {
    origin: Origin,
    plugin: &'a DeckPlugin,
    service: Option<&'a EntityRef>,
    route: Option<&'a EntityRef>,
    consumer: Option<&'a EntityRef>,
}

struct RouteEntity<'a> {
    origin: Origin,
    route: &'a DeckRoute,
    /// The service it is nested under, by index into the services list.
    nested_in: Option<usize>,
}

pub(super) fn build(files: &[SourceFile], digest: String, load: &LoadContext) -> Result<Loaded, Problems> {
    let defaults = &load.defaults;
    let jwks = JwksRegistry::new(load.tls_trusted_ca.clone());
    let mut cx = Ctx { files, problems: Problems::default() };

    // Flatten: nested routes and plugins become top-level ones with their scope.
    let mut services: Vec<(Origin, &DeckService)> = Vec::new();
    let mut routes: Vec<RouteEntity> = Vec::new();
    let mut consumers: Vec<(Origin, &DeckConsumer)> = Vec::new();
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
                    plugins.push(PluginEntity {
                        origin: o(format!("{rplace}.plugins[{pi}]")),
                        plugin: p,
                        service: None,
                        route: None,
                        consumer: None,
                    });
                }
            }
            for (pi, p) in s.plugins.iter().enumerate() {
                plugins.push(PluginEntity {
                    origin: o(format!("services[{si}].plugins[{pi}]")),
                    plugin: p,
                    service: None,
                    route: None,
                    consumer: None,
                });
            }
        }
        for (ri, r) in f.deck.routes.iter().enumerate() {
            routes.push(RouteEntity { origin: o(format!("routes[{ri}]")), route: r, nested_in: None });
            for (pi, p) in r.plugins.iter().enumerate() {
                plugins.push(PluginEntity {
                    origin: o(format!("routes[{ri}].plugins[{pi}]")),
                    plugin: p,
                    service: None,
                    route: None,
                    consumer: None,
                });
            }
        }
        for (ci, c) in f.deck.consumers.iter().enumerate() {
            consumers.push((o(format!("consumers[{ci}]")), c));
            for (pi, p) in c.plugins.iter().enumerate() {
                plugins.push(PluginEntity {
                    origin: o(format!("consumers[{ci}].plugins[{pi}]")),
                    plugin: p,
                    service: None,
                    route: None,
                    consumer: None,
                });
            }
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

    // ---- services
    let mut model_services: Vec<Service> = Vec::new();
    let mut service_index: HashMap<String, ServiceId> = HashMap::new();
    let mut service_enabled: Vec<bool> = Vec::new();
    for (i, (origin, s)) in services.iter().enumerate() {
        let name = match &s.name {
            Some(n) if !n.is_empty() => n.clone(),
            _ => {
                cx.problem(origin, "", "the service has no name", "give every service a unique name");
                format!("service-{i}")
            }
        };
        let id = s.id.clone().unwrap_or_else(|| derived_id("service", &name));
        for key in [&name, &id] {
            if service_index.insert(key.clone(), ServiceId::new(i)).is_some() && key == &name {
                cx.problem(
                    origin,
                    "name",
                    format!("service name \"{name}\" is used more than once"),
                    "give every service a unique name",
                );
            }
        }
        let endpoint = service_endpoint(s).unwrap_or_else(|e| {
            cx.problem(origin, "url", e, "give url: http(s)://host[:port][/path], or protocol, host, port and path");
            Endpoint { tls: false, host: "invalid".into(), port: 80, path: "/".into() }
        });
        let ms = |v: Option<u64>, d: Duration| v.map_or(d, |v| Duration::from_millis(v.max(1)));
        model_services.push(Service {
            name,
            id,
            endpoint,
            retries: s.retries.unwrap_or(5),
            timeouts: Timeouts {
                connect: ms(s.connect_timeout, defaults.connect),
                read: ms(s.read_timeout, defaults.read),
                write: ms(s.write_timeout, defaults.write),
            },
            tls_verify: s.tls_verify.unwrap_or(true),
        });
        service_enabled.push(s.enabled.unwrap_or(true));
    }

    // ---- consumers
    let mut model_consumers = Consumers::default();
    let mut seen_consumer: HashSet<String> = HashSet::new();
    for (origin, c) in &consumers {
        let username = c.username.clone().filter(|u| !u.is_empty());
        let custom_id = c.custom_id.clone().filter(|u| !u.is_empty());
        let Some(label) = username.clone().or_else(|| custom_id.clone()) else {
            cx.problem(origin, "", "the consumer has neither username nor custom_id", "give it a username");
            continue;
        };
        for (field, v) in [("username", &username), ("custom_id", &custom_id), ("id", &c.id)] {
            if let Some(v) = v {
                if !seen_consumer.insert(format!("{field}\u{0}{v}")) {
                    cx.problem(
                        origin,
                        field,
                        format!("consumer {field} \"{v}\" is used more than once"),
                        "make it unique",
                    );
                }
            }
        }
        let mut groups: Vec<String> = Vec::new();
        for (ai, a) in c.acls.iter().enumerate() {
            if a.group.is_empty() {
                cx.problem(origin, &format!("acls[{ai}].group"), "the ACL group is empty", "name the group");
            } else if !groups.contains(&a.group) {
                groups.push(a.group.clone());
            }
        }
        let id = c.id.clone().unwrap_or_else(|| derived_id("consumer", &label));
        let cid = model_consumers.add(Consumer::new(id.clone(), username, custom_id, groups));
        for (ki, k) in c.keyauth_credentials.iter().enumerate() {
            match parse_key(&k.key) {
                Ok(digest) => {
                    if k.ttl.is_some_and(|t| t > 0) {
                        cx.problem(
                            origin,
                            &format!("keyauth_credentials[{ki}].ttl"),
                            "key expiry (ttl) is not supported",
                            "remove ttl; rotate keys by editing the file and reloading",
                        );
                    }
                    let cred_id = k.id.clone().unwrap_or_else(|| derived_id("keyauth", &format!("{id}/{ki}")));
                    if !model_consumers.add_key(digest, cid, cred_id) {
                        cx.problem(
                            origin,
                            &format!("keyauth_credentials[{ki}].key"),
                            "this key is already given to a consumer",
                            "every key must be unique",
                        );
                    }
                }
                Err(e) => cx.problem(
                    origin,
                    &format!("keyauth_credentials[{ki}].key"),
                    e,
                    "write the key, or its stored form from `aigate hash-key`",
                ),
            }
        }
        for (ji, j) in c.jwt_secrets.iter().enumerate() {
            if let Err(e) = model_consumers.jwt.add(
                cid,
                j.key.clone(),
                j.algorithm.clone(),
                j.secret.clone(),
                j.rsa_public_key.clone(),
            ) {
                cx.problem(origin, &format!("jwt_secrets[{ji}]"), e, "see the jwt plugin in README.md");
            }
        }
    }

    // ---- routes
    let mut model_routes: Vec<Route> = Vec::new();
    let mut route_index: HashMap<String, RouteId> = HashMap::new();
    let mut route_specs_data: Vec<(RouteId, &DeckRoute)> = Vec::new();
    for (i, re) in routes.iter().enumerate() {
        let r = re.route;
        let service = match (re.nested_in, &r.service) {
            (Some(s), _) => Some(ServiceId::new(s)),
            (None, Some(sref)) => match sref.key().and_then(|k| service_index.get(k)) {
                Some(&s) => Some(s),
                None => {
                    cx.problem(
                        &re.origin,
                        "service",
                        format!("service \"{}\" is not defined", sref.key().unwrap_or("")),
                        "name a service from the services list",
                    );
                    None
                }
            },
            (None, None) => {
                cx.problem(
                    &re.origin,
                    "",
                    "the route has no service",
                    "nest it under a service or set service: {name: ...}",
                );
                None
            }
        };
        let name = r.name.clone().filter(|n| !n.is_empty()).or_else(|| r.id.clone()).unwrap_or_else(|| {
            let svc = service.map(|s| model_services[s.index()].name.as_str()).unwrap_or("route");
            format!("{svc}.route-{i}")
        });
        if route_index.insert(name.clone(), RouteId::new(i)).is_some() {
            cx.problem(
                &re.origin,
                "name",
                format!("route name \"{name}\" is used more than once"),
                "give every route a unique name",
            );
        }
        if let Some(id) = &r.id {
            if id != &name {
                route_index.entry(id.clone()).or_insert(RouteId::new(i));
            }
        }
        if let Some(protocols) = &r.protocols {
            for (pi, p) in protocols.iter().enumerate() {
                if p != "http" && p != "https" {
                    cx.problem(
                        &re.origin,
                        &format!("protocols[{pi}]"),
                        format!("protocol \"{p}\" is not supported"),
                        "use http and https",
                    );
                }
            }
        }
        let path_handling = match r.path_handling.as_deref() {
            None | Some("v0") => PathHandling::V0,
            Some("v1") => PathHandling::V1,
            Some(other) => {
                cx.problem(&re.origin, "path_handling", format!("path_handling \"{other}\" is not v0 or v1"), "use v0");
                PathHandling::V0
            }
        };
        model_routes.push(Route {
            name,
            id: r.id.clone().unwrap_or_else(|| derived_id("route", &format!("{i}"))),
            service: service.unwrap_or(ServiceId::new(0)),
            strip_path: r.strip_path.unwrap_or(true),
            preserve_host: r.preserve_host.unwrap_or(false),
            path_handling,
            policies: Policies::default(),
        });
        if service.is_some_and(|s| service_enabled[s.index()]) {
            route_specs_data.push((RouteId::new(i), r));
        }
    }

    // ---- plugins
    let mut instances: Vec<Instance> = Vec::new();
    let mut scopes_seen: HashSet<Scope> = HashSet::new();
    let mut next_target = 0usize;
    for pe in &plugins {
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
        let (mut service, mut route, mut consumer) = (None, None, None);
        if let Some(sref) = pe.service {
            match sref.key().and_then(|k| service_index.get(k)) {
                Some(&s) => service = Some(s),
                None => cx.problem(
                    &pe.origin,
                    "service",
                    format!("service \"{}\" is not defined", sref.key().unwrap_or("")),
                    "name a service from the services list",
                ),
            }
        }
        if let Some(rref) = pe.route {
            match rref.key().and_then(|k| route_index.get(k)) {
                Some(&r) => route = Some(r),
                None => cx.problem(
                    &pe.origin,
                    "route",
                    format!("route \"{}\" is not defined", rref.key().unwrap_or("")),
                    "name a route from the routes list",
                ),
            }
        }
        if let Some(cref) = pe.consumer {
            match cref.key().and_then(|k| model_consumers.find(k)) {
                Some(c) => consumer = Some(c),
                None => cx.problem(
                    &pe.origin,
                    "consumer",
                    format!("consumer \"{}\" is not defined", cref.key().unwrap_or("")),
                    "name a consumer (username or id)",
                ),
            }
        }
        if let Some((owner, idx)) = nested_owner(&pe.origin.place, &routes, &services, &consumers, pe.origin.file) {
            match owner {
                Owner::Service => service = Some(ServiceId::new(idx)),
                Owner::Route => route = Some(RouteId::new(idx)),
                Owner::Consumer => {
                    // Consumers are added in order, skipping invalid ones: find by label.
                    let c = consumers[idx].1;
                    consumer = c.username.as_deref().or(c.custom_id.as_deref()).and_then(|k| model_consumers.find(k));
                }
            }
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
        if let Some(protocols) = &p.protocols {
            if protocols.iter().any(|x| x != "http" && x != "https" && x != "grpc" && x != "grpcs") {
                cx.problem(&pe.origin, "protocols", "only http and https are supported", "use [http, https]");
            }
        }
        let config = p.config.as_ref();
        let compile_cx = CompileContext { consumers: &model_consumers, jwks: &jwks };
        let compiled = match plugins::compile(kind, config, &compile_cx) {
            Ok(mut c) => {
                if let Compiled::AiProxy(ref mut ai) = c {
                    if let Some(ai) = Arc::get_mut(ai) {
                        for t in &mut ai.targets {
                            t.id = next_target;
                            next_target += 1;
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
        instances.push(Instance { kind: slot, service, route, consumer, compiled });
    }

    if !cx.problems.is_empty() {
        return Err(cx.problems);
    }

    // ---- resolve the plugins of every route (Kong's precedence)
    for (rid, route) in model_routes.iter_mut().enumerate() {
        route.policies = Policies::resolve(&instances, RouteId::new(rid), route.service);
    }

    // ---- router
    let specs: Vec<RouteSpec> = route_specs_data
        .iter()
        .map(|(id, r)| RouteSpec {
            id: *id,
            paths: &r.paths,
            methods: &r.methods,
            hosts: &r.hosts,
            regex_priority: r.regex_priority.unwrap_or(0),
        })
        .collect();
    let router = match Router::build(&specs) {
        Ok(r) => r,
        Err(errors) => {
            for (rid, field, what) in errors {
                let origin = routes[rid.index()].origin.clone();
                cx.problem(&origin, &field, what, "see Kong's route matching rules in README.md");
            }
            return Err(cx.problems);
        }
    };

    let mut upstream_hosts: Vec<(String, u16)> =
        model_services.iter().map(|s| (s.endpoint.host.clone(), s.endpoint.port)).collect();
    for i in &instances {
        if let Compiled::AiProxy(ai) = &i.compiled {
            upstream_hosts.extend(ai.targets.iter().map(|t| (t.endpoint.host.clone(), t.endpoint.port)));
        }
    }
    Ok(Loaded {
        config: Config {
            jwks: jwks.all(),
            services: model_services,
            routes: model_routes,
            router,
            consumers: model_consumers,
            digest,
            ai_target_count: next_target,
        },
        upstream_hosts,
    })
}

enum Owner {
    Service,
    Route,
    Consumer,
}

/// For a nested plugin (`services[1].plugins[0]`), the entity it is nested in.
fn nested_owner(
    place: &str,
    routes: &[RouteEntity],
    services: &[(Origin, &DeckService)],
    consumers: &[(Origin, &DeckConsumer)],
    file: usize,
) -> Option<(Owner, usize)> {
    let owner_place = place.rsplit_once(".plugins[")?.0;
    if let Some(i) = routes.iter().position(|r| r.origin.file == file && r.origin.place == owner_place) {
        return Some((Owner::Route, i));
    }
    if let Some(i) = services.iter().position(|(o, _)| o.file == file && o.place == owner_place) {
        return Some((Owner::Service, i));
    }
    if let Some(i) = consumers.iter().position(|(o, _)| o.file == file && o.place == owner_place) {
        return Some((Owner::Consumer, i));
    }
    None
}

/// A plugin's scope: kind, service, route, consumer.
type Scope = (PluginKind, Option<ServiceId>, Option<RouteId>, Option<ConsumerId>);

fn service_endpoint(s: &DeckService) -> Result<Endpoint, String> {
    if let Some(url) = &s.url {
        if s.host.is_some() || s.protocol.is_some() || s.port.is_some() || s.path.is_some() {
            return Err("give either url, or protocol/host/port/path, not both".into());
        }
        return Endpoint::parse_url(url);
    }
    let tls = match s.protocol.as_deref() {
        None | Some("http") => false,
        Some("https") => true,
        Some(other) => return Err(format!("protocol \"{other}\" is not supported (use http or https)")),
    };
    let host = s.host.as_deref().filter(|h| !h.is_empty()).ok_or("the service has no url and no host")?;
    let path = s.path.clone().unwrap_or_else(|| "/".into());
    if !path.starts_with('/') {
        return Err(format!("path \"{path}\" must start with /"));
    }
    Ok(Endpoint { tls, host: host.to_ascii_lowercase(), port: s.port.unwrap_or(if tls { 443 } else { 80 }), path })
}

/// A stable UUID-shaped id for entities written without one.
fn derived_id(kind: &str, name: &str) -> String {
    let h = Sha256::digest(format!("aigate:{kind}:{name}").as_bytes());
    let x = hex::encode(&h[..16]);
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}
