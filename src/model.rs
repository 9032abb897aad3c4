//! The validated, immutable gateway model. The request path only reads it; a reload builds a new
//! one and swaps it in whole.

use std::collections::HashMap;
use std::sync::Arc;

use crate::consumers::Consumers;
use crate::core::{ConsumerId, Endpoint, RouteId, ServiceId, Timeouts};
use crate::plugins::acl::Acl;
use crate::plugins::ai_proxy::AiProxy;
use crate::plugins::jwt::Jwt;
use crate::plugins::key_auth::KeyAuth;
use crate::plugins::mcp_guard::McpGuard;
use crate::plugins::openid_connect::jwks::JwksCache;
use crate::plugins::openid_connect::OpenIdConnect;
use crate::router::Router;

/// Everything aigate serves, built from the decK files.
pub struct Gateway {
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

impl Gateway {
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
    pub jwt: Option<Arc<Jwt>>,
    pub key_auth: Option<Arc<KeyAuth>>,
    pub openid_connect: Option<Arc<OpenIdConnect>>,
    pub acl: Scoped<Acl>,
    pub ai_proxy: Scoped<AiProxy>,
    pub mcp_guard: Scoped<McpGuard>,
}
