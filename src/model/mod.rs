//! The validated, immutable gateway model. The request path only reads it; a reload builds a new
//! one and swaps it in whole.

use std::sync::Arc;

use crate::consumers::Consumers;
use crate::core::{Endpoint, RouteId, ServiceId, Timeouts};
use crate::plugins::ai_proxy::AiTarget;
use crate::plugins::openid_connect::jwks::JwksCache;
use crate::plugins::Policies;

pub mod router;
use router::Router;

/// Everything aigate serves, built from the decK files.
pub struct Config {
    pub services: Vec<Service>,
    pub routes: Vec<Route>,
    pub router: Router,
    pub consumers: Consumers,
    /// SHA-256 over the rendered decK files, shown by `/status` (never their content).
    pub digest: String,
    /// How many LLM targets all plugins have together (target ids are `0..ai_target_count`).
    pub ai_target_count: usize,
    /// Identity providers' key sets (openid-connect), refreshed off the request path.
    pub jwks: Vec<Arc<JwksCache>>,
}

impl Config {
    /// Every LLM target of every route's ai-proxy plugins (a plugin on several routes once
    /// per route).
    pub fn llm_targets(&self) -> impl Iterator<Item = &AiTarget> {
        self.routes.iter().flat_map(|r| {
            let p = &r.policies.ai_proxy;
            p.default.iter().chain(p.by_consumer.values()).flat_map(|ai| ai.targets.iter())
        })
    }

    pub fn route(&self, id: RouteId) -> &Route {
        &self.routes[id.index()]
    }

    pub fn service_of(&self, route: &Route) -> &Service {
        &self.services[route.service.index()]
    }
}

pub struct Service {
    pub name: String,
    pub id: String,
    pub endpoint: Endpoint,
    pub retries: u32,
    pub timeouts: Timeouts,
    pub tls_verify: bool,
}

/// How a route's matched prefix is removed and joined to the service path (Kong's
/// `path_handling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathHandling {
    V0,
    V1,
}

pub struct Route {
    pub name: String,
    pub id: String,
    pub service: ServiceId,
    pub strip_path: bool,
    pub preserve_host: bool,
    pub path_handling: PathHandling,
    pub policies: Policies,
}
