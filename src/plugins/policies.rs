//! The plugins in force on a route, resolved once when the configuration loads. When the same
//! plugin is configured at several scopes, Kong's precedence decides: route+service+consumer >
//! route+consumer > service+consumer > route+service > consumer > route > service > global.

use std::collections::HashMap;
use std::sync::Arc;

use super::acl::Acl;
use super::ai_proxy::AiProxy;
use super::ai_rate_limiting::AiRateLimiting;
use super::auth::Authenticator;
use super::mcp_guard::McpGuard;
use super::mcp_proxy::McpProxy;
use super::rate_limiting::RateLimiting;
use super::request_transformer::RequestTransformer;
use super::{Compiled, PluginKind, REGISTRY};
use crate::core::{ConsumerId, RouteId, ServiceId};

/// A plugin resolved for one route, possibly overridden for some consumers (Kong's precedence
/// already applied when this was built).
pub struct Scoped<T> {
    pub default: Option<Arc<T>>,
    pub by_consumer: HashMap<ConsumerId, Arc<T>>,
}

impl<T> Default for Scoped<T> {
    fn default() -> Self {
        Scoped { default: None, by_consumer: HashMap::new() }
    }
}

impl<T> Scoped<T> {
    pub fn for_consumer(&self, consumer: Option<ConsumerId>) -> Option<&Arc<T>> {
        if !self.by_consumer.is_empty() {
            if let Some(c) = consumer.and_then(|c| self.by_consumer.get(&c)) {
                return Some(c);
            }
        }
        self.default.as_ref()
    }

    pub fn is_configured(&self) -> bool {
        self.default.is_some() || !self.by_consumer.is_empty()
    }
}

/// The plugins in force on a route. Authentication plugins cannot be consumer-scoped (as in
/// Kong); the others can.
#[derive(Default)]
pub struct Policies {
    /// In Kong's priority order (jwt, key-auth, openid-connect): the order they run in.
    pub authenticators: Vec<Arc<dyn Authenticator>>,
    pub acl: Scoped<Acl>,
    pub rate_limiting: Scoped<RateLimiting>,
    pub ai_rate_limiting: Scoped<AiRateLimiting>,
    pub ai_proxy: Scoped<AiProxy>,
    pub mcp_guard: Scoped<McpGuard>,
    pub request_transformer: Scoped<RequestTransformer>,
    /// ai-mcp-proxy: route and service scopes only (as in Kong).
    pub mcp_proxy: Scoped<McpProxy>,
}

/// A compiled plugin and the scope it was configured at.
pub struct Instance {
    /// The plugin's slot (ai-proxy-advanced counts as ai-proxy).
    pub kind: PluginKind,
    pub service: Option<ServiceId>,
    pub route: Option<RouteId>,
    pub consumer: Option<ConsumerId>,
    pub compiled: Compiled,
}

impl Instance {
    /// Kong's precedence: the more specific scope wins.
    fn rank(&self) -> u8 {
        match (self.route.is_some(), self.service.is_some(), self.consumer.is_some()) {
            (true, true, true) => 8,
            (true, false, true) => 7,
            (false, true, true) => 6,
            (true, true, false) => 5,
            (false, false, true) => 4,
            (true, false, false) => 3,
            (false, true, false) => 2,
            (false, false, false) => 1,
        }
    }
}

impl Policies {
    /// The plugins of `instances` in force on `route` (of `service`).
    pub fn resolve(instances: &[Instance], route: RouteId, service: ServiceId) -> Policies {
        let applies = |i: &Instance| i.route.is_none_or(|r| r == route) && i.service.is_none_or(|s| s == service);
        let mut policies = Policies::default();
        for registration in REGISTRY.iter().filter(|r| r.kind.slot() == r.kind) {
            let kind = registration.kind;
            let candidates: Vec<&Instance> = instances.iter().filter(|i| i.kind == kind && applies(i)).collect();
            let base = candidates.iter().filter(|i| i.consumer.is_none()).max_by_key(|i| i.rank()).copied();
            let base_rank = base.map_or(0, Instance::rank);
            let mut by_consumer: HashMap<ConsumerId, &Instance> = HashMap::new();
            for c in candidates.iter().filter(|i| i.rank() > base_rank) {
                let Some(cid) = c.consumer else { continue };
                match by_consumer.get(&cid) {
                    Some(existing) if existing.rank() >= c.rank() => {}
                    _ => {
                        by_consumer.insert(cid, c);
                    }
                }
            }
            match base.map(|b| &b.compiled) {
                Some(Compiled::Authenticator(a)) => policies.authenticators.push(Arc::clone(a)),
                _ => match kind {
                    PluginKind::Acl => {
                        policies.acl = scoped(base, &by_consumer, |c| match c {
                            Compiled::Acl(a) => Some(a),
                            _ => None,
                        })
                    }
                    PluginKind::RateLimiting => {
                        policies.rate_limiting = scoped(base, &by_consumer, |c| match c {
                            Compiled::RateLimiting(r) => Some(r),
                            _ => None,
                        })
                    }
                    PluginKind::AiRateLimiting => {
                        policies.ai_rate_limiting = scoped(base, &by_consumer, |c| match c {
                            Compiled::AiRateLimiting(r) => Some(r),
                            _ => None,
                        })
                    }
                    PluginKind::AiProxy => {
                        policies.ai_proxy = scoped(base, &by_consumer, |c| match c {
                            Compiled::AiProxy(a) => Some(a),
                            _ => None,
                        })
                    }
                    PluginKind::McpGuard => {
                        policies.mcp_guard = scoped(base, &by_consumer, |c| match c {
                            Compiled::McpGuard(g) => Some(g),
                            _ => None,
                        })
                    }
                    PluginKind::McpProxy => {
                        policies.mcp_proxy = scoped(base, &HashMap::new(), |c| match c {
                            Compiled::McpProxy(p) => Some(p),
                            _ => None,
                        })
                    }
                    PluginKind::RequestTransformer => {
                        policies.request_transformer = scoped(base, &by_consumer, |c| match c {
                            Compiled::RequestTransformer(t) => Some(t),
                            _ => None,
                        })
                    }
                    _ => {}
                },
            }
        }
        policies
    }
}

fn scoped<T>(
    base: Option<&Instance>,
    by_consumer: &HashMap<ConsumerId, &Instance>,
    get: impl Fn(&Compiled) -> Option<&Arc<T>>,
) -> Scoped<T> {
    Scoped {
        default: base.and_then(|b| get(&b.compiled)).cloned(),
        by_consumer: by_consumer.iter().filter_map(|(c, i)| get(&i.compiled).map(|v| (*c, Arc::clone(v)))).collect(),
    }
}
