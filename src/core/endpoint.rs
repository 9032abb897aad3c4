//! Where an upstream is and how long to wait for it: the scheme, host, port and base path of a
//! service or LLM target, and its connect, read and write timeouts.

use std::time::Duration;

/// Where a request is sent: a scheme, host, port and base path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Base path, always starting with `/`.
    pub path: String,
}

impl Endpoint {
    /// Parse `http(s)://host[:port][/path]`.
    pub fn parse_url(url: &str) -> Result<Endpoint, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("`{url}` must start with http:// or https://"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
            Some(_) => return Err(format!("`{url}`: a query string is not allowed here")),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(format!("`{url}`: user information in the URL is not allowed"));
        }
        let (host, port) = split_host_port(authority, if tls { 443 } else { 80 })
            .ok_or_else(|| format!("`{url}` has no valid host[:port]"))?;
        Ok(Endpoint { tls, host, port, path: path.to_string() })
    }

    /// `host:port` as written in `upstream_resolve` and the Host header.
    pub fn authority(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Split `host[:port]` (IPv6 in brackets), lower-casing the host.
pub fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if authority.is_empty() {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (authority, default_port),
        }
    };
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

/// Connect, read and write timeouts towards an upstream. The read timeout bounds each wait for
/// data (an idle gap in a stream), not the whole response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub write: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = Endpoint::parse_url("http://httpbin.konghq.com/").unwrap();
        assert_eq!((e.tls, e.host.as_str(), e.port, e.path.as_str()), (false, "httpbin.konghq.com", 80, "/"));
        let e = Endpoint::parse_url("https://API.openai.com:8443/v1/responses").unwrap();
        assert_eq!((e.tls, e.host.as_str(), e.port, e.path.as_str()), (true, "api.openai.com", 8443, "/v1/responses"));
        assert_eq!(e.authority(), "api.openai.com:8443");
        let e = Endpoint::parse_url("https://[::1]:9443").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.path.as_str()), ("::1", 9443, "/"));
        assert!(Endpoint::parse_url("ftp://x").is_err());
        assert!(Endpoint::parse_url("https://user:pw@x/").is_err());
        assert!(Endpoint::parse_url("https://x:notaport/").is_err());
        assert!(Endpoint::parse_url("https://x?y=1").is_err());
    }
}
