//! jwt: identify the consumer by a signed JSON Web Token in the query string, a cookie or a
//! `Bearer` header, with Kong's schema, messages and `WWW-Authenticate` values.
//!
//! The credential (a consumer's `jwt_secrets` entry) is chosen by the token's `iss` claim (or
//! `key_claim_name`), and the token's `alg` must equal the credential's algorithm: the signature
//! is only ever checked with the credential's own algorithm and key, so `none`, HS256-with-a-
//! public-key and other algorithm confusions cannot succeed. Public keys are parsed and checked
//! when the configuration loads; nothing on the request path can panic on a hostile token.

use std::borrow::Cow;
use std::sync::Arc;

use pingora_http::RequestHeader;
use serde::Deserialize;
use serde_json::Value;

use super::auth::{
    Attempt, AuthFailure, AuthRequest, Authenticated, Authenticator, Credential, CredentialLocation, CredentialPlace,
    FailureBody, Place,
};
use super::{ConfigIssue, PluginKind};
use crate::consumers::jwt_secrets::JwtCredentials;
use crate::consumers::Consumers;
use crate::core::ConsumerId;

mod token;

use token::{decode_token, key_claim, KeyClaim};

/// Kong's upper bound for `maximum_expiration` (one year, in seconds).
pub const MAX_MAXIMUM_EXPIRATION: f64 = 31_536_000.0;

/// Kong's jwt schema.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSchema {
    #[serde(default = "default_uri_param_names")]
    pub uri_param_names: Vec<String>,
    #[serde(default)]
    pub cookie_names: Vec<String>,
    #[serde(default = "default_header_names")]
    pub header_names: Vec<String>,
    #[serde(default = "default_key_claim_name")]
    pub key_claim_name: String,
    #[serde(default)]
    pub secret_is_base64: bool,
    /// A set of `exp`, `nbf`; absent or null verifies no claim.
    pub claims_to_verify: Option<Vec<String>>,
    pub anonymous: Option<String>,
    #[serde(default = "yes")]
    pub run_on_preflight: bool,
    /// Seconds, 0 (off) to 31536000; Kong's type is "number".
    pub maximum_expiration: Option<f64>,
    pub realm: Option<String>,
}

fn default_uri_param_names() -> Vec<String> {
    vec!["jwt".to_string()]
}

fn default_header_names() -> Vec<String> {
    vec!["authorization".to_string()]
}

fn default_key_claim_name() -> String {
    "iss".to_string()
}

fn yes() -> bool {
    true
}

/// The registered claims `claims_to_verify` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Exp,
    Nbf,
}

impl Claim {
    pub fn name(self) -> &'static str {
        match self {
            Claim::Exp => "exp",
            Claim::Nbf => "nbf",
        }
    }
}

/// jwt as compiled for the request path.
#[derive(Debug)]
pub struct Jwt {
    /// Query parameter names, as written (case-sensitive).
    pub uri_param_names: Vec<String>,
    /// Cookie names (matched case-insensitively, as nginx's `$cookie_` variables).
    pub cookie_names: Vec<String>,
    /// Lower-cased header names with `_` read as `-` (Kong's header table does the same).
    pub header_names: Vec<String>,
    pub key_claim_name: Arc<str>,
    pub secret_is_base64: bool,
    /// Deduplicated, in configuration order.
    pub claims_to_verify: Vec<Claim>,
    pub anonymous: Option<ConsumerId>,
    pub run_on_preflight: bool,
    /// Seconds; 0 means no limit.
    pub maximum_expiration: f64,
    /// `Bearer` or `Bearer realm="<realm>"`.
    pub www_authenticate: Arc<str>,
    /// The same with ` error="invalid_token"`.
    pub www_authenticate_error: Arc<str>,
}

impl Jwt {
    pub fn compile(schema: JwtSchema, consumers: &Consumers) -> Result<Jwt, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        for (field, names) in [("uri_param_names", &schema.uri_param_names), ("cookie_names", &schema.cookie_names)] {
            for (i, name) in names.iter().enumerate() {
                if name.is_empty() {
                    issues.push(ConfigIssue::new(format!("{field}[{i}]"), "the name is empty", "remove it"));
                }
            }
        }
        for (i, name) in schema.header_names.iter().enumerate() {
            let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                issues.push(ConfigIssue::new(
                    format!("header_names[{i}]"),
                    format!("`{name}` is not a valid header name"),
                    "use letters, digits, - and _",
                ));
            }
        }
        if schema.key_claim_name.is_empty() {
            issues.push(ConfigIssue::new("key_claim_name", "key_claim_name is empty", "use a claim name, e.g. iss"));
        }
        let claims_to_verify = super::choices(
            &mut issues,
            "claims_to_verify",
            schema.claims_to_verify.iter().flatten(),
            |name| match name {
                "exp" => Some(Claim::Exp),
                "nbf" => Some(Claim::Nbf),
                _ => None,
            },
            "is not a claim the jwt plugin can verify",
            "use exp and/or nbf",
        );
        let maximum_expiration = schema.maximum_expiration.unwrap_or(0.0);
        if !(0.0..=MAX_MAXIMUM_EXPIRATION).contains(&maximum_expiration) {
            issues.push(ConfigIssue::new(
                "maximum_expiration",
                format!("maximum_expiration must be between 0 and {MAX_MAXIMUM_EXPIRATION} seconds"),
                "use 0 (no limit) up to 31536000 (one year)",
            ));
        } else if maximum_expiration > 0.0 && !claims_to_verify.contains(&Claim::Exp) {
            issues.push(ConfigIssue::new(
                "claims_to_verify",
                "maximum_expiration is set but claims_to_verify does not contain exp",
                "add exp to claims_to_verify, or set maximum_expiration to 0",
            ));
        }
        let anonymous = super::anonymous_consumer(&mut issues, consumers, schema.anonymous.as_deref());
        let www_authenticate = match schema.realm.as_deref() {
            Some(realm) => format!("Bearer realm=\"{realm}\""),
            None => "Bearer".to_string(),
        };
        let www_authenticate_error = format!("{www_authenticate} error=\"invalid_token\"");
        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(Jwt {
            uri_param_names: dedup(schema.uri_param_names),
            // Cookie names match case-insensitively: `[jwt, JWT]` is one name.
            cookie_names: dedup(schema.cookie_names.iter().map(|n| n.to_ascii_lowercase()).collect()),
            header_names: dedup(
                schema.header_names.iter().map(|n| n.to_ascii_lowercase().replace('_', "-")).collect::<Vec<_>>(),
            ),
            key_claim_name: Arc::from(schema.key_claim_name),
            secret_is_base64: schema.secret_is_base64,
            claims_to_verify,
            anonymous,
            run_on_preflight: schema.run_on_preflight,
            maximum_expiration,
            www_authenticate: www_authenticate.into(),
            www_authenticate_error: www_authenticate_error.into(),
        })
    }

    /// Find the request's token, check it and name its consumer.
    ///
    /// Every configured query parameter, cookie and `Bearer` header is looked at; more than
    /// one token (even the same one twice, or a second header line) is refused. `now_unix` is
    /// the current time in seconds, used only for the `exp`/`nbf` checks (no leeway).
    pub fn check(&self, req: &RequestHeader, creds: &JwtCredentials, now_unix: u64) -> Result<JwtOk, JwtFailure> {
        let token = self.find_token(req)?;
        let decoded = decode_token(&token).map_err(JwtFailure::BadToken)?;

        let key = match key_claim(&decoded.claims, &decoded.header, &self.key_claim_name) {
            KeyClaim::Absent => return Err(JwtFailure::NoKeyClaim(self.key_claim_name.clone())),
            KeyClaim::Invalid => return Err(JwtFailure::InvalidKeyClaim(self.key_claim_name.clone())),
            KeyClaim::Key(k) => k,
        };
        let Some(cred) = creds.find(key) else {
            return Err(JwtFailure::NoCredentials(self.key_claim_name.clone()));
        };
        if decoded.alg != cred.algorithm {
            return Err(JwtFailure::InvalidAlgorithm);
        }
        let verified = cred
            .verify(decoded.signing_input, &decoded.signature, self.secret_is_base64)
            .map_err(|_| JwtFailure::InvalidSecret)?;
        if !verified {
            return Err(JwtFailure::InvalidSignature);
        }

        let now = now_unix as f64;
        let mut errors = Vec::new();
        for claim in &self.claims_to_verify {
            let value = match decoded.claims.get(claim.name()) {
                Some(Value::Number(n)) => n.as_f64(),
                _ => None,
            };
            let problem = match (claim, value) {
                (_, None) => Some("must be a number"),
                (Claim::Exp, Some(exp)) => (exp <= now).then_some("token expired"),
                (Claim::Nbf, Some(nbf)) => (nbf > now).then_some("token not valid yet"),
            };
            if let Some(problem) = problem {
                errors.push((claim.name(), problem));
            }
        }
        if !errors.is_empty() {
            return Err(JwtFailure::Claims(errors));
        }
        if self.maximum_expiration > 0.0 {
            let within = match decoded.claims.get("exp") {
                Some(Value::Number(n)) => n.as_f64().is_some_and(|exp| exp - now <= self.maximum_expiration),
                _ => false,
            };
            if !within {
                return Err(JwtFailure::Claims(vec![("exp", "exceeds maximum allowed expiration")]));
            }
        }
        Ok(JwtOk { consumer: cred.consumer, key: cred.key.clone() })
    }

    /// The `WWW-Authenticate` value Kong sends with this failure, if any.
    pub fn www_authenticate(&self, failure: &JwtFailure) -> Option<&Arc<str>> {
        match failure.www_authenticate_error() {
            None => None,
            Some(false) => Some(&self.www_authenticate),
            Some(true) => Some(&self.www_authenticate_error),
        }
    }

    /// Kong's whole answer to a failure: 401, this body, this `WWW-Authenticate`.
    pub fn failure(&self, failure: JwtFailure) -> AuthFailure {
        let www_authenticate = self.www_authenticate(&failure).cloned();
        let (status, reason) = (failure.status(), failure.reason());
        let body = match failure {
            JwtFailure::Claims(claims) => FailureBody::Claims(claims),
            other => FailureBody::Message(other.message().unwrap_or(Cow::Borrowed("Unauthorized"))),
        };
        AuthFailure { status, body, www_authenticate, reason }
    }
}

fn dedup(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// A successful authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtOk {
    pub consumer: ConsumerId,
    /// The credential's `key` (Kong sends it upstream as `X-Credential-Identifier`).
    pub key: Arc<str>,
}

/// The parser's complaints, answered as `Bad token; <reason>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadToken {
    InvalidJson,
    InvalidAlg,
    InvalidClaims,
    InvalidSignature,
    /// A `crit` header member (aigate implements no JWS extension; RFC 7515 §4.1.11).
    UnsupportedCrit,
}

impl BadToken {
    pub fn message(self) -> &'static str {
        match self {
            BadToken::InvalidJson => "Bad token; invalid JSON",
            BadToken::InvalidAlg => "Bad token; invalid alg",
            BadToken::InvalidClaims => "Bad token; invalid claims",
            BadToken::InvalidSignature => "Bad token; invalid signature",
            BadToken::UnsupportedCrit => "Bad token; unsupported crit",
        }
    }
}

/// Why a request was refused. Every case is HTTP 401 in Kong 3.x.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtFailure {
    /// "Unauthorized" (no token anywhere).
    NoToken,
    /// "Multiple tokens provided".
    MultipleTokens,
    /// "Unrecognizable token" (`?jwt` without a value, or a token over 16 KiB).
    Unrecognizable,
    /// "Bad token; ...".
    BadToken(BadToken),
    /// "No mandatory '<claim>' in claims".
    NoKeyClaim(Arc<str>),
    /// "Invalid '<claim>' in claims" (empty, or not a string).
    InvalidKeyClaim(Arc<str>),
    /// "No credentials found for given '<claim>'".
    NoCredentials(Arc<str>),
    /// "Invalid algorithm": the token's `alg` is not the credential's algorithm.
    InvalidAlgorithm,
    /// "Invalid key/secret": `secret_is_base64` and the secret is not base64.
    InvalidSecret,
    /// "Invalid signature".
    InvalidSignature,
    /// A claim → message object: `{"exp":"token expired"}`, `{"nbf":"token not valid yet"}`,
    /// `{"exp":"must be a number"}`, `{"exp":"exceeds maximum allowed expiration"}`.
    Claims(Vec<(&'static str, &'static str)>),
    /// "Could not find consumer for '<claim>=<key>'" (sent without `WWW-Authenticate`).
    /// `authenticate` never returns it: credentials always name a loaded consumer. It is here
    /// for callers that resolve consumers separately.
    ConsumerNotFound { claim: Arc<str>, key: String },
}

impl JwtFailure {
    pub fn status(&self) -> u16 {
        401
    }

    /// The `message` of a `{"message": ...}` body; `None` for `Claims`, whose body is the map.
    pub fn message(&self) -> Option<Cow<'static, str>> {
        Some(match self {
            JwtFailure::NoToken => Cow::Borrowed("Unauthorized"),
            JwtFailure::MultipleTokens => Cow::Borrowed("Multiple tokens provided"),
            JwtFailure::Unrecognizable => Cow::Borrowed("Unrecognizable token"),
            JwtFailure::BadToken(b) => Cow::Borrowed(b.message()),
            JwtFailure::NoKeyClaim(c) => Cow::Owned(format!("No mandatory '{c}' in claims")),
            JwtFailure::InvalidKeyClaim(c) => Cow::Owned(format!("Invalid '{c}' in claims")),
            JwtFailure::NoCredentials(c) => Cow::Owned(format!("No credentials found for given '{c}'")),
            JwtFailure::InvalidAlgorithm => Cow::Borrowed("Invalid algorithm"),
            JwtFailure::InvalidSecret => Cow::Borrowed("Invalid key/secret"),
            JwtFailure::InvalidSignature => Cow::Borrowed("Invalid signature"),
            JwtFailure::ConsumerNotFound { claim, key } => {
                Cow::Owned(format!("Could not find consumer for '{claim}={key}'"))
            }
            JwtFailure::Claims(_) => return None,
        })
    }

    /// Which `WWW-Authenticate` Kong sends: `None` (no header), `Some(false)` (`Bearer`, with
    /// the realm if any) or `Some(true)` (the same plus ` error="invalid_token"`).
    pub fn www_authenticate_error(&self) -> Option<bool> {
        match self {
            JwtFailure::NoToken => Some(false),
            JwtFailure::ConsumerNotFound { .. } => None,
            _ => Some(true),
        }
    }

    /// A short name for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            JwtFailure::NoToken => "missing",
            JwtFailure::MultipleTokens => "multiple_tokens",
            JwtFailure::Unrecognizable => "unrecognizable",
            JwtFailure::BadToken(_) => "bad_token",
            JwtFailure::NoKeyClaim(_) | JwtFailure::InvalidKeyClaim(_) => "bad_key_claim",
            JwtFailure::NoCredentials(_) => "unknown_key",
            JwtFailure::InvalidAlgorithm => "invalid_algorithm",
            JwtFailure::InvalidSecret => "invalid_secret",
            JwtFailure::InvalidSignature => "invalid_signature",
            JwtFailure::Claims(_) => "claims",
            JwtFailure::ConsumerNotFound { .. } => "consumer_not_found",
        }
    }
}

impl Authenticator for Jwt {
    fn kind(&self) -> PluginKind {
        PluginKind::Jwt
    }

    fn anonymous(&self) -> Option<ConsumerId> {
        self.anonymous
    }

    fn run_on_preflight(&self) -> bool {
        self.run_on_preflight
    }

    fn authenticate<'a>(&'a self, req: &'a AuthRequest<'a>) -> Attempt<'a> {
        Attempt::Ready(match self.check(req.head, &req.consumers.jwt, req.now_unix) {
            Ok(ok) => {
                Ok(Authenticated { consumer: Some(ok.consumer), credential: Credential::Jwt(ok.key), location: None })
            }
            Err(f) => Err(self.failure(f)),
        })
    }

    /// A token is never sent to an LLM provider, wherever the client put it (every query
    /// parameter, header and cookie the plugin reads). Other upstreams get the request as
    /// sent: Kong's jwt plugin has no `hide_credentials`, and a service behind it may verify
    /// the token itself.
    fn strip_credentials(&self, _found: Option<&CredentialLocation>, to_llm: bool, strip: &mut dyn FnMut(Place<'_>)) {
        if !to_llm {
            return;
        }
        for name in &self.uri_param_names {
            strip(Place { place: CredentialPlace::Query, name });
        }
        for name in &self.header_names {
            strip(Place { place: CredentialPlace::Header, name });
        }
        for name in &self.cookie_names {
            strip(Place { place: CredentialPlace::Cookie, name });
        }
    }
}

#[cfg(test)]
mod tests;
