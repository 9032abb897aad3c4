//! Plugins, one folder each, Kong-compatible where Kong has the plugin: its Kong schema (what
//! decK files say), its compiled form, its request-time logic and its tests.
//!
//! This module is the registry: which plugins exist ([`PluginKind`], [`REGISTRY`]), how a
//! `config` block compiles ([`compile`]), and the helpers every plugin's compiler shares. The
//! plugins of a route, with Kong's precedence applied, are its [`Policies`]; authentication
//! plugins are used through the [`auth::Authenticator`] trait.
//!
//! Adding a plugin: its folder here, a [`PluginKind`] variant and a [`REGISTRY`] line; a plugin
//! that is not an authenticator also gets its slot in [`Policies`] and a call in the proxy
//! phase where it acts.

pub mod acl;
pub mod ai_proxy;
pub mod ai_rate_limiting;
pub mod auth;
pub mod jwt;
pub mod key_auth;
pub mod limits;
pub mod mcp_guard;
pub mod mcp_proxy;
pub mod openid_connect;
pub mod policies;
pub mod rate_limiting;
pub mod request_transformer;

use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::consumers::Consumers;
use crate::store::ratelimit::CounterStores;
use crate::upstream::balancer::HealthRegistry;
use acl::Acl;
use ai_proxy::AiProxy;
use ai_rate_limiting::AiRateLimiting;
use auth::Authenticator;
use jwt::Jwt;
use key_auth::KeyAuth;
use mcp_guard::McpGuard;
use mcp_proxy::McpProxy;
use openid_connect::{JwksRegistry, OpenIdConnect};
pub use policies::{Instance, Policies, Scoped};
use rate_limiting::RateLimiting;
use request_transformer::RequestTransformer;

/// The plugins aigate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PluginKind {
    Jwt,
    KeyAuth,
    OpenIdConnect,
    Acl,
    RateLimiting,
    AiRateLimiting,
    McpProxy,
    RequestTransformer,
    AiProxy,
    AiProxyAdvanced,
    McpGuard,
}

/// A compiled plugin, by what the request path does with it.
pub enum Compiled {
    Authenticator(Arc<dyn Authenticator>),
    Acl(Arc<Acl>),
    RateLimiting(Arc<RateLimiting>),
    AiRateLimiting(Arc<AiRateLimiting>),
    AiProxy(Arc<AiProxy>),
    McpGuard(Arc<McpGuard>),
    RequestTransformer(Arc<RequestTransformer>),
    McpProxy(Arc<McpProxy>),
}

/// What compiling a plugin's `config` may use besides the config itself.
pub struct CompileContext<'a> {
    pub consumers: &'a Consumers,
    /// Identity providers' key caches, shared by every openid-connect instance naming one.
    pub jwks: &'a JwksRegistry,
    /// LLM targets' passive health, by target identity.
    pub health: &'a HealthRegistry,
    /// Hosts an LLM target's `upstream_url` may name over plain http (`llm_plain_http_hosts`).
    pub llm_plain_http_hosts: &'a [String],
    /// Rate-limit and budget counters (in this process, or shared through Redis).
    pub counters: &'a CounterStores,
    /// Extra CA certificates trusted for TLS (the `tls_trusted_ca` setting), Redis's included.
    pub trusted_ca: Option<&'a Path>,
    /// This plugin instance's stable identity (its decK `id`, else its name and scope): the
    /// namespace of its counters, the same on every gateway loading the same files.
    pub instance: &'a str,
}

type CompileFn = fn(Option<&serde_yaml::Value>, &CompileContext<'_>) -> Result<Compiled, Vec<ConfigIssue>>;

/// One plugin aigate knows.
pub struct Registration {
    pub kind: PluginKind,
    /// The decK `name`.
    pub name: &'static str,
    /// Authentication plugins identify the consumer, so they cannot be scoped to one.
    pub authenticates: bool,
    pub compile: CompileFn,
}

fn config<T: DeserializeOwned>(config: Option<&serde_yaml::Value>) -> Result<T, Vec<ConfigIssue>> {
    parse_config(config).map_err(|e| vec![e])
}

/// Every plugin, in Kong's priority order (jwt 1450, key-auth 1250, openid-connect 1050,
/// acl 950, rate-limiting 910, ai-rate-limiting-advanced 905, ai-mcp-proxy 820, request-transformer 801,
/// ai-proxy 770): the order authentication plugins, and then the limits, run in.
pub const REGISTRY: &[Registration] = &[
    Registration {
        kind: PluginKind::Jwt,
        name: "jwt",
        authenticates: true,
        compile: |c, cx| Ok(Compiled::Authenticator(Arc::new(Jwt::compile(config(c)?, cx.consumers)?))),
    },
    Registration {
        kind: PluginKind::KeyAuth,
        name: "key-auth",
        authenticates: true,
        compile: |c, cx| Ok(Compiled::Authenticator(Arc::new(KeyAuth::compile(config(c)?, cx.consumers)?))),
    },
    Registration {
        kind: PluginKind::OpenIdConnect,
        name: "openid-connect",
        authenticates: true,
        compile: |c, cx| {
            Ok(Compiled::Authenticator(Arc::new(OpenIdConnect::compile(config(c)?, cx.consumers, cx.jwks)?)))
        },
    },
    Registration {
        kind: PluginKind::Acl,
        name: "acl",
        authenticates: false,
        compile: |c, _| Ok(Compiled::Acl(Arc::new(Acl::compile(config(c)?)?))),
    },
    Registration {
        kind: PluginKind::RateLimiting,
        name: rate_limiting::NAME,
        authenticates: false,
        compile: |c, cx| Ok(Compiled::RateLimiting(Arc::new(RateLimiting::compile(config(c)?, cx)?))),
    },
    Registration {
        kind: PluginKind::AiRateLimiting,
        name: ai_rate_limiting::NAME,
        authenticates: false,
        compile: |c, cx| Ok(Compiled::AiRateLimiting(Arc::new(AiRateLimiting::compile(config(c)?, cx)?))),
    },
    Registration {
        kind: PluginKind::McpProxy,
        name: "ai-mcp-proxy",
        authenticates: false,
        compile: |c, _| Ok(Compiled::McpProxy(Arc::new(McpProxy::compile(config(c)?)?))),
    },
    Registration {
        kind: PluginKind::RequestTransformer,
        name: "request-transformer",
        authenticates: false,
        compile: |c, _| Ok(Compiled::RequestTransformer(Arc::new(RequestTransformer::compile(config(c)?)?))),
    },
    Registration {
        kind: PluginKind::AiProxy,
        name: "ai-proxy",
        authenticates: false,
        compile: |c, cx| {
            Ok(Compiled::AiProxy(Arc::new(AiProxy::compile_single(config(c)?, cx.health, cx.llm_plain_http_hosts)?)))
        },
    },
    Registration {
        kind: PluginKind::AiProxyAdvanced,
        name: "ai-proxy-advanced",
        authenticates: false,
        compile: |c, cx| {
            Ok(Compiled::AiProxy(Arc::new(AiProxy::compile_advanced(config(c)?, cx.health, cx.llm_plain_http_hosts)?)))
        },
    },
    Registration {
        kind: PluginKind::McpGuard,
        name: "ai-mcp-guard",
        authenticates: false,
        compile: |c, cx| Ok(Compiled::McpGuard(Arc::new(McpGuard::compile(config(c)?, cx.consumers)?))),
    },
];

impl PluginKind {
    fn registration(self) -> &'static Registration {
        // Every kind is registered (a test checks it); the first entry stands in otherwise.
        REGISTRY.iter().find(|r| r.kind == self).unwrap_or(&REGISTRY[0])
    }

    pub fn from_name(name: &str) -> Option<PluginKind> {
        REGISTRY.iter().find(|r| r.name == name).map(|r| r.kind)
    }

    pub fn name(self) -> &'static str {
        self.registration().name
    }

    /// Authentication plugins identify the consumer, so they cannot be scoped to one.
    pub fn is_auth(self) -> bool {
        self.registration().authenticates
    }

    /// The plugin a route has one of: ai-proxy and ai-proxy-advanced are one.
    pub fn slot(self) -> PluginKind {
        match self {
            PluginKind::AiProxyAdvanced => PluginKind::AiProxy,
            other => other,
        }
    }

    pub fn known_names() -> String {
        REGISTRY.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
    }
}

/// Compile one plugin's `config` (absent means all defaults).
pub fn compile(
    kind: PluginKind,
    config: Option<&serde_yaml::Value>,
    cx: &CompileContext<'_>,
) -> Result<Compiled, Vec<ConfigIssue>> {
    (kind.registration().compile)(config, cx)
}

/// A problem in one plugin's `config`, with the place inside it (`key_names[0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub path: String,
    pub what: String,
    pub fix: String,
}

impl ConfigIssue {
    pub fn new(path: impl Into<String>, what: impl Into<String>, fix: impl Into<String>) -> Self {
        ConfigIssue { path: path.into(), what: what.into(), fix: fix.into() }
    }
}

/// Deserialize a plugin `config` block (absent means all defaults), naming the failing field.
pub fn parse_config<T: DeserializeOwned>(config: Option<&serde_yaml::Value>) -> Result<T, ConfigIssue> {
    let empty = serde_yaml::Value::Mapping(serde_yaml::Mapping::new());
    let value = match config {
        None | Some(serde_yaml::Value::Null) => &empty,
        Some(v) => v,
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigIssue::new(path, e.into_inner().to_string(), "see the plugin's fields in README.md")
    })
}

/// A Kong field that aigate accepts only at its default (decK dumps write every field).
/// Anything else would be a setting silently not enforced, so it is refused.
pub fn unsupported_unless_default(
    issues: &mut Vec<ConfigIssue>,
    path: &str,
    value: &Option<serde_yaml::Value>,
    is_default: impl Fn(&serde_yaml::Value) -> bool,
) {
    if let Some(v) = value {
        if !v.is_null() && !is_default(v) {
            issues.push(ConfigIssue::new(
                path,
                format!("`{path}` is not supported by aigate"),
                "remove it or set it to null",
            ));
        }
    }
}

/// An auth plugin's `anonymous` consumer (username or id), checked to exist.
pub fn anonymous_consumer(
    issues: &mut Vec<ConfigIssue>,
    consumers: &Consumers,
    anonymous: Option<&str>,
) -> Option<crate::core::ConsumerId> {
    let name = anonymous.filter(|a| !a.is_empty())?;
    let id = consumers.find(name);
    if id.is_none() {
        issues.push(ConfigIssue::new(
            "anonymous",
            format!("anonymous consumer `{name}` is not defined"),
            "name a consumer (username or id) from the consumers list",
        ));
    }
    id
}

/// A list of names from a fixed set, parsed in order without repeats; each unknown name is an
/// issue at `field[i]` saying "`name` {unknown}".
pub fn choices<'a, T: PartialEq>(
    issues: &mut Vec<ConfigIssue>,
    field: &str,
    names: impl IntoIterator<Item = &'a String>,
    parse: impl Fn(&str) -> Option<T>,
    unknown: &str,
    fix: &str,
) -> Vec<T> {
    let mut out = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        match parse(name) {
            Some(v) if !out.contains(&v) => out.push(v),
            Some(_) => {}
            None => issues.push(ConfigIssue::new(format!("{field}[{i}]"), format!("`{name}` {unknown}"), fix)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_registered_once() {
        for kind in [
            PluginKind::Jwt,
            PluginKind::KeyAuth,
            PluginKind::OpenIdConnect,
            PluginKind::Acl,
            PluginKind::RateLimiting,
            PluginKind::AiRateLimiting,
            PluginKind::McpProxy,
            PluginKind::RequestTransformer,
            PluginKind::AiProxy,
            PluginKind::AiProxyAdvanced,
            PluginKind::McpGuard,
        ] {
            assert_eq!(REGISTRY.iter().filter(|r| r.kind == kind).count(), 1, "{kind:?}");
            assert_eq!(PluginKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(PluginKind::from_name("rate-limiting-advanced"), None);
    }

    #[test]
    fn choices_keep_order_drop_repeats_and_name_unknowns() {
        let mut issues = Vec::new();
        let names: Vec<String> = ["b", "a", "b", "zz"].iter().map(|s| s.to_string()).collect();
        let parse = |s: &str| match s {
            "a" => Some(1),
            "b" => Some(2),
            _ => None,
        };
        let got = choices(&mut issues, "things", &names, parse, "is not a thing", "use a or b");
        assert_eq!(got, vec![2, 1]);
        assert_eq!(issues, vec![ConfigIssue::new("things[3]", "`zz` is not a thing", "use a or b")]);
    }
}
