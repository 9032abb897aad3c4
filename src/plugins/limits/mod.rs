//! What the two rate-limiting plugins (rate-limiting, ai-rate-limiting-advanced) share: whose
//! counter a request goes to (Kong's identifiers and their fallback to the client IP), Kong's
//! Redis records (and their deprecated flat aliases) as a [`RedisEndpoint`], and the answers
//! they build (headers, refusals) for the proxy to write.

pub mod redis_record;

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex, OnceLock};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use smallvec::SmallVec;

use super::ConfigIssue;
use crate::core::ConsumerId;
use crate::store::ratelimit::Subject;

/// Whom a limit counts (Kong's `limit_by` / `identifier`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identifier {
    Consumer,
    Credential,
    Ip,
    Service,
    Header(http::HeaderName),
    Path(String),
}

/// What a request offers to identify it.
pub struct Who<'a> {
    /// The consumer's id (what Kong counts by), and its place in the configuration.
    pub consumer: Option<&'a str>,
    pub consumer_index: Option<ConsumerId>,
    pub credential: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
    pub service: &'a str,
    pub headers: &'a HeaderMap,
    /// The normalised request path.
    pub path: &'a str,
}

impl Identifier {
    /// Parse `limit_by` / `identifier` with its `header_name` and `path`.
    pub fn compile(
        field: &str,
        value: Option<&str>,
        header_name: Option<&str>,
        path: Option<&str>,
        issues: &mut Vec<ConfigIssue>,
    ) -> Identifier {
        match value.unwrap_or("consumer") {
            "consumer" => Identifier::Consumer,
            "credential" => Identifier::Credential,
            "ip" => Identifier::Ip,
            "service" => Identifier::Service,
            "header" => match header_name.filter(|h| !h.is_empty()) {
                Some(h) => match valid_header_name(h) {
                    Some(n) => Identifier::Header(n),
                    None => {
                        issues.push(ConfigIssue::new(
                            "header_name",
                            format!("bad header name '{h}', allowed characters are A-Z, a-z, 0-9, '_', and '-'"),
                            "name the request header to count by",
                        ));
                        Identifier::Consumer
                    }
                },
                None => {
                    issues.push(ConfigIssue::new(
                        "header_name",
                        format!("{field} is header but header_name is not set"),
                        "name the request header to count by",
                    ));
                    Identifier::Consumer
                }
            },
            "path" => match path.filter(|p| !p.is_empty()) {
                Some(p) if p.starts_with('/') && !p.contains("//") => Identifier::Path(p.to_string()),
                Some(p) => {
                    issues.push(ConfigIssue::new(
                        "path",
                        format!("`{p}` is not a path (it must start with / and have no empty segment)"),
                        "give a path such as /v1/responses",
                    ));
                    Identifier::Consumer
                }
                None => {
                    issues.push(ConfigIssue::new(
                        "path",
                        format!("{field} is path but path is not set"),
                        "give the request path to count",
                    ));
                    Identifier::Consumer
                }
            },
            "consumer-group" => {
                issues.push(ConfigIssue::new(
                    field,
                    "consumer-group is not supported by aigate (it has no consumer groups)",
                    "use consumer, credential, ip, service, header or path",
                ));
                Identifier::Consumer
            }
            other => {
                issues.push(ConfigIssue::new(
                    field,
                    format!("`{other}` is not one of consumer, credential, ip, service, header, path"),
                    "use consumer, credential, ip, service, header or path",
                ));
                Identifier::Consumer
            }
        }
    }

    /// Kong's choice of identifier: the consumer (else its credential), the credential, the
    /// service, a header's first value, or the path when it is exactly the configured one — and
    /// whenever that gives nothing, the client's IP address.
    pub fn of<'a>(&'a self, who: &Who<'a>) -> (IdKind, Cow<'a, str>) {
        let found = match self {
            Identifier::Consumer => who
                .consumer
                .map(|c| (IdKind::Consumer, Cow::Borrowed(c)))
                .or_else(|| who.credential.map(|c| (IdKind::Credential, Cow::Borrowed(c)))),
            Identifier::Credential => who.credential.map(|c| (IdKind::Credential, Cow::Borrowed(c))),
            Identifier::Service => Some((IdKind::Service, Cow::Borrowed(who.service))),
            Identifier::Header(h) => {
                who.headers.get(h).map(|v| (IdKind::Header, String::from_utf8_lossy(v.as_bytes())))
            }
            Identifier::Path(p) => (who.path == p).then_some((IdKind::Path, Cow::Borrowed(p.as_str()))),
            Identifier::Ip => None,
        };
        found.unwrap_or_else(|| (IdKind::Ip, Cow::Owned(who.client_ip.map(|ip| ip.to_string()).unwrap_or_default())))
    }
}

/// What kind of identifier was used (kept apart in the counters: a consumer named like an IP
/// address does not share its counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Consumer,
    Credential,
    Ip,
    Service,
    Header,
    Path,
}

impl IdKind {
    pub fn tag(self) -> &'static [u8] {
        match self {
            IdKind::Consumer => b"consumer",
            IdKind::Credential => b"credential",
            IdKind::Ip => b"ip",
            IdKind::Service => b"service",
            IdKind::Header => b"header",
            IdKind::Path => b"path",
        }
    }
}

/// Kong's `typedefs.header_name`: letters, digits, `_` and `-`.
fn valid_header_name(h: &str) -> Option<http::HeaderName> {
    if !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return None;
    }
    http::HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok()
}

/// A number as Kong writes it in headers (Lua's `tostring`): integers without a decimal point,
/// others with up to six decimals.
pub fn kong_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Bytes kept for the life of the process, each distinct text once: header names and values a
/// configuration builds. Static bytes are cloned and dropped on every request without touching
/// a shared reference count (which both worker threads would otherwise write to); a reload
/// adds only texts not seen before, so what is kept is bounded by the configurations' texts.
pub fn interned(text: String) -> Bytes {
    Bytes::from_static(interned_str(text).as_bytes())
}

fn interned_str(text: String) -> &'static str {
    static SEEN: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Mutex::default);
    let Ok(mut seen) = SEEN.lock() else { return Box::leak(text.into_boxed_str()) };
    match seen.get(text.as_str()) {
        Some(t) => t,
        None => {
            let t: &'static str = Box::leak(text.into_boxed_str());
            seen.insert(t);
            t
        }
    }
}

/// A header name a configuration builds (`X-AI-RateLimit-Limit-minute-openai`), parsed once
/// and kept (see [`interned`]); `None` if it is not a valid name.
pub fn configured_header_name(text: &str) -> Option<HeaderName> {
    let lower = text.to_ascii_lowercase();
    HeaderName::from_bytes(lower.as_bytes()).ok()?;
    Some(HeaderName::from_static(interned_str(lower)))
}

/// A configured number as a header value, built once (see [`interned`]).
pub fn configured_number(v: f64) -> HeaderValue {
    HeaderValue::from_maybe_shared(interned(kong_number(v))).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// A verdict's headers as they are built. The numbers a request brings (what is left, when a
/// window resets) are written into one buffer that their values then share: one allocation
/// for all of them rather than one each.
#[derive(Default)]
pub struct HeaderBuilder {
    headers: Vec<LimitHeader>,
    digits: BytesMut,
    /// (header, start, end) of each number in `digits`.
    numbers: SmallVec<[(usize, usize, usize); 8]>,
}

impl HeaderBuilder {
    pub fn with_capacity(headers: usize) -> HeaderBuilder {
        HeaderBuilder {
            headers: Vec::with_capacity(headers),
            digits: BytesMut::with_capacity(headers * 12),
            numbers: SmallVec::new(),
        }
    }

    /// A header whose value was built beforehand.
    pub fn value(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.push((name, value));
    }

    /// A header whose value is a number, written as Kong writes it ([`kong_number`]).
    pub fn number(&mut self, name: HeaderName, v: f64) {
        if v.fract() == 0.0 && v.abs() < 1e15 {
            self.digits(name, itoa::Buffer::new().format(v as i64).as_bytes());
        } else {
            self.digits(name, kong_number(v).as_bytes());
        }
    }

    /// A header whose value is a whole number of seconds.
    pub fn seconds(&mut self, name: HeaderName, secs: u64) {
        self.digits(name, itoa::Buffer::new().format(secs).as_bytes());
    }

    /// A header whose value is `text`, kept in the shared buffer until [`HeaderBuilder::finish`].
    fn digits(&mut self, name: HeaderName, text: &[u8]) {
        let start = self.digits.len();
        self.digits.extend_from_slice(text);
        self.numbers.push((self.headers.len(), start, self.digits.len()));
        self.headers.push((name, HeaderValue::from_static("0")));
    }

    pub fn finish(mut self) -> Vec<LimitHeader> {
        let digits = self.digits.freeze();
        for (i, start, end) in self.numbers {
            if let (Some(h), Ok(v)) =
                (self.headers.get_mut(i), HeaderValue::from_maybe_shared(digits.slice(start..end)))
            {
                h.1 = v;
            }
        }
        self.headers
    }
}

/// A header a limit adds to the answer. Names go out in lower case (HTTP header names are
/// case-insensitive, and HTTP/2 writes every name so): parsed once, they are written into the
/// answer without being parsed, copied or hashed twice on every request.
pub type LimitHeader = (HeaderName, HeaderValue);

/// The subjects of a plugin instance's consumers, digested once each (a subject is a SHA-256
/// of the namespace and the identifier: not worth computing on every request).
pub struct SubjectCache {
    slots: Vec<OnceLock<Subject>>,
}

impl SubjectCache {
    pub fn new(len: usize) -> SubjectCache {
        SubjectCache { slots: (0..len).map(|_| OnceLock::new()).collect() }
    }

    pub fn get(&self, index: usize, make: impl FnOnce() -> Subject) -> Subject {
        match self.slots.get(index) {
            Some(s) => *s.get_or_init(make),
            None => make(),
        }
    }
}

/// A limit's refusal, as the proxy answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
    /// Kong's `kong.response.error` adds the request id; `kong.response.exit` does not.
    pub with_request_id: bool,
    /// Which plugin and window refused (the access log says it).
    pub plugin: &'static str,
    pub window: String,
}

/// A plugin's decision on one request.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Headers for the answer, whatever it is.
    pub headers: Vec<LimitHeader>,
    pub refused: Option<Refusal>,
    /// Decided without the shared backend (it failed, or is known to be down).
    pub degraded: bool,
}

/// A plugin's `error_code` (Kong: a number > 0) as an HTTP status.
pub fn error_code(value: Option<f64>, issues: &mut Vec<ConfigIssue>) -> u16 {
    match value {
        None => 429,
        Some(v) if v.fract() == 0.0 && (100.0..=599.0).contains(&v) => v as u16,
        Some(v) => {
            issues.push(ConfigIssue::new(
                "error_code",
                format!("error_code {v} is not an HTTP status"),
                "use a status from 100 to 599, such as 429",
            ));
            429
        }
    }
}

/// Compile a plugin in a unit test, with fresh stores besides `counters`.
#[cfg(test)]
pub fn compile_for_test<T>(
    counters: &crate::store::ratelimit::CounterStores,
    instance: &str,
    compile: impl FnOnce(&super::CompileContext<'_>) -> T,
) -> T {
    compile_for_test_with(&crate::consumers::Consumers::default(), counters, instance, compile)
}

/// [`compile_for_test`] with these consumers configured.
#[cfg(test)]
pub fn compile_for_test_with<T>(
    consumers: &crate::consumers::Consumers,
    counters: &crate::store::ratelimit::CounterStores,
    instance: &str,
    compile: impl FnOnce(&super::CompileContext<'_>) -> T,
) -> T {
    let jwks = super::openid_connect::JwksRegistry::new(None, Vec::new());
    let health = crate::upstream::balancer::HealthRegistry::default();
    compile(&super::CompileContext {
        consumers,
        jwks: &jwks,
        health: &health,
        llm_plain_http_hosts: &[],
        counters,
        trusted_ca: None,
        instance,
    })
}

#[cfg(test)]
mod tests;
