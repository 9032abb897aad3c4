//! Where a jwt token is and how it is read, as Kong's jwt plugin: every configured query
//! parameter, cookie and `Bearer` header is looked at, then the token is decoded with the Kong
//! profile of the shared JWS decoder, and the credential is chosen by `key_claim_name`.
//!
//! One reading of every token: where Kong takes the first of two `Authorization` lines or
//! two same-named cookies (and forwards the other unchecked) and merges one token sent in
//! several places, aigate refuses any request carrying more than one — a second header line,
//! value or cookie of a name it reads, or the token in two places — with Kong's `Multiple
//! tokens provided`.

use std::borrow::Cow;

use pingora_http::RequestHeader;
use serde_json::{Map, Value};

use super::{BadToken, Jwt, JwtFailure};
use crate::core::query;
use crate::jose::jws::{self, Jws, JwsError, Profile, MAX_TOKEN_LEN};
use crate::plugins::auth::{bearer, cookies, BearerSyntax};

impl Jwt {
    pub(super) fn find_token<'r>(&'r self, req: &'r RequestHeader) -> Result<Cow<'r, [u8]>, JwtFailure> {
        let mut found = TokenSet::default();
        if let Some(q) = req.uri.query() {
            for pair in q.as_bytes().split(|&b| b == b'&') {
                let (name, value) = match pair.iter().position(|&b| b == b'=') {
                    Some(i) => (&pair[..i], Some(&pair[i + 1..])),
                    None => (pair, None),
                };
                if name.is_empty() {
                    continue;
                }
                let name = query::decode(name);
                if !self.uri_param_names.iter().any(|n| n.as_bytes() == name.as_ref()) {
                    continue;
                }
                match value {
                    // `?jwt` without `=`: Kong reads `true`, a token that is not a string.
                    None => found.add(Seen::Flag)?,
                    Some(v) if !v.is_empty() => found.add(Seen::Text(query::decode(v)))?,
                    Some(_) => {}
                }
            }
        }
        for name in &self.cookie_names {
            for v in cookies(req, name) {
                found.add(Seen::Text(Cow::Borrowed(v)))?;
            }
        }
        for name in &self.header_names {
            let mut lines = req.headers.get_all(name.as_str()).iter();
            let Some(first) = lines.next() else { continue };
            if lines.next().is_some() {
                // Kong reads the first line only; the second would go upstream unchecked.
                return Err(JwtFailure::MultipleTokens);
            }
            if let Some(t) = bearer(first.as_bytes(), BearerSyntax::Kong) {
                found.add(Seen::Text(Cow::Borrowed(t)))?;
            }
        }
        match found.first {
            None => Err(JwtFailure::NoToken),
            Some(Seen::Flag) => Err(JwtFailure::Unrecognizable),
            Some(Seen::Text(t)) if t.len() > MAX_TOKEN_LEN => Err(JwtFailure::Unrecognizable),
            Some(Seen::Text(t)) => Ok(t),
        }
    }
}

enum Seen<'r> {
    Text(Cow<'r, [u8]>),
    /// A query parameter without `=`.
    Flag,
}

/// The token, if exactly one was sent.
#[derive(Default)]
struct TokenSet<'r> {
    first: Option<Seen<'r>>,
}

impl<'r> TokenSet<'r> {
    /// A second token, even the same one again, is refused.
    fn add(&mut self, t: Seen<'r>) -> Result<(), JwtFailure> {
        if self.first.is_some() {
            return Err(JwtFailure::MultipleTokens);
        }
        self.first = Some(t);
        Ok(())
    }
}

/// Kong's `jwt_parser` checks, in its order (the Kong profile of the shared JWS decoder).
pub(super) fn decode_token(token: &[u8]) -> Result<Jws<'_>, BadToken> {
    jws::decode(token, Profile::Kong).map_err(|e| match e {
        JwsError::Malformed => BadToken::InvalidJson,
        JwsError::Critical => BadToken::UnsupportedCrit,
        JwsError::Algorithm => BadToken::InvalidAlg,
        JwsError::Claims => BadToken::InvalidClaims,
        JwsError::Signature => BadToken::InvalidSignature,
    })
}

pub(super) enum KeyClaim<'a> {
    Absent,
    Invalid,
    Key(&'a str),
}

/// `claims[name] or header[name]`, as Kong (a `false` claim falls through to the header).
pub(super) fn key_claim<'a>(
    claims: &'a Map<String, Value>,
    header: &'a Map<String, Value>,
    name: &str,
) -> KeyClaim<'a> {
    let pick = |v: Option<&'a Value>| match v {
        None | Some(Value::Bool(false)) => None,
        Some(v) => Some(v),
    };
    match pick(claims.get(name)).or_else(|| pick(header.get(name))) {
        None => KeyClaim::Absent,
        Some(Value::String(s)) if !s.is_empty() => KeyClaim::Key(s),
        Some(_) => KeyClaim::Invalid,
    }
}
