//! The gateway settings file (Kong's `kong.conf` names where Kong has one) and its
//! `AIGATE_<KEY>` environment overrides.
//!
//! Every setting is declared once, as a field of [`Settings`] with its default in
//! [`Default`] and its reading and range in `values` (sizes such as `16k`, milliseconds,
//! seconds); README's settings table documents them, and a test keeps the two in step. The
//! keys, and so the environment variables, are the struct's own field names.
//!
//! Settings are read once, validated, and relative paths are resolved against the directory of
//! the settings file so `aigate run --config conf/aigate.yaml` works from any working
//! directory. Every problem is reported, not just the first.

mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::core::net::IpBlocks;
use crate::core::problems::{Problem, Problems};
use crate::core::{Secret, Timeouts};
use crate::plugins::limits::redis_record::EeRedisSchema;
use crate::store::redis::RedisEndpoint;
pub use crate::telemetry::access_log::AccessLogTarget;
use crate::upstream::resolver::Overrides;

/// Validated settings, with defaults applied and paths made absolute.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The settings file these came from (for reload and messages).
    #[serde(skip)]
    pub source: Option<PathBuf>,
    #[serde(deserialize_with = "values::listen_list")]
    pub proxy_listen: Vec<SocketAddr>,
    #[serde(deserialize_with = "values::listen_or_off")]
    pub status_listen: Option<SocketAddr>,
    #[serde(deserialize_with = "values::path_list")]
    pub declarative_config: Vec<PathBuf>,
    #[serde(deserialize_with = "values::threads")]
    pub threads: usize,
    pub tls_trusted_ca: Option<PathBuf>,
    /// Hosts openid-connect may fetch discovery documents and keys from over plain http. For
    /// tests only: anyone on the path could replace such keys.
    #[serde(deserialize_with = "values::host_list")]
    pub oidc_insecure_http_hosts: Vec<String>,
    /// Hosts an LLM target's `upstream_url` may name over plain http (self-hosted models on a
    /// trusted network): the provider key and the prompts cross it unencrypted.
    #[serde(deserialize_with = "values::host_list")]
    pub llm_plain_http_hosts: Vec<String>,
    /// `host:port` → fixed address, like curl's `--resolve`.
    pub upstream_resolve: Overrides,
    #[serde(deserialize_with = "values::seconds_at_least_one")]
    pub dns_refresh_interval: Duration,
    #[serde(deserialize_with = "values::body_size")]
    pub max_request_body_size: u64,
    #[serde(deserialize_with = "values::millis")]
    pub upstream_connect_timeout: Duration,
    #[serde(deserialize_with = "values::millis")]
    pub upstream_read_timeout: Duration,
    #[serde(deserialize_with = "values::millis")]
    pub upstream_write_timeout: Duration,
    pub upstream_keepalive_pool_size: usize,
    /// How long an idle upstream connection is kept: below the upstream's own keep-alive
    /// timeout, so that the gateway, not the upstream, closes it.
    #[serde(deserialize_with = "values::seconds")]
    pub upstream_keepalive_idle_timeout: Duration,
    /// Longest silence while a client sends a request head, and between its keep-alive
    /// requests (Pingora reads both under one timer, in whole seconds).
    #[serde(deserialize_with = "values::header_timeout")]
    pub client_header_timeout: Duration,
    #[serde(deserialize_with = "values::millis")]
    pub client_body_timeout: Duration,
    /// Read buffer of each client connection, kept for the connection's life. Pingora's default
    /// is 64 KiB (64 MB of RSS at 1,000 idle keep-alive connections). None by default: Pingora
    /// reads into buffers of its own (4 KiB for the head, up to 64 KiB for a body), so the extra
    /// one saved no measurable CPU and cost 16-18 KB per long stream (benches/README.md).
    #[serde(deserialize_with = "values::read_buffer_size")]
    pub client_read_buffer_size: usize,
    /// Write buffer of each client connection, kept for the connection's life. Pingora's default
    /// is one TCP segment (1460 bytes): an answer whose head and body together are larger went
    /// out in two writes and two segments (an LLM answer with a rate limit's headers usually
    /// is). 4 KiB by default, so such answers go out in one.
    #[serde(deserialize_with = "values::write_buffer_size")]
    pub client_write_buffer_size: usize,
    /// Largest request head (request line and header fields) answered with anything but 431.
    /// Pingora's own parser caps a head at 1 MiB and 256 fields, answering an empty 400 above.
    #[serde(deserialize_with = "values::header_size")]
    pub max_request_header_size: usize,
    /// Most header fields a request may carry before it gets 431.
    #[serde(deserialize_with = "values::header_count")]
    pub max_request_headers: usize,
    #[serde(deserialize_with = "values::access_log")]
    pub proxy_access_log: AccessLogTarget,
    #[serde(deserialize_with = "values::log_level")]
    pub log_level: String,
    pub pid_file: PathBuf,
    pub upgrade_sock: PathBuf,
    #[serde(deserialize_with = "values::seconds")]
    pub grace_period: Duration,
    #[serde(deserialize_with = "values::seconds")]
    pub shutdown_timeout: Duration,
    #[serde(deserialize_with = "values::size")]
    pub usage_scan_limit: usize,
    /// Consecutive failures that take an LLM target out of rotation (nginx's max_fails).
    #[serde(deserialize_with = "values::max_fails")]
    pub llm_target_max_fails: u32,
    /// How long such a target stays out before it is tried again (nginx's fail_timeout).
    #[serde(deserialize_with = "values::millis")]
    pub llm_target_fail_timeout: Duration,
    /// Responses-API objects belong to the consumer that created them.
    pub response_ownership: bool,
    #[serde(deserialize_with = "values::seconds_at_least_one")]
    pub response_store_ttl: Duration,
    #[serde(deserialize_with = "values::at_least_one")]
    pub response_store_max_entries: usize,
    /// Clients whose `X-Forwarded-*`, `Forwarded` and `X-Real-IP` headers are believed (Kong's
    /// `trusted_ips`); everyone else's are replaced by the gateway's own values.
    #[serde(deserialize_with = "values::trusted_ips")]
    pub trusted_ips: IpBlocks,
    /// Pass request headers with `_` in their names (nginx's `underscores_in_headers`); by
    /// default they are dropped, since a backend may read `X_Consumer_ID` as `X-Consumer-ID`.
    pub allow_underscores_in_headers: bool,
    /// Longest a refused client that is still sending its body is read from (and the body
    /// discarded) after its answer, so it reads the answer instead of a reset (nginx's
    /// `lingering_time`); 0 closes at once.
    #[serde(deserialize_with = "values::millis")]
    pub lingering_time: Duration,
    /// Longest silence from such a client before the connection is closed (nginx's
    /// `lingering_timeout`).
    #[serde(deserialize_with = "values::millis")]
    pub lingering_timeout: Duration,
    /// Most body bytes discarded that way.
    #[serde(deserialize_with = "values::size_u64")]
    pub lingering_max_size: u64,
    /// Keys the MCP session ids the gateway hands out (bound to their consumer); every node of
    /// a cluster needs the same. Unset: a random secret per process (one node only).
    #[serde(deserialize_with = "values::cluster_secret")]
    pub cluster_secret: Option<Secret>,
    /// A secret the status listener's state-changing endpoints require in `X-Aigate-Operator`
    /// (without it, any value of that header from a local address is accepted).
    #[serde(deserialize_with = "values::secret")]
    pub status_operator_token: Option<Secret>,
    /// The Redis every gateway of a cluster shares response ownership and MCP pins through
    /// (Kong's redis record); none: this process's memory.
    pub cluster_redis: Option<EeRedisSchema>,
}

/// How long and how much a lingering close reads (`lingering_*` settings).
#[derive(Debug, Clone, Copy, Default)]
pub struct Lingering {
    pub time: Duration,
    pub idle: Duration,
    pub max_size: u64,
}

impl Default for Settings {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Settings {
            source: None,
            proxy_listen: vec![SocketAddr::from(([0, 0, 0, 0], 8000))],
            status_listen: Some(SocketAddr::from(([127, 0, 0, 1], 8100))),
            declarative_config: Vec::new(),
            threads,
            tls_trusted_ca: None,
            oidc_insecure_http_hosts: Vec::new(),
            llm_plain_http_hosts: Vec::new(),
            upstream_resolve: Overrides::default(),
            dns_refresh_interval: Duration::from_secs(30),
            max_request_body_size: 8 * 1024 * 1024,
            upstream_connect_timeout: Duration::from_millis(60_000),
            upstream_read_timeout: Duration::from_millis(60_000),
            upstream_write_timeout: Duration::from_millis(60_000),
            upstream_keepalive_pool_size: 512,
            upstream_keepalive_idle_timeout: Duration::from_secs(50),
            client_header_timeout: Duration::from_secs(60),
            client_body_timeout: Duration::from_secs(60),
            client_read_buffer_size: 0,
            client_write_buffer_size: 4 * 1024,
            max_request_header_size: 32 * 1024,
            max_request_headers: 100,
            proxy_access_log: AccessLogTarget::Off,
            log_level: "info".into(),
            pid_file: PathBuf::from("/tmp/aigate.pid"),
            upgrade_sock: PathBuf::from("/tmp/aigate_upgrade.sock"),
            grace_period: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
            usage_scan_limit: 4 * 1024 * 1024,
            llm_target_max_fails: 3,
            llm_target_fail_timeout: Duration::from_secs(10),
            response_ownership: true,
            response_store_ttl: Duration::from_secs(30 * 24 * 3600),
            response_store_max_entries: 1_000_000,
            trusted_ips: IpBlocks::default(),
            allow_underscores_in_headers: false,
            lingering_time: Duration::from_secs(30),
            lingering_timeout: Duration::from_secs(5),
            lingering_max_size: 8 * 1024 * 1024,
            cluster_secret: None,
            status_operator_token: None,
            cluster_redis: None,
        }
    }
}

impl Settings {
    /// Every settings key, as the file writes it. Each can be overridden by `AIGATE_<KEY in
    /// upper case>`; the value is read as YAML, so lists and maps work too
    /// (`AIGATE_DECLARATIVE_CONFIG='[a.yaml, b.yaml]'`).
    pub fn keys() -> &'static [&'static str] {
        values::field_names::<Settings>()
    }

    /// Read a settings file and apply `AIGATE_*` overrides from `env`: the settings (bad values
    /// left at their defaults) and every problem found.
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> (Option<Settings>, Problems) {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, Some(path), env),
            Err(e) => (
                None,
                Problems::one(Problem::new(
                    path,
                    None,
                    format!("cannot read the settings file: {e}"),
                    "check the path given to --config",
                )),
            ),
        }
    }

    /// Parse settings text; `path` names the file in messages and anchors relative paths.
    pub fn from_yaml(
        text: &str,
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, Problems> {
        let (settings, problems) = Self::parse(text, path, env);
        match settings {
            Some(s) => problems.into_result(s),
            None => Err(problems),
        }
    }

    /// Parse as much as possible: settings (bad values left at their defaults) and every
    /// problem. `None` when the text is not a settings mapping at all.
    pub fn parse(
        text: &str,
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> (Option<Settings>, Problems) {
        let shown = path.unwrap_or(Path::new("<settings>"));
        let mut map = match values::mapping(text) {
            Ok(m) => m,
            Err((line, what, fix)) => return (None, Problems::one(Problem::new(shown, line, what, fix))),
        };
        for key in Self::keys() {
            if let Some(raw) = env(&format!("AIGATE_{}", key.to_ascii_uppercase())) {
                let value = serde_yaml::from_str::<serde_yaml::Value>(&raw)
                    .ok()
                    .filter(|v| !v.is_null())
                    .unwrap_or(serde_yaml::Value::String(raw));
                map.insert(serde_yaml::Value::String((*key).into()), value);
            }
        }
        // A null value means the default.
        map.retain(|_, v| !v.is_null());

        // Each key on its own first, so that every bad one is reported; then the good ones.
        let mut problems = Problems::default();
        let mut good = serde_yaml::Mapping::new();
        for (key, value) in map {
            let mut one = serde_yaml::Mapping::new();
            one.insert(key.clone(), value.clone());
            match serde_yaml::from_value::<Settings>(serde_yaml::Value::Mapping(one)) {
                Ok(_) => {
                    good.insert(key, value);
                }
                Err(e) => {
                    let name = key.as_str().unwrap_or("?");
                    problems.push(values::problem(shown, name, &e.to_string()));
                }
            }
        }
        let mut s = match serde_yaml::from_value::<Settings>(serde_yaml::Value::Mapping(good)) {
            Ok(s) => s,
            Err(e) => {
                problems.push(values::problem(shown, "settings", &e.to_string()));
                Settings::default()
            }
        };
        s.source = path.map(Path::to_path_buf);
        s.resolve_paths(path.and_then(|p| p.parent()).unwrap_or(Path::new("")), shown, &mut problems);
        (Some(s), problems)
    }

    /// Make relative paths relative to the settings file's directory, and check the ones that
    /// must exist.
    fn resolve_paths(&mut self, base: &Path, shown: &Path, problems: &mut Problems) {
        let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        self.declarative_config = self.declarative_config.iter().map(|p| resolve(p)).collect();
        if self.declarative_config.is_empty() {
            problems.push(Problem::new(
                shown,
                None,
                "declarative_config is not set".into(),
                "name one decK file or a list of them (merged in order), e.g. declarative_config: kong.yaml",
            ));
        }
        if let Some(ca) = &self.tls_trusted_ca {
            let ca = resolve(ca);
            if !ca.is_file() {
                problems.push(Problem::new(
                    shown,
                    None,
                    format!("tls_trusted_ca: {} is not a readable file", ca.display()),
                    "point it at a PEM file of CA certificates",
                ));
            }
            self.tls_trusted_ca = Some(ca);
        }
        if let AccessLogTarget::File(p) = &self.proxy_access_log {
            self.proxy_access_log = AccessLogTarget::File(resolve(p));
        }
        self.pid_file = resolve(&self.pid_file);
        self.upgrade_sock = resolve(&self.upgrade_sock);
    }

    /// The bounds of a lingering close.
    pub fn lingering(&self) -> Lingering {
        Lingering { time: self.lingering_time, idle: self.lingering_timeout, max_size: self.lingering_max_size }
    }

    /// The cluster store's Redis, checked; its problems as `(what, fix)`.
    pub fn cluster_endpoint(&self) -> Result<Option<RedisEndpoint>, Vec<(String, String)>> {
        let Some(record) = &self.cluster_redis else { return Ok(None) };
        let mut issues = Vec::new();
        match record.endpoint("cluster_redis", self.tls_trusted_ca.as_deref(), &mut issues) {
            Some(e) if issues.is_empty() => Ok(Some(e)),
            _ => Err(issues.into_iter().map(|i| (format!("{}: {}", i.path, i.what), i.fix)).collect()),
        }
    }

    /// Upstream timeouts for services that do not set their own.
    pub fn service_defaults(&self) -> Timeouts {
        Timeouts {
            connect: self.upstream_connect_timeout,
            read: self.upstream_read_timeout,
            write: self.upstream_write_timeout,
        }
    }
}

#[cfg(test)]
mod tests;
