//! Kong's `redis` records: the open-source one rate-limiting has (`timeout` for everything,
//! deprecated flat `redis_*` aliases beside it) and Kong Enterprise's ("redis v2":
//! `connect_timeout`/`send_timeout`/`read_timeout`, Sentinel and Cluster fields) that
//! ai-rate-limiting-advanced has — read into one [`RedisEndpoint`]. Fields aigate cannot honour
//! (Sentinel, Redis Cluster, cloud authentication, TLS without verification) are refused.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::plugins::{unsupported_unless_default, ConfigIssue};
use crate::store::redis::RedisEndpoint;

pub const DEFAULT_PORT: u16 = 6379;
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;

/// Kong's `kong.tools.redis.schema` (rate-limiting's `config.redis`).
#[derive(Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OssRedisSchema {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub timeout: Option<u64>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub database: Option<i64>,
    pub ssl: Option<bool>,
    pub ssl_verify: Option<bool>,
    pub server_name: Option<String>,
    pub cloud_authentication: Option<serde_yaml::Value>,
}

/// Kong Enterprise's redis record (ai-rate-limiting-advanced's `config.redis`; also the shape
/// of the gateway's `cluster_redis` setting).
#[derive(Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EeRedisSchema {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub connect_timeout: Option<u64>,
    pub send_timeout: Option<u64>,
    pub read_timeout: Option<u64>,
    /// Deprecated: sets the three timeouts.
    pub timeout: Option<u64>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub database: Option<i64>,
    pub ssl: Option<bool>,
    pub ssl_verify: Option<bool>,
    pub server_name: Option<String>,
    /// Connection-pool sizes: aigate multiplexes one connection, so these change nothing.
    pub keepalive_pool_size: Option<u64>,
    pub keepalive_backlog: Option<u64>,
    pub sentinel_master: Option<serde_yaml::Value>,
    pub sentinel_role: Option<serde_yaml::Value>,
    pub sentinel_nodes: Option<serde_yaml::Value>,
    pub sentinel_username: Option<serde_yaml::Value>,
    pub sentinel_password: Option<serde_yaml::Value>,
    pub sentinel_addresses: Option<serde_yaml::Value>,
    pub cluster_nodes: Option<serde_yaml::Value>,
    pub cluster_addresses: Option<serde_yaml::Value>,
    /// Only meaningful with `cluster_nodes`.
    pub cluster_max_redirections: Option<u64>,
    pub connection_is_proxied: Option<bool>,
    pub cloud_authentication: Option<serde_yaml::Value>,
}

// Never the password in a debug print (settings and configs are printed in tests and errors).
impl std::fmt::Debug for OssRedisSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OssRedisSchema").field("host", &self.host).field("port", &self.port).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for EeRedisSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EeRedisSchema").field("host", &self.host).field("port", &self.port).finish_non_exhaustive()
    }
}

/// The fields both records have, after their own rules are applied.
struct Fields<'a> {
    host: Option<&'a str>,
    port: Option<u16>,
    connect_timeout: u64,
    timeout: u64,
    username: Option<&'a str>,
    password: Option<&'a str>,
    database: Option<i64>,
    ssl: bool,
    ssl_verify: Option<bool>,
    server_name: Option<&'a str>,
}

fn empty_or_null(v: &serde_yaml::Value) -> bool {
    match v {
        serde_yaml::Value::Null => true,
        serde_yaml::Value::Sequence(s) => s.is_empty(),
        serde_yaml::Value::Mapping(m) => m.values().all(|x| x.is_null()),
        _ => false,
    }
}

impl OssRedisSchema {
    pub fn endpoint(
        &self,
        at: &str,
        trusted_ca: Option<&Path>,
        issues: &mut Vec<ConfigIssue>,
    ) -> Option<RedisEndpoint> {
        let before = issues.len();
        unsupported_unless_default(
            issues,
            &format!("{at}.cloud_authentication"),
            &self.cloud_authentication,
            empty_or_null,
        );
        let timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT_MS);
        if timeout == 0 {
            issues.push(ConfigIssue::new(
                format!("{at}.timeout"),
                "timeout must be above 0 ms",
                "give milliseconds, such as 2000",
            ));
        }
        endpoint(
            at,
            Fields {
                host: self.host.as_deref(),
                port: self.port,
                connect_timeout: timeout,
                timeout,
                username: self.username.as_deref(),
                password: self.password.as_deref(),
                database: self.database,
                ssl: self.ssl.unwrap_or(false),
                ssl_verify: self.ssl_verify,
                server_name: self.server_name.as_deref(),
            },
            trusted_ca,
            issues,
        )
        .filter(|_| issues.len() == before)
    }
}

impl EeRedisSchema {
    pub fn endpoint(
        &self,
        at: &str,
        trusted_ca: Option<&Path>,
        issues: &mut Vec<ConfigIssue>,
    ) -> Option<RedisEndpoint> {
        let before = issues.len();
        for (name, v) in [
            ("sentinel_master", &self.sentinel_master),
            ("sentinel_role", &self.sentinel_role),
            ("sentinel_nodes", &self.sentinel_nodes),
            ("sentinel_username", &self.sentinel_username),
            ("sentinel_password", &self.sentinel_password),
            ("sentinel_addresses", &self.sentinel_addresses),
            ("cluster_nodes", &self.cluster_nodes),
            ("cluster_addresses", &self.cluster_addresses),
            ("cloud_authentication", &self.cloud_authentication),
        ] {
            unsupported_unless_default(issues, &format!("{at}.{name}"), v, empty_or_null);
        }
        if self.connection_is_proxied == Some(true) {
            issues.push(ConfigIssue::new(
                format!("{at}.connection_is_proxied"),
                "`connection_is_proxied` is not supported by aigate",
                "connect to Redis directly (host and port)",
            ));
        }
        for (name, v) in [
            ("timeout", self.timeout),
            ("connect_timeout", self.connect_timeout),
            ("send_timeout", self.send_timeout),
            ("read_timeout", self.read_timeout),
        ] {
            if v == Some(0) {
                issues.push(ConfigIssue::new(
                    format!("{at}.{name}"),
                    format!("{name} must be above 0 ms"),
                    "give milliseconds, such as 2000",
                ));
            }
        }
        let all = self.timeout.unwrap_or(DEFAULT_TIMEOUT_MS);
        let send = self.send_timeout.unwrap_or(all);
        let read = self.read_timeout.unwrap_or(all);
        endpoint(
            at,
            Fields {
                host: Some(self.host.as_deref().unwrap_or("127.0.0.1")),
                port: self.port,
                connect_timeout: self.connect_timeout.unwrap_or(all),
                // One call is sent and answered within this.
                timeout: send.max(read),
                username: self.username.as_deref(),
                password: self.password.as_deref(),
                database: self.database,
                ssl: self.ssl.unwrap_or(false),
                ssl_verify: self.ssl_verify,
                server_name: self.server_name.as_deref(),
            },
            trusted_ca,
            issues,
        )
        .filter(|_| issues.len() == before)
    }
}

fn endpoint(
    at: &str,
    f: Fields<'_>,
    trusted_ca: Option<&Path>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<RedisEndpoint> {
    let before = issues.len();
    let host = f.host.filter(|h| !h.is_empty());
    if host.is_none() {
        issues.push(ConfigIssue::new(format!("{at}.host"), "the Redis host is required", "set redis.host"));
    }
    let port = f.port.unwrap_or(DEFAULT_PORT);
    if port == 0 {
        issues.push(ConfigIssue::new(format!("{at}.port"), "port 0 is not a Redis port", "set redis.port"));
    }
    let database = f.database.unwrap_or(0);
    if database < 0 {
        issues.push(ConfigIssue::new(format!("{at}.database"), "database must be 0 or more", "use 0"));
    }
    if f.ssl && f.ssl_verify == Some(false) {
        issues.push(ConfigIssue::new(
            format!("{at}.ssl_verify"),
            "aigate always verifies the Redis server's certificate",
            "set ssl_verify: true (trust a private CA with the tls_trusted_ca setting)",
        ));
    }
    if let (true, Some(sni), Some(h)) = (f.ssl, f.server_name.filter(|s| !s.is_empty()), host) {
        if !sni.eq_ignore_ascii_case(h) {
            issues.push(ConfigIssue::new(
                format!("{at}.server_name"),
                "aigate verifies the certificate for redis.host; a different server_name is not supported",
                "set host to the certificate's name (and remove server_name)",
            ));
        }
    }
    if issues.len() != before {
        return None;
    }
    Some(RedisEndpoint {
        host: host?.to_string(),
        port,
        username: f.username.filter(|u| !u.is_empty()).map(str::to_string),
        password: f.password.filter(|p| !p.is_empty()).map(str::to_string),
        database,
        tls: f.ssl,
        trusted_ca: trusted_ca.map(Path::to_path_buf),
        connect_timeout: Duration::from_millis(f.connect_timeout),
        timeout: Duration::from_millis(f.timeout),
    })
}
