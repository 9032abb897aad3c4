//! A Redis server the gateway shares state with (rate-limit counters, response ownership, MCP
//! pins): where it is ([`RedisEndpoint`]) and one multiplexed connection to it
//! ([`RedisLink`]), with a timeout on every call and a breaker that keeps a down or slow Redis
//! off the request path.
//!
//! The connection reconnects by itself (redis-rs's `ConnectionManager`). When a call fails or
//! times out, the link is marked down — logged once for the episode — and calls are refused at
//! once (callers fall back to local state) while a probe pings Redis every 250 ms; the first
//! answer marks it up again (logged once). Background work (pushing counts, writing owners)
//! runs on the stores' own runtime, a thread started on first use: after the process has
//! daemonised, and never by `aigate check`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, ConnectionInfo, FromRedisValue, IntoConnectionInfo, RedisConnectionInfo, Script};

/// How often a down Redis is pinged.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Where a Redis server is and how to talk to it. Two plugins with equal endpoints share one
/// connection.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RedisEndpoint {
    pub host: String,
    pub port: u16,
    /// ACL user (Redis 6+); `AUTH user password` when set with a password.
    pub username: Option<String>,
    /// `AUTH`; never logged or shown.
    pub password: Option<String>,
    pub database: i64,
    /// TLS, always with certificate verification (system roots plus `trusted_ca`).
    pub tls: bool,
    /// Extra CA certificates (PEM) trusted for TLS: the gateway's `tls_trusted_ca`.
    pub trusted_ca: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// The longest wait for an answer to one call.
    pub timeout: Duration,
}

impl std::fmt::Debug for RedisEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEndpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("tls", &self.tls)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisEndpoint {
    /// `host:port/db` (`rediss://` when TLS), for logs: no credentials.
    pub fn display(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://{}:{}/{}", self.host, self.port, self.database)
    }

    fn client(&self) -> Result<redis::Client, String> {
        let addr = if self.tls {
            ConnectionAddr::TcpTls { host: self.host.clone(), port: self.port, insecure: false, tls_params: None }
        } else {
            ConnectionAddr::Tcp(self.host.clone(), self.port)
        };
        let mut settings = RedisConnectionInfo::default().set_db(self.database);
        if let Some(u) = self.username.as_deref().filter(|u| !u.is_empty()) {
            settings = settings.set_username(u);
        }
        if let Some(p) = self.password.as_deref().filter(|p| !p.is_empty()) {
            settings = settings.set_password(p);
        }
        let info: ConnectionInfo = addr.into_connection_info().map_err(|e| e.to_string())?.set_redis_settings(settings);
        if !self.tls {
            return redis::Client::open(info).map_err(|e| e.to_string());
        }
        let root_cert = match &self.trusted_ca {
            Some(p) => Some(std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?),
            None => None,
        };
        redis::Client::build_with_tls(info, redis::TlsCertificates { client_tls: None, root_cert })
            .map_err(|e| e.to_string())
    }
}

/// The stores' runtime: one thread with a current-thread tokio runtime, started on first use.
pub fn runtime() -> Option<&'static tokio::runtime::Handle> {
    static HANDLE: OnceLock<Option<tokio::runtime::Handle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    log::error!("cannot start the shared-state runtime: {e}");
                    return None;
                }
            };
            let handle = rt.handle().clone();
            let started = std::thread::Builder::new()
                .name("aigate-redis".into())
                .spawn(move || rt.block_on(std::future::pending::<()>()));
            match started {
                Ok(_) => Some(handle),
                Err(e) => {
                    log::error!("cannot start the shared-state thread: {e}");
                    None
                }
            }
        })
        .as_ref()
}

/// Run `fut` on the stores' runtime, off the request path.
pub fn spawn(fut: impl Future<Output = ()> + Send + 'static) {
    if let Some(rt) = runtime() {
        rt.spawn(fut);
    }
}

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// Redis is known to be down (or slow): the call was not made.
    Down,
    /// The call failed or timed out (the link is now marked down).
    Failed(String),
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Down => write!(f, "Redis is unreachable"),
            LinkError::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// One connection to a Redis server, shared by everything that uses the same endpoint.
pub struct RedisLink {
    endpoint: RedisEndpoint,
    conn: OnceLock<Result<ConnectionManager, String>>,
    up: AtomicBool,
    probing: AtomicBool,
    /// What uses the link, for its log lines ("rate limits", "cluster store").
    purpose: &'static str,
}

impl RedisLink {
    pub fn new(endpoint: RedisEndpoint, purpose: &'static str) -> Arc<RedisLink> {
        Arc::new(RedisLink {
            endpoint,
            conn: OnceLock::new(),
            up: AtomicBool::new(true),
            probing: AtomicBool::new(false),
            purpose,
        })
    }

    pub fn endpoint(&self) -> &RedisEndpoint {
        &self.endpoint
    }

    /// Whether calls are made (false while Redis is known to be down).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn connection(&self) -> Result<ConnectionManager, String> {
        let made = self.conn.get_or_init(|| {
            let client = self.endpoint.client()?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.endpoint.connect_timeout))
                .set_response_timeout(Some(self.endpoint.timeout))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(500));
            // The manager's helper tasks start on the stores' runtime, not a request's.
            let rt = runtime().ok_or("no runtime for the Redis connection")?;
            let _entered = rt.enter();
            let manager = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| e.to_string())?;
            // Connect from the stores' runtime, so the connection's driver task lives there.
            let mut first = manager.clone();
            rt.spawn(async move {
                let _: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut first).await;
            });
            Ok(manager)
        });
        made.clone()
    }

    /// Run one call with the endpoint's timeout. While Redis is known to be down the call is
    /// not made; a failure marks it down and starts the probe.
    pub async fn call<T, F, Fut>(self: &Arc<Self>, f: F) -> Result<T, LinkError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_up() {
            return Err(LinkError::Down);
        }
        self.call_now(f).await
    }

    async fn call_now<T, F, Fut>(self: &Arc<Self>, f: F) -> Result<T, LinkError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = match self.connection() {
            Ok(c) => c,
            Err(e) => {
                self.mark_down(&e);
                return Err(LinkError::Failed(e));
            }
        };
        // The connection applies the timeout too; this bounds the whole call (a reconnect
        // included), whatever happens inside.
        match tokio::time::timeout(self.endpoint.timeout, f(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let e = describe(&e);
                self.mark_down(&e);
                Err(LinkError::Failed(e))
            }
            Err(_) => {
                let e = format!("no answer within {} ms", self.endpoint.timeout.as_millis());
                self.mark_down(&e);
                Err(LinkError::Failed(e))
            }
        }
    }

    /// Run a Lua script (EVALSHA, loading it when Redis does not know it).
    pub async fn script<T: FromRedisValue + Send + 'static>(
        self: &Arc<Self>,
        script: &'static Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<T, LinkError> {
        self.call(|mut conn| async move {
            let mut inv = script.prepare_invoke();
            for k in &keys {
                inv.key(k);
            }
            for a in &args {
                inv.arg(a);
            }
            inv.invoke_async(&mut conn).await
        })
        .await
    }

    fn mark_down(self: &Arc<Self>, error: &str) {
        if self.up.swap(false, Ordering::Relaxed) {
            log::warn!(
                "Redis {} ({}) is unreachable: {error}; deciding locally until it answers again",
                self.endpoint.display(),
                self.purpose
            );
        }
        if !self.probing.swap(true, Ordering::Relaxed) {
            let link = Arc::clone(self);
            spawn(async move { link.probe().await });
        }
    }

    /// Ping until Redis answers, then mark the link up.
    async fn probe(self: Arc<Self>) {
        loop {
            tokio::time::sleep(PROBE_INTERVAL).await;
            let pong: Result<String, LinkError> =
                self.call_now(|mut c| async move { redis::cmd("PING").query_async(&mut c).await }).await;
            if pong.is_ok() {
                self.probing.store(false, Ordering::Relaxed);
                if !self.up.swap(true, Ordering::Relaxed) {
                    log::info!("Redis {} ({}) answers again", self.endpoint.display(), self.purpose);
                }
                return;
            }
        }
    }
}

/// A Redis error for a log line: its kind and message (never a credential: Redis does not echo
/// passwords, and the endpoint's password is not part of any message).
fn describe(e: &redis::RedisError) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_shown() {
        let e = RedisEndpoint {
            host: "r.example".into(),
            port: 6380,
            username: Some("gw".into()),
            password: Some("s3cret-pass".into()),
            database: 2,
            tls: true,
            trusted_ca: None,
            connect_timeout: Duration::from_millis(100),
            timeout: Duration::from_millis(100),
        };
        assert_eq!(e.display(), "rediss://r.example:6380/2");
        assert!(!format!("{e:?}").contains("s3cret"));
    }
}
