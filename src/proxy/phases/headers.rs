//! Which headers cross the gateway. A client can never speak for the gateway: the identity
//! headers the gateway sets are removed from requests in every spelling a backend may fold to
//! the same name (any case, `_` for `-`), and header names with underscores are dropped unless
//! the settings allow them. Forwarding headers are believed only from `trusted_ips`; everyone
//! else's are replaced by the gateway's own on plain services, and an LLM provider gets none.
//! On LLM routes the headers that steer the provider account are removed from requests, and
//! those that reveal it are removed from answers.

use std::net::IpAddr;

use http::{HeaderName, HeaderValue};
use pingora_core::Result;
use pingora_http::{RequestHeader, ResponseHeader};

use crate::core::split_host_port;

/// Headers that carry the gateway's word on who the consumer is and which request this is.
pub const GATEWAY_SET: &[&str] = &[
    "x-consumer-id",
    "x-consumer-custom-id",
    "x-consumer-username",
    "x-credential-identifier",
    "x-anonymous-consumer",
    "x-consumer-groups",
    "x-authenticated-groups",
    "x-aigate-request-id",
];

/// The request id the gateway sets for plain services (the client's goes to LLM providers).
pub const REQUEST_ID: &[&str] = &["x-request-id"];

/// Where the request came from, as proxies tell it.
pub const FORWARDING: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-path",
    "x-forwarded-prefix",
    "forwarded",
    "x-real-ip",
];

/// Request headers that choose which of the operator's provider organizations, projects or
/// billing accounts a request is charged to.
pub const ACCOUNT_REQUEST: &[&str] = &["openai-organization", "openai-project", "x-goog-user-project"];

/// Provider answer headers that name the operator's account, ...
const ACCOUNT_RESPONSE: &[&str] = &["openai-organization", "openai-project", "anthropic-organization-id"];
/// ... and the account-wide quota headers (`retry-after` is kept).
const ACCOUNT_RESPONSE_PREFIXES: &[&str] = &["x-ratelimit-", "anthropic-ratelimit-"];

/// Whether a (lower-case) header name reads as `canonical` to a backend that folds `_` to `-`.
fn folds_to(name: &str, canonical: &str) -> bool {
    name.len() == canonical.len()
        && name.bytes().zip(canonical.bytes()).all(|(a, b)| if a == b'_' { b == b'-' } else { a == b })
}

/// Remove every header whose name folds to one in `lists`.
pub fn remove_folded(req: &mut RequestHeader, lists: &[&[&str]]) {
    let doomed: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|k| lists.iter().any(|l| l.iter().any(|c| folds_to(k.as_str(), c))))
        .cloned()
        .collect();
    for k in doomed {
        req.remove_header(&k);
    }
}

/// Drop header names with underscores (nginx's `underscores_in_headers off`, Kong's default).
pub fn drop_underscored(req: &mut RequestHeader) {
    let doomed: Vec<HeaderName> = req.headers.keys().filter(|k| k.as_str().contains('_')).cloned().collect();
    for k in doomed {
        req.remove_header(&k);
    }
}

/// What the gateway knows about where a request came from.
pub struct Origin<'a> {
    pub client_ip: Option<IpAddr>,
    /// The client is in `trusted_ips`: its forwarding headers are believed.
    pub trusted: bool,
    /// The gateway's port the client connected to.
    pub port: Option<u16>,
    /// The normalised request path and the part of it the route matched.
    pub path: &'a str,
    pub prefix: Option<&'a str>,
}

/// Plain services: the client's forwarding headers (any spelling) replaced by the gateway's
/// own, or kept (`X-Forwarded-For` and `Forwarded` appended to) when the client is trusted.
/// `client` is the request as received, `req` the one going upstream.
pub fn set_forwarding(client: &RequestHeader, req: &mut RequestHeader, o: &Origin<'_>) -> Result<()> {
    let joined = |name: &str| -> Option<String> {
        if !o.trusted {
            return None;
        }
        let values: Vec<&str> = client.headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect();
        (!values.is_empty()).then(|| values.join(", "))
    };
    let kept = |name: &str| -> Option<HeaderValue> { o.trusted.then(|| client.headers.get(name).cloned()).flatten() };
    let (xff, forwarded) = (joined("x-forwarded-for"), joined("forwarded"));
    let proto = kept("x-forwarded-proto");
    let xhost = kept("x-forwarded-host");
    let xport = kept("x-forwarded-port");
    let xpath = kept("x-forwarded-path");
    let xprefix = kept("x-forwarded-prefix");
    let real = kept("x-real-ip");
    remove_folded(req, &[FORWARDING]);

    let host_port = client.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let host = split_host_port(host_port, 0).map(|(h, _)| h.to_ascii_lowercase()).unwrap_or_default();
    if let Some(ip) = o.client_ip {
        let ip_text = ip.to_string();
        let node = match ip {
            IpAddr::V4(_) => ip_text.clone(),
            IpAddr::V6(_) => format!("\"[{ip_text}]\""),
        };
        req.insert_header("x-forwarded-for", append(xff, &ip_text))?;
        let mut element = format!("for={node}");
        if !host_port.is_empty() && host_port.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') {
            element.push_str(&format!(";host=\"{host_port}\""));
        }
        element.push_str(";proto=http");
        req.insert_header("forwarded", append(forwarded, &element))?;
        match real {
            Some(v) => req.insert_header("x-real-ip", v)?,
            None => req.insert_header("x-real-ip", ip_text)?,
        }
    }
    match proto {
        Some(v) => req.insert_header("x-forwarded-proto", v)?,
        None => req.insert_header("x-forwarded-proto", "http")?,
    }
    match xhost {
        Some(v) => req.insert_header("x-forwarded-host", v)?,
        None if !host.is_empty() => req.insert_header("x-forwarded-host", host)?,
        None => {}
    }
    match (xport, o.port) {
        (Some(v), _) => req.insert_header("x-forwarded-port", v)?,
        (None, Some(p)) => req.insert_header("x-forwarded-port", p.to_string())?,
        (None, None) => {}
    }
    match xpath {
        Some(v) => req.insert_header("x-forwarded-path", v)?,
        None => req.insert_header("x-forwarded-path", o.path)?,
    }
    match (xprefix, o.prefix) {
        (Some(v), _) => req.insert_header("x-forwarded-prefix", v)?,
        (None, Some(p)) => req.insert_header("x-forwarded-prefix", p)?,
        (None, None) => {}
    }
    Ok(())
}

fn append(before: Option<String>, value: &str) -> String {
    match before {
        Some(b) => format!("{b}, {value}"),
        None => value.to_string(),
    }
}

/// LLM routes: what a client sent about its address and the provider account never reaches the
/// provider (which needs neither), nor do identity headers.
pub fn strip_for_provider(req: &mut RequestHeader) {
    remove_folded(req, &[GATEWAY_SET, FORWARDING, ACCOUNT_REQUEST]);
}

/// LLM routes: the provider's headers naming the operator's account and its account-wide
/// quotas are not the consumer's business.
pub fn strip_account_response(resp: &mut ResponseHeader) {
    let doomed: Vec<HeaderName> = resp
        .headers
        .keys()
        .filter(|k| {
            let k = k.as_str();
            ACCOUNT_RESPONSE.contains(&k) || ACCOUNT_RESPONSE_PREFIXES.iter().any(|p| k.starts_with(p))
        })
        .cloned()
        .collect();
    for k in doomed {
        resp.remove_header(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(fields: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        for (k, v) in fields {
            req.append_header(k.to_string(), *v).unwrap();
        }
        req
    }

    fn names(req: &RequestHeader) -> Vec<String> {
        let mut n: Vec<String> = req.headers.keys().map(|k| k.as_str().to_string()).collect();
        n.sort();
        n
    }

    #[test]
    fn folding_matches_every_spelling_a_backend_may_read_as_the_same_name() {
        assert!(folds_to("x-consumer-id", "x-consumer-id"));
        assert!(folds_to("x_consumer_id", "x-consumer-id"));
        assert!(folds_to("x-consumer_id", "x-consumer-id"));
        assert!(!folds_to("x-consumer-idx", "x-consumer-id"));
        assert!(!folds_to("x-consumer", "x-consumer-id"));
        assert!(!folds_to("x-consumer-ld", "x-consumer-id"));
        let mut req = request(&[
            ("X_Consumer_ID", "evil"),
            ("x-consumer-id", "evil"),
            ("X-CONSUMER_id", "evil"),
            ("X_Credential_Identifier", "evil"),
            ("x-anonymous_consumer", "true"),
            ("X-Consumer-Groups", "admin"),
            ("x_authenticated_groups", "admin"),
            ("X-Aigate-Request-Id", "forged"),
            ("x-consumer-idx", "kept"),
            ("accept", "*/*"),
        ]);
        remove_folded(&mut req, &[GATEWAY_SET]);
        assert_eq!(names(&req), vec!["accept", "x-consumer-idx"]);
    }

    #[test]
    fn underscored_names_are_dropped() {
        let mut req = request(&[("x_custom", "1"), ("x-custom", "2"), ("Under_Score", "3")]);
        drop_underscored(&mut req);
        assert_eq!(names(&req), vec!["x-custom"]);
    }

    fn origin(trusted: bool) -> Origin<'static> {
        Origin {
            client_ip: Some("10.0.0.7".parse().unwrap()),
            trusted,
            port: Some(8000),
            path: "/api/x",
            prefix: Some("/api"),
        }
    }

    const FORGED: &[(&str, &str)] = &[
        ("host", "gw.example:8000"),
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-for", "7.7.7.7"),
        ("X_Forwarded_For", "8.8.8.8"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-port", "1"),
        ("x-forwarded-path", "/evil"),
        ("x-forwarded-prefix", "/evil"),
        ("forwarded", "for=6.6.6.6;proto=https"),
        ("x-real-ip", "6.6.6.6"),
    ];

    #[test]
    fn an_untrusted_clients_forwarding_headers_are_replaced() {
        let client = request(FORGED);
        let mut req = client.clone();
        set_forwarding(&client, &mut req, &origin(false)).unwrap();
        let h = |n: &str| req.headers.get_all(n).iter().map(|v| v.to_str().unwrap().to_string()).collect::<Vec<_>>();
        assert_eq!(h("x-forwarded-for"), vec!["10.0.0.7"]);
        assert_eq!(h("x_forwarded_for"), Vec::<String>::new());
        assert_eq!(h("x-forwarded-proto"), vec!["http"]);
        assert_eq!(h("x-forwarded-host"), vec!["gw.example"]);
        assert_eq!(h("x-forwarded-port"), vec!["8000"]);
        assert_eq!(h("x-forwarded-path"), vec!["/api/x"]);
        assert_eq!(h("x-forwarded-prefix"), vec!["/api"]);
        assert_eq!(h("forwarded"), vec!["for=10.0.0.7;host=\"gw.example:8000\";proto=http"]);
        assert_eq!(h("x-real-ip"), vec!["10.0.0.7"]);
    }

    #[test]
    fn a_trusted_clients_forwarding_headers_are_kept_and_appended_to() {
        let client = request(FORGED);
        let mut req = client.clone();
        set_forwarding(&client, &mut req, &origin(true)).unwrap();
        let h = |n: &str| req.headers.get(n).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        assert_eq!(h("x-forwarded-for"), "6.6.6.6, 7.7.7.7, 10.0.0.7");
        // Only the dash spelling is believed, even from a trusted proxy.
        assert!(!req.headers.contains_key("x_forwarded_for"));
        assert_eq!(h("x-forwarded-proto"), "https");
        assert_eq!(h("x-forwarded-host"), "evil.example");
        assert_eq!(h("x-forwarded-port"), "1");
        assert_eq!(h("x-forwarded-prefix"), "/evil");
        assert_eq!(h("forwarded"), "for=6.6.6.6;proto=https, for=10.0.0.7;host=\"gw.example:8000\";proto=http");
        assert_eq!(h("x-real-ip"), "6.6.6.6");
        // IPv6 nodes are quoted in Forwarded.
        let mut req = request(&[]);
        let o = Origin { client_ip: Some("::1".parse().unwrap()), ..origin(true) };
        set_forwarding(&request(&[]), &mut req, &o).unwrap();
        assert_eq!(req.headers["forwarded"], "for=\"[::1]\";proto=http");
        assert_eq!(req.headers["x-forwarded-for"], "::1");
    }

    #[test]
    fn a_provider_gets_no_forwarding_identity_or_account_headers() {
        let mut req = request(FORGED);
        req.append_header("OpenAI-Organization", "org-evil").unwrap();
        req.append_header("openai_project", "proj_evil").unwrap();
        req.append_header("X-Goog-User-Project", "evil").unwrap();
        req.append_header("x-consumer-username", "root").unwrap();
        req.append_header("anthropic-version", "2023-06-01").unwrap();
        strip_for_provider(&mut req);
        assert_eq!(names(&req), vec!["anthropic-version", "host"]);
    }

    #[test]
    fn account_answer_headers_are_removed_and_retry_after_kept() {
        let mut resp = ResponseHeader::build(429, None).unwrap();
        for (k, v) in [
            ("openai-organization", "org-operator"),
            ("openai-project", "proj_operator"),
            ("anthropic-organization-id", "org"),
            ("x-ratelimit-limit-requests", "10000"),
            ("x-ratelimit-remaining-tokens", "5"),
            ("anthropic-ratelimit-tokens-remaining", "5"),
            ("retry-after", "1"),
            ("x-request-id", "req_1"),
            ("openai-processing-ms", "12"),
        ] {
            resp.append_header(k, v).unwrap();
        }
        strip_account_response(&mut resp);
        let mut left: Vec<&str> = resp.headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, vec!["openai-processing-ms", "retry-after", "x-request-id"]);
    }
}
