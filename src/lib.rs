//! aigate: an AI gateway on Pingora. It loads Kong declarative (decK) files, authenticates
//! consumers as Kong's key-auth, jwt and openid-connect do, and proxies OpenAI Responses and
//! Chat Completions traffic (including hosted MCP tools) with the provider key kept in the
//! gateway, exact per-consumer token and MCP accounting, and Prometheus metrics.
//!
//! Modules depend one way (ARCHITECTURE.md; `scripts/check-module-graph` checks it), from the
//! process down to the leaves:
//!
//! - `server`, `lifecycle`, `status`: the running process, on [`proxy::state`];
//! - [`proxy`]: the `ProxyHttp` impl, its phases, the request context, error answers;
//! - [`config`]: the settings file and the decK compiler → [`model`], the loaded configuration;
//! - [`plugins`]: the registry, route policies, one folder per plugin;
//! - leaves: [`core`], [`jose`], [`consumers`], [`store`], [`mcp`], [`ai`], [`upstream`],
//!   [`telemetry`].

pub mod ai;
pub mod config;
pub mod consumers;
pub mod core;
pub mod jose;
pub mod lifecycle;
pub mod mcp;
pub mod model;
pub mod plugins;
pub mod proxy;
pub mod server;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod upstream;
