//! The status listener (`status_listen`, loopback by default): `/metrics` in Prometheus text
//! format, `/status` as JSON, `/status/ready` for load balancers and systemd. It never needs or
//! shows a key; the proxy listener does not serve these paths.
//!
//! Endpoints that change state (`POST /mcp/pins/<label>/accept`) are for an operator's tools,
//! never a browser: they need the `X-Aigate-Operator` header (a header a page cannot add to a
//! cross-site request without a CORS preflight, which this listener never grants), equal to
//! `status_operator_token` when that is set; a request with an `Origin` is refused; and without a
//! token the `Host` must be an IP address or `localhost`, so a DNS-rebinding page cannot reach
//! them either.

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

/// The header an operator's request carries to change state.
pub const OPERATOR_HEADER: &str = "x-aigate-operator";

/// Whether a state-changing request comes from an operator's tool, not from a web page.
fn operator_request(
    req: &pingora_http::RequestHeader,
    token: Option<&crate::core::Secret>,
) -> Result<(), &'static str> {
    if req.headers.contains_key(http::header::ORIGIN) {
        return Err("requests from web pages (with an Origin header) cannot change state");
    }
    let given = req.headers.get(OPERATOR_HEADER).map(|v| v.as_bytes()).filter(|v| !v.is_empty());
    let Some(given) = given else {
        return Err("the X-Aigate-Operator header is required to change state");
    };
    match token {
        Some(t) if !t.matches(given) => Err("the X-Aigate-Operator header does not hold the operator token"),
        Some(_) => Ok(()),
        None => {
            let host = req.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
            if local_host(host) {
                Ok(())
            } else {
                Err("without status_operator_token, the Host must be an IP address or localhost")
            }
        }
    }
}

/// An IP literal or `localhost`, with an optional port: never a name DNS could rebind.
fn local_host(host: &str) -> bool {
    let name = match crate::core::split_host_port(host, 0) {
        Some((h, _)) => h,
        None => return false,
    };
    name == "localhost" || name.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok()
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
            if let Err(why) = operator_request(req, s.settings.status_operator_token.as_ref()) {
                log::warn!("status listener: refused a state change ({why})");
                return json(403, &serde_json::json!({"message": why}));
            }
            let label = String::from_utf8_lossy(&crate::core::query::decode(label.as_bytes())).into_owned();
            return match s.pins.accept(&label).await {
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
            "/metrics" => {
                crate::proxy::phases::limits::refresh_metrics(&s.current.load().config);
                reply(200, "text/plain; version=0.0.4; charset=utf-8", s.metrics.render())
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> pingora_http::RequestHeader {
        let mut r = pingora_http::RequestHeader::build("POST", b"/mcp/pins/docs/accept", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn only_an_operators_tool_changes_state() {
        let ok = req(&[("host", "127.0.0.1:8100"), ("x-aigate-operator", "1")]);
        assert!(operator_request(&ok, None).is_ok());
        assert!(operator_request(&req(&[("host", "localhost:8100"), ("x-aigate-operator", "yes")]), None).is_ok());
        assert!(operator_request(&req(&[("host", "[::1]:8100"), ("x-aigate-operator", "1")]), None).is_ok());
        // A form or fetch from a page: no custom header, or an Origin.
        assert!(operator_request(&req(&[("host", "127.0.0.1:8100")]), None).is_err());
        let page = req(&[("host", "127.0.0.1:8100"), ("x-aigate-operator", "1"), ("origin", "https://evil.example")]);
        assert!(operator_request(&page, None).is_err());
        // DNS rebinding: the page's own host name.
        assert!(operator_request(&req(&[("host", "evil.example:8100"), ("x-aigate-operator", "1")]), None).is_err());
    }

    #[test]
    fn with_a_token_the_header_must_hold_it() {
        let token = crate::core::Secret::new("operator-token-abcdef".into());
        let with = |v: &str| req(&[("host", "aigate-1.internal:8100"), ("x-aigate-operator", v)]);
        assert!(operator_request(&with("operator-token-abcdef"), Some(&token)).is_ok());
        assert!(operator_request(&with("1"), Some(&token)).is_err());
        assert!(operator_request(&req(&[("host", "aigate-1.internal:8100")]), Some(&token)).is_err());
    }
}
