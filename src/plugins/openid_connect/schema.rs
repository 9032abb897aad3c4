//! Kong Enterprise's openid-connect schema as decK files write it. The fields aigate implements
//! are typed ([`OidcFields`]); every other Kong field is kept as written, with what aigate does
//! with it ([`KongField`]): ignored when a bearer-only plugin never reads it, refused unless at
//! its default when it would change how a token is judged. A name that is not a Kong field at
//! all is refused.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

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
    /// Remove the token where it was found before the request goes to a service.
    pub hide_credentials: Option<bool>,
    /// The cookie a token is read from, with `cookie` in `bearer_token_param_type`.
    pub bearer_token_cookie_name: Option<String>,
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
    "hide_credentials",
    "bearer_token_cookie_name",
];

/// What aigate does with a Kong field it does not implement.
#[derive(Debug, Clone, Copy)]
pub(super) enum KongField {
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

pub(super) fn kong_field(name: &str) -> Option<KongField> {
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
