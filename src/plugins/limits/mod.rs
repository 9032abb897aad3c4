//! What the two rate-limiting plugins (rate-limiting, ai-rate-limiting-advanced) share: whose
//! counter a request goes to (Kong's identifiers and their fallback to the client IP), Kong's
//! Redis records (and their deprecated flat aliases) as a [`RedisEndpoint`], and the answers
//! they build (headers, refusals) for the proxy to write.

pub mod redis_record;

use std::borrow::Cow;
use std::net::IpAddr;

use bytes::Bytes;
use http::HeaderMap;

use super::ConfigIssue;

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
    pub consumer: Option<&'a str>,
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
    pub headers: Vec<(Bytes, String)>,
    pub refused: Option<Refusal>,
    /// Decided without the shared backend (it failed, or is known to be down).
    pub degraded: bool,
    /// Remaining budget per window after this decision, for the metrics (label, remaining).
    pub remaining: Vec<(Bytes, f64)>,
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
    let consumers = crate::consumers::Consumers::default();
    let jwks = super::openid_connect::JwksRegistry::new(None, Vec::new());
    let health = crate::upstream::balancer::HealthRegistry::default();
    compile(&super::CompileContext {
        consumers: &consumers,
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
