//! The gateway settings file (Kong's `kong.conf` names where Kong has one) and its
//! `AIGATE_<NAME>` environment overrides.
//!
//! Settings are read once, validated, and turned into [`Settings`]; relative paths are
//! resolved against the directory of the settings file so `aigate run --config conf/aigate.yaml`
//! works from any working directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::core::problems::{Problem, Problems};

/// Every settings key, in the order the README documents them. Each can be overridden by
/// `AIGATE_<KEY in upper case>`; the value is read as YAML, so lists and maps work too
/// (`AIGATE_DECLARATIVE_CONFIG='[a.yaml, b.yaml]'`).
pub const KEYS: &[&str] = &[
    "proxy_listen",
    "status_listen",
    "declarative_config",
    "threads",
    "tls_trusted_ca",
    "upstream_resolve",
    "dns_refresh_interval",
    "max_request_body_size",
    "upstream_connect_timeout",
    "upstream_read_timeout",
    "upstream_write_timeout",
    "upstream_keepalive_pool_size",
    "upstream_keepalive_idle_timeout",
    "client_header_timeout",
    "client_body_timeout",
    "client_read_buffer_size",
    "max_request_header_size",
    "max_request_headers",
    "proxy_access_log",
    "log_level",
    "pid_file",
    "upgrade_sock",
    "grace_period",
    "shutdown_timeout",
    "usage_scan_limit",
    "llm_target_max_fails",
    "llm_target_fail_timeout",
    "response_ownership",
    "response_store_ttl",
    "response_store_max_entries",
];

/// Pingora's HTTP/1 parser refuses heads over this many bytes (with an empty 400).
const PARSER_MAX_HEAD: usize = 1_048_575;
/// ... and heads with more header fields than this.
const PARSER_MAX_HEADERS: usize = 256;

/// The settings file as the operator writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    proxy_listen: Option<OneOrMany>,
    status_listen: Option<String>,
    declarative_config: Option<OneOrMany>,
    threads: Option<usize>,
    tls_trusted_ca: Option<String>,
    upstream_resolve: Option<BTreeMap<String, String>>,
    dns_refresh_interval: Option<u64>,
    max_request_body_size: Option<ByteSize>,
    upstream_connect_timeout: Option<u64>,
    upstream_read_timeout: Option<u64>,
    upstream_write_timeout: Option<u64>,
    upstream_keepalive_pool_size: Option<usize>,
    upstream_keepalive_idle_timeout: Option<u64>,
    client_header_timeout: Option<u64>,
    client_body_timeout: Option<u64>,
    client_read_buffer_size: Option<ByteSize>,
    max_request_header_size: Option<ByteSize>,
    max_request_headers: Option<usize>,
    proxy_access_log: Option<String>,
    log_level: Option<String>,
    pid_file: Option<String>,
    upgrade_sock: Option<String>,
    grace_period: Option<u64>,
    shutdown_timeout: Option<u64>,
    usage_scan_limit: Option<ByteSize>,
    llm_target_max_fails: Option<u32>,
    llm_target_fail_timeout: Option<u64>,
    response_ownership: Option<bool>,
    response_store_ttl: Option<u64>,
    response_store_max_entries: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
            OneOrMany::Many(v) => v,
        }
    }
}

/// A size in bytes: a number, or a string with a `k`/`m`/`g` suffix (`8m`, `512k`), as in kong.conf.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "serde_yaml::Value")]
struct ByteSize(u64);

impl TryFrom<serde_yaml::Value> for ByteSize {
    type Error = String;
    fn try_from(v: serde_yaml::Value) -> Result<Self, String> {
        match v {
            serde_yaml::Value::Number(n) => {
                n.as_u64().map(ByteSize).ok_or_else(|| format!("expected a positive whole number of bytes, got {n}"))
            }
            serde_yaml::Value::String(s) => parse_byte_size(&s).map(ByteSize),
            other => Err(format!("expected a size such as 8m or 1048576, got {other:?}")),
        }
    }
}

fn parse_byte_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (digits, mult) = match t.as_bytes().last() {
        Some(b'k') => (&t[..t.len() - 1], 1024),
        Some(b'm') => (&t[..t.len() - 1], 1024 * 1024),
        Some(b'g') => (&t[..t.len() - 1], 1024 * 1024 * 1024),
        _ => (t.as_str(), 1),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("`{s}` is not a size; write bytes (1048576) or a number with k, m or g (8m)"))
}

/// Where the access log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Off,
    Stdout,
    File(PathBuf),
}

/// Validated settings, with defaults applied and paths made absolute.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The settings file these came from (for reload and messages).
    pub source: Option<PathBuf>,
    pub proxy_listen: Vec<SocketAddr>,
    pub status_listen: Option<SocketAddr>,
    pub declarative_config: Vec<PathBuf>,
    pub threads: usize,
    pub tls_trusted_ca: Option<PathBuf>,
    /// `host:port` → fixed address, like curl's `--resolve`.
    pub upstream_resolve: BTreeMap<String, SocketAddr>,
    pub dns_refresh_interval: Duration,
    pub max_request_body_size: u64,
    pub upstream_connect_timeout: Duration,
    pub upstream_read_timeout: Duration,
    pub upstream_write_timeout: Duration,
    pub upstream_keepalive_pool_size: usize,
    pub upstream_keepalive_idle_timeout: Duration,
    /// Longest silence while a client sends a request head, and between its keep-alive
    /// requests (Pingora reads both under one timer, in whole seconds).
    pub client_header_timeout: Duration,
    pub client_body_timeout: Duration,
    /// Read buffer of each client connection. Pingora's default is 64 KiB, which at 1,000
    /// idle keep-alive connections is 64 MB of RSS; reads larger than the buffer (request
    /// bodies) bypass it, so a smaller one costs no extra syscalls for small requests.
    pub client_read_buffer_size: usize,
    /// Largest request head (request line and header fields) answered with anything but 431.
    /// Pingora's own parser caps a head at 1 MiB and 256 fields, answering an empty 400 above.
    pub max_request_header_size: usize,
    /// Most header fields a request may carry before it gets 431.
    pub max_request_headers: usize,
    pub proxy_access_log: AccessLogTarget,
    pub log_level: String,
    pub pid_file: PathBuf,
    pub upgrade_sock: PathBuf,
    pub grace_period: Duration,
    pub shutdown_timeout: Duration,
    pub usage_scan_limit: usize,
    /// Consecutive failures that take an LLM target out of rotation (nginx's max_fails).
    pub llm_target_max_fails: u32,
    /// How long such a target stays out before it is tried again (nginx's fail_timeout).
    pub llm_target_fail_timeout: Duration,
    /// Responses-API objects belong to the consumer that created them.
    pub response_ownership: bool,
    pub response_store_ttl: Duration,
    pub response_store_max_entries: usize,
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
            upstream_resolve: BTreeMap::new(),
            dns_refresh_interval: Duration::from_secs(30),
            max_request_body_size: 8 * 1024 * 1024,
            upstream_connect_timeout: Duration::from_millis(60_000),
            upstream_read_timeout: Duration::from_millis(60_000),
            upstream_write_timeout: Duration::from_millis(60_000),
            upstream_keepalive_pool_size: 512,
            upstream_keepalive_idle_timeout: Duration::from_secs(60),
            client_header_timeout: Duration::from_secs(60),
            client_body_timeout: Duration::from_secs(60),
            client_read_buffer_size: 16 * 1024,
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
        }
    }
}

impl Settings {
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
        match Self::parse_inner(text, path, env) {
            Ok(v) => v,
            Err(p) => (None, p),
        }
    }

    fn parse_inner(
        text: &str,
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Option<Settings>, Problems), Problems> {
        let shown = path.unwrap_or(Path::new("<settings>"));
        let mut problems = Problems::default();
        let mut map: serde_yaml::Mapping = if text.trim().is_empty() {
            serde_yaml::Mapping::new()
        } else {
            match serde_yaml::from_str::<serde_yaml::Value>(text) {
                Ok(serde_yaml::Value::Mapping(m)) => m,
                Ok(serde_yaml::Value::Null) => serde_yaml::Mapping::new(),
                Ok(_) => {
                    return Err(Problems::one(Problem::new(
                        shown,
                        None,
                        "the settings file must be a YAML mapping of `key: value`".into(),
                        "see the configuration reference in README.md",
                    )))
                }
                Err(e) => {
                    return Err(Problems::one(Problem::new(
                        shown,
                        e.location().map(|l| l.line()),
                        format!("invalid YAML: {e}"),
                        "fix the YAML syntax",
                    )))
                }
            }
        };
        for key in KEYS {
            let var = format!("AIGATE_{}", key.to_ascii_uppercase());
            if let Some(raw) = env(&var) {
                let value = serde_yaml::from_str::<serde_yaml::Value>(&raw)
                    .ok()
                    .filter(|v| !matches!(v, serde_yaml::Value::Null))
                    .unwrap_or(serde_yaml::Value::String(raw));
                map.insert(serde_yaml::Value::String((*key).into()), value);
            }
        }
        let file: SettingsFile = match serde_yaml::from_value(serde_yaml::Value::Mapping(map)) {
            Ok(f) => f,
            Err(e) => {
                let line = e.location().map(|l| l.line());
                return Err(Problems::one(Problem::new(
                    shown,
                    line,
                    format!("{e}"),
                    "see the configuration reference in README.md for the accepted keys and values",
                )));
            }
        };

        let base = path.and_then(|p| p.parent()).map(Path::to_path_buf).unwrap_or_default();
        let resolve_path = |p: &str| -> PathBuf {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                base.join(p)
            }
        };

        let mut s = Settings { source: path.map(Path::to_path_buf), ..Settings::default() };
        if let Some(listen) = file.proxy_listen {
            s.proxy_listen.clear();
            for l in listen.into_vec() {
                match parse_listen(&l) {
                    Ok(a) => s.proxy_listen.push(a),
                    Err(msg) => problems.push(Problem::new(
                        shown,
                        None,
                        format!("proxy_listen: {msg}"),
                        "write host:port, for example 0.0.0.0:8000",
                    )),
                }
            }
            if s.proxy_listen.is_empty() && problems.is_empty() {
                problems.push(Problem::new(shown, None, "proxy_listen is empty".into(), "give at least one host:port"));
            }
        }
        if let Some(l) = file.status_listen {
            if l.trim() == "off" {
                s.status_listen = None;
            } else {
                match parse_listen(&l) {
                    Ok(a) => s.status_listen = Some(a),
                    Err(msg) => problems.push(Problem::new(
                        shown,
                        None,
                        format!("status_listen: {msg}"),
                        "write host:port (for example 127.0.0.1:8100) or off",
                    )),
                }
            }
        }
        if let Some(dc) = file.declarative_config {
            s.declarative_config = dc.into_vec().iter().map(|p| resolve_path(p)).collect();
        }
        if s.declarative_config.is_empty() {
            problems.push(Problem::new(
                shown,
                None,
                "declarative_config is not set".into(),
                "name one decK file or a list of them (merged in order), e.g. declarative_config: kong.yaml",
            ));
        }
        if let Some(t) = file.threads {
            if t == 0 || t > 1024 {
                problems.push(Problem::new(
                    shown,
                    None,
                    format!("threads: {t} is out of range"),
                    "use a number from 1 to 1024, or leave it unset for one per CPU",
                ));
            } else {
                s.threads = t;
            }
        }
        if let Some(ca) = file.tls_trusted_ca {
            let p = resolve_path(&ca);
            if !p.is_file() {
                problems.push(Problem::new(
                    shown,
                    None,
                    format!("tls_trusted_ca: {} is not a readable file", p.display()),
                    "point it at a PEM file of CA certificates",
                ));
            }
            s.tls_trusted_ca = Some(p);
        }
        if let Some(map) = file.upstream_resolve {
            for (k, v) in map {
                let key_ok = k.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                if !key_ok {
                    problems.push(Problem::new(
                        shown,
                        None,
                        format!("upstream_resolve: key `{k}` is not host:port"),
                        "write it as in curl --resolve, e.g. \"api.openai.com:443\": \"127.0.0.1:9443\"",
                    ));
                    continue;
                }
                match v.parse::<SocketAddr>() {
                    Ok(a) => {
                        s.upstream_resolve.insert(k.to_ascii_lowercase(), a);
                    }
                    Err(_) => problems.push(Problem::new(
                        shown,
                        None,
                        format!("upstream_resolve: `{v}` (for {k}) is not an ip:port address"),
                        "give a literal address such as 127.0.0.1:9443 or [::1]:9443",
                    )),
                }
            }
        }
        if let Some(secs) = file.dns_refresh_interval {
            s.dns_refresh_interval = Duration::from_secs(secs.max(1));
        }
        if let Some(ByteSize(n)) = file.max_request_body_size {
            if n == 0 {
                problems.push(Problem::new(
                    shown,
                    None,
                    "max_request_body_size must be above 0".into(),
                    "use a size such as 8m",
                ));
            } else {
                s.max_request_body_size = n;
            }
        }
        let ms = |v: Option<u64>, d: Duration| v.map(Duration::from_millis).unwrap_or(d);
        s.upstream_connect_timeout = ms(file.upstream_connect_timeout, s.upstream_connect_timeout);
        s.upstream_read_timeout = ms(file.upstream_read_timeout, s.upstream_read_timeout);
        s.upstream_write_timeout = ms(file.upstream_write_timeout, s.upstream_write_timeout);
        s.client_body_timeout = ms(file.client_body_timeout, s.client_body_timeout);
        match file.client_header_timeout {
            Some(0) => problems.push(Problem::new(
                shown,
                None,
                "client_header_timeout must be above 0".into(),
                "use milliseconds such as 60000 (rounded up to whole seconds)",
            )),
            Some(n) => s.client_header_timeout = Duration::from_secs(n.div_ceil(1000)),
            None => {}
        }
        if let Some(ByteSize(n)) = file.client_read_buffer_size {
            match usize::try_from(n) {
                Ok(n) if n <= 1024 * 1024 => s.client_read_buffer_size = n,
                _ => problems.push(Problem::new(
                    shown,
                    None,
                    "client_read_buffer_size must be at most 1m".into(),
                    "use a size such as 16k (0 reads straight from the socket)",
                )),
            }
        }
        if let Some(ByteSize(n)) = file.max_request_header_size {
            match usize::try_from(n) {
                Ok(n) if (1024..=PARSER_MAX_HEAD).contains(&n) => s.max_request_header_size = n,
                _ => problems.push(Problem::new(
                    shown,
                    None,
                    "max_request_header_size must be between 1k and 1023k".into(),
                    "use a size such as 32k (larger heads are refused by the HTTP parser itself)",
                )),
            }
        }
        if let Some(n) = file.max_request_headers {
            if (1..=PARSER_MAX_HEADERS).contains(&n) {
                s.max_request_headers = n;
            } else {
                problems.push(Problem::new(
                    shown,
                    None,
                    format!("max_request_headers must be between 1 and {PARSER_MAX_HEADERS}"),
                    "use a count such as 100 (more are refused by the HTTP parser itself)",
                ));
            }
        }
        if let Some(n) = file.upstream_keepalive_pool_size {
            s.upstream_keepalive_pool_size = n;
        }
        if let Some(secs) = file.upstream_keepalive_idle_timeout {
            s.upstream_keepalive_idle_timeout = Duration::from_secs(secs);
        }
        if let Some(log) = file.proxy_access_log {
            s.proxy_access_log = match log.trim() {
                "off" | "" => AccessLogTarget::Off,
                "stdout" | "-" | "/dev/stdout" => AccessLogTarget::Stdout,
                p => AccessLogTarget::File(resolve_path(p)),
            };
        }
        if let Some(level) = file.log_level {
            let l = level.trim().to_ascii_lowercase();
            const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace", "off"];
            if LEVELS.contains(&l.as_str()) {
                s.log_level = l;
            } else {
                problems.push(Problem::new(
                    shown,
                    None,
                    format!("log_level: `{level}` is not a level"),
                    "use one of error, warn, info, debug, trace, off",
                ));
            }
        }
        if let Some(p) = file.pid_file {
            s.pid_file = resolve_path(&p);
        }
        if let Some(p) = file.upgrade_sock {
            s.upgrade_sock = resolve_path(&p);
        }
        if let Some(g) = file.grace_period {
            s.grace_period = Duration::from_secs(g);
        }
        if let Some(g) = file.shutdown_timeout {
            s.shutdown_timeout = Duration::from_secs(g);
        }
        if let Some(ByteSize(n)) = file.usage_scan_limit {
            s.usage_scan_limit = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = file.llm_target_max_fails {
            if n == 0 {
                problems.push(Problem::new(
                    shown,
                    None,
                    "llm_target_max_fails must be at least 1".into(),
                    "use a small number such as 3",
                ));
            } else {
                s.llm_target_max_fails = n;
            }
        }
        if let Some(ms) = file.llm_target_fail_timeout {
            s.llm_target_fail_timeout = Duration::from_millis(ms);
        }
        if let Some(b) = file.response_ownership {
            s.response_ownership = b;
        }
        if let Some(secs) = file.response_store_ttl {
            s.response_store_ttl = Duration::from_secs(secs.max(1));
        }
        if let Some(n) = file.response_store_max_entries {
            s.response_store_max_entries = n.max(1);
        }
        Ok((Some(s), problems))
    }

    /// Upstream timeouts for services that do not set their own.
    pub fn service_defaults(&self) -> crate::core::Timeouts {
        crate::core::Timeouts {
            connect: self.upstream_connect_timeout,
            read: self.upstream_read_timeout,
            write: self.upstream_write_timeout,
        }
    }

    /// The fixed address for `host:port`, if `upstream_resolve` names one.
    pub fn resolve_override(&self, host: &str, port: u16) -> Option<SocketAddr> {
        if self.upstream_resolve.is_empty() {
            return None;
        }
        self.upstream_resolve.get(&format!("{}:{port}", host.to_ascii_lowercase())).copied()
    }
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    // kong.conf allows flags after the address ("0.0.0.0:8000 reuseport"); none are supported.
    let mut parts = s.split_whitespace();
    let addr = parts.next().unwrap_or("");
    if let Some(flag) = parts.next() {
        return Err(format!("`{s}`: the listen flag `{flag}` is not supported"));
    }
    addr.parse::<SocketAddr>().map_err(|_| format!("`{addr}` is not an ip:port address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_follow_kong() {
        let s = Settings::from_yaml("declarative_config: kong.yaml\n", None, &no_env).unwrap();
        assert_eq!(s.proxy_listen, vec!["0.0.0.0:8000".parse().unwrap()]);
        assert_eq!(s.status_listen, Some("127.0.0.1:8100".parse().unwrap()));
        assert_eq!(s.max_request_body_size, 8 * 1024 * 1024);
        assert_eq!(s.declarative_config, vec![PathBuf::from("kong.yaml")]);
    }

    #[test]
    fn relative_paths_follow_the_settings_file() {
        let s = Settings::from_yaml(
            "declarative_config: [a.yaml, /abs/b.yaml]\n",
            Some(Path::new("/etc/aigate/aigate.yaml")),
            &no_env,
        )
        .unwrap();
        assert_eq!(s.declarative_config, vec![PathBuf::from("/etc/aigate/a.yaml"), PathBuf::from("/abs/b.yaml")]);
    }

    #[test]
    fn env_overrides_win_and_parse_as_yaml() {
        let env = |k: &str| match k {
            "AIGATE_PROXY_LISTEN" => Some("127.0.0.1:9000".to_string()),
            "AIGATE_UPSTREAM_RESOLVE" => Some("{\"api.openai.com:443\": \"127.0.0.1:9443\"}".to_string()),
            "AIGATE_MAX_REQUEST_BODY_SIZE" => Some("1m".to_string()),
            _ => None,
        };
        let s = Settings::from_yaml("declarative_config: k.yaml\nproxy_listen: 0.0.0.0:1\n", None, &env).unwrap();
        assert_eq!(s.proxy_listen, vec!["127.0.0.1:9000".parse().unwrap()]);
        assert_eq!(s.resolve_override("API.openai.com", 443), Some("127.0.0.1:9443".parse().unwrap()));
        assert_eq!(s.max_request_body_size, 1024 * 1024);
    }

    #[test]
    fn client_read_buffer_is_small_by_default_and_bounded() {
        let s = Settings::from_yaml("declarative_config: k.yaml\n", None, &no_env).unwrap();
        assert_eq!(s.client_read_buffer_size, 16 * 1024);
        let s =
            Settings::from_yaml("declarative_config: k.yaml\nclient_read_buffer_size: 64k\n", None, &no_env).unwrap();
        assert_eq!(s.client_read_buffer_size, 64 * 1024);
        let err = Settings::from_yaml("declarative_config: k.yaml\nclient_read_buffer_size: 2m\n", None, &no_env)
            .unwrap_err();
        assert!(err.to_string().contains("client_read_buffer_size"), "{err}");
    }

    #[test]
    fn client_header_timeout_is_whole_seconds_rounded_up() {
        let s = Settings::from_yaml("declarative_config: k.yaml\n", None, &no_env).unwrap();
        assert_eq!(s.client_header_timeout, Duration::from_secs(60));
        let s =
            Settings::from_yaml("declarative_config: k.yaml\nclient_header_timeout: 1500\n", None, &no_env).unwrap();
        assert_eq!(s.client_header_timeout, Duration::from_secs(2));
        let err =
            Settings::from_yaml("declarative_config: k.yaml\nclient_header_timeout: 0\n", None, &no_env).unwrap_err();
        assert!(err.to_string().contains("client_header_timeout"), "{err}");
    }

    #[test]
    fn header_limits_default_below_the_parser_and_stay_there() {
        let s = Settings::from_yaml("declarative_config: k.yaml\n", None, &no_env).unwrap();
        assert_eq!((s.max_request_header_size, s.max_request_headers), (32 * 1024, 100));
        let s = Settings::from_yaml(
            "declarative_config: k.yaml\nmax_request_header_size: 64k\nmax_request_headers: 200\n",
            None,
            &no_env,
        )
        .unwrap();
        assert_eq!((s.max_request_header_size, s.max_request_headers), (64 * 1024, 200));
        for (bad, key) in [
            ("max_request_header_size: 1m", "max_request_header_size"),
            ("max_request_header_size: 10", "max_request_header_size"),
            ("max_request_headers: 257", "max_request_headers"),
            ("max_request_headers: 0", "max_request_headers"),
        ] {
            let err = Settings::from_yaml(&format!("declarative_config: k.yaml\n{bad}\n"), None, &no_env).unwrap_err();
            assert!(err.to_string().contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_all_reported() {
        let err = Settings::from_yaml("declarative_config: k.yaml\nproxy_lisen: x\n", None, &no_env).unwrap_err();
        assert!(err.to_string().contains("proxy_lisen"), "{err}");

        let err = Settings::from_yaml("proxy_listen: nowhere\nlog_level: loud\n", None, &no_env).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("proxy_listen"), "{text}");
        assert!(text.contains("log_level"), "{text}");
        assert!(text.contains("declarative_config"), "{text}");
    }

    #[test]
    fn every_documented_key_is_accepted() {
        for key in KEYS {
            let text = format!("{key}: null\n");
            let parsed: Result<SettingsFile, _> = serde_yaml::from_str(&text);
            assert!(parsed.is_ok(), "{key} is listed in KEYS but not accepted: {parsed:?}");
        }
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("8m").unwrap(), 8 << 20);
        assert_eq!(parse_byte_size("512K").unwrap(), 512 << 10);
        assert_eq!(parse_byte_size("100").unwrap(), 100);
        assert!(parse_byte_size("lots").is_err());
    }
}
