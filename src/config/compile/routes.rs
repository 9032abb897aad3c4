//! decK `routes` (top-level or nested under a service) → the model's routes, and the router
//! over the routes of enabled services.

use std::collections::HashMap;

use super::services::Services;
use super::{derived_id, resolve_ref, Entities, Findings};
use crate::config::deck::schema::DeckRoute;
use crate::core::{RouteId, ServiceId};
use crate::model::router::{RouteSpec, Router};
use crate::model::{PathHandling, Route};
use crate::plugins::Policies;

pub(super) struct Routes<'a> {
    pub list: Vec<Route>,
    /// By name and by id.
    pub index: HashMap<String, RouteId>,
    /// The routes the router matches (those of enabled services), with their match criteria.
    routed: Vec<(RouteId, &'a DeckRoute)>,
}

pub(super) fn extract_routes<'a>(entities: &Entities<'a>, services: &Services, cx: &mut Findings<'_>) -> Routes<'a> {
    let mut out = Routes { list: Vec::new(), index: HashMap::new(), routed: Vec::new() };
    for (i, re) in entities.routes.iter().enumerate() {
        let r = re.route;
        let service = match (re.nested_in, &r.service) {
            (Some(s), _) => Some(ServiceId::new(s)),
            (None, Some(sref)) => resolve_ref(cx, &re.origin, "service", sref, |k| services.index.get(k).copied()),
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
            let svc = service.map(|s| services.list[s.index()].name.as_str()).unwrap_or("route");
            format!("{svc}.route-{i}")
        });
        if out.index.insert(name.clone(), RouteId::new(i)).is_some() {
            cx.problem(
                &re.origin,
                "name",
                format!("route name \"{name}\" is used more than once"),
                "give every route a unique name",
            );
        }
        if let Some(id) = &r.id {
            if id != &name {
                out.index.entry(id.clone()).or_insert(RouteId::new(i));
            }
        }
        for (pi, p) in r.protocols.iter().flatten().enumerate() {
            if p != "http" && p != "https" {
                cx.problem(
                    &re.origin,
                    &format!("protocols[{pi}]"),
                    format!("protocol \"{p}\" is not supported"),
                    "use http and https",
                );
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
        out.list.push(Route {
            name,
            id: r.id.clone().unwrap_or_else(|| derived_id("route", &format!("{i}"))),
            service: service.unwrap_or(ServiceId::new(0)),
            strip_path: r.strip_path.unwrap_or(true),
            preserve_host: r.preserve_host.unwrap_or(false),
            path_handling,
            policies: Policies::default(),
        });
        if service.is_some_and(|s| services.enabled[s.index()]) {
            out.routed.push((RouteId::new(i), r));
        }
    }
    out
}

/// The router over the routed routes; its complaints name the route's field.
pub(super) fn build_router(routes: &Routes<'_>, entities: &Entities<'_>, cx: &mut Findings<'_>) -> Option<Router> {
    let specs: Vec<RouteSpec> = routes
        .routed
        .iter()
        .map(|(id, r)| RouteSpec {
            id: *id,
            paths: &r.paths,
            methods: &r.methods,
            hosts: &r.hosts,
            regex_priority: r.regex_priority.unwrap_or(0),
        })
        .collect();
    match Router::build(&specs) {
        Ok(r) => Some(r),
        Err(errors) => {
            for (rid, field, what) in errors {
                let origin = &entities.routes[rid.index()].origin;
                cx.problem(origin, &field, what, "see Kong's route matching rules in README.md");
            }
            None
        }
    }
}
