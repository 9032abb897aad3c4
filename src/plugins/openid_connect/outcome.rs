//! What a check of a token comes to: a token that passed ([`OidcOk`]), a refusal
//! ([`OidcFailure`], its kind [`OidcError`]), or a token waiting for keys ([`Checked`]).

use std::borrow::Cow;
use std::sync::Arc;

use super::{RefreshWait, TokenPlace};
use crate::core::ConsumerId;
use crate::plugins::auth::AuthFailure;

/// A token that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcOk {
    /// The mapped consumer; `None` without `consumer_claim`, or with `consumer_optional` when
    /// no consumer matched.
    pub consumer: Option<ConsumerId>,
    /// The token's `sub`.
    pub subject: Option<String>,
    /// `<iss>#<credential_claim>` (default claim `sub`), or `<iss>` without it: for
    /// `X-Credential-Identifier`, never the token. Always a valid header value.
    pub credential_id: String,
    /// Where the token was (for `hide_credentials`).
    pub place: Option<TokenPlace>,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OidcError {
    /// No token where the plugin looks.
    Missing,
    /// More than one token (400, RFC 6750 §3.1 `invalid_request`).
    MultipleTokens,
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
    /// `exp` missing, or `exp`/`nbf`/`iat` not numbers, or a credential claim that cannot
    /// be sent upstream in a header (control characters).
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
            OidcError::MultipleTokens => 400,
            _ => 401,
        }
    }

    /// A short label for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            OidcError::Missing => "missing",
            OidcError::MultipleTokens => "multiple_tokens",
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
    pub(super) kind: OidcError,
    pub(super) message: Arc<str>,
    pub(super) www_authenticate: Arc<str>,
}

impl OidcFailure {
    pub fn kind(&self) -> OidcError {
        self.kind
    }

    /// 401; 403 for scope, audience and consumer failures; 400 for more than one token.
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

/// A token checked against the keys in hand.
pub enum Checked<'r> {
    Done(Result<OidcOk, OidcFailure>),
    /// The token names a key no cache has; refreshes are under way.
    AwaitingKeys {
        token: Cow<'r, [u8]>,
        place: TokenPlace,
        waits: Vec<RefreshWait>,
    },
}

impl From<OidcFailure> for AuthFailure {
    fn from(f: OidcFailure) -> AuthFailure {
        AuthFailure::new(f.status(), f.message().to_string(), f.reason()).with_www_authenticate(&f.www_authenticate)
    }
}
