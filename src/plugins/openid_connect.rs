//! openid-connect: the bearer-token part of Kong Enterprise's plugin. A request carries a JWT
//! access token (`Authorization: Bearer`, or `?access_token=`); it must be signed by a key of
//! the issuer's JWKS (found through discovery, and/or `extra_jwks_uris`), be issued by the
//! configured issuer, be within its validity, and hold the required scopes and audience. A
//! claim of it may then name the consumer.
//!
//! Only `auth_methods: [bearer]` is implemented. Kong's other fields are accepted at their
//! defaults; those a bearer-only plugin never reads (sessions, the authorization code flow,
//! token/introspection endpoints, caches, ...) are accepted and ignored; a field that would
//! change how a bearer token is judged is refused unless at its default.
//!
//! Answers are Kong's: 401 `{"message":"Unauthorized"}` with
//! `WWW-Authenticate: Bearer realm="<issuer host>", error="invalid_token"`, and 403
//! `{"message":"Forbidden"}` with `error="insufficient_scope"` for scope, audience and consumer
//! failures. The reason is never in the body (Kong logs it); `reason()` names it for metrics.
//!
//! Keys are fetched off the request path by [`jwks::JwksCache`]; see there.

#[path = "jwks.rs"]
pub mod jwks;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pingora_http::RequestHeader;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::{unsupported_unless_default, ConfigIssue};
use crate::consumers::Consumers;
use crate::core::query;
use crate::core::ConsumerId;
use crate::jose::jws::{self, Jws, JwsError, Profile};
use crate::jose::Algorithm;
pub use jwks::{http_client, run_refresher, JwksCache, JwksRegistry, JwksSource};

/// How long a request whose token names an unknown `kid` waits for the keys to be refreshed.
pub const UNKNOWN_KID_WAIT: Duration = Duration::from_secs(2);

/// At most this many keys are tried on one token (tokens without `kid`).
pub const MAX_KEYS_TRIED: usize = 8;

/// The algorithms accepted on tokens: asymmetric only. HMAC would need a shared secret, which a
/// public key set cannot hold; `none` and unknown names are never accepted.
pub const ACCEPTED_ALGORITHMS: &[Algorithm] = &[
    Algorithm::Rs256,
    Algorithm::Rs384,
    Algorithm::Rs512,
    Algorithm::Ps256,
    Algorithm::Ps384,
    Algorithm::Ps512,
    Algorithm::Es256,
    Algorithm::Es384,
    Algorithm::EdDsa,
];

// ---------------------------------------------------------------------------------------------
// Schema

/// The Kong fields aigate implements.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcFields {
    /// The issuer (`https://idp/realms/x`), or its discovery URL (`.../.well-known/openid-configuration`).
    pub issuer: String,
    pub extra_jwks_uris: Option<Vec<String>>,
    /// Only `[bearer]`; absent means `[bearer]`.
    pub auth_methods: Option<Vec<String>>,
    /// `header` and/or `query`; absent means `[header]`.
    pub bearer_token_param_type: Option<Vec<String>>,
    pub audience_required: Option<Vec<String>>,
    pub audience_claim: Option<Vec<String>>,
    pub scopes_required: Option<Vec<String>>,
    pub scopes_claim: Option<Vec<String>>,
    pub consumer_claim: Option<Vec<String>>,
    pub consumer_by: Option<Vec<String>>,
    pub consumer_optional: Option<bool>,
    pub credential_claim: Option<Vec<String>>,
    pub anonymous: Option<String>,
    pub run_on_preflight: Option<bool>,
    pub verify_claims: Option<bool>,
    /// Seconds.
    pub leeway: Option<f64>,
    /// Seconds between two on-demand key refreshes of one issuer (Kong: between rediscoveries).
    pub rediscovery_lifetime: Option<f64>,
    pub issuers_allowed: Option<Vec<String>>,
    pub unauthorized_error_message: Option<String>,
    pub forbidden_error_message: Option<String>,
    pub expose_error_code: Option<bool>,
}

/// Kong's openid-connect schema: the implemented fields, and every other Kong field as written
/// (checked by `compile`). A name that is not a Kong openid-connect field is refused here.
#[derive(Debug, Default)]
pub struct OpenIdConnectSchema {
    pub fields: OidcFields,
    pub kong_only: BTreeMap<String, serde_yaml::Value>,
}

const IMPLEMENTED: &[&str] = &[
    "issuer",
    "extra_jwks_uris",
    "auth_methods",
    "bearer_token_param_type",
    "audience_required",
    "audience_claim",
    "scopes_required",
    "scopes_claim",
    "consumer_claim",
    "consumer_by",
    "consumer_optional",
    "credential_claim",
    "anonymous",
    "run_on_preflight",
    "verify_claims",
    "leeway",
    "rediscovery_lifetime",
    "issuers_allowed",
    "unauthorized_error_message",
    "forbidden_error_message",
    "expose_error_code",
];

/// What aigate does with a Kong field it does not implement.
#[derive(Debug, Clone, Copy)]
enum KongField {
    /// Never read by a bearer-only plugin (sessions, other grants, caches, HTTP client knobs):
    /// any value is accepted and ignored.
    Inert,
    /// Would change how a bearer token is judged or answered: refused unless null (or `[]`).
    Null,
    /// The same, with a default.
    Bool(bool),
    Str(&'static str),
}

const KONG_FIELDS: &[(&str, KongField)] = {
    use KongField::{Bool, Inert, Null, Str};
    &[
        ("audience", Inert),
        ("authenticated_groups_claim", Null),
        ("authorization_cookie_domain", Inert),
        ("authorization_cookie_http_only", Inert),
        ("authorization_cookie_name", Inert),
        ("authorization_cookie_path", Inert),
        ("authorization_cookie_same_site", Inert),
        ("authorization_cookie_secure", Inert),
        ("authorization_endpoint", Inert),
        ("authorization_query_args_client", Inert),
        ("authorization_query_args_names", Inert),
        ("authorization_query_args_values", Inert),
        ("authorization_rolling_timeout", Inert),
        ("bearer_token_cookie_name", Null),
        ("by_username_ignore_case", Bool(false)),
        ("cache_introspection", Inert),
        ("cache_token_exchange", Inert),
        ("cache_tokens", Inert),
        ("cache_tokens_salt", Inert),
        ("cache_ttl", Inert),
        ("cache_ttl_max", Inert),
        ("cache_ttl_min", Inert),
        ("cache_ttl_neg", Inert),
        ("cache_ttl_resurrect", Inert),
        ("cache_user_info", Inert),
        ("claims_forbidden", Null),
        ("client_alg", Inert),
        ("client_arg", Inert),
        ("client_auth", Inert),
        ("client_credentials_param_type", Inert),
        ("client_id", Inert),
        ("client_jwk", Inert),
        ("client_secret", Inert),
        ("cluster_cache_redis", Inert),
        ("cluster_cache_strategy", Inert),
        ("consumer_groups_claim", Null),
        ("consumer_groups_optional", Bool(false)),
        ("disable_session", Inert),
        ("discovery_headers_names", Null),
        ("discovery_headers_values", Null),
        ("display_errors", Bool(false)),
        ("domains", Null),
        ("downstream_access_token_header", Null),
        ("downstream_access_token_jwk_header", Null),
        ("downstream_headers_claims", Null),
        ("downstream_headers_names", Null),
        ("downstream_id_token_header", Null),
        ("downstream_id_token_jwk_header", Null),
        ("downstream_introspection_header", Null),
        ("downstream_introspection_jwt_header", Null),
        ("downstream_refresh_token_header", Null),
        ("downstream_session_id_header", Null),
        ("downstream_user_info_header", Null),
        ("downstream_user_info_jwt_header", Null),
        ("dpop_proof_lifetime", Inert),
        ("dpop_use_nonce", Inert),
        ("enable_hs_signatures", Bool(false)),
        ("end_session_endpoint", Inert),
        ("forbidden_destroy_session", Inert),
        ("forbidden_redirect_uri", Null),
        ("groups_claim", Inert),
        ("groups_required", Null),
        ("hide_credentials", Bool(false)),
        ("http_proxy", Null),
        ("http_proxy_authorization", Null),
        ("http_version", Inert),
        ("https_proxy", Null),
        ("https_proxy_authorization", Null),
        ("id_token_param_name", Null),
        ("id_token_param_type", Inert),
        // Lists grants whose signatures are not checked; `bearer` cannot be one of them.
        ("ignore_signature", Inert),
        ("introspect_jwt_tokens", Bool(false)),
        ("introspection_accept", Inert),
        ("introspection_check_active", Inert),
        ("introspection_endpoint", Inert),
        ("introspection_endpoint_auth_method", Inert),
        ("introspection_headers_client", Inert),
        ("introspection_headers_names", Inert),
        ("introspection_headers_values", Inert),
        ("introspection_hint", Inert),
        ("introspection_post_args_client", Inert),
        ("introspection_post_args_names", Inert),
        ("introspection_post_args_values", Inert),
        ("introspection_token_param_name", Inert),
        ("jwt_session_claim", Inert),
        ("jwt_session_cookie", Null),
        ("keepalive", Inert),
        ("login_action", Str("upstream")),
        ("login_methods", Inert),
        ("login_redirect_mode", Inert),
        ("login_redirect_uri", Inert),
        ("login_tokens", Inert),
        ("logout_methods", Inert),
        ("logout_post_arg", Null),
        ("logout_query_arg", Null),
        ("logout_redirect_uri", Inert),
        ("logout_revoke", Inert),
        ("logout_revoke_access_token", Inert),
        ("logout_revoke_refresh_token", Inert),
        ("logout_uri_suffix", Null),
        ("max_age", Null),
        ("mtls_introspection_endpoint", Inert),
        ("mtls_revocation_endpoint", Inert),
        ("mtls_token_endpoint", Inert),
        ("no_proxy", Null),
        ("password_param_type", Inert),
        ("preserve_query_args", Inert),
        ("proof_of_possession_auth_methods_validation", Inert),
        ("proof_of_possession_dpop", Str("off")),
        ("proof_of_possession_mtls", Str("off")),
        ("pushed_authorization_request_endpoint", Inert),
        ("pushed_authorization_request_endpoint_auth_method", Inert),
        ("redirect_uri", Inert),
        ("redis", Inert),
        ("refresh_token_param_name", Inert),
        ("refresh_token_param_type", Inert),
        ("refresh_tokens", Inert),
        ("require_proof_key_for_code_exchange", Inert),
        ("require_pushed_authorization_requests", Inert),
        ("require_signed_request_object", Inert),
        ("resolve_distributed_claims", Bool(false)),
        ("response_mode", Inert),
        ("response_type", Inert),
        ("reverify", Inert),
        ("revocation_endpoint", Inert),
        ("revocation_endpoint_auth_method", Inert),
        ("revocation_token_param_name", Inert),
        ("roles_claim", Inert),
        ("roles_required", Null),
        ("scopes", Inert),
        ("search_user_info", Bool(false)),
        ("session_absolute_timeout", Inert),
        ("session_audience", Inert),
        ("session_cookie_domain", Inert),
        ("session_cookie_http_only", Inert),
        ("session_cookie_name", Inert),
        ("session_cookie_path", Inert),
        ("session_cookie_same_site", Inert),
        ("session_cookie_secure", Inert),
        ("session_enforce_same_subject", Inert),
        ("session_hash_storage_key", Inert),
        ("session_hash_subject", Inert),
        ("session_idling_timeout", Inert),
        ("session_memcached_host", Inert),
        ("session_memcached_port", Inert),
        ("session_memcached_prefix", Inert),
        ("session_memcached_socket", Inert),
        ("session_redis_cluster_max_redirections", Inert),
        ("session_redis_cluster_nodes", Inert),
        ("session_redis_connect_timeout", Inert),
        ("session_redis_host", Inert),
        ("session_redis_password", Inert),
        ("session_redis_port", Inert),
        ("session_redis_prefix", Inert),
        ("session_redis_read_timeout", Inert),
        ("session_redis_send_timeout", Inert),
        ("session_redis_server_name", Inert),
        ("session_redis_socket", Inert),
        ("session_redis_ssl", Inert),
        ("session_redis_ssl_verify", Inert),
        ("session_redis_username", Inert),
        ("session_remember", Inert),
        ("session_remember_absolute_timeout", Inert),
        ("session_remember_cookie_name", Inert),
        ("session_remember_rolling_timeout", Inert),
        ("session_request_headers", Inert),
        ("session_response_headers", Inert),
        ("session_rolling_timeout", Inert),
        ("session_secret", Inert),
        ("session_storage", Inert),
        ("session_store_metadata", Inert),
        // aigate always verifies the IdP's certificate (system roots + `tls_trusted_ca`).
        ("ssl_verify", Inert),
        ("timeout", Inert),
        ("tls_client_auth_cert_id", Inert),
        ("tls_client_auth_ssl_verify", Inert),
        ("token_cache_key_include_scope", Inert),
        ("token_endpoint", Inert),
        ("token_endpoint_auth_method", Inert),
        ("token_exchange_endpoint", Null),
        ("token_headers_client", Inert),
        ("token_headers_grants", Inert),
        ("token_headers_names", Inert),
        ("token_headers_prefix", Inert),
        ("token_headers_replay", Inert),
        ("token_headers_values", Inert),
        ("token_post_args_client", Inert),
        ("token_post_args_names", Inert),
        ("token_post_args_values", Inert),
        ("unauthorized_destroy_session", Inert),
        ("unauthorized_redirect_uri", Null),
        ("unexpected_redirect_uri", Null),
        ("upstream_access_token_header", Str("authorization:bearer")),
        ("upstream_access_token_jwk_header", Null),
        ("upstream_headers_claims", Null),
        ("upstream_headers_names", Null),
        ("upstream_id_token_header", Null),
        ("upstream_id_token_jwk_header", Null),
        ("upstream_introspection_header", Null),
        ("upstream_introspection_jwt_header", Null),
        ("upstream_refresh_token_header", Null),
        ("upstream_session_id_header", Null),
        ("upstream_user_info_header", Null),
        ("upstream_user_info_jwt_header", Null),
        ("userinfo_accept", Inert),
        ("userinfo_endpoint", Inert),
        ("userinfo_headers_client", Inert),
        ("userinfo_headers_names", Inert),
        ("userinfo_headers_values", Inert),
        ("userinfo_query_args_client", Inert),
        ("userinfo_query_args_names", Inert),
        ("userinfo_query_args_values", Inert),
        ("using_pseudo_issuer", Bool(false)),
        ("verify_nonce", Inert),
        ("verify_parameters", Inert),
        ("verify_signature", Bool(true)),
    ]
};

fn kong_field(name: &str) -> Option<KongField> {
    KONG_FIELDS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

impl<'de> Deserialize<'de> for OpenIdConnectSchema {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = serde_yaml::Mapping::deserialize(deserializer)?;
        let mut implemented = serde_yaml::Mapping::new();
        let mut kong_only = BTreeMap::new();
        for (k, v) in map {
            let Some(name) = k.as_str() else {
                return Err(D::Error::custom("field names must be strings"));
            };
            if IMPLEMENTED.contains(&name) {
                implemented.insert(k, v);
            } else if kong_field(name).is_some() {
                kong_only.insert(name.to_string(), v);
            } else {
                return Err(D::Error::custom(format!("unknown field `{name}` (not a Kong openid-connect field)")));
            }
        }
        let fields: OidcFields =
            serde_path_to_error::deserialize(serde_yaml::Value::Mapping(implemented)).map_err(|e| {
                let path = e.path().to_string();
                if path == "." {
                    D::Error::custom(e.into_inner())
                } else {
                    D::Error::custom(format!("{path}: {}", e.into_inner()))
                }
            })?;
        Ok(OpenIdConnectSchema { fields, kong_only })
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled plugin

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPlace {
    /// `Authorization: Bearer <token>`.
    Header,
    /// `?access_token=<token>`.
    Query,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerBy {
    Id,
    Username,
    CustomId,
}

/// openid-connect as compiled for the request path.
#[derive(Debug)]
pub struct OpenIdConnect {
    /// The issuer, without a `/.well-known/openid-configuration` suffix.
    pub issuer: String,
    /// `iss` values accepted (exact match): `issuers_allowed`, else the issuer (and the
    /// `issuer` of its discovery document, read at run time).
    issuers_allowed: Vec<String>,
    use_discovered_issuer: bool,
    caches: Vec<Arc<JwksCache>>,
    pub token_places: Vec<TokenPlace>,
    /// Each entry is a set of values that must all be present; any entry satisfied is enough.
    audience_required: Vec<Vec<String>>,
    audience_claim: Vec<String>,
    scopes_required: Vec<Vec<String>>,
    scopes_claim: Vec<String>,
    /// A claim path (nested objects); empty means no consumer mapping.
    consumer_claim: Vec<String>,
    consumer_by: Vec<ConsumerBy>,
    pub consumer_optional: bool,
    credential_claim: Vec<String>,
    pub anonymous: Option<ConsumerId>,
    pub run_on_preflight: bool,
    verify_claims: bool,
    leeway: f64,
    unauthorized_message: Arc<str>,
    forbidden_message: Arc<str>,
    /// `Bearer realm="<host>"`, the same with the RFC 6750 error codes.
    www_plain: Arc<str>,
    www_invalid_token: Arc<str>,
    www_insufficient_scope: Arc<str>,
    unknown_kid_wait: Duration,
}

fn claim_path(issues: &mut Vec<ConfigIssue>, field: &str, value: Option<Vec<String>>, default: &str) -> Vec<String> {
    let path = value.unwrap_or_else(|| vec![default.to_string()]);
    if path.is_empty() || path.iter().any(String::is_empty) {
        issues.push(ConfigIssue::new(field, format!("{field} must name a claim"), format!("e.g. [{default}]")));
    }
    path
}

/// `["a b", "c"]` → `[[a, b], [c]]`.
fn requirement_sets(issues: &mut Vec<ConfigIssue>, field: &str, value: Option<Vec<String>>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (i, entry) in value.unwrap_or_default().iter().enumerate() {
        let set: Vec<String> = entry.split_ascii_whitespace().map(str::to_string).collect();
        if set.is_empty() {
            issues.push(ConfigIssue::new(format!("{field}[{i}]"), "the entry is empty", "remove it"));
        } else {
            out.push(set);
        }
    }
    out
}

/// An absolute http(s) URL with a host.
fn check_url(issues: &mut Vec<ConfigIssue>, path: &str, url: &str) -> Option<String> {
    let host = url
        .parse::<http::Uri>()
        .ok()
        .filter(|u| matches!(u.scheme_str(), Some("http" | "https")))
        .and_then(|u| u.host().map(str::to_string));
    if host.is_none() {
        issues.push(ConfigIssue::new(path, format!("`{url}` is not an http(s) URL"), "use https://host/path"));
    }
    host
}

impl OpenIdConnect {
    pub fn compile(
        schema: OpenIdConnectSchema,
        consumers: &Consumers,
        caches: &mut JwksRegistry,
    ) -> Result<OpenIdConnect, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let f = schema.fields;

        for (name, value) in &schema.kong_only {
            let default = |v: &serde_yaml::Value| match kong_field(name) {
                None | Some(KongField::Inert) => true,
                Some(KongField::Null) => v.as_sequence().is_some_and(|s| s.is_empty()),
                Some(KongField::Bool(b)) => v.as_bool() == Some(b),
                Some(KongField::Str(s)) => v.as_str() == Some(s),
            };
            unsupported_unless_default(&mut issues, name, &Some(value.clone()), default);
        }

        // The issuer, and where its discovery document is.
        let (issuer, discovery) = match f.issuer.strip_suffix(jwks::WELL_KNOWN) {
            Some(base) => (base.to_string(), f.issuer.clone()),
            None => (f.issuer.clone(), format!("{}{}", f.issuer.trim_end_matches('/'), jwks::WELL_KNOWN)),
        };
        let realm = check_url(&mut issues, "issuer", &f.issuer).unwrap_or_else(|| "kong".to_string());
        let mut plugin_caches = Vec::new();
        if issues.iter().all(|i| i.path != "issuer") {
            plugin_caches.push(JwksSource::Discovery(discovery));
        }
        for (i, url) in f.extra_jwks_uris.iter().flatten().enumerate() {
            if check_url(&mut issues, &format!("extra_jwks_uris[{i}]"), url).is_some() {
                let source = JwksSource::Jwks(url.clone());
                if !plugin_caches.contains(&source) {
                    plugin_caches.push(source);
                }
            }
        }

        for (i, m) in f.auth_methods.iter().flatten().enumerate() {
            if m != "bearer" {
                issues.push(ConfigIssue::new(
                    format!("auth_methods[{i}]"),
                    format!("auth method `{m}` is not supported by aigate (only bearer tokens are)"),
                    "set auth_methods to [bearer]",
                ));
            }
        }
        if f.auth_methods.as_ref().is_some_and(Vec::is_empty) {
            issues.push(ConfigIssue::new("auth_methods", "auth_methods is empty", "set auth_methods to [bearer]"));
        }

        let places = f.bearer_token_param_type.unwrap_or_else(|| vec!["header".to_string()]);
        let token_places = super::choices(
            &mut issues,
            "bearer_token_param_type",
            &places,
            |p| match p {
                "header" => Some(TokenPlace::Header),
                "query" => Some(TokenPlace::Query),
                _ => None,
            },
            "is not supported by aigate (header and query are)",
            "use header and/or query",
        );
        if places.is_empty() {
            issues.push(ConfigIssue::new("bearer_token_param_type", "no place to look for the token", "use [header]"));
        }

        let audience_required = requirement_sets(&mut issues, "audience_required", f.audience_required);
        let scopes_required = requirement_sets(&mut issues, "scopes_required", f.scopes_required);
        let audience_claim = claim_path(&mut issues, "audience_claim", f.audience_claim, "aud");
        let scopes_claim = claim_path(&mut issues, "scopes_claim", f.scopes_claim, "scope");
        let credential_claim = claim_path(&mut issues, "credential_claim", f.credential_claim, "sub");
        let consumer_claim = f.consumer_claim.unwrap_or_default();
        if consumer_claim.iter().any(String::is_empty) {
            issues.push(ConfigIssue::new("consumer_claim", "consumer_claim has an empty name", "e.g. [sub]"));
        }
        let by = f.consumer_by.unwrap_or_else(|| vec!["username".to_string(), "custom_id".to_string()]);
        let consumer_by = super::choices(
            &mut issues,
            "consumer_by",
            &by,
            |b| match b {
                "id" => Some(ConsumerBy::Id),
                "username" => Some(ConsumerBy::Username),
                "custom_id" => Some(ConsumerBy::CustomId),
                _ => None,
            },
            "is not a consumer field",
            "use id, username and/or custom_id",
        );
        if !consumer_claim.is_empty()
            && consumer_by.is_empty()
            && issues.iter().all(|i| !i.path.starts_with("consumer_by"))
        {
            issues.push(ConfigIssue::new("consumer_by", "consumer_by is empty", "use [username, custom_id]"));
        }

        let anonymous = super::anonymous_consumer(&mut issues, consumers, f.anonymous.as_deref());

        let leeway = f.leeway.unwrap_or(0.0);
        if !(leeway.is_finite() && leeway >= 0.0) {
            issues.push(ConfigIssue::new("leeway", "leeway must be a number of seconds, 0 or more", "e.g. 30"));
        }
        let lifetime = f.rediscovery_lifetime.unwrap_or(jwks::DEFAULT_ON_DEMAND_INTERVAL.as_secs_f64());
        if !(lifetime.is_finite() && lifetime >= 0.0) {
            issues.push(ConfigIssue::new(
                "rediscovery_lifetime",
                "rediscovery_lifetime must be a number of seconds, 0 or more",
                "e.g. 30",
            ));
        }

        let issuers_allowed = match f.issuers_allowed {
            Some(list) if !list.is_empty() => list,
            _ => vec![issuer.clone()],
        };
        let use_discovered_issuer = issuers_allowed.as_slice() == std::slice::from_ref(&issuer);

        let expose = f.expose_error_code.unwrap_or(true);
        let www_plain = format!("Bearer realm=\"{realm}\"");
        let (www_invalid_token, www_insufficient_scope) = if expose {
            (format!("{www_plain}, error=\"invalid_token\""), format!("{www_plain}, error=\"insufficient_scope\""))
        } else {
            (www_plain.clone(), www_plain.clone())
        };

        if !issues.is_empty() {
            return Err(issues);
        }
        let interval = Duration::from_secs_f64(lifetime.min(1e9));
        let caches: Vec<Arc<JwksCache>> = plugin_caches
            .into_iter()
            .map(|source| {
                let cache = caches.cache(source);
                cache.limit_on_demand_interval(interval);
                cache
            })
            .collect();
        Ok(OpenIdConnect {
            issuer,
            issuers_allowed,
            use_discovered_issuer,
            caches,
            token_places,
            audience_required,
            audience_claim,
            scopes_required,
            scopes_claim,
            consumer_claim,
            consumer_by,
            consumer_optional: f.consumer_optional.unwrap_or(false),
            credential_claim,
            anonymous,
            run_on_preflight: f.run_on_preflight.unwrap_or(true),
            verify_claims: f.verify_claims.unwrap_or(true),
            leeway,
            unauthorized_message: Arc::from(f.unauthorized_error_message.unwrap_or_else(|| "Unauthorized".into())),
            forbidden_message: Arc::from(f.forbidden_error_message.unwrap_or_else(|| "Forbidden".into())),
            www_plain: Arc::from(www_plain),
            www_invalid_token: Arc::from(www_invalid_token),
            www_insufficient_scope: Arc::from(www_insufficient_scope),
            unknown_kid_wait: UNKNOWN_KID_WAIT,
        })
    }

    /// The key caches this plugin reads (also in the registry it was compiled with).
    pub fn caches(&self) -> &[Arc<JwksCache>] {
        &self.caches
    }

    /// Check the request's bearer token and map its consumer. `now_unix` is the current time
    /// in seconds. Awaits only when the token names a `kid` no key has (bounded by
    /// [`UNKNOWN_KID_WAIT`], and at most one refresh per issuer per `rediscovery_lifetime`).
    pub async fn authenticate(
        &self,
        req: &RequestHeader,
        consumers: &Consumers,
        now_unix: u64,
    ) -> Result<OidcOk, OidcFailure> {
        let token = self.find_token(req).ok_or_else(|| self.fail(OidcError::Missing))?;
        let jws = jws::decode(&token, Profile::Strict).map_err(|e| {
            self.fail(match e {
                JwsError::Algorithm => OidcError::Algorithm,
                JwsError::Malformed | JwsError::Claims | JwsError::Signature => OidcError::Malformed,
            })
        })?;
        if !ACCEPTED_ALGORITHMS.contains(&jws.alg) {
            return Err(self.fail(OidcError::Algorithm));
        }
        let mut outcome = self.verify_signature(&jws);
        if matches!(outcome, KeyOutcome::KidUnknown | KeyOutcome::NoKey | KeyOutcome::NoKeysLoaded) {
            // Keys may have been rotated: refresh (rate-limited per cache), wait a bounded time
            // for the refreshes together, and look again.
            let waits: Vec<_> = self.caches.iter().filter_map(|c| c.refresh_for_unknown_kid()).collect();
            if !waits.is_empty() {
                let all = async {
                    for w in waits {
                        w.finished().await;
                    }
                };
                let _ = tokio::time::timeout(self.unknown_kid_wait, all).await;
                outcome = self.verify_signature(&jws);
            }
        }
        match outcome {
            KeyOutcome::Verified => {}
            KeyOutcome::BadSignature => return Err(self.fail(OidcError::Signature)),
            KeyOutcome::WrongAlgorithm => return Err(self.fail(OidcError::Algorithm)),
            KeyOutcome::KidUnknown | KeyOutcome::NoKey => return Err(self.fail(OidcError::UnknownKey)),
            KeyOutcome::NoKeysLoaded => return Err(self.fail(OidcError::NoKeys)),
        }
        let claims = &jws.claims;

        let iss = claims.get("iss").and_then(Value::as_str).ok_or_else(|| self.fail(OidcError::Issuer))?;
        if !self.issuer_allowed(iss) {
            return Err(self.fail(OidcError::Issuer));
        }
        if self.verify_claims {
            self.check_times(claims, now_unix as f64)?;
        }

        if !self.scopes_required.is_empty() {
            let found = claim(claims, &self.scopes_claim).map(value_set);
            match found {
                None => return Err(self.fail(OidcError::NoScopes)),
                Some(have) => {
                    if !any_set_satisfied(&self.scopes_required, &have) {
                        return Err(self.fail(OidcError::Scope));
                    }
                }
            }
        }
        if !self.audience_required.is_empty() {
            let found = claim(claims, &self.audience_claim).map(value_set);
            match found {
                None => return Err(self.fail(OidcError::NoAudience)),
                Some(have) => {
                    if !any_set_satisfied(&self.audience_required, &have) {
                        return Err(self.fail(OidcError::Audience));
                    }
                }
            }
        }

        let consumer = if self.consumer_claim.is_empty() {
            None
        } else {
            let found = claim(claims, &self.consumer_claim)
                .and_then(claim_text)
                .and_then(|v| self.find_consumer(consumers, &v));
            match found {
                Some(id) => Some(id),
                None if self.consumer_optional => None,
                None => return Err(self.fail(OidcError::ConsumerNotFound)),
            }
        };

        let subject = claims.get("sub").and_then(scalar_text).map(Cow::into_owned);
        let credential_id = match claim(claims, &self.credential_claim).and_then(scalar_text) {
            Some(c) => format!("{iss}#{c}"),
            None => iss.to_string(),
        };
        Ok(OidcOk { consumer, subject, credential_id })
    }

    fn fail(&self, kind: OidcError) -> OidcFailure {
        let (message, www) = match kind.status() {
            403 => (&self.forbidden_message, &self.www_insufficient_scope),
            _ if kind == OidcError::Missing => (&self.unauthorized_message, &self.www_plain),
            _ => (&self.unauthorized_message, &self.www_invalid_token),
        };
        OidcFailure { kind, message: Arc::clone(message), www_authenticate: Arc::clone(www) }
    }

    fn issuer_allowed(&self, iss: &str) -> bool {
        if self.issuers_allowed.iter().any(|a| a == iss) {
            return true;
        }
        self.use_discovered_issuer
            && self.caches.iter().any(|c| c.keys().issuer.as_deref().is_some_and(|discovered| discovered == iss))
    }

    fn check_times(&self, claims: &Map<String, Value>, now: f64) -> Result<(), OidcFailure> {
        let number = |name: &str| -> Result<Option<f64>, OidcFailure> {
            match claims.get(name) {
                None => Ok(None),
                Some(Value::Number(n)) => n.as_f64().map(Some).ok_or_else(|| self.fail(OidcError::BadClaims)),
                Some(_) => Err(self.fail(OidcError::BadClaims)),
            }
        };
        let exp = number("exp")?.ok_or_else(|| self.fail(OidcError::BadClaims))?;
        if now >= exp + self.leeway {
            return Err(self.fail(OidcError::Expired));
        }
        if let Some(nbf) = number("nbf")? {
            if nbf > now + self.leeway {
                return Err(self.fail(OidcError::NotYetValid));
            }
        }
        if let Some(iat) = number("iat")? {
            if iat > now + self.leeway {
                return Err(self.fail(OidcError::IssuedInFuture));
            }
        }
        Ok(())
    }

    /// Try the keys the token may be signed with.
    fn verify_signature(&self, jws: &Jws<'_>) -> KeyOutcome {
        let sets: Vec<_> = self.caches.iter().map(|c| c.keys()).collect();
        if sets.iter().all(|s| s.keys.is_empty()) {
            return KeyOutcome::NoKeysLoaded;
        }
        let all = || sets.iter().flat_map(|s| s.keys.iter());
        match jws.kid() {
            Some(kid) => {
                let named = || all().filter(|k| k.kid.as_deref() == Some(kid));
                if named().next().is_some() {
                    return match try_keys(named(), jws) {
                        Some(true) => KeyOutcome::Verified,
                        Some(false) => KeyOutcome::BadSignature,
                        // The kid exists, but for another key type or algorithm.
                        None => KeyOutcome::WrongAlgorithm,
                    };
                }
                // Keys published without a kid may still have signed it.
                match try_keys(all().filter(|k| k.kid.is_none()), jws) {
                    Some(true) => KeyOutcome::Verified,
                    _ => KeyOutcome::KidUnknown,
                }
            }
            None => match try_keys(all(), jws) {
                Some(true) => KeyOutcome::Verified,
                Some(false) => KeyOutcome::BadSignature,
                None => KeyOutcome::NoKey,
            },
        }
    }

    fn find_token<'r>(&self, req: &'r RequestHeader) -> Option<Cow<'r, [u8]>> {
        for place in &self.token_places {
            let found = match place {
                TokenPlace::Header => {
                    req.headers.get(http::header::AUTHORIZATION).and_then(|v| bearer(v.as_bytes())).map(Cow::Borrowed)
                }
                TokenPlace::Query => {
                    req.uri.query().and_then(|q| query::values(q.as_bytes(), "access_token").find(|v| !v.is_empty()))
                }
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    fn find_consumer(&self, consumers: &Consumers, value: &str) -> Option<ConsumerId> {
        // `find` indexes ids, usernames and custom_ids together; keep the match only if it is
        // by one of the configured fields.
        let id = consumers.find(value)?;
        let c = consumers.list.get(id.index())?;
        self.consumer_by
            .iter()
            .any(|by| match by {
                ConsumerBy::Id => c.id == value,
                ConsumerBy::Username => c.username.as_deref() == Some(value),
                ConsumerBy::CustomId => c.custom_id.as_deref() == Some(value),
            })
            .then_some(id)
    }
}

/// `Some(true)` when one of the keys (that accept the token's algorithm) verifies it,
/// `Some(false)` when some were tried and none did, `None` when none could be tried.
fn try_keys<'k>(keys: impl Iterator<Item = &'k jwks::Jwk>, jws: &Jws<'_>) -> Option<bool> {
    let mut tried = false;
    for key in keys.filter(|k| k.accepts(jws.alg)).take(MAX_KEYS_TRIED) {
        tried = true;
        if key.verify(jws.alg, jws.signing_input, &jws.signature) {
            return Some(true);
        }
    }
    tried.then_some(false)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyOutcome {
    Verified,
    BadSignature,
    /// The named key cannot verify this algorithm.
    WrongAlgorithm,
    /// The token names a kid no key has.
    KidUnknown,
    /// No kid, and no key for the algorithm.
    NoKey,
    /// No key set has been fetched yet (or every fetch failed).
    NoKeysLoaded,
}

/// `Bearer <token>` (scheme case-insensitive, as RFC 7235).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// A claim by path (`["realm_access", "roles"]` is nested); null and false read as absent, as
/// in Kong.
fn claim<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut v = claims.get(first)?;
    for name in rest {
        v = v.as_object()?.get(name)?;
    }
    match v {
        Value::Null | Value::Bool(false) => None,
        v => Some(v),
    }
}

/// A claim as a set of values: a space-separated string, or an array of them.
fn value_set(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |v: &Value| match v {
        Value::String(s) => out.extend(s.split_ascii_whitespace().map(str::to_string)),
        Value::Number(n) => out.push(n.to_string()),
        Value::Bool(b) => out.push(b.to_string()),
        _ => {}
    };
    match v {
        Value::Array(items) => items.iter().for_each(&mut add),
        v => add(v),
    }
    out
}

fn any_set_satisfied(required: &[Vec<String>], have: &[String]) -> bool {
    required.iter().any(|set| set.iter().all(|r| have.contains(r)))
}

/// A claim as text, as Kong reads it for consumer mapping: strings, numbers and booleans as
/// written, arrays joined with spaces.
fn claim_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::Array(items) => {
            let parts: Vec<Cow<'_, str>> = items.iter().filter_map(scalar_text).collect();
            (!parts.is_empty()).then(|| Cow::Owned(parts.join(" ")))
        }
        v => scalar_text(v),
    }
}

fn scalar_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) if !s.is_empty() => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Results

/// A token that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcOk {
    /// The mapped consumer; `None` without `consumer_claim`, or with `consumer_optional` when
    /// no consumer matched.
    pub consumer: Option<ConsumerId>,
    /// The token's `sub`.
    pub subject: Option<String>,
    /// `<iss>#<credential_claim>` (default claim `sub`), or `<iss>` without it: for
    /// `X-Credential-Identifier`, never the token.
    pub credential_id: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OidcError {
    /// No token where the plugin looks.
    Missing,
    /// Not a compact JWS with JSON object header and payload (or too long, or `crit`).
    Malformed,
    /// `alg` missing, unknown, `none`, HMAC, ES512, or not one the named key can verify.
    Algorithm,
    /// No key has the token's `kid` (after a refresh), or no key fits its algorithm.
    UnknownKey,
    /// No keys could be fetched from the issuer yet.
    NoKeys,
    Signature,
    /// `iss` missing or not the issuer.
    Issuer,
    Expired,
    NotYetValid,
    IssuedInFuture,
    /// `exp` missing, or `exp`/`nbf`/`iat` not numbers.
    BadClaims,
    NoScopes,
    Scope,
    NoAudience,
    Audience,
    ConsumerNotFound,
}

impl OidcError {
    pub fn status(self) -> u16 {
        match self {
            OidcError::NoScopes
            | OidcError::Scope
            | OidcError::NoAudience
            | OidcError::Audience
            | OidcError::ConsumerNotFound => 403,
            _ => 401,
        }
    }

    /// A short label for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            OidcError::Missing => "missing",
            OidcError::Malformed => "malformed",
            OidcError::Algorithm => "algorithm",
            OidcError::UnknownKey => "unknown_kid",
            OidcError::NoKeys => "no_keys",
            OidcError::Signature => "invalid",
            OidcError::Issuer => "issuer",
            OidcError::Expired => "expired",
            OidcError::NotYetValid => "not_yet_valid",
            OidcError::IssuedInFuture => "issued_in_future",
            OidcError::BadClaims => "invalid_claims",
            OidcError::NoScopes | OidcError::Scope => "scope",
            OidcError::NoAudience | OidcError::Audience => "audience",
            OidcError::ConsumerNotFound => "consumer_not_found",
        }
    }
}

/// A refusal as the plugin answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcFailure {
    kind: OidcError,
    message: Arc<str>,
    www_authenticate: Arc<str>,
}

impl OidcFailure {
    pub fn kind(&self) -> OidcError {
        self.kind
    }

    /// 401, or 403 for scope, audience and consumer failures.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The body's `message`: `unauthorized_error_message` / `forbidden_error_message`
    /// (Kong's defaults "Unauthorized" / "Forbidden").
    pub fn message(&self) -> &str {
        &self.message
    }

    /// `Bearer realm="<issuer host>"`, plus `, error="invalid_token"` (401) or
    /// `, error="insufficient_scope"` (403) unless `expose_error_code` is false or no token
    /// was sent.
    pub fn www_authenticate(&self) -> &str {
        &self.www_authenticate
    }

    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumers::Consumer;
    use crate::jose::jws::MAX_TOKEN_LEN;
    use crate::jose::pem_keys::pem_decode;
    use crate::jose::test_keys::RSA_PRIVATE_PEM;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use ring::rand::SystemRandom;
    use ring::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
    use serde_json::json;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const NOW: u64 = 1_700_000_000;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    // -----------------------------------------------------------------------------------------
    // Keys that sign test tokens

    enum Signer {
        Rsa(RsaKeyPair),
        Ec(EcdsaKeyPair),
        Ed(Ed25519KeyPair),
    }

    struct TestKey {
        kid: Option<String>,
        signer: Signer,
        jwk: Value,
    }

    fn with_kid(mut jwk: Value, kid: Option<&str>) -> Value {
        if let Some(k) = kid {
            jwk["kid"] = json!(k);
        }
        jwk
    }

    /// The test-only RSA key of the jwt tests (ring cannot generate RSA keys).
    fn rsa_key(kid: Option<&str>) -> TestKey {
        let (_, der) = pem_decode(RSA_PRIVATE_PEM).unwrap();
        let pair = RsaKeyPair::from_pkcs8(&der).unwrap();
        let c: sig::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
        let jwk = with_kid(json!({"kty": "RSA", "use": "sig", "n": b64(&c.n), "e": b64(&c.e)}), kid);
        TestKey { kid: kid.map(Into::into), signer: Signer::Rsa(pair), jwk }
    }

    fn ec_key(kid: Option<&str>, p384: bool) -> TestKey {
        let rng = SystemRandom::new();
        let (alg, crv, len) = if p384 {
            (&sig::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)
        } else {
            (&sig::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)
        };
        let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        assert_eq!(point.len(), 1 + 2 * len);
        let jwk =
            with_kid(json!({"kty": "EC", "crv": crv, "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..])}), kid);
        TestKey { kid: kid.map(Into::into), signer: Signer::Ec(pair), jwk }
    }

    fn ed_key(kid: Option<&str>) -> TestKey {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
        let jwk = with_kid(json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())}), kid);
        TestKey { kid: kid.map(Into::into), signer: Signer::Ed(pair), jwk }
    }

    impl TestKey {
        fn sign(&self, alg: &str, msg: &[u8]) -> Vec<u8> {
            let rng = SystemRandom::new();
            match &self.signer {
                Signer::Rsa(pair) => {
                    let pad: &'static dyn sig::RsaEncoding = match alg {
                        "RS384" => &sig::RSA_PKCS1_SHA384,
                        "RS512" => &sig::RSA_PKCS1_SHA512,
                        "PS256" => &sig::RSA_PSS_SHA256,
                        "PS384" => &sig::RSA_PSS_SHA384,
                        "PS512" => &sig::RSA_PSS_SHA512,
                        _ => &sig::RSA_PKCS1_SHA256,
                    };
                    let mut out = vec![0; pair.public().modulus_len()];
                    pair.sign(pad, &rng, msg, &mut out).unwrap();
                    out
                }
                Signer::Ec(pair) => pair.sign(&rng, msg).unwrap().as_ref().to_vec(),
                Signer::Ed(pair) => pair.sign(msg).as_ref().to_vec(),
            }
        }

        fn header(&self, alg: &str) -> Value {
            with_kid(json!({"alg": alg, "typ": "JWT"}), self.kid.as_deref())
        }

        fn token(&self, alg: &str, claims: Value) -> String {
            token_with(self.header(alg), claims, |m| self.sign(alg, m))
        }
    }

    fn token_with(header: Value, claims: Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let signature = sign(input.as_bytes());
        format!("{input}.{}", b64(&signature))
    }

    fn jwks(keys: &[&TestKey]) -> Value {
        json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
    }

    // -----------------------------------------------------------------------------------------
    // A local IdP: discovery at /.well-known/openid-configuration, keys at /jwks

    struct IdpState {
        jwks: String,
        discovery_status: u16,
        jwks_status: u16,
        discovery_hits: usize,
        jwks_hits: usize,
    }

    struct Idp {
        base: String,
        state: Arc<Mutex<IdpState>>,
    }

    impl Idp {
        async fn start(keys: Value) -> Idp {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let state = Arc::new(Mutex::new(IdpState {
                jwks: keys.to_string(),
                discovery_status: 200,
                jwks_status: 200,
                discovery_hits: 0,
                jwks_hits: 0,
            }));
            let (st, b) = (Arc::clone(&state), base.clone());
            tokio::spawn(async move {
                while let Ok((mut sock, _)) = listener.accept().await {
                    let (st, b) = (Arc::clone(&st), b.clone());
                    tokio::spawn(async move {
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 1024];
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let head = String::from_utf8_lossy(&buf).to_string();
                        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                        let (status, body) = {
                            let mut s = st.lock().unwrap();
                            match path.as_str() {
                                "/.well-known/openid-configuration" => {
                                    s.discovery_hits += 1;
                                    let doc = json!({"issuer": b, "jwks_uri": format!("{b}/jwks")});
                                    (s.discovery_status, doc.to_string())
                                }
                                "/jwks" => {
                                    s.jwks_hits += 1;
                                    (s.jwks_status, s.jwks.clone())
                                }
                                _ => (404, "{}".to_string()),
                            }
                        };
                        let resp = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                             connection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = sock.write_all(resp.as_bytes()).await;
                        let _ = sock.shutdown().await;
                    });
                }
            });
            Idp { base, state }
        }

        fn set_keys(&self, keys: Value) {
            self.state.lock().unwrap().jwks = keys.to_string();
        }

        fn set_jwks_body(&self, body: String) {
            self.state.lock().unwrap().jwks = body;
        }

        fn set_status(&self, discovery: u16, jwks: u16) {
            let mut s = self.state.lock().unwrap();
            s.discovery_status = discovery;
            s.jwks_status = jwks;
        }

        fn jwks_hits(&self) -> usize {
            self.state.lock().unwrap().jwks_hits
        }

        /// Standard valid claims, with `extra` merged in (null removes a claim).
        fn claims(&self, extra: Value) -> Value {
            let mut c = json!({"iss": self.base, "sub": "user-1", "exp": NOW + 300, "iat": NOW - 10});
            for (k, v) in extra.as_object().unwrap() {
                if v.is_null() {
                    c.as_object_mut().unwrap().remove(k);
                } else {
                    c[k] = v.clone();
                }
            }
            c
        }
    }

    // -----------------------------------------------------------------------------------------
    // Plugin helpers

    fn consumers() -> Consumers {
        let mut c = Consumers::default();
        for (name, custom) in [("alex", Some("cust-alex")), ("bo", None), ("anon", None)] {
            c.add(Consumer {
                id: format!("id-{name}"),
                username: Some(name.into()),
                custom_id: custom.map(Into::into),
                label: name.into(),
                groups: vec![],
                groups_header: String::new(),
            });
        }
        c
    }

    fn registry() -> JwksRegistry {
        JwksRegistry::new(reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap())
    }

    fn schema(yaml: &str) -> OpenIdConnectSchema {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn compile(yaml: &str) -> Result<OpenIdConnect, Vec<ConfigIssue>> {
        OpenIdConnect::compile(schema(yaml), &consumers(), &mut registry())
    }

    fn issues(yaml: &str) -> Vec<String> {
        compile(yaml).unwrap_err().into_iter().map(|i| i.path).collect()
    }

    /// An IdP serving `keys` and a plugin for it (`BASE` in `extra` is the IdP's URL), with
    /// the initial refresh done.
    async fn setup(extra: &str, keys: &[&TestKey]) -> (Idp, OpenIdConnect) {
        let idp = Idp::start(jwks(keys)).await;
        let yaml = format!("issuer: {}\n{}", idp.base, extra.replace("BASE", &idp.base));
        let plugin = compile(&yaml).unwrap();
        for cache in plugin.caches() {
            let _ = cache.refresh().await;
        }
        (idp, plugin)
    }

    fn req(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    async fn check(p: &OpenIdConnect, token: &str) -> Result<OidcOk, OidcError> {
        let r = req("/", &[("authorization", &format!("Bearer {token}"))]);
        p.authenticate(&r, &consumers(), NOW).await.map_err(|f| f.kind())
    }

    // -----------------------------------------------------------------------------------------
    // Schema

    #[test]
    fn schema_defaults() {
        let p = compile("issuer: https://idp.example/realms/x").unwrap();
        assert_eq!(p.issuer, "https://idp.example/realms/x");
        assert_eq!(p.token_places, vec![TokenPlace::Header]);
        assert!(p.run_on_preflight && !p.consumer_optional && p.verify_claims);
        assert_eq!(p.anonymous, None);
        assert_eq!(p.consumer_by, vec![ConsumerBy::Username, ConsumerBy::CustomId]);
        assert_eq!(p.scopes_claim, ["scope"]);
        assert_eq!(p.audience_claim, ["aud"]);
        assert_eq!(p.credential_claim, ["sub"]);
        assert_eq!(p.leeway, 0.0);
        assert_eq!(p.caches().len(), 1);
        assert_eq!(
            p.caches()[0].source(),
            &JwksSource::Discovery("https://idp.example/realms/x/.well-known/openid-configuration".into())
        );
        assert_eq!(p.caches()[0].on_demand_interval(), Duration::from_secs(30));
        assert_eq!(&*p.www_invalid_token, "Bearer realm=\"idp.example\", error=\"invalid_token\"");
        // The issuer may be given as its discovery URL.
        let p = compile("issuer: https://accounts.example/.well-known/openid-configuration").unwrap();
        assert_eq!(p.issuer, "https://accounts.example");
        assert_eq!(
            p.caches()[0].source(),
            &JwksSource::Discovery("https://accounts.example/.well-known/openid-configuration".into())
        );
        let p = compile(
            "{issuer: 'https://idp/', extra_jwks_uris: ['https://idp/keys', 'https://idp/keys'], \
             bearer_token_param_type: [query, header, query], scopes_required: ['a b', c], leeway: 5, \
             rediscovery_lifetime: 3, consumer_by: [id], anonymous: anon}",
        )
        .unwrap();
        assert_eq!(p.caches().len(), 2);
        assert_eq!(p.caches()[0].source().url(), "https://idp/.well-known/openid-configuration");
        assert_eq!(p.caches()[1].on_demand_interval(), Duration::from_secs(3));
        assert_eq!(p.token_places, vec![TokenPlace::Query, TokenPlace::Header]);
        assert_eq!(p.scopes_required, vec![vec!["a".to_string(), "b".into()], vec!["c".into()]]);
        assert_eq!(p.consumer_by, vec![ConsumerBy::Id]);
        assert_eq!(p.anonymous, consumers().find("anon"));
    }

    #[test]
    fn registry_shares_caches_between_plugins() {
        let mut reg = registry();
        let c = consumers();
        let a =
            OpenIdConnect::compile(schema("{issuer: 'https://idp/', rediscovery_lifetime: 60}"), &c, &mut reg).unwrap();
        let b =
            OpenIdConnect::compile(schema("{issuer: 'https://idp/', rediscovery_lifetime: 10}"), &c, &mut reg).unwrap();
        assert!(Arc::ptr_eq(&a.caches()[0], &b.caches()[0]));
        assert_eq!(reg.all().len(), 1);
        assert_eq!(reg.all()[0].on_demand_interval(), Duration::from_secs(10));
    }

    #[test]
    fn deck_dump_with_kong_defaults_loads() {
        // The shape of a decK dump of a bearer-only plugin: every field written.
        let yaml = r#"
issuer: https://idp.example/.well-known/openid-configuration
auth_methods: [bearer]
bearer_token_param_type: [header, query]
anonymous: null
audience: null
audience_claim: [aud]
audience_required: [api]
authenticated_groups_claim: null
authorization_cookie_name: authorization
authorization_rolling_timeout: 600
by_username_ignore_case: false
cache_ttl: 3600
claims_forbidden: null
client_id: [my-client]
client_secret: [s3cret]
client_auth: null
cluster_cache_redis: {host: 127.0.0.1, port: 6379}
consumer_by: [username, custom_id]
consumer_claim: [preferred_username]
consumer_optional: false
credential_claim: [sub]
discovery_headers_names: null
display_errors: false
downstream_access_token_header: null
enable_hs_signatures: false
expose_error_code: true
extra_jwks_uris: null
forbidden_error_message: Forbidden
groups_claim: [groups]
groups_required: null
hide_credentials: false
http_version: 1.1
ignore_signature: []
introspect_jwt_tokens: false
introspection_hint: access_token
issuers_allowed: null
leeway: 0
login_action: upstream
login_methods: [authorization_code]
logout_methods: [POST, DELETE]
logout_uri_suffix: null
proof_of_possession_dpop: "off"
proof_of_possession_mtls: "off"
rediscovery_lifetime: 30
redis: {host: 127.0.0.1}
resolve_distributed_claims: false
run_on_preflight: true
scopes: [openid]
scopes_claim: [scope]
scopes_required: ["read write"]
search_user_info: false
session_cookie_name: session
session_storage: cookie
ssl_verify: false
timeout: 10000
unauthorized_error_message: Unauthorized
upstream_access_token_header: authorization:bearer
upstream_headers_claims: []
using_pseudo_issuer: false
verify_claims: true
verify_nonce: true
verify_parameters: false
verify_signature: true
"#;
        let p = compile(yaml).unwrap();
        assert_eq!(p.issuer, "https://idp.example");
        assert_eq!(p.audience_required, vec![vec!["api".to_string()]]);
        assert_eq!(p.consumer_claim, ["preferred_username"]);
    }

    #[test]
    fn schema_errors() {
        // Not Kong fields at all.
        assert!(serde_yaml::from_str::<OpenIdConnectSchema>("{issuer: 'https://i', issuer_url: x}").is_err());
        assert!(serde_yaml::from_str::<OpenIdConnectSchema>("{issuer: 'https://i', 5: x}").is_err());
        assert!(serde_yaml::from_str::<OpenIdConnectSchema>("{issuer: 'https://i', leeway: soon}")
            .unwrap_err()
            .to_string()
            .contains("leeway"));
        // issuer is required.
        assert!(serde_yaml::from_str::<OpenIdConnectSchema>("{auth_methods: [bearer]}").is_err());
        // Through parse_config, as the gateway reads it.
        let cfg: serde_yaml::Value = serde_yaml::from_str("{issuer: 'https://i', nope: 1}").unwrap();
        assert!(super::super::parse_config::<OpenIdConnectSchema>(Some(&cfg)).is_err());

        let i = "issuer: https://idp/\n";
        assert_eq!(issues(&format!("{i}auth_methods: [bearer, session]")), ["auth_methods[1]"]);
        assert_eq!(issues(&format!("{i}auth_methods: []")), ["auth_methods"]);
        assert_eq!(issues(&format!("{i}bearer_token_param_type: [header, body]")), ["bearer_token_param_type[1]"]);
        assert_eq!(issues(&format!("{i}bearer_token_param_type: [cookie]")), ["bearer_token_param_type[0]"]);
        assert_eq!(issues(&format!("{i}bearer_token_param_type: []")), ["bearer_token_param_type"]);
        assert_eq!(issues(&format!("{i}scopes_required: [a, '  ']")), ["scopes_required[1]"]);
        assert_eq!(issues(&format!("{i}audience_required: ['']")), ["audience_required[0]"]);
        assert_eq!(issues(&format!("{i}scopes_claim: []")), ["scopes_claim"]);
        assert_eq!(issues(&format!("{i}audience_claim: [a, '']")), ["audience_claim"]);
        assert_eq!(issues(&format!("{i}consumer_claim: ['']")), ["consumer_claim"]);
        assert_eq!(issues(&format!("{i}consumer_by: [email]")), ["consumer_by[0]"]);
        assert_eq!(issues(&format!("{i}consumer_claim: [sub]\nconsumer_by: []")), ["consumer_by"]);
        assert_eq!(issues(&format!("{i}leeway: -1")), ["leeway"]);
        assert_eq!(issues(&format!("{i}rediscovery_lifetime: -5")), ["rediscovery_lifetime"]);
        assert_eq!(issues(&format!("{i}anonymous: ghost")), ["anonymous"]);
        assert_eq!(issues(&format!("{i}extra_jwks_uris: [not-a-url]")), ["extra_jwks_uris[0]"]);
        assert_eq!(issues("issuer: idp.example"), ["issuer"]);
        assert_eq!(issues("issuer: ftp://idp.example/"), ["issuer"]);
        // Kong fields that would change the outcome are refused unless at their defaults.
        for (field, value) in [
            ("hide_credentials", "true"),
            ("verify_signature", "false"),
            ("enable_hs_signatures", "true"),
            ("groups_required", "[admins]"),
            ("claims_forbidden", "[x]"),
            ("upstream_access_token_header", "x-token"),
            ("upstream_headers_claims", "[sub]"),
            ("proof_of_possession_mtls", "strict"),
            ("display_errors", "true"),
            ("unauthorized_redirect_uri", "[https://x]"),
            ("login_action", "response"),
            ("http_proxy", "http://proxy:3128"),
            ("token_exchange_endpoint", "https://x"),
            ("by_username_ignore_case", "true"),
        ] {
            let found = issues(&format!("{i}{field}: {value}"));
            assert_eq!(found, [field], "{field}");
            // ... and accepted at their defaults or null.
            assert!(compile(&format!("{i}{field}: null")).is_ok(), "{field}");
        }
        // Fields a bearer-only plugin never reads are accepted as written.
        assert!(compile(&format!("{i}session_storage: redis\nclient_secret: [x]\nssl_verify: true")).is_ok());
    }

    // -----------------------------------------------------------------------------------------
    // Tokens

    #[tokio::test]
    async fn valid_tokens_of_every_key_type() {
        let rsa = rsa_key(Some("rsa"));
        let p256 = ec_key(Some("p256"), false);
        let p384 = ec_key(Some("p384"), true);
        let ed = ed_key(Some("ed"));
        let (idp, p) = setup("", &[&rsa, &p256, &p384, &ed]).await;
        let cases: [(&TestKey, &str); 9] = [
            (&rsa, "RS256"),
            (&rsa, "RS384"),
            (&rsa, "RS512"),
            (&rsa, "PS256"),
            (&rsa, "PS384"),
            (&rsa, "PS512"),
            (&p256, "ES256"),
            (&p384, "ES384"),
            (&ed, "EdDSA"),
        ];
        for (key, alg) in cases {
            let ok = check(&p, &key.token(alg, idp.claims(json!({})))).await.unwrap_or_else(|e| panic!("{alg}: {e:?}"));
            assert_eq!(ok.consumer, None);
            assert_eq!(ok.subject.as_deref(), Some("user-1"));
            assert_eq!(ok.credential_id, format!("{}#user-1", idp.base));
            // Any change to the signed parts breaks the signature.
            let t = key.token(alg, idp.claims(json!({})));
            let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
            parts[1] = b64(idp.claims(json!({"sub": "admin"})).to_string().as_bytes());
            assert_eq!(check(&p, &parts.join(".")).await, Err(OidcError::Signature), "{alg}");
        }
        // The token was never fetched again: the keys were found in the cache.
        assert_eq!(idp.jwks_hits(), 1);
    }

    #[tokio::test]
    async fn issuer_and_time_claims() {
        let key = ec_key(Some("k"), false);
        let (idp, p) = setup("", &[&key]).await;
        let t = |extra: Value| key.token("ES256", idp.claims(extra));
        assert!(check(&p, &t(json!({}))).await.is_ok());
        assert_eq!(check(&p, &t(json!({"iss": "https://evil.example"}))).await, Err(OidcError::Issuer));
        assert_eq!(check(&p, &t(json!({"iss": format!("{}/", idp.base)}))).await, Err(OidcError::Issuer));
        assert_eq!(check(&p, &t(json!({"iss": null}))).await, Err(OidcError::Issuer));
        assert_eq!(check(&p, &t(json!({"iss": 5}))).await, Err(OidcError::Issuer));
        // exp is required, and exp == now is expired.
        assert_eq!(check(&p, &t(json!({"exp": NOW}))).await, Err(OidcError::Expired));
        assert_eq!(check(&p, &t(json!({"exp": NOW - 100}))).await, Err(OidcError::Expired));
        assert!(check(&p, &t(json!({"exp": NOW + 1}))).await.is_ok());
        assert_eq!(check(&p, &t(json!({"exp": null}))).await, Err(OidcError::BadClaims));
        assert_eq!(check(&p, &t(json!({"exp": "9999999999"}))).await, Err(OidcError::BadClaims));
        assert_eq!(check(&p, &t(json!({"nbf": NOW + 10}))).await, Err(OidcError::NotYetValid));
        assert!(check(&p, &t(json!({"nbf": NOW}))).await.is_ok());
        assert_eq!(check(&p, &t(json!({"nbf": "soon"}))).await, Err(OidcError::BadClaims));
        assert_eq!(check(&p, &t(json!({"iat": NOW + 10}))).await, Err(OidcError::IssuedInFuture));
        assert!(check(&p, &t(json!({"iat": null}))).await.is_ok());
        assert!(check(&p, &t(json!({"exp": (NOW as f64) + 0.5}))).await.is_ok());

        // Leeway applies to exp, nbf and iat.
        let (idp, p) = setup("leeway: 60", &[&key]).await;
        let t = |extra: Value| key.token("ES256", idp.claims(extra));
        assert!(check(&p, &t(json!({"exp": NOW - 30, "nbf": NOW + 30, "iat": NOW + 30}))).await.is_ok());
        assert_eq!(check(&p, &t(json!({"exp": NOW - 60}))).await, Err(OidcError::Expired));
        assert_eq!(check(&p, &t(json!({"nbf": NOW + 61}))).await, Err(OidcError::NotYetValid));

        // verify_claims: false skips the time claims, not the issuer.
        let (idp, p) = setup("verify_claims: false", &[&key]).await;
        let t = |extra: Value| key.token("ES256", idp.claims(extra));
        assert!(check(&p, &t(json!({"exp": null, "nbf": NOW + 1000}))).await.is_ok());
        assert_eq!(check(&p, &t(json!({"iss": "https://evil.example"}))).await, Err(OidcError::Issuer));

        // issuers_allowed replaces the issuer.
        let (idp, p) = setup("issuers_allowed: [https://a.example, https://b.example]", &[&key]).await;
        let t = |extra: Value| key.token("ES256", idp.claims(extra));
        assert!(check(&p, &t(json!({"iss": "https://b.example"}))).await.is_ok());
        assert_eq!(check(&p, &t(json!({}))).await, Err(OidcError::Issuer));
    }

    #[tokio::test]
    async fn scopes_and_audience() {
        let key = ed_key(Some("k"));
        let (idp, p) = setup("scopes_required: ['read write', admin]\naudience_required: [api, other]", &[&key]).await;
        let t = |extra: Value| key.token("EdDSA", idp.claims(extra));
        let r = |scope: Value, aud: Value| t(json!({"scope": scope, "aud": aud}));
        assert!(check(&p, &r(json!("openid read write"), json!("api"))).await.is_ok());
        assert!(check(&p, &r(json!("admin"), json!(["x", "other"]))).await.is_ok());
        assert!(check(&p, &r(json!(["write", "read"]), json!("api"))).await.is_ok());
        assert_eq!(check(&p, &r(json!("read"), json!("api"))).await, Err(OidcError::Scope));
        assert_eq!(check(&p, &r(json!("readwrite admins"), json!("api"))).await, Err(OidcError::Scope));
        assert_eq!(check(&p, &t(json!({"aud": "api"}))).await, Err(OidcError::NoScopes));
        assert_eq!(check(&p, &r(json!(""), json!("api"))).await, Err(OidcError::Scope));
        assert_eq!(check(&p, &r(json!("admin"), json!("apis"))).await, Err(OidcError::Audience));
        assert_eq!(check(&p, &r(json!("admin"), json!(["x", "y"]))).await, Err(OidcError::Audience));
        assert_eq!(check(&p, &t(json!({"scope": "admin"}))).await, Err(OidcError::NoAudience));
        let f = p
            .authenticate(
                &req("/", &[("authorization", &format!("Bearer {}", r(json!("read"), json!("api"))))]),
                &consumers(),
                NOW,
            )
            .await
            .unwrap_err();
        assert_eq!((f.status(), f.message(), f.reason()), (403, "Forbidden", "scope"));
        assert_eq!(f.www_authenticate(), format!("Bearer realm=\"127.0.0.1\", error=\"insufficient_scope\""));

        // A nested claim path (Keycloak's realm roles) and an array claim (scp).
        let (idp, p) = setup("scopes_required: [admin]\nscopes_claim: [realm_access, roles]", &[&key]).await;
        let t = |extra: Value| key.token("EdDSA", idp.claims(extra));
        assert!(check(&p, &t(json!({"realm_access": {"roles": ["user", "admin"]}}))).await.is_ok());
        assert_eq!(check(&p, &t(json!({"realm_access": ["admin"]}))).await, Err(OidcError::NoScopes));
        assert_eq!(check(&p, &t(json!({"roles": ["admin"]}))).await, Err(OidcError::NoScopes));
        let (idp, p) = setup("scopes_required: [write]\nscopes_claim: [scp]", &[&key]).await;
        assert!(check(&p, &key.token("EdDSA", idp.claims(json!({"scp": ["read", "write"]})))).await.is_ok());
    }

    #[tokio::test]
    async fn algorithm_attacks_are_refused() {
        let rsa = rsa_key(Some("rsa"));
        let ec = ec_key(Some("ec"), false);
        let (idp, p) = setup("", &[&rsa, &ec]).await;
        let claims = idp.claims(json!({}));
        // alg none, with or without a signature.
        for alg in ["none", "None", "NONE", ""] {
            let unsigned = token_with(json!({"alg": alg, "kid": "rsa"}), claims.clone(), |_| vec![]);
            assert_eq!(check(&p, &unsigned).await, Err(OidcError::Algorithm), "{alg}");
        }
        assert_eq!(
            check(&p, &token_with(json!({"kid": "rsa"}), claims.clone(), |_| vec![1])).await,
            Err(OidcError::Algorithm)
        );
        assert_eq!(
            check(&p, &token_with(json!({"alg": 256, "kid": "rsa"}), claims.clone(), |_| vec![1])).await,
            Err(OidcError::Algorithm)
        );
        // HS256 keyed with the public key (the classic confusion), with and without kid.
        let jwk_text = rsa.jwk.to_string();
        for header in [json!({"alg": "HS256", "kid": "rsa"}), json!({"alg": "HS256"}), json!({"alg": "HS512"})] {
            let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, jwk_text.as_bytes());
            let t = token_with(header.clone(), claims.clone(), |m| ring::hmac::sign(&hmac_key, m).as_ref().to_vec());
            assert_eq!(check(&p, &t).await, Err(OidcError::Algorithm), "{header}");
        }
        // ES512 (not supported) and an alg that does not fit the named key.
        assert_eq!(
            check(&p, &token_with(json!({"alg": "ES512", "kid": "ec"}), claims.clone(), |_| vec![1; 132])).await,
            Err(OidcError::Algorithm)
        );
        let t = token_with(json!({"alg": "ES256", "kid": "rsa"}), claims.clone(), |m| ec.sign("ES256", m));
        assert_eq!(check(&p, &t).await, Err(OidcError::Algorithm));
        let t = token_with(json!({"alg": "RS256", "kid": "ec"}), claims.clone(), |m| rsa.sign("RS256", m));
        assert_eq!(check(&p, &t).await, Err(OidcError::Algorithm));
        // PKCS#1 and PSS are different algorithms for the same key.
        let t = token_with(json!({"alg": "RS256", "kid": "rsa"}), claims.clone(), |m| rsa.sign("PS256", m));
        assert_eq!(check(&p, &t).await, Err(OidcError::Signature));
        // A key restricted to one alg by its JWK refuses others.
        let mut restricted = rsa_key(Some("only-ps"));
        restricted.jwk["alg"] = json!("PS256");
        idp.set_keys(jwks(&[&restricted]));
        for c in p.caches() {
            c.refresh().await.unwrap();
        }
        assert!(check(&p, &restricted.token("PS256", claims.clone())).await.is_ok());
        assert_eq!(check(&p, &restricted.token("RS256", claims.clone())).await, Err(OidcError::Algorithm));
        // Unknown critical header extensions are refused.
        let t = token_with(json!({"alg": "PS256", "kid": "only-ps", "crit": ["exp"]}), claims.clone(), |m| {
            restricted.sign("PS256", m)
        });
        assert_eq!(check(&p, &t).await, Err(OidcError::Malformed));
    }

    #[tokio::test]
    async fn keys_without_kid() {
        let key = ec_key(None, true);
        let (idp, p) = setup("", &[&key]).await;
        // No kid in the token: every key of the right type is tried.
        assert!(check(&p, &key.token("ES384", idp.claims(json!({})))).await.is_ok());
        // A kid in the token that no key has, but a kid-less key signed it.
        let t = token_with(json!({"alg": "ES384", "kid": "whatever"}), idp.claims(json!({})), |m| key.sign("ES384", m));
        assert!(check(&p, &t).await.is_ok());
        // No key of that type at all.
        let other = ed_key(None);
        assert_eq!(check(&p, &other.token("EdDSA", idp.claims(json!({})))).await, Err(OidcError::UnknownKey));
        let stranger = ec_key(None, true);
        assert_eq!(check(&p, &stranger.token("ES384", idp.claims(json!({})))).await, Err(OidcError::Signature));
    }

    #[tokio::test]
    async fn unknown_kid_refreshes_once_and_finds_rotated_keys() {
        let old = rsa_key(Some("2024"));
        let new = ec_key(Some("2025"), false);
        let (idp, p) = setup("", &[&old]).await;
        assert_eq!(idp.jwks_hits(), 1);
        // The IdP rotates; a token signed with the new key triggers a refresh and passes.
        idp.set_keys(jwks(&[&old, &new]));
        let ok = check(&p, &new.token("ES256", idp.claims(json!({})))).await.unwrap();
        assert_eq!(ok.subject.as_deref(), Some("user-1"));
        assert_eq!(idp.jwks_hits(), 2);
        // Both keys now verify without further fetches.
        assert!(check(&p, &old.token("RS256", idp.claims(json!({})))).await.is_ok());
        assert!(check(&p, &new.token("ES256", idp.claims(json!({})))).await.is_ok());
        assert_eq!(idp.jwks_hits(), 2);
    }

    #[tokio::test]
    async fn unknown_kid_flood_is_rate_limited() {
        let key = ed_key(Some("good"));
        let late = ec_key(Some("late"), false);
        let (idp, p) = setup("rediscovery_lifetime: 2", &[&key]).await;
        let hits = idp.jwks_hits();
        // A flood of random kids, concurrent and then sequential: one refresh in all.
        let tokens: Vec<String> = (0..20)
            .map(|i| {
                token_with(json!({"alg": "EdDSA", "kid": format!("random-{i}")}), idp.claims(json!({})), |m| {
                    key.sign("EdDSA", m)
                })
            })
            .collect();
        let results = futures_util::future::join_all(tokens.iter().map(|t| check(&p, t))).await;
        assert!(results.iter().all(|r| *r == Err(OidcError::UnknownKey)));
        for t in &tokens {
            assert_eq!(check(&p, t).await, Err(OidcError::UnknownKey));
        }
        assert_eq!(idp.jwks_hits(), hits + 1);
        // Within the limit, even a kid the IdP now has is refused...
        idp.set_keys(jwks(&[&key, &late]));
        let t = late.token("ES256", idp.claims(json!({})));
        assert_eq!(check(&p, &t).await, Err(OidcError::UnknownKey));
        assert_eq!(idp.jwks_hits(), hits + 1);
        // ... and found once the limit has passed.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(check(&p, &t).await.is_ok());
        assert_eq!(idp.jwks_hits(), hits + 2);
        // Known keys never wait or fetch.
        assert!(check(&p, &key.token("EdDSA", idp.claims(json!({})))).await.is_ok());
        assert_eq!(idp.jwks_hits(), hits + 2);
    }

    #[tokio::test]
    async fn failed_refreshes_keep_the_keys() {
        let key = ec_key(Some("k"), false);
        let (idp, p) = setup("", &[&key]).await;
        let cache = Arc::clone(&p.caches()[0]);
        let good = key.token("ES256", idp.claims(json!({})));
        assert!(check(&p, &good).await.is_ok());
        // IdP down (5xx), bad JSON, an empty key set, only junk keys, an oversized document.
        idp.set_status(200, 503);
        assert!(cache.refresh().await.unwrap_err().contains("503"));
        idp.set_status(200, 200);
        for body in [
            "not json".to_string(),
            r#"{"keys": []}"#.to_string(),
            r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#.to_string(),
            r#"{"no": "keys"}"#.to_string(),
            format!(r#"{{"keys": [], "pad": "{}"}}"#, "x".repeat(jwks::MAX_DOCUMENT_BYTES)),
        ] {
            idp.set_jwks_body(body);
            assert!(cache.refresh().await.is_err());
            assert_eq!(cache.keys().keys.len(), 1);
            assert!(check(&p, &good).await.is_ok());
        }
        // Discovery down, keys still served: the known jwks_uri is used.
        let next = ed_key(Some("next"));
        idp.set_keys(jwks(&[&key, &next]));
        idp.set_status(500, 200);
        assert_eq!(cache.refresh().await, Ok(2));
        assert!(check(&p, &next.token("EdDSA", idp.claims(json!({})))).await.is_ok());
        // Junk keys next to good ones are ignored one by one.
        let mut doc = jwks(&[&key]);
        doc["keys"].as_array_mut().unwrap().extend([
            json!({"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}),
            json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}),
            json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
            json!("junk"),
        ]);
        idp.set_keys(doc);
        assert_eq!(cache.refresh().await, Ok(1));
        assert!(check(&p, &good).await.is_ok());
    }

    #[tokio::test]
    async fn no_keys_until_the_idp_answers() {
        let key = ed_key(Some("k"));
        let idp = Idp::start(jwks(&[&key])).await;
        idp.set_status(503, 503);
        let p = compile(&format!("{{issuer: '{}', rediscovery_lifetime: 0}}", idp.base)).unwrap();
        assert!(p.caches()[0].refresh().await.unwrap_err().contains("discovery"));
        let t = key.token("EdDSA", idp.claims(json!({})));
        assert_eq!(check(&p, &t).await, Err(OidcError::NoKeys));
        // The IdP comes back: the next token fetches the keys on demand.
        idp.set_status(200, 200);
        assert!(check(&p, &t).await.is_ok());
    }

    #[tokio::test]
    async fn a_hanging_idp_delays_requests_a_bounded_time() {
        // Accepts connections and never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let mut p = compile(&format!("issuer: {base}")).unwrap();
        p.unknown_kid_wait = Duration::from_millis(300);
        let key = ed_key(Some("k"));
        let t = key.token("EdDSA", json!({"iss": base, "exp": NOW + 60}));
        for _ in 0..3 {
            let started = std::time::Instant::now();
            assert_eq!(check(&p, &t).await, Err(OidcError::NoKeys));
            assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
        }
    }

    #[tokio::test]
    async fn extra_jwks_uris_without_discovery() {
        let key = rsa_key(Some("k"));
        let idp = Idp::start(jwks(&[&key])).await;
        // The issuer has no discovery document: its refresh fails, the extra JWKS serves.
        let yaml = format!("{{issuer: '{0}/no-discovery', extra_jwks_uris: ['{0}/jwks']}}", idp.base);
        let p = compile(&yaml).unwrap();
        assert_eq!(p.caches().len(), 2);
        assert!(p.caches()[0].refresh().await.is_err());
        assert_eq!(p.caches()[1].refresh().await, Ok(1));
        let claims = idp.claims(json!({"iss": format!("{}/no-discovery", idp.base)}));
        assert!(check(&p, &key.token("RS256", claims)).await.is_ok());
    }

    #[tokio::test]
    async fn consumer_mapping() {
        let key = ed_key(Some("k"));
        let (idp, p) = setup("consumer_claim: [preferred_username]", &[&key]).await;
        let t = |name: Value| key.token("EdDSA", idp.claims(json!({"preferred_username": name})));
        let c = consumers();
        assert_eq!(check(&p, &t(json!("alex"))).await.unwrap().consumer, c.find("alex"));
        assert_eq!(check(&p, &t(json!("cust-alex"))).await.unwrap().consumer, c.find("alex"));
        assert_eq!(check(&p, &t(json!("bo"))).await.unwrap().consumer, c.find("bo"));
        // By id only when consumer_by says so.
        assert_eq!(check(&p, &t(json!("id-bo"))).await, Err(OidcError::ConsumerNotFound));
        assert_eq!(check(&p, &t(json!("nobody"))).await, Err(OidcError::ConsumerNotFound));
        assert_eq!(check(&p, &t(json!(null))).await, Err(OidcError::ConsumerNotFound));
        assert_eq!(check(&p, &t(json!({"a": 1}))).await, Err(OidcError::ConsumerNotFound));
        let f = p
            .authenticate(&req("/", &[("authorization", &format!("Bearer {}", t(json!("nobody"))))]), &c, NOW)
            .await
            .unwrap_err();
        assert_eq!((f.status(), f.message(), f.reason()), (403, "Forbidden", "consumer_not_found"));

        let (idp, p) = setup("consumer_claim: [sub]\nconsumer_by: [id]\nconsumer_optional: true", &[&key]).await;
        let t = |sub: &str| key.token("EdDSA", idp.claims(json!({"sub": sub})));
        assert_eq!(check(&p, &t("id-alex")).await.unwrap().consumer, c.find("alex"));
        let ok = check(&p, &t("alex")).await.unwrap();
        assert_eq!((ok.consumer, ok.subject.as_deref()), (None, Some("alex")));
        assert_eq!(ok.credential_id, format!("{}#alex", idp.base));

        // A nested claim path.
        let (idp, p) = setup("consumer_claim: [ext, user]\nconsumer_by: [username]", &[&key]).await;
        let ok = check(&p, &key.token("EdDSA", idp.claims(json!({"ext": {"user": "bo"}})))).await.unwrap();
        assert_eq!(ok.consumer, c.find("bo"));
        assert_eq!(
            check(&p, &key.token("EdDSA", idp.claims(json!({"ext": {"user": "cust-alex"}})))).await,
            Err(OidcError::ConsumerNotFound)
        );
        // credential_claim picks the credential id.
        let (idp, p) = setup("credential_claim: [client_id]", &[&key]).await;
        let ok = check(&p, &key.token("EdDSA", idp.claims(json!({"client_id": "svc-7"})))).await.unwrap();
        assert_eq!(ok.credential_id, format!("{}#svc-7", idp.base));
        let ok = check(&p, &key.token("EdDSA", idp.claims(json!({})))).await.unwrap();
        assert_eq!(ok.credential_id, idp.base);
    }

    #[tokio::test]
    async fn token_places() {
        let key = ed_key(Some("k"));
        let (idp, p) = setup("bearer_token_param_type: [query]", &[&key]).await;
        let t = key.token("EdDSA", idp.claims(json!({})));
        let c = consumers();
        assert!(p.authenticate(&req(&format!("/x?a=1&access_token={t}"), &[]), &c, NOW).await.is_ok());
        // The header is not read unless configured.
        let r = req("/x", &[("authorization", &format!("Bearer {t}"))]);
        assert_eq!(p.authenticate(&r, &c, NOW).await.unwrap_err().kind(), OidcError::Missing);
        assert_eq!(
            p.authenticate(&req("/x?access_token=", &[]), &c, NOW).await.unwrap_err().kind(),
            OidcError::Missing
        );
        // In configured order: the header wins when listed first.
        let (idp, p) = setup("bearer_token_param_type: [header, query]", &[&key]).await;
        let t = key.token("EdDSA", idp.claims(json!({})));
        let r = req(&format!("/x?access_token={t}"), &[("authorization", "Bearer garbage")]);
        assert_eq!(p.authenticate(&r, &c, NOW).await.unwrap_err().kind(), OidcError::Malformed);
        let r = req(&format!("/x?access_token={t}"), &[("authorization", "Basic YTpi")]);
        assert!(p.authenticate(&r, &c, NOW).await.is_ok());
        // The scheme is case-insensitive.
        for h in [format!("bearer {t}"), format!("BEARER  {t} "), format!("Bearer\t{t}")] {
            assert!(p.authenticate(&req("/", &[("authorization", &h)]), &c, NOW).await.is_ok(), "{h}");
        }
        for h in ["Bearer", "Bearer ", "Bearerx abc", "Token abc", ""] {
            let f = p.authenticate(&req("/", &[("authorization", h)]), &c, NOW).await.unwrap_err();
            assert_eq!(f.kind(), OidcError::Missing, "{h}");
            assert_eq!((f.status(), f.message()), (401, "Unauthorized"));
            // RFC 6750: no error code when no credentials were sent.
            assert_eq!(f.www_authenticate(), "Bearer realm=\"127.0.0.1\"");
        }
    }

    #[tokio::test]
    async fn answers_and_messages() {
        let key = ed_key(Some("k"));
        let (idp, p) = setup("", &[&key]).await;
        let expired = key.token("EdDSA", idp.claims(json!({"exp": NOW - 1})));
        let f = p
            .authenticate(&req("/", &[("authorization", &format!("Bearer {expired}"))]), &consumers(), NOW)
            .await
            .unwrap_err();
        assert_eq!((f.status(), f.message(), f.reason()), (401, "Unauthorized", "expired"));
        assert_eq!(f.www_authenticate(), "Bearer realm=\"127.0.0.1\", error=\"invalid_token\"");
        let (idp, p) = setup(
            "expose_error_code: false\nunauthorized_error_message: Go away\nforbidden_error_message: Not you\n\
             scopes_required: [x]",
            &[&key],
        )
        .await;
        let f = p
            .authenticate(&req("/", &[("authorization", &format!("Bearer {expired}"))]), &consumers(), NOW)
            .await
            .unwrap_err();
        assert_eq!((f.message(), f.www_authenticate()), ("Go away", "Bearer realm=\"127.0.0.1\""));
        let fine = key.token("EdDSA", idp.claims(json!({})));
        let f = p
            .authenticate(&req("/", &[("authorization", &format!("Bearer {fine}"))]), &consumers(), NOW)
            .await
            .unwrap_err();
        assert_eq!((f.status(), f.message(), f.www_authenticate()), (403, "Not you", "Bearer realm=\"127.0.0.1\""));
        // Every kind has a status and a label.
        for kind in [
            OidcError::Missing,
            OidcError::Malformed,
            OidcError::Algorithm,
            OidcError::UnknownKey,
            OidcError::NoKeys,
            OidcError::Signature,
            OidcError::Issuer,
            OidcError::Expired,
            OidcError::NotYetValid,
            OidcError::IssuedInFuture,
            OidcError::BadClaims,
        ] {
            assert_eq!(kind.status(), 401);
            assert!(!kind.reason().is_empty());
        }
        for kind in [
            OidcError::NoScopes,
            OidcError::Scope,
            OidcError::NoAudience,
            OidcError::Audience,
            OidcError::ConsumerNotFound,
        ] {
            assert_eq!(kind.status(), 403);
        }
    }

    #[tokio::test]
    async fn malformed_tokens_never_panic() {
        let key = rsa_key(Some("k"));
        let (idp, p) = setup("bearer_token_param_type: [header, query]", &[&key]).await;
        let good = key.token("RS256", idp.claims(json!({})));
        assert!(check(&p, &good).await.is_ok());
        let h = b64(br#"{"alg":"RS256","kid":"k"}"#);
        let c = b64(idp.claims(json!({})).to_string().as_bytes());
        let samples = [
            "abc".to_string(),
            format!("{h}.{c}"),
            format!("{good}.extra"),
            "..".to_string(),
            "...".to_string(),
            format!("!!!.{c}.AAAA"),
            format!("{h}.!!!.AAAA"),
            format!("{h}.{c}.!!!"),
            format!("{}.{c}.AAAA", b64(b"[1,2]")),
            format!("{}.{c}.AAAA", b64(b"{not json")),
            format!("{h}.{}.AAAA", b64(b"null")),
            format!("{h}.{}.AAAA", b64(b"\"claims\"")),
            format!("{h}.{}.AAAA", b64(b"[]")),
            format!("{}.{c}.AAAA", b64(br#"{"alg":"RS256","kid":5}"#)),
            format!("{h}.{c}.A"),
            format!("{h}.{c}."),
            format!("{h}.{c}.{}", "A".repeat(MAX_TOKEN_LEN)),
        ];
        for s in &samples {
            let r = check(&p, s).await;
            assert!(matches!(r, Err(OidcError::Malformed | OidcError::Signature)), "{s}: {r:?}");
        }
        // Every single-character change of a valid token is refused.
        let alphabet = b"AZaz09-_.=";
        for i in 0..good.len() {
            for &ch in alphabet {
                let mut t = good.clone().into_bytes();
                if t[i] == ch {
                    continue;
                }
                t[i] = ch;
                let t = String::from_utf8(t).unwrap();
                assert!(check(&p, &t).await.is_err(), "{i}");
            }
        }
        // Random token-like text and percent-encoded junk in the query.
        let mut x: u32 = 0x2545_f491;
        let chars = b"eyJhbGciOiJSUzI1NiJ9._-=+/AZaz09";
        for _ in 0..2000 {
            let mut t = String::new();
            for _ in 0..(x % 150) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                t.push(chars[(x as usize) % chars.len()] as char);
            }
            assert!(check(&p, &t).await.is_err());
        }
        for q in ["/?access_token=%ff%fe.%00.x", "/?access_token=a%2eb%2ec", "/?access_token&access_token=..."] {
            assert!(p.authenticate(&req(q, &[]), &consumers(), NOW).await.is_err(), "{q}");
        }
    }

    #[tokio::test]
    async fn background_refresher_picks_up_rotations_and_stops() {
        let old = ec_key(Some("old"), false);
        let new = ed_key(Some("new"));
        let (idp, p) = setup("", &[&old]).await;
        idp.set_keys(jwks(&[&new]));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run_refresher(p.caches().to_vec(), Duration::from_secs(1), stopped));
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let kids: Vec<Option<String>> = p.caches()[0].keys().keys.iter().map(|k| k.kid.clone()).collect();
        assert_eq!(kids, [Some("new".to_string())]);
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(2), task).await.unwrap().unwrap();
    }

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn authenticate_future_is_send() {
        let p = compile("issuer: https://idp.example").unwrap();
        let (c, r) = (consumers(), req("/", &[]));
        assert_send(&p.authenticate(&r, &c, NOW));
        assert_send(&p.caches()[0].refresh());
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"  bearer   abc  "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"BEARER\tabc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearerabc"), None);
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b""), None);
        assert_eq!(bearer("Beärer x".as_bytes()), None);
    }
}
