//! The gateway's own answers: every refusal and failure becomes one JSON response here, in Kong's
//! envelope (`{"message": ..., "request_id": ...}`) for gateway policies and plain routes, or in
//! OpenAI's (`{"error": {...}}`) for LLM requests, so SDKs show the reason. No message ever holds
//! a key, a token or a body.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::ai::anthropic::error_type_for_status;
use crate::ai::provider::Dialect;
use crate::ai::refusal::AiRefusal;
use crate::mcp;
use crate::plugins::auth::{AuthFailure, FailureBody};
use crate::plugins::limits::Refusal;
use crate::upstream::UpstreamFailure;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    Kong,
    OpenAi,
    /// MCP routes: JSON-RPC error responses (authentication refusals stay Kong's).
    JsonRpc,
    /// Anthropic's `{"type":"error","error":{...}}`, on `llm_format: anthropic` routes.
    Anthropic,
}

impl Envelope {
    /// The envelope of an LLM route whose clients speak `format`.
    pub fn for_llm(format: Dialect) -> Envelope {
        match format {
            Dialect::OpenAi => Envelope::OpenAi,
            Dialect::Anthropic => Envelope::Anthropic,
        }
    }
}

/// Why an upgrade is refused on an LLM route.
const UPGRADE_REFUSED: &str = "protocol upgrades (WebSocket) are not available on this route: use HTTP requests (POST, with \"stream\": true for events)";

/// Every answer the gateway makes itself.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayError {
    NoRoute,
    /// An authentication or authorization plugin refused: 401 (no or bad credential) or 403
    /// (a known caller that may not pass), with the plugin's message (or jwt's claims map) and
    /// `WWW-Authenticate`.
    Auth(AuthFailure),
    BodyTooLarge {
        limit: u64,
    },
    BadRequest {
        message: String,
    },
    Ai(AiRefusal),
    Upstream(UpstreamFailure),
    /// A client waited too long to send its request.
    RequestTimeout,
    /// A transfer coding other than `chunked` (nginx answers 501 too).
    UnsupportedTransferCoding,
    /// A request head over `max_request_header_size` or with more than `max_request_headers`
    /// fields.
    HeadersTooLarge {
        too_many: bool,
    },
    /// Framing the gateway will not interpret (duplicate lengths, length with chunked).
    BadFraming {
        message: &'static str,
    },
    /// An MCP message refused or answered by the gateway: a JSON-RPC error body (or a batch
    /// of them) with its HTTP status.
    Mcp {
        status: u16,
        code: i64,
        body: Bytes,
    },
    /// A path of the route's API that does not take this method (`Allow` lists those it takes).
    MethodNotAllowed {
        message: String,
        allow: &'static str,
    },
    /// A protocol upgrade (WebSocket) on a route that does not pass them.
    UpgradeRefused,
    /// A rate limit or budget is used up: the plugin's status and message, in Kong's shape
    /// whatever the route (the limit's headers go with it).
    RateLimited(Box<Refusal>),
    /// The shared counters could not be asked and the plugin is not fault tolerant (Kong's
    /// 500).
    LimitsUnavailable,
    Internal,
}

/// A rendered answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorResponse {
    pub status: u16,
    pub body: Bytes,
    pub www_authenticate: Option<Arc<str>>,
    /// `Allow`, on a 405.
    pub allow: Option<&'static str>,
}

#[derive(Serialize)]
struct KongBody<'a> {
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    request_id: &'a str,
}

#[derive(Serialize)]
struct AnthropicBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicError<'a>,
    request_id: &'a str,
}

#[derive(Serialize)]
struct AnthropicError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
struct MessageOnly<'a> {
    message: &'a str,
}

#[derive(Serialize)]
struct OpenAiBody<'a> {
    error: OpenAiError<'a>,
}

#[derive(Serialize)]
struct OpenAiError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: &'a str,
}

impl GatewayError {
    pub fn status(&self) -> u16 {
        match self {
            GatewayError::NoRoute => 404,
            GatewayError::Auth(f) => f.status,
            GatewayError::BodyTooLarge { .. } => 413,
            GatewayError::BadRequest { .. } | GatewayError::BadFraming { .. } => 400,
            GatewayError::Ai(r) => r.status,
            GatewayError::Upstream(f) => f.status(),
            GatewayError::RequestTimeout => 408,
            GatewayError::UnsupportedTransferCoding => 501,
            GatewayError::HeadersTooLarge { .. } => 431,
            GatewayError::Mcp { status, .. } => *status,
            GatewayError::MethodNotAllowed { .. } => 405,
            GatewayError::UpgradeRefused => 400,
            GatewayError::RateLimited(r) => r.status,
            GatewayError::LimitsUnavailable | GatewayError::Internal => 500,
        }
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewayError::NoRoute => "no_route",
            GatewayError::Auth(f) if f.status == 403 => "forbidden",
            GatewayError::Auth(_) => "unauthorized",
            GatewayError::BodyTooLarge { .. } => "body_too_large",
            GatewayError::BadRequest { .. } => "bad_request",
            GatewayError::BadFraming { .. } => "bad_framing",
            GatewayError::Ai(r) => r.code,
            GatewayError::Upstream(f) => f.kind(),
            GatewayError::RequestTimeout => "request_timeout",
            GatewayError::UnsupportedTransferCoding => "unsupported_transfer_coding",
            GatewayError::HeadersTooLarge { .. } => "headers_too_large",
            GatewayError::Mcp { code, .. } => match *code {
                mcp::PARSE_ERROR => "mcp_parse_error",
                mcp::METHOD_NOT_FOUND => "mcp_method_not_found",
                mcp::INVALID_PARAMS => "mcp_forbidden",
                mcp::INTERNAL_ERROR => "mcp_blocked",
                _ => "mcp_invalid_request",
            },
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::UpgradeRefused => "upgrade_not_supported",
            GatewayError::RateLimited(_) => "rate_limited",
            GatewayError::LimitsUnavailable => "ratelimit_unavailable",
            GatewayError::Internal => "internal_error",
        }
    }

    pub fn render(&self, request_id: &str, envelope: Envelope) -> ErrorResponse {
        let status = self.status();
        if let GatewayError::Mcp { body, .. } = self {
            return ErrorResponse { status, body: body.clone(), www_authenticate: None, allow: None };
        }
        if envelope == Envelope::JsonRpc && !matches!(self, GatewayError::Auth(_)) {
            // The gateway's own answer, as a JSON-RPC error an MCP client can show.
            let kong = self.render(request_id, Envelope::Kong);
            let message = serde_json::from_slice::<serde_json::Value>(&kong.body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
                .unwrap_or_else(|| "the gateway refused the request".into());
            let code = if status >= 500 { mcp::INTERNAL_ERROR } else { mcp::INVALID_REQUEST };
            let body = mcp::RpcError::new(status, code, message).body();
            return ErrorResponse { status, body, www_authenticate: None, allow: None };
        }
        let mut www = None;
        let mut allow = None;
        if envelope == Envelope::Anthropic {
            if let Some(message) = self.llm_message() {
                let body = AnthropicBody {
                    kind: "error",
                    error: AnthropicError { kind: error_type_for_status(status), message: &message },
                    request_id,
                };
                let body = serde_json::to_vec(&body).unwrap_or_default();
                let allow = match self {
                    GatewayError::MethodNotAllowed { allow, .. } => Some(*allow),
                    _ => None,
                };
                return ErrorResponse { status, body: Bytes::from(body), www_authenticate: None, allow };
            }
        }
        let body = match (self, envelope) {
            (GatewayError::Ai(r), _) => openai(&r.message, r.kind, r.code),
            (GatewayError::Auth(f), _) => {
                www.clone_from(&f.www_authenticate);
                match &f.body {
                    FailureBody::Message(message) => kong(message, None, request_id),
                    // Kong's jwt plugin answers claim failures with the claims map alone.
                    FailureBody::Claims(claims) => {
                        let map: serde_json::Map<String, serde_json::Value> =
                            claims.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect();
                        serde_json::to_vec(&map).unwrap_or_default()
                    }
                }
            }
            (GatewayError::NoRoute, _) => kong("no Route matched with those values", None, request_id),
            (GatewayError::BodyTooLarge { limit }, e) => {
                let msg = format!("Request body is larger than the limit of {limit} bytes");
                match e {
                    Envelope::OpenAi => openai(&msg, "invalid_request_error", "request_too_large"),
                    _ => kong(&msg, None, request_id),
                }
            }
            (GatewayError::BadFraming { message }, _) => kong(message, None, request_id),
            (GatewayError::BadRequest { message }, Envelope::OpenAi) => {
                openai(message, "invalid_request_error", "bad_request")
            }
            (GatewayError::BadRequest { message }, _) => kong(message, None, request_id),
            (GatewayError::Upstream(f), Envelope::OpenAi) => openai(f.message(), "gateway_error", f.kind()),
            (GatewayError::Upstream(f), _) => kong(f.message(), Some(f.kind()), request_id),
            (GatewayError::RequestTimeout, _) => kong("Request timeout", None, request_id),
            (GatewayError::UnsupportedTransferCoding, _) => {
                kong("Transfer-Encoding other than chunked is not supported", None, request_id)
            }
            (GatewayError::HeadersTooLarge { too_many: false }, _) => {
                kong("Request header fields too large", None, request_id)
            }
            (GatewayError::HeadersTooLarge { too_many: true }, _) => {
                kong("Too many request header fields", None, request_id)
            }
            (GatewayError::MethodNotAllowed { message, allow: a }, e) => {
                allow = Some(*a);
                match e {
                    Envelope::OpenAi => openai(message, "invalid_request_error", "method_not_allowed"),
                    _ => kong(message, None, request_id),
                }
            }
            (GatewayError::UpgradeRefused, e) => match e {
                Envelope::OpenAi => openai(UPGRADE_REFUSED, "invalid_request_error", "upgrade_not_supported"),
                _ => kong(UPGRADE_REFUSED, None, request_id),
            },
            // Kong's kong.response.error adds the request id; kong.response.exit does not.
            (GatewayError::RateLimited(r), _) if r.with_request_id => kong(&r.message, None, request_id),
            (GatewayError::RateLimited(r), _) => {
                serde_json::to_vec(&MessageOnly { message: &r.message }).unwrap_or_default()
            }
            (GatewayError::Internal | GatewayError::LimitsUnavailable, Envelope::OpenAi) => {
                openai("An unexpected error occurred", "gateway_error", "internal_error")
            }
            (GatewayError::Internal | GatewayError::LimitsUnavailable, _) => {
                kong("An unexpected error occurred", None, request_id)
            }
            (GatewayError::Mcp { body, .. }, _) => body.to_vec(),
        };
        ErrorResponse { status, body: Bytes::from(body), www_authenticate: www, allow }
    }
}

impl From<mcp::RpcError> for GatewayError {
    fn from(e: mcp::RpcError) -> Self {
        GatewayError::Mcp { status: e.status, code: e.code, body: e.body() }
    }
}

impl GatewayError {
    /// The message of an error an LLM client's SDK shows in its provider's shape (policy
    /// refusals keep Kong's shape on every route).
    fn llm_message(&self) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        Some(match self {
            GatewayError::Ai(r) => Cow::Borrowed(r.message.as_str()),
            GatewayError::BodyTooLarge { limit } => {
                Cow::Owned(format!("Request body is larger than the limit of {limit} bytes"))
            }
            GatewayError::BadRequest { message } => Cow::Borrowed(message.as_str()),
            GatewayError::Upstream(f) => Cow::Owned(format!("{} ({})", f.message(), f.kind())),
            GatewayError::Internal => Cow::Borrowed("An unexpected error occurred"),
            GatewayError::MethodNotAllowed { message, .. } => Cow::Borrowed(message.as_str()),
            GatewayError::UpgradeRefused => Cow::Borrowed(UPGRADE_REFUSED),
            _ => return None,
        })
    }
}

impl From<AiRefusal> for GatewayError {
    fn from(r: AiRefusal) -> Self {
        GatewayError::Ai(r)
    }
}

fn kong(message: &str, kind: Option<&str>, request_id: &str) -> Vec<u8> {
    serde_json::to_vec(&KongBody { message, kind, request_id }).unwrap_or_default()
}

fn openai(message: &str, kind: &str, code: &str) -> Vec<u8> {
    serde_json::to_vec(&OpenAiBody { error: OpenAiError { message, kind, param: None, code } }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(r: &ErrorResponse) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn kong_envelope() {
        let e = GatewayError::Auth(
            AuthFailure::new(401, "No API key found in request", "missing").with_www_authenticate(&Arc::from("Key")),
        );
        let r = e.render("abc", Envelope::OpenAi);
        assert_eq!(r.status, 401);
        assert_eq!(json(&r), serde_json::json!({"message": "No API key found in request", "request_id": "abc"}));
        assert_eq!(r.www_authenticate.as_deref(), Some("Key"));
        let r = GatewayError::NoRoute.render("id", Envelope::Kong);
        assert_eq!(json(&r)["message"], "no Route matched with those values");
    }

    #[test]
    fn openai_envelope() {
        let r = GatewayError::Ai(AiRefusal::bad_request("cannot use own model - must be: gpt-4o", "model_not_allowed"))
            .render("x", Envelope::OpenAi);
        assert_eq!(r.status, 400);
        assert_eq!(json(&r)["error"]["message"], "cannot use own model - must be: gpt-4o");
        assert_eq!(json(&r)["error"]["type"], "invalid_request_error");
        let r = GatewayError::Upstream(UpstreamFailure::TlsFailure).render("x", Envelope::OpenAi);
        assert_eq!(r.status, 502);
        assert_eq!(json(&r)["error"]["code"], "tls_failure");
        let r = GatewayError::Upstream(UpstreamFailure::ReadTimeout).render("x", Envelope::Kong);
        assert_eq!(r.status, 504);
        assert_eq!(json(&r)["kind"], "read_timeout");
    }

    #[test]
    fn anthropic_envelope() {
        let r =
            GatewayError::Ai(AiRefusal::bad_request("cannot use own model - must be: claude-x", "model_not_allowed"))
                .render("req-1", Envelope::Anthropic);
        assert_eq!(
            json(&r),
            serde_json::json!({"type": "error", "error": {"type": "invalid_request_error", "message": "cannot use own model - must be: claude-x"}, "request_id": "req-1"})
        );
        let r = GatewayError::Upstream(UpstreamFailure::ReadTimeout).render("x", Envelope::Anthropic);
        assert_eq!((r.status, json(&r)["error"]["type"].as_str()), (504, Some("timeout_error")));
        // Policy refusals keep Kong's shape.
        let r = GatewayError::Auth(AuthFailure::new(401, "Unauthorized", "invalid")).render("x", Envelope::Anthropic);
        assert_eq!(json(&r)["message"], "Unauthorized");
    }

    #[test]
    fn rate_limit_answers_are_kongs_whatever_the_route() {
        let refusal = |with_request_id| {
            GatewayError::RateLimited(Box::new(Refusal {
                status: 429,
                message: "API rate limit exceeded".into(),
                with_request_id,
                plugin: "rate-limiting",
                window: "minute".into(),
            }))
        };
        let r = refusal(true).render("rid", Envelope::OpenAi);
        assert_eq!(r.status, 429);
        assert_eq!(json(&r), serde_json::json!({"message": "API rate limit exceeded", "request_id": "rid"}));
        assert_eq!(
            json(&refusal(false).render("rid", Envelope::Kong)),
            serde_json::json!({"message": "API rate limit exceeded"})
        );
        assert_eq!(refusal(true).kind(), "rate_limited");
        let r = GatewayError::LimitsUnavailable.render("rid", Envelope::Kong);
        assert_eq!((r.status, json(&r)["message"].as_str()), (500, Some("An unexpected error occurred")));
        assert_eq!(GatewayError::LimitsUnavailable.render("rid", Envelope::OpenAi).status, 500);
    }

    #[test]
    fn claims_body() {
        let r = GatewayError::Auth(AuthFailure {
            status: 401,
            body: FailureBody::Claims(vec![("exp", "token expired")]),
            www_authenticate: Some(Arc::from("Bearer error=\"invalid_token\"")),
            reason: "claims",
        })
        .render("x", Envelope::Kong);
        assert_eq!(json(&r), serde_json::json!({"exp": "token expired"}));
    }
}
