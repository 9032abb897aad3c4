//! Authentication, combining plugins as Kong does: they run in Kong's priority order (jwt,
//! key-auth, openid-connect), every configured one must succeed, and one with `anonymous` set
//! is skipped once an earlier plugin found a credential — so `anonymous` on each gives a
//! logical OR, and a failure under `anonymous` lets the request through as the anonymous
//! consumer. Written once here for every [`Authenticator`](crate::plugins::auth::Authenticator).
//!
//! A valid credential that maps to no consumer (openid-connect's `consumer_optional`) keeps
//! the consumer found so far; with the plugin's `anonymous` set and none found, the request
//! continues as the anonymous consumer — marked anonymous upstream (`X-Anonymous-Consumer`),
//! never presented as a named one.

use bytes::Bytes;
use pingora_proxy::Session;

use super::body;
use crate::model::Route;
use crate::plugins::auth::{AuthRequest, BodyKind};
use crate::proxy::context::RequestCtx;
use crate::proxy::errors::GatewayError;
use crate::proxy::state::ProcessState;

/// The request body, when an authentication plugin needed it read early.
#[derive(Default)]
pub struct EarlyBody {
    pub read: bool,
    pub body: Option<Bytes>,
}

/// Run the route's authentication plugins; on refusal, the error to answer with.
pub async fn run(
    shared: &ProcessState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    route: &Route,
    early: &mut EarlyBody,
) -> Result<(), GatewayError> {
    let authenticators = &route.policies.authenticators;
    if authenticators.is_empty() {
        return Ok(());
    }
    let preflight = session.req_header().method == http::Method::OPTIONS;
    let generation = ctx.generation.clone();
    let consumers = &generation.config.consumers;
    let now_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    for (i, auth) in authenticators.iter().enumerate() {
        if preflight && !auth.run_on_preflight() {
            continue;
        }
        let anonymous = auth.anonymous();
        if anonymous.is_some() && ctx.identity.credential.is_some() {
            continue;
        }
        if auth.needs_body() && !early.read {
            early.read = true;
            early.body = body::read_early(session, ctx).await?;
        }
        let head = session.req_header();
        let body = early.body.as_ref().map(|b| {
            let kind = BodyKind::from_content_type(head.headers.get(http::header::CONTENT_TYPE).map(|v| v.as_bytes()));
            (b.as_ref(), kind)
        });
        let req = AuthRequest { head, body, consumers, now_unix };
        match auth.authenticate(&req).outcome().await {
            Ok(found) => {
                match (found.consumer, anonymous) {
                    (Some(consumer), _) => {
                        ctx.identity.consumer = Some(consumer);
                        ctx.identity.anonymous = false;
                    }
                    // (A plugin with `anonymous` runs only while no credential has been found.)
                    (None, Some(anon)) => {
                        ctx.identity.consumer = Some(anon);
                        ctx.identity.anonymous = true;
                    }
                    // The consumer found so far (named, or an earlier plugin's anonymous) stays
                    // as it is.
                    (None, _) => {}
                }
                ctx.identity.credential = Some(found.credential);
                if let Some(location) = found.location {
                    ctx.identity.credential_location = Some((i, location));
                }
            }
            Err(failure) => match anonymous {
                Some(anon) => {
                    ctx.identity.consumer = Some(anon);
                    ctx.identity.credential = None;
                    ctx.identity.anonymous = true;
                }
                None => {
                    shared.metrics.auth_failure(&route.name, failure.reason);
                    return Err(GatewayError::Auth(failure));
                }
            },
        }
    }
    Ok(())
}
