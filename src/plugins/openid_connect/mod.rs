//! openid-connect: the bearer-token part of Kong Enterprise's plugin. A request carries one JWT
//! access token (`Authorization: Bearer`, `?access_token=`, or the `bearer_token_cookie_name`
//! cookie; a second one anywhere is refused); it must be signed by a key of the issuer's JWKS
//! (found through discovery, and/or `extra_jwks_uris`), be issued by the configured issuer, be
//! within its validity, and hold the required scopes and audience. A claim of it may then name
//! the consumer, by the fields `consumer_by` lists, in that order.
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

mod claims;
pub mod jwks;
mod outcome;
mod schema;
mod token;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use pingora_http::RequestHeader;
use serde_json::{Map, Value};

use super::auth::{
    Attempt, AuthFailure, AuthRequest, Authenticated, Authenticator, Credential, CredentialLocation, CredentialPlace,
    Place,
};
use super::{unsupported_unless_default, ConfigIssue, PluginKind};
use crate::consumers::{ConsumerField, Consumers};
use crate::core::ConsumerId;
use crate::jose::jws::{self, Jws, JwsError, Profile};
use crate::jose::Algorithm;
use claims::{any_set_satisfied, claim, claim_text, header_safe, scalar_text, value_list, value_set};
pub use jwks::{
    check_idp_url, http_client, run_refresher, JwksCache, JwksRegistry, JwksSource, RefreshMetrics, RefreshWait,
};
pub use outcome::{Checked, OidcError, OidcFailure, OidcOk};
use schema::{kong_field, KongField};
pub use schema::{OidcFields, OpenIdConnectSchema};
use token::MULTIPLE_TOKENS;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPlace {
    /// `Authorization: Bearer <token>`.
    Header,
    /// `?access_token=<token>`.
    Query,
    /// The cookie `bearer_token_cookie_name`.
    Cookie,
}

/// `consumer_by`'s values: the consumer field a claim is looked up in.
pub type ConsumerBy = ConsumerField;

/// The name of the query parameter a token is read from.
const ACCESS_TOKEN: &str = "access_token";

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
    /// `bearer_token_cookie_name`, with `cookie` in `bearer_token_param_type`.
    cookie_name: Option<Arc<str>>,
    /// Kong's `hide_credentials`: the token is removed where it was found before the request
    /// goes to a service (always before an LLM provider).
    pub hide_credentials: bool,
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
    www_invalid_request: Arc<str>,
    unknown_kid_wait: Duration,
    /// Where a token was found, as recorded for stripping (made once: no allocation per request).
    header_location: CredentialLocation,
    query_location: CredentialLocation,
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

/// An absolute https URL with a host (http only to a host `oidc_insecure_http_hosts` names).
fn check_url(issues: &mut Vec<ConfigIssue>, path: &str, url: &str, http_hosts: &[String]) -> Option<String> {
    match check_idp_url(url, http_hosts) {
        Ok(host) => Some(host),
        Err(why) => {
            issues.push(ConfigIssue::new(path, why, "use https://host/path"));
            None
        }
    }
}

impl OpenIdConnect {
    pub fn compile(
        schema: OpenIdConnectSchema,
        consumers: &Consumers,
        caches: &JwksRegistry,
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
        let issuer_exact = f.issuer.strip_suffix(jwks::WELL_KNOWN).is_none();
        let http_hosts = caches.http_hosts();
        let realm = check_url(&mut issues, "issuer", &f.issuer, http_hosts).unwrap_or_else(|| "kong".to_string());
        let mut plugin_caches = Vec::new();
        if issues.iter().all(|i| i.path != "issuer") {
            // Configured as the issuer: the discovery document must name exactly it.
            let issuer = issuer_exact.then(|| f.issuer.clone());
            plugin_caches.push(JwksSource::Discovery { url: discovery, issuer });
        }
        for (i, url) in f.extra_jwks_uris.iter().flatten().enumerate() {
            if check_url(&mut issues, &format!("extra_jwks_uris[{i}]"), url, http_hosts).is_some() {
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
                "cookie" => Some(TokenPlace::Cookie),
                _ => None,
            },
            "is not supported by aigate (header, query and cookie are)",
            "use header, query and/or cookie",
        );
        if places.is_empty() {
            issues.push(ConfigIssue::new("bearer_token_param_type", "no place to look for the token", "use [header]"));
        }
        let cookie_name = match (token_places.contains(&TokenPlace::Cookie), f.bearer_token_cookie_name) {
            (true, Some(name)) if !name.is_empty() => Some(Arc::from(name.to_ascii_lowercase())),
            (true, _) => {
                issues.push(ConfigIssue::new(
                    "bearer_token_cookie_name",
                    "bearer_token_param_type has cookie but bearer_token_cookie_name is not set",
                    "name the cookie that holds the token",
                ));
                None
            }
            // Kong reads the cookie only with `cookie` in bearer_token_param_type.
            (false, _) => None,
        };

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
                "id" => Some(ConsumerField::Id),
                "username" => Some(ConsumerField::Username),
                "custom_id" => Some(ConsumerField::CustomId),
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
        let (www_invalid_token, www_insufficient_scope, www_invalid_request) = if expose {
            (
                format!("{www_plain}, error=\"invalid_token\""),
                format!("{www_plain}, error=\"insufficient_scope\""),
                format!("{www_plain}, error=\"invalid_request\""),
            )
        } else {
            (www_plain.clone(), www_plain.clone(), www_plain.clone())
        };

        if !issues.is_empty() {
            return Err(issues);
        }
        let interval = Duration::from_secs_f64(lifetime.min(1e9));
        let caches: Vec<Arc<JwksCache>> = plugin_caches
            .into_iter()
            .map(|source| caches.cache(source, interval))
            .collect::<Result<_, String>>()
            .map_err(|e| vec![ConfigIssue::new("", e, "check tls_trusted_ca")])?;
        Ok(OpenIdConnect {
            issuer,
            issuers_allowed,
            use_discovered_issuer,
            caches,
            token_places,
            cookie_name,
            hide_credentials: f.hide_credentials.unwrap_or(false),
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
            www_invalid_request: Arc::from(www_invalid_request),
            unknown_kid_wait: UNKNOWN_KID_WAIT,
            header_location: CredentialLocation { place: CredentialPlace::Header, name: Arc::from("authorization") },
            query_location: CredentialLocation { place: CredentialPlace::Query, name: Arc::from(ACCESS_TOKEN) },
        })
    }

    /// The key caches this plugin reads (also in the registry it was compiled with).
    pub fn caches(&self) -> &[Arc<JwksCache>] {
        &self.caches
    }

    /// Check the request's bearer token against the keys in hand and map its consumer.
    /// `now_unix` is the current time in seconds. When the token names a key no cache has,
    /// refreshes are started (at most one per issuer per `rediscovery_lifetime`) and the token
    /// waits for them: finish with [`after_refresh`](Self::after_refresh).
    pub fn check_cached<'r>(&'r self, req: &'r RequestHeader, consumers: &Consumers, now_unix: u64) -> Checked<'r> {
        let (token, place) = match self.find_token(req) {
            Ok(Some(found)) => found,
            Ok(None) => return Checked::Done(Err(self.fail(OidcError::Missing))),
            Err(f) => return Checked::Done(Err(f)),
        };
        let jws = match self.decode(&token) {
            Ok(jws) => jws,
            Err(f) => return Checked::Done(Err(f)),
        };
        let outcome = self.verify_signature(&jws);
        if matches!(outcome, KeyOutcome::KidUnknown | KeyOutcome::NoKey | KeyOutcome::NoKeysLoaded) {
            // Keys may have been rotated: refresh (rate-limited per cache), then look again.
            let waits: Vec<_> = self.caches.iter().filter_map(|c| c.refresh_for_unknown_kid()).collect();
            if !waits.is_empty() {
                drop(jws);
                return Checked::AwaitingKeys { token, place, waits };
            }
        }
        Checked::Done(self.finish(&jws, outcome, consumers, now_unix).map(|ok| OidcOk { place: Some(place), ..ok }))
    }

    /// Wait a bounded time ([`UNKNOWN_KID_WAIT`]) for the refreshes `check_cached` started,
    /// together, and check the token again.
    pub async fn after_refresh(
        &self,
        token: &[u8],
        waits: Vec<RefreshWait>,
        consumers: &Consumers,
        now_unix: u64,
    ) -> Result<OidcOk, OidcFailure> {
        let all = async {
            for w in waits {
                w.finished().await;
            }
        };
        let _ = tokio::time::timeout(self.unknown_kid_wait, all).await;
        let jws = self.decode(token)?;
        let outcome = self.verify_signature(&jws);
        self.finish(&jws, outcome, consumers, now_unix)
    }

    fn decode<'t>(&self, token: &'t [u8]) -> Result<Jws<'t>, OidcFailure> {
        let jws = jws::decode(token, Profile::Strict).map_err(|e| {
            self.fail(match e {
                JwsError::Algorithm => OidcError::Algorithm,
                JwsError::Malformed | JwsError::Claims | JwsError::Signature | JwsError::Critical => {
                    OidcError::Malformed
                }
            })
        })?;
        if !ACCEPTED_ALGORITHMS.contains(&jws.alg) {
            return Err(self.fail(OidcError::Algorithm));
        }
        Ok(jws)
    }

    /// Everything after the signature: issuer, times, scopes, audience, consumer.
    fn finish(
        &self,
        jws: &Jws<'_>,
        outcome: KeyOutcome,
        consumers: &Consumers,
        now_unix: u64,
    ) -> Result<OidcOk, OidcFailure> {
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

        // Scopes are space-separated (RFC 8693 §4.2); an audience is one exact string, or
        // an array of them (RFC 7519 §4.1.3): `"aud": "api other"` is neither api nor other.
        self.require(
            claims,
            &self.scopes_required,
            &self.scopes_claim,
            value_set,
            OidcError::NoScopes,
            OidcError::Scope,
        )?;
        self.require(
            claims,
            &self.audience_required,
            &self.audience_claim,
            value_list,
            OidcError::NoAudience,
            OidcError::Audience,
        )?;

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
        // It goes upstream as X-Credential-Identifier: a claim that cannot be a header value
        // (CR, LF, NUL, other controls) is a bad token, not a failed request later.
        if !header_safe(&credential_id) {
            return Err(self.fail(OidcError::BadClaims));
        }
        Ok(OidcOk { consumer, subject, credential_id, place: None })
    }

    fn fail(&self, kind: OidcError) -> OidcFailure {
        let (message, www) = match kind.status() {
            403 => (&self.forbidden_message, &self.www_insufficient_scope),
            400 => {
                return OidcFailure {
                    kind,
                    message: Arc::from(MULTIPLE_TOKENS),
                    www_authenticate: Arc::clone(&self.www_invalid_request),
                }
            }
            _ if kind == OidcError::Missing => (&self.unauthorized_message, &self.www_plain),
            _ => (&self.unauthorized_message, &self.www_invalid_token),
        };
        OidcFailure { kind, message: Arc::clone(message), www_authenticate: Arc::clone(www) }
    }

    /// With `required` sets configured, the claim at `path` must hold all values of one of
    /// them: `absent` when it is missing, `unmet` when no set is satisfied.
    fn require(
        &self,
        claims: &Map<String, Value>,
        required: &[Vec<String>],
        path: &[String],
        read: fn(&Value) -> Vec<String>,
        absent: OidcError,
        unmet: OidcError,
    ) -> Result<(), OidcFailure> {
        if required.is_empty() {
            return Ok(());
        }
        match claim(claims, path).map(read) {
            None => Err(self.fail(absent)),
            Some(have) if !any_set_satisfied(required, &have) => Err(self.fail(unmet)),
            Some(_) => Ok(()),
        }
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

    /// The consumer `value` names, by the fields `consumer_by` lists, in that order: each field
    /// is looked up on its own, so a value never matches another consumer's other field.
    fn find_consumer(&self, consumers: &Consumers, value: &str) -> Option<ConsumerId> {
        self.consumer_by.iter().find_map(|by| consumers.find_by(*by, value))
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

impl OpenIdConnect {
    fn authenticated(&self, ok: OidcOk) -> Authenticated {
        let location = ok.place.and_then(|p| self.location(p));
        Authenticated { consumer: ok.consumer, credential: Credential::Oidc(ok.credential_id), location }
    }
}

impl Authenticator for OpenIdConnect {
    fn kind(&self) -> PluginKind {
        PluginKind::OpenIdConnect
    }

    fn anonymous(&self) -> Option<ConsumerId> {
        self.anonymous
    }

    fn run_on_preflight(&self) -> bool {
        self.run_on_preflight
    }

    /// Decided at once with the keys in hand; only a token naming an unknown key waits.
    fn authenticate<'a>(&'a self, req: &'a AuthRequest<'a>) -> Attempt<'a> {
        match self.check_cached(req.head, req.consumers, req.now_unix) {
            Checked::Done(r) => Attempt::Ready(r.map(|ok| self.authenticated(ok)).map_err(AuthFailure::from)),
            Checked::AwaitingKeys { token, place, waits } => Attempt::Waiting(Box::pin(async move {
                let r = self.after_refresh(&token, waits, req.consumers, req.now_unix).await;
                r.map(|ok| self.authenticated(OidcOk { place: Some(place), ..ok })).map_err(AuthFailure::from)
            })),
        }
    }

    /// A token is never sent to an LLM provider: every place the plugin reads is emptied
    /// (`Authorization` included, even when the provider's key goes in another header, a query
    /// or body parameter, or the target allows the client's own). Before a service, with
    /// `hide_credentials`, the token goes where it was found.
    fn strip_credentials(&self, found: Option<&CredentialLocation>, to_llm: bool, strip: &mut dyn FnMut(Place<'_>)) {
        if to_llm {
            self.places(strip);
        } else if let Some(found) = found.filter(|_| self.hide_credentials) {
            strip(found.borrow());
        }
    }
}

#[cfg(test)]
mod tests;
