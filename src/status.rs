//! The status listener (`status_listen`, loopback by default): `/metrics` in Prometheus text
//! format, `/status` as JSON, `/status/ready` for load balancers and systemd. It never needs or
//! shows a key; the proxy listener does not serve these paths.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use serde::Serialize;

use crate::proxy::state::ProcessState;

pub struct StatusApp {
    pub shared: Arc<ProcessState>,
}

#[derive(Serialize)]
struct StatusBody<'a> {
    version: &'a str,
    uptime_seconds: u64,
    ready: bool,
    config_digest: &'a str,
    config_loaded_at: u64,
    services: usize,
    routes: usize,
    consumers: usize,
    credentials: usize,
    declarative_config: Vec<String>,
}

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

fn json(status: u16, v: &impl Serialize) -> Response<Vec<u8>> {
    reply(status, "application/json; charset=utf-8", serde_json::to_vec(v).unwrap_or_default())
}

#[async_trait]
impl ServeHttp for StatusApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let s = &self.shared;
        let path = req.uri.path().to_string();
        // An operator accepts a changed MCP tool list.
        if let Some(label) = path.strip_prefix("/mcp/pins/").and_then(|p| p.strip_suffix("/accept")) {
            if req.method != http::Method::POST {
                return json(405, &serde_json::json!({"message": "Method not allowed"}));
            }
            let label = String::from_utf8_lossy(&crate::core::query::decode(label.as_bytes())).into_owned();
            return match s.pins.accept(&label) {
                Some(digest) => {
                    log::info!("MCP server '{label}': tool list {digest} accepted by an operator");
                    json(200, &serde_json::json!({"server_label": label, "accepted": digest}))
                }
                None => json(404, &serde_json::json!({"message": "no tool list observed for this server"})),
            };
        }
        if req.method != http::Method::GET && req.method != http::Method::HEAD {
            return json(405, &serde_json::json!({"message": "Method not allowed"}));
        }
        match path.as_str() {
            "/mcp/pins" => json(200, &s.pins.snapshot()),
            "/metrics" => reply(200, "text/plain; version=0.0.4; charset=utf-8", s.metrics.render()),
            "/status" => {
                let g = s.current.load();
                let body = StatusBody {
                    version: env!("CARGO_PKG_VERSION"),
                    uptime_seconds: s.started.elapsed().as_secs(),
                    ready: s.ready.load(Ordering::Relaxed),
                    config_digest: &g.config.digest,
                    config_loaded_at: g
                        .loaded_at
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0),
                    services: g.config.services.len(),
                    routes: g.config.routes.len(),
                    consumers: g.config.consumers.list.len(),
                    credentials: g.config.consumers.key_count(),
                    declarative_config: s.settings.declarative_config.iter().map(|p| p.display().to_string()).collect(),
                };
                json(200, &body)
            }
            "/status/ready" => {
                if s.ready.load(Ordering::Relaxed) {
                    json(200, &serde_json::json!({"ready": true}))
                } else {
                    json(503, &serde_json::json!({"ready": false}))
                }
            }
            _ => json(404, &serde_json::json!({"message": "Not found"})),
        }
    }
}
