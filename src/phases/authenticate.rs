//! Authentication, combining plugins as Kong does: they run in Kong's priority order (jwt,
//! key-auth, openid-connect), every configured one must succeed, and one with `anonymous` set
//! is skipped once an earlier plugin found a credential — so `anonymous` on each gives a
//! logical OR, and a failure under `anonymous` lets the request through as the anonymous
//! consumer.

use bytes::Bytes;
use pingora_proxy::Session;

use super::body;
use crate::context::{Credential, RequestCtx};
use crate::core::ConsumerId;
use crate::errors::GatewayError;
use crate::gateway::Shared;
use crate::model::Route;
use crate::plugins::jwt::JwtBody;
use crate::plugins::key_auth::BodyKind;

/// The request body, when an authentication plugin needed it read early.
#[derive(Default)]
pub struct EarlyBody {
    pub read: bool,
    pub body: Option<Bytes>,
}

enum Outcome {
    Authenticated { consumer: ConsumerId, credential: Credential },
    Failed { err: GatewayError, reason: &'static str },
}

/// Run the route's authentication plugins; on refusal, the error to answer with.
pub async fn run(
    shared: &Shared,
    session: &mut Session,
    ctx: &mut RequestCtx,
    route: &Route,
    early: &mut EarlyBody,
) -> Result<(), GatewayError> {
    let preflight = session.req_header().method == http::Method::OPTIONS;
    let gw = &ctx.generation.clone().gw;
    let policies = &route.policies;

    if let Some(jwt) = &policies.jwt {
        if (!preflight || jwt.run_on_preflight) && !(jwt.anonymous.is_some() && ctx.credential.is_some()) {
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let outcome = match jwt.authenticate(session.req_header(), &gw.consumers.jwt, now) {
                Ok(ok) => Outcome::Authenticated { consumer: ok.consumer, credential: Credential::Jwt(ok.key) },
                Err(f) => {
                    let answer = jwt.answer(&f);
                    let www = answer.www_authenticate.map(str::to_string);
                    let err = match answer.body {
                        JwtBody::Message(message) => GatewayError::Unauthorized { message, www_authenticate: www },
                        JwtBody::Claims(claims) => GatewayError::UnauthorizedClaims {
                            claims: claims.to_vec(),
                            www_authenticate: www.unwrap_or_default(),
                        },
                    };
                    Outcome::Failed { err, reason: f.reason() }
                }
            };
            apply(shared, ctx, route, outcome, jwt.anonymous)?;
        }
    }

    if let Some(ka) = &policies.key_auth {
        if (!preflight || ka.run_on_preflight) && !(ka.anonymous.is_some() && ctx.credential.is_some()) {
            if ka.key_in_body && !early.read {
                early.read = true;
                early.body = body::read_early(session, ctx).await?;
            }
            let kind = BodyKind::from_content_type(
                session.req_header().headers.get(http::header::CONTENT_TYPE).map(|v| v.as_bytes()),
            );
            let body_view = early.body.as_ref().map(|b| (b.as_ref(), kind));
            let outcome = match ka.authenticate(session.req_header(), body_view, &gw.consumers) {
                Ok((cred, location)) => {
                    ctx.key_location = Some(location);
                    Outcome::Authenticated { consumer: cred.consumer, credential: Credential::Key(cred.credential) }
                }
                Err(f) => Outcome::Failed {
                    err: GatewayError::Unauthorized {
                        message: f.message().into(),
                        www_authenticate: Some(ka.www_authenticate.clone()),
                    },
                    reason: f.reason(),
                },
            };
            apply(shared, ctx, route, outcome, ka.anonymous)?;
        }
    }
    if let Some(oidc) = &policies.openid_connect {
        if (!preflight || oidc.run_on_preflight) && !(oidc.anonymous.is_some() && ctx.credential.is_some()) {
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let outcome = match oidc.authenticate(session.req_header(), &gw.consumers, now).await {
                Ok(ok) => match ok.consumer {
                    Some(consumer) => {
                        Outcome::Authenticated { consumer, credential: Credential::Oidc(ok.credential_id) }
                    }
                    // consumer_optional: a valid token without a consumer.
                    None => {
                        ctx.credential = Some(Credential::Oidc(ok.credential_id));
                        ctx.anonymous = false;
                        return Ok(());
                    }
                },
                Err(f) => {
                    let www = Some(f.www_authenticate().to_string());
                    let message: std::borrow::Cow<'static, str> = f.message().to_string().into();
                    let err = if f.status() == 403 {
                        GatewayError::AuthForbidden { message, www_authenticate: www }
                    } else {
                        GatewayError::Unauthorized { message, www_authenticate: www }
                    };
                    Outcome::Failed { err, reason: f.reason() }
                }
            };
            apply(shared, ctx, route, outcome, oidc.anonymous)?;
        }
    }
    Ok(())
}

fn apply(
    shared: &Shared,
    ctx: &mut RequestCtx,
    route: &Route,
    outcome: Outcome,
    anonymous: Option<ConsumerId>,
) -> Result<(), GatewayError> {
    match outcome {
        Outcome::Authenticated { consumer, credential } => {
            ctx.consumer = Some(consumer);
            ctx.credential = Some(credential);
            ctx.anonymous = false;
            Ok(())
        }
        Outcome::Failed { err, reason } => match anonymous {
            Some(anon) => {
                ctx.consumer = Some(anon);
                ctx.credential = None;
                ctx.anonymous = true;
                Ok(())
            }
            None => {
                shared.metrics.auth_failure(&route.name, reason);
                Err(err)
            }
        },
    }
}

/// `X-Credential-Identifier`: the credential's id, never the secret itself.
pub fn credential_identifier<'a>(ctx: &'a RequestCtx, ids: &'a [String]) -> Option<&'a str> {
    match ctx.credential.as_ref()? {
        Credential::Key(i) => ids.get(*i).map(String::as_str),
        Credential::Jwt(key) => Some(key),
        Credential::Oidc(id) => Some(id),
    }
}
