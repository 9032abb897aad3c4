//! What authentication plugins share: the [`Authenticator`] trait the authenticate phase runs
//! them through (in Kong's priority order, with `anonymous` and `run_on_preflight` applied once
//! for all of them), one failure type ([`AuthFailure`]) the gateway answers with, where a
//! credential sits in a request ([`CredentialPlace`]) so each plugin can say what to strip
//! before forwarding, and the parsers of `Authorization: Bearer` and cookies.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use pingora_http::RequestHeader;

use super::PluginKind;
use crate::consumers::Consumers;
use crate::core::query;
use crate::core::ConsumerId;

/// What an authentication plugin sees of a request.
pub struct AuthRequest<'a> {
    pub head: &'a RequestHeader,
    /// The body, when the gateway read it before authenticating (a plugin that
    /// [`needs_body`](Authenticator::needs_body)), and how it is encoded.
    pub body: Option<(&'a [u8], BodyKind)>,
    pub consumers: &'a Consumers,
    /// Seconds since the Unix epoch, for token lifetimes.
    pub now_unix: u64,
}

/// How the consumer proved who it is: what `X-Credential-Identifier` names, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// key-auth: index into `Consumers::credential_ids`.
    Key(usize),
    /// jwt: the credential's `key` (its `iss`).
    Jwt(Arc<str>),
    /// openid-connect: issuer and subject.
    Oidc(String),
}

impl Credential {
    /// The id sent upstream as `X-Credential-Identifier`.
    pub fn identifier<'a>(&'a self, consumers: &'a Consumers) -> Option<&'a str> {
        match self {
            Credential::Key(i) => consumers.credential_ids.get(*i).map(String::as_str),
            Credential::Jwt(key) => Some(key),
            Credential::Oidc(id) => Some(id),
        }
    }
}

/// A credential that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// `None`: a valid credential that maps to no consumer (openid-connect's
    /// `consumer_optional`); the consumer found so far, if any, stays.
    pub consumer: Option<ConsumerId>,
    pub credential: Credential,
    /// Where the credential was, for plugins that strip it by where they found it.
    pub location: Option<CredentialLocation>,
}

/// The body of a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureBody {
    /// `{"message": "...", "request_id": "..."}`
    Message(Cow<'static, str>),
    /// Kong's jwt claim failures: a claim → message object, `{"exp": "token expired"}`.
    Claims(Vec<(&'static str, &'static str)>),
}

/// Why an authentication (or authorization) plugin refuses a request: everything the answer
/// and the metrics need, whichever plugin it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    /// 401 (no or bad credential) or 403 (a known caller that may not pass).
    pub status: u16,
    pub body: FailureBody,
    pub www_authenticate: Option<Arc<str>>,
    /// The `reason` label of `aigate_auth_failures_total`, from the plugin's fixed set.
    pub reason: &'static str,
}

impl AuthFailure {
    pub fn new(status: u16, message: impl Into<Cow<'static, str>>, reason: &'static str) -> AuthFailure {
        AuthFailure { status, body: FailureBody::Message(message.into()), www_authenticate: None, reason }
    }

    pub fn with_www_authenticate(mut self, value: &Arc<str>) -> AuthFailure {
        self.www_authenticate = Some(Arc::clone(value));
        self
    }
}

pub type AuthResult = Result<Authenticated, AuthFailure>;

/// An authentication in progress. Most are decided at once, without allocating; one that must
/// wait (openid-connect fetching rotated keys) carries its future.
pub enum Attempt<'a> {
    Ready(AuthResult),
    Waiting(Pin<Box<dyn Future<Output = AuthResult> + Send + 'a>>),
}

impl Attempt<'_> {
    pub async fn outcome(self) -> AuthResult {
        match self {
            Attempt::Ready(r) => r,
            Attempt::Waiting(f) => f.await,
        }
    }
}

/// An authentication plugin, as the authenticate and forward phases use it.
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> PluginKind;

    /// The consumer to continue as when this plugin refuses (Kong's `anonymous`); with it set,
    /// the plugin is skipped once an earlier one authenticated, so several plugins with
    /// `anonymous` accept any one of their credentials.
    fn anonymous(&self) -> Option<ConsumerId>;

    /// Whether CORS preflight (`OPTIONS`) requests are authenticated too.
    fn run_on_preflight(&self) -> bool;

    /// Whether the request body must be read first (key-auth's `key_in_body`).
    fn needs_body(&self) -> bool {
        false
    }

    fn authenticate<'a>(&'a self, req: &'a AuthRequest<'a>) -> Attempt<'a>;

    /// Name the places to remove before the request goes upstream: the credential where this
    /// plugin found it (`found`, when it authenticated this request), and what must never
    /// reach an LLM provider (`to_llm`).
    fn strip_credentials(&self, found: Option<&CredentialLocation>, to_llm: bool, strip: &mut dyn FnMut(Place<'_>));
}

/// Where in a request a credential is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialPlace {
    Header,
    Query,
    Cookie,
    /// A top-level field of a JSON or form body.
    BodyField,
}

/// A credential's place and name, as recorded for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialLocation {
    pub place: CredentialPlace,
    /// Header names lower-cased; query, cookie and body names as configured.
    pub name: Arc<str>,
}

impl CredentialLocation {
    pub fn borrow(&self) -> Place<'_> {
        Place { place: self.place, name: &self.name }
    }
}

/// A place to strip, borrowed from the plugin's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place<'a> {
    pub place: CredentialPlace,
    pub name: &'a str,
}

/// The body encodings a plugin can read a credential from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Form,
    Other,
}

impl BodyKind {
    pub fn from_content_type(ct: Option<&[u8]>) -> BodyKind {
        let Some(ct) = ct else { return BodyKind::Other };
        let essence = ct.split(|&b| b == b';').next().unwrap_or_default();
        let essence = essence.trim_ascii();
        if essence.eq_ignore_ascii_case(b"application/json") || essence.ends_with(b"+json") {
            BodyKind::Json
        } else if essence.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
            BodyKind::Form
        } else {
            BodyKind::Other
        }
    }
}

/// Which `Bearer` syntax a plugin reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerSyntax {
    /// Kong's jwt plugin: `\s*[Bb]earer\s+(.+)`, unanchored (the first match anywhere).
    Kong,
    /// RFC 6750 / 7235: the value starts with the scheme, in any case.
    Rfc6750,
}

/// The token of a `Bearer <token>` header value, trailing white space removed.
pub fn bearer(value: &[u8], syntax: BearerSyntax) -> Option<&[u8]> {
    let value = value.trim_ascii_end();
    let at = |i: usize| -> Option<&[u8]> {
        let rest = value.get(i..)?;
        let scheme = rest.get(..6)?;
        let scheme_ok = match syntax {
            BearerSyntax::Kong => scheme == b"Bearer" || scheme == b"bearer",
            BearerSyntax::Rfc6750 => scheme.eq_ignore_ascii_case(b"bearer"),
        };
        let after = &rest[6..];
        let ws = after.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
        (scheme_ok && ws > 0 && ws < after.len()).then(|| &after[ws..])
    };
    match syntax {
        BearerSyntax::Kong => (0..value.len()).find_map(at),
        BearerSyntax::Rfc6750 => at(value.len() - value.trim_ascii_start().len()),
    }
}

/// The values of every cookie called `name` (case-insensitive, as nginx's `$cookie_<name>`),
/// across all `Cookie` header lines, in order; empty values count as absent. A plugin that
/// reads a token from a cookie looks at all of them, so a second cookie of the same name can
/// never be the one an upstream reads after the gateway checked the first.
pub fn cookies<'r>(req: &'r RequestHeader, name: &'r str) -> impl Iterator<Item = &'r [u8]> + 'r {
    req.headers.get_all(http::header::COOKIE).into_iter().flat_map(move |header| {
        header.as_bytes().split(|&b| b == b';').filter_map(move |pair| {
            let pair = pair.trim_ascii_start();
            let eq = pair.iter().position(|&b| b == b'=')?;
            if !pair[..eq].trim_ascii_end().eq_ignore_ascii_case(name.as_bytes()) {
                return None;
            }
            let value = pair[eq + 1..].trim_ascii();
            (!value.is_empty()).then_some(value)
        })
    })
}

/// A `Cookie` header value without the cookies called `name`; `None` when none was there.
pub fn without_cookie(value: &[u8], name: &str) -> Option<Vec<u8>> {
    query::without_pairs(value, b';', b"; ", <[u8]>::trim_ascii_start, |key| {
        key.trim_ascii_end().eq_ignore_ascii_case(name.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kong_bearer_parsing() {
        fn k(v: &str) -> Option<&[u8]> {
            bearer(v.as_bytes(), BearerSyntax::Kong)
        }
        assert_eq!(k("Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(k("  bearer   a b c  "), Some(&b"a b c"[..]));
        assert_eq!(k("xbearer abc"), Some(&b"abc"[..]));
        assert_eq!(k("Bearerabc Bearer def"), Some(&b"def"[..]));
        assert_eq!(k("BEARER abc"), None);
        assert_eq!(k("Bearer"), None);
        assert_eq!(k("Bearer "), None);
        assert_eq!(k(""), None);
        assert_eq!(k("Bear"), None);
    }

    #[test]
    fn rfc6750_bearer_parsing() {
        fn r(v: &[u8]) -> Option<&[u8]> {
            bearer(v, BearerSyntax::Rfc6750)
        }
        assert_eq!(r(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(r(b"  bearer   abc  "), Some(&b"abc"[..]));
        assert_eq!(r(b"BEARER\tabc"), Some(&b"abc"[..]));
        assert_eq!(r(b"Bearer"), None);
        assert_eq!(r(b"Bearer "), None);
        assert_eq!(r(b"Bearerabc"), None);
        assert_eq!(r(b"Basic abc"), None);
        assert_eq!(r(b"Token x, Bearer abc"), None);
        assert_eq!(r(b""), None);
        assert_eq!(r("Beärer x".as_bytes()), None);
    }

    #[test]
    fn cookie_values() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("cookie", "a=1; Session=tok; c=").unwrap();
        req.append_header("cookie", "session=two ; d=4").unwrap();
        assert_eq!(cookies(&req, "session").collect::<Vec<_>>(), [&b"tok"[..], b"two"]);
        assert_eq!(cookies(&req, "c").next(), None);
        assert_eq!(cookies(&req, "d").collect::<Vec<_>>(), [&b"4"[..]]);
        assert_eq!(cookies(&req, "nope").next(), None);
        assert_eq!(without_cookie(b"a=1; Session=tok; c=3", "session").as_deref(), Some(&b"a=1; c=3"[..]));
        assert_eq!(without_cookie(b"session=tok", "session").as_deref(), Some(&b""[..]));
        assert_eq!(without_cookie(b"a=1", "session"), None);
    }

    #[test]
    fn body_kinds() {
        assert_eq!(BodyKind::from_content_type(Some(b"application/json; charset=utf-8")), BodyKind::Json);
        assert_eq!(BodyKind::from_content_type(Some(b"application/vnd.api+json")), BodyKind::Json);
        assert_eq!(BodyKind::from_content_type(Some(b"application/x-www-form-urlencoded")), BodyKind::Form);
        assert_eq!(BodyKind::from_content_type(Some(b"text/plain")), BodyKind::Other);
        assert_eq!(BodyKind::from_content_type(None), BodyKind::Other);
    }
}
