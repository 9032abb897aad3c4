//! An LLM route's API surface, decided in `request_filter` after authentication and before any
//! upstream work: the request must be an operation of the route type's API
//! ([`crate::ai::surface`]), with no protocol upgrade, no method override, no body where the
//! operation takes none, and the object its path names must be the consumer's. A CORS
//! preflight is answered by the gateway. Nothing refused here reaches a provider.

use pingora_http::RequestHeader;

use super::body::{declared_length, not_found};
use super::remember::{check_owners, owner};
use crate::ai::refusal::AiRefusal;
use crate::ai::sdk_paths::{classify, ClientPath};
use crate::ai::surface::{self, not_found_message, BodyRule, Operation, SurfaceRefusal};
use crate::plugins::ai_proxy::AiProxy;
use crate::proxy::context::RequestCtx;
use crate::proxy::errors::GatewayError;
use crate::proxy::state::ProcessState;

/// What the gateway does with a request to an LLM route.
pub enum Decision {
    /// Serve this operation (`path_model`: the model an Azure deployment path names).
    Operation { op: Operation, path_model: Option<String> },
    /// A CORS preflight: answered by the gateway (204, no CORS grant).
    Preflight,
}

/// Headers some frameworks read as the real method of a request (any spelling a backend may
/// fold to the same name).
const METHOD_OVERRIDES: &[&str] = &["x-http-method-override", "x-method-override", "x-http-method"];

/// Decide what a request to an LLM route is, or why it is refused.
pub async fn decide(
    shared: &ProcessState,
    req: &RequestHeader,
    ctx: &RequestCtx,
    plugin: &AiProxy,
) -> Result<Decision, GatewayError> {
    // WebSocket mode (the SDKs' `responses.connect()`) and any other upgrade would carry
    // requests the gateway cannot read: refused, not passed.
    if req.headers.contains_key(http::header::UPGRADE) {
        return Err(GatewayError::UpgradeRefused);
    }
    let method = req.method.as_str();
    if req.method == http::Method::OPTIONS
        && req.headers.contains_key(http::header::ORIGIN)
        && req.headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return Ok(Decision::Preflight);
    }
    if let Some(name) = req.headers.keys().find(|n| is_method_override(n.as_str())) {
        return Err(GatewayError::Ai(AiRefusal::bad_request(
            format!("the {name} header is not accepted: send the request with its own method"),
            "method_override_not_allowed",
        )));
    }
    let path = &ctx.routing.path;
    let rest = &path[ctx.routing.matched_len.min(path.len())..];
    let rest = if rest.is_empty() || rest.starts_with('/') { rest.to_string() } else { format!("/{rest}") };
    let op = surface::resolve_in(plugin.llm_format, plugin.route_type(), method, &rest).map_err(|r| match r {
        SurfaceRefusal::NotFound => GatewayError::Ai(AiRefusal {
            status: 404,
            message: format!(
                "Invalid URL ({method} {path}): not an operation of this route's API ({})",
                plugin.route_type().as_str()
            ),
            kind: "invalid_request_error",
            code: "unknown_url",
        }),
        SurfaceRefusal::MethodNotAllowed { allow } => GatewayError::MethodNotAllowed {
            message: format!("Method {method} is not allowed for {path} (allowed: {allow})"),
            allow,
        },
    })?;
    if op.body() == BodyRule::Empty && has_body(req) {
        return Err(GatewayError::Ai(AiRefusal::bad_request(
            format!("a {method} request to {path} takes no body"),
            "unexpected_body",
        )));
    }
    if plugin.targets.iter().any(|t| op.upstream_path(&t.endpoint.path, t.provider.dialect()).is_none()) {
        return Err(GatewayError::Ai(AiRefusal {
            status: 404,
            message: format!(
                "Invalid URL ({method} {path}): not available on this route (a target's provider does not offer it, or, for the Conversations API, its path does not end in /responses)"
            ),
            kind: "invalid_request_error",
            code: "unknown_url",
        }));
    }
    // The object the path names: the consumer's own, or it does not exist.
    // With a cluster store, an id created through another node is looked up there first.
    if let (Some((kind, id)), Some(owner)) = (op.owned_object(), owner(shared, ctx)) {
        if !check_owners(shared, || shared.ownership.owned_by(kind, id, owner)).await {
            return Err(GatewayError::Ai(not_found(&not_found_message(kind, id))));
        }
    }
    let path_model = match (&op, classify(plugin.llm_format, plugin.route_type(), &rest)) {
        (Operation::CreateChatCompletion, ClientPath::Create { deployment }) => deployment,
        _ => None,
    };
    Ok(Decision::Operation { op, path_model })
}

fn is_method_override(name: &str) -> bool {
    METHOD_OVERRIDES.iter().any(|o| {
        o.len() == name.len()
            && o.bytes().zip(name.bytes()).all(|(a, b)| a == b.to_ascii_lowercase() || (a == b'-' && b == b'_'))
    })
}

/// A request body is announced: a length above zero, or a transfer coding.
fn has_body(req: &RequestHeader) -> bool {
    req.headers.contains_key(http::header::TRANSFER_ENCODING) || declared_length(req).is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_override_spellings() {
        for n in ["x-http-method-override", "x_http_method_override", "x-method-override", "x_http-method"] {
            assert!(is_method_override(n), "{n}");
        }
        assert!(!is_method_override("x-http-method-overrid"));
        assert!(!is_method_override("x-request-id"));
    }
}
