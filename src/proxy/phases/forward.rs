//! `upstream_peer` and `upstream_request_filter`: where the request goes and what it looks like
//! when it gets there — path, Host, credentials (the consumer's removed, the provider's added),
//! identity headers and body framing.

use std::borrow::Cow;
use std::time::Instant;

use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::RequestHeader;
use pingora_proxy::Session;

use super::respond::REQUEST_ID_HEADER;
use super::{body, headers};
use crate::ai::provider::{Dialect, Provider};
use crate::core::query;
use crate::core::{Endpoint, Timeouts};
use crate::model::router::upstream_path;
use crate::plugins::ai_proxy::{AiTarget, ProviderAuth};
use crate::plugins::auth::{without_cookie, CredentialPlace, Place};
use crate::proxy::context::{BodyState, RequestCtx};
use crate::proxy::errors::GatewayError;
use crate::proxy::state::ProcessState;
use crate::upstream::{build_peer, use_fresh_connection, UpstreamFailure};

fn target_of(shared: &ProcessState, ctx: &RequestCtx) -> Option<(Endpoint, Timeouts, bool)> {
    let config = &ctx.generation.config;
    let route = config.route(ctx.routing.route?);
    if let Some(ai) = &ctx.ai {
        let t = &ai.plugin.targets[ai.target];
        let b = &ai.plugin.balancing;
        let s = &shared.settings;
        let timeouts = Timeouts {
            connect: b.connect_timeout.unwrap_or(s.upstream_connect_timeout),
            read: b.read_timeout.unwrap_or(s.upstream_read_timeout),
            write: b.write_timeout.unwrap_or(s.upstream_write_timeout),
        };
        return Some((t.endpoint.clone(), timeouts, true));
    }
    let service = config.service_of(route);
    Some((service.endpoint.clone(), service.timeouts, service.tls_verify))
}

pub fn choose_peer(shared: &ProcessState, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
    let Some((endpoint, timeouts, verify)) = target_of(shared, ctx) else {
        return Err(Error::explain(ErrorType::InternalError, "no route for the upstream phase"));
    };
    ctx.upstream.attempts += 1;
    let Some(addr) = shared.resolver.lookup(&endpoint.host, endpoint.port) else {
        ctx.outcome.error = Some(GatewayError::Upstream(UpstreamFailure::DnsFailure));
        let mut e = Error::explain(ErrorType::Custom("DnsFailure"), "the upstream host name is not resolved");
        e.set_retry(false);
        return Err(e.into_up());
    };
    ctx.upstream.addr = Some(addr);
    let mut peer = build_peer(addr, &endpoint, &timeouts, shared.settings.upstream_keepalive_idle_timeout, verify);
    if ctx.upstream.fresh {
        use_fresh_connection(&mut peer);
    }
    Ok(Box::new(peer))
}

pub fn rewrite_request(
    shared: &ProcessState,
    session: &mut Session,
    req: &mut RequestHeader,
    ctx: &mut RequestCtx,
) -> Result<()> {
    if let Err(e) = body::render_for_current_target(shared, ctx, session.req_header()) {
        let status = e.status();
        ctx.outcome.error = Some(e);
        return Err(Error::explain(ErrorType::HTTPStatus(status), "request refused by the gateway"));
    }
    let generation = ctx.generation.clone();
    let config = &generation.config;
    let Some(route_id) = ctx.routing.route else {
        return Err(Error::explain(ErrorType::InternalError, "no route for the upstream request"));
    };
    let route = config.route(route_id);
    let service = config.service_of(route);
    let is_ai = ctx.ai.is_some();

    let transformer = route.policies.request_transformer.for_consumer(ctx.identity.consumer).cloned();
    let client = session.req_header();

    // Path and query; credentials out where their plugins say (always before an LLM provider
    // or an MCP server: a third party never sees the consumer's gateway credential).
    let mut query: Option<Cow<[u8]>> = client.uri.query().map(|q| Cow::Borrowed(q.as_bytes()));
    let found = ctx.identity.credential_location.as_ref();
    let third_party = is_ai || route.policies.mcp_proxy.is_configured();
    for (i, auth) in route.policies.authenticators.iter().enumerate() {
        let found = found.filter(|(at, _)| *at == i).map(|(_, l)| l);
        auth.strip_credentials(found, third_party, &mut |place| strip(req, &mut query, place));
    }
    // request-transformer (Kong's priority 801: after authentication, before ai-proxy).
    if let Some(q) = transformer.as_ref().and_then(|t| t.apply_query(client, query.as_deref())) {
        query = Some(Cow::Owned(q));
    }
    let (path, host) = match &ctx.ai {
        Some(ai) => {
            let t = &ai.plugin.targets[ai.target];
            if let ProviderAuth::Query { name, value } = &t.auth {
                let client_has = query.as_deref().is_some_and(|q| query::values(q, name).next().is_some());
                if !(t.allow_override && client_has) {
                    let mut q = query
                        .as_deref()
                        .and_then(|q| query::without(q, name))
                        .unwrap_or_else(|| query.as_deref().unwrap_or_default().to_vec());
                    if !q.is_empty() {
                        q.push(b'&');
                    }
                    q.extend_from_slice(query::encode_component(name.as_bytes()).as_bytes());
                    q.push(b'=');
                    q.extend_from_slice(query::encode_component(value.as_bytes()).as_bytes());
                    query = Some(Cow::Owned(q));
                }
            }
            if let Some(az) = &t.provider_options.azure {
                // Azure's classic API takes an api-version; the client's own wins (as Kong).
                let client_has = query.as_deref().is_some_and(|q| query::values(q, "api-version").next().is_some());
                if !client_has && !t.endpoint.path.starts_with("/openai/v1/") {
                    let mut q = query.as_deref().unwrap_or_default().to_vec();
                    if !q.is_empty() {
                        q.push(b'&');
                    }
                    q.extend_from_slice(b"api-version=");
                    q.extend_from_slice(query::encode_component(az.api_version.as_bytes()).as_bytes());
                    query = Some(Cow::Owned(q));
                }
            }
            // The surface checked every target can serve the operation.
            let path =
                ai.op.upstream_path(&t.endpoint.path, t.provider.dialect()).unwrap_or_else(|| t.endpoint.path.clone());
            (path, Some(t.endpoint.authority()))
        }
        None => {
            let p = match transformer.as_ref().and_then(|t| t.uri.as_ref()) {
                Some(uri) => uri.render(client),
                None => upstream_path(
                    &service.endpoint.path,
                    &ctx.routing.path,
                    ctx.routing.matched_len,
                    route.strip_path,
                    route.path_handling,
                ),
            };
            (p, (!route.preserve_host).then(|| service.endpoint.authority()))
        }
    };
    let path = if path.is_empty() { "/".to_string() } else { path };
    let mut target = path.into_bytes();
    if let Some(q) = query.as_deref().filter(|q| !q.is_empty()) {
        target.push(b'?');
        target.extend_from_slice(q);
    }
    req.set_raw_path(&target)?;
    if let Some(host) = host {
        req.insert_header(http::header::HOST, host)?;
    }

    // The client's `Expect` was answered by the gateway (`100 Continue`) or not at all.
    req.remove_header(&http::header::EXPECT);
    // On LLM routes the method is the operation's, which the surface checked (a transformed
    // `GET` would turn a create into the provider's list of every tenant's objects).
    if let Some(m) = transformer.as_ref().and_then(|t| t.http_method.as_ref()).filter(|_| ctx.ai.is_none()) {
        req.set_method(m.clone());
    }
    if let Some(ai) = &ctx.ai {
        // Identity, forwarding and provider-account headers: none of the client's.
        headers::strip_for_provider(req);
        let t = &ai.plugin.targets[ai.target];
        // The client's provider keys go before request-transformer adds what the operator says.
        strip_client_credentials(req, t);
        if let Some(t) = &transformer {
            t.apply_headers(client, req);
        }
        provider_headers(req, t, ai.plugin.llm_format)?;
        if let ProviderAuth::Header { name, value } = &t.auth {
            if !(t.allow_override && req.headers.contains_key(name)) {
                req.insert_header(name.clone(), value.clone())?;
            }
        }
        // Uncompressed answers, so usage can be read from them.
        req.insert_header(http::header::ACCEPT_ENCODING, "identity")?;
        // A provider has no use for the client's cookies (sessions, tokens of the gateway's
        // own plugins): none is sent.
        while req.remove_header(&http::header::COOKIE).is_some() {}
    } else {
        // Identity headers: only the gateway sets them (after Pingora removed the headers the
        // client's `Connection` names, so a client cannot have them removed).
        headers::remove_folded(req, &[headers::GATEWAY_SET, headers::REQUEST_ID]);
        if let Some(cid) = ctx.identity.consumer {
            let c = config.consumers.get(cid);
            req.insert_header("x-consumer-id", c.id.as_str())?;
            if let Some(v) = &c.custom_id {
                req.insert_header("x-consumer-custom-id", v.as_str())?;
            }
            if let Some(v) = &c.username {
                req.insert_header("x-consumer-username", v.as_str())?;
            }
            if ctx.identity.anonymous {
                req.insert_header("x-anonymous-consumer", "true")?;
            } else if let Some(id) = ctx.identity.credential.as_ref().and_then(|c| c.identifier(&config.consumers)) {
                req.insert_header("x-credential-identifier", id)?;
            }
            if let Some(acl) = route.policies.acl.for_consumer(Some(cid)) {
                if !acl.hide_groups_header && !c.groups_header.is_empty() {
                    req.insert_header("x-consumer-groups", c.groups_header.as_str())?;
                }
            }
        }
        if route.policies.mcp_proxy.is_configured() {
            // Nor has an MCP server any use for the client's cookies (request-transformer may
            // still add one).
            while req.remove_header(&http::header::COOKIE).is_some() {}
        }
        if let Some(t) = &transformer {
            t.apply_headers(client, req);
        }
        if route.policies.mcp_proxy.is_configured() {
            // Answers are read (tools/list filtered, outcomes counted): uncompressed.
            req.insert_header(http::header::ACCEPT_ENCODING, "identity")?;
        }
        req.insert_header("x-request-id", ctx.request_id.as_str())?;
        req.insert_header(REQUEST_ID_HEADER, ctx.request_id.as_str())?;
        let client_ip = ctx.client_ip();
        let path = ctx.routing.path.as_str();
        let prefix = path.get(..ctx.routing.matched_len).filter(|p| !p.is_empty() && *p != "/");
        let origin = headers::Origin {
            client_ip,
            trusted: client_ip.is_some_and(|ip| shared.settings.trusted_ips.contains(ip)),
            port: session.as_downstream().server_addr().and_then(|a| a.as_inet()).map(|a| a.port()),
            path,
            prefix,
        };
        headers::set_forwarding(session.req_header(), req, &origin)?;
    }

    super::mcp::upstream_request(ctx, req)?;
    if ctx.upstream.fresh {
        // A one-off connection (after a pooled one was closed under the request): nobody
        // could reuse it. Set last, so no header plugin can undo it; Pingora removed the
        // client's hop-by-hop headers before this filter.
        req.insert_header(http::header::CONNECTION, "close")?;
    }

    // Body framing for a body the gateway holds.
    match &ctx.body.state {
        BodyState::Complete { upstream, .. } => {
            req.remove_header(&http::header::TRANSFER_ENCODING);
            req.insert_header(http::header::CONTENT_LENGTH, upstream.len().to_string())?;
        }
        BodyState::Pending { .. } => {
            // The checked body may differ in length: send it chunked.
            req.remove_header(&http::header::CONTENT_LENGTH);
        }
        BodyState::Passthrough | BodyState::Released => {}
    }
    let now = Instant::now();
    ctx.upstream.started = Some(now);
    if ctx.timing.gateway_done.is_none() {
        ctx.timing.gateway_done = Some(now);
    }
    Ok(())
}

/// Headers that carry a provider key in some provider's API (OpenAI's and Azure's bearer,
/// Azure's `api-key`, Anthropic's `x-api-key`): a client's never reaches a provider — the
/// gateway's own is added after — unless `allow_override` lets the client's own key of the
/// configured header name through (as Kong).
const CLIENT_CREDENTIAL_HEADERS: &[&str] = &["authorization", "proxy-authorization", "x-api-key", "api-key"];

fn strip_client_credentials(req: &mut RequestHeader, t: &AiTarget) {
    let kept = match &t.auth {
        ProviderAuth::Header { name, .. } if t.allow_override => Some(name.as_str()),
        _ => None,
    };
    for h in CLIENT_CREDENTIAL_HEADERS {
        if kept == Some(*h) && req.headers.contains_key(*h) {
            continue;
        }
        while req.remove_header(*h).is_some() {}
    }
}

/// What the provider's API needs besides the credential: Anthropic's version header (the
/// client's own, and its `anthropic-beta`, when it speaks Anthropic's API itself; the
/// configured one when the gateway translates), and a JSON content type.
fn provider_headers(req: &mut RequestHeader, t: &AiTarget, format: Dialect) -> Result<()> {
    if t.provider != Provider::Anthropic {
        return Ok(());
    }
    let translated = t.translates(format);
    if translated {
        while req.remove_header("anthropic-version").is_some() {}
        while req.remove_header("anthropic-beta").is_some() {}
    }
    if let Some(v) = &t.provider_options.anthropic_version {
        if !req.headers.contains_key("anthropic-version") {
            req.insert_header("anthropic-version", v.clone())?;
        }
    }
    if translated || !req.headers.contains_key(http::header::CONTENT_TYPE) {
        req.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    }
    Ok(())
}

/// Remove a credential from the request going upstream (a body field is the body phase's).
fn strip(req: &mut RequestHeader, query: &mut Option<Cow<[u8]>>, place: Place<'_>) {
    match place.place {
        CredentialPlace::Header => while req.remove_header(place.name).is_some() {},
        CredentialPlace::Query => {
            if let Some(rest) = query.as_deref().and_then(|q| query::without(q, place.name)) {
                *query = Some(Cow::Owned(rest));
            }
        }
        CredentialPlace::Cookie => {
            let kept: Vec<Vec<u8>> = req
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .map(|v| without_cookie(v.as_bytes(), place.name).unwrap_or_else(|| v.as_bytes().to_vec()))
                .collect();
            if kept.iter().zip(req.headers.get_all(http::header::COOKIE)).any(|(k, v)| k != v.as_bytes()) {
                while req.remove_header(&http::header::COOKIE).is_some() {}
                for v in kept.into_iter().filter(|v| !v.is_empty()) {
                    let _ = req.append_header(http::header::COOKIE, v);
                }
            }
        }
        CredentialPlace::BodyField => {}
    }
}
