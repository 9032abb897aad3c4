//! aigate: an AI gateway on Pingora. It loads Kong declarative (decK) files, authenticates
//! consumers as Kong's key-auth does, and proxies OpenAI Responses and Chat Completions traffic
//! (including hosted MCP tools) with the provider key kept in the gateway, exact per-consumer
//! token and MCP accounting, and Prometheus metrics.
//!
//! Where things live: `settings` (the settings file), `declarative` (decK files → `model`),
//! `router`, `plugins/` (one file per plugin), `ai/` (request rewrite, usage and MCP extraction),
//! `upstream/` (peers, DNS, TLS trust, balancing), `gateway` (the `ProxyHttp` impl) and its
//! `phases/`, `head_timeout` (slow request heads), `metrics`, `access_log`, `status`, `lifecycle`, `errors`.

pub mod ai;
pub mod config;
pub mod consumers;
pub mod core;
pub mod jose;
pub mod lifecycle;
pub mod model;
pub mod plugins;
pub mod proxy;

pub mod server;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod upstream;
