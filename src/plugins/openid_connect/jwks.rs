//! JSON Web Key Sets for openid-connect: parsing (RFC 7517/7518), and caches that fetch them
//! off the request path.
//!
//! A [`JwksCache`] serves one source: an issuer's discovery document (whose `jwks_uri` is then
//! fetched) or a JWKS URL. The request path reads the current keys through an `ArcSwap`,
//! without locks or awaits. Keys are refreshed by the gateway's background task
//! ([`run_refresher`]) and, when a token names a `kid` no key has, on demand — at most once per
//! cache per `rediscovery_lifetime`, so random `kid`s cannot make the gateway hammer the IdP.
//! A failed refresh keeps the keys in use.
//!
//! Keys come only from where the configuration says: redirects are never followed (a 3xx is a
//! failed fetch, as in Kong), every URL — the discovery document, its `jwks_uri`,
//! `extra_jwks_uris` — must be https unless its host is named in `oidc_insecure_http_hosts`
//! (for tests), and a discovery document is trusted only when its `issuer` is the issuer it
//! was fetched for (RFC 8414 §3.3, OpenID Connect Discovery §4.3).
//!
//! Keys are decoded and checked once per fetch by `jose::jwk`, into the forms ring verifies with.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde_json::Value;

pub use crate::jose::jwk::{parse_jwks, Jwk, KeyKind, ParsedJwks, MAX_KEYS};

/// Discovery documents and key sets larger than this are refused.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Connect and whole-request timeouts of the IdP client.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// A sensible period for [`run_refresher`].
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);

/// The default minimum time between two on-demand refreshes of one cache (Kong's
/// `rediscovery_lifetime`).
pub const DEFAULT_ON_DEMAND_INTERVAL: Duration = Duration::from_secs(30);

/// The suffix that turns an issuer into its discovery URL.
pub const WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// The IdP client: the system's trusted roots plus the CAs of `extra_ca` (the gateway's
/// `tls_trusted_ca`), short timeouts, no redirects (a redirect could lead anywhere, plain http
/// included). Built once and shared by every cache.
pub fn http_client(extra_ca: Option<&Path>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(HTTP_TIMEOUT)
        .timeout(HTTP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("aigate/", env!("CARGO_PKG_VERSION")))
        .tls_built_in_root_certs(false);
    let mut roots = 0usize;
    match pingora_core::tls::load_native_certs() {
        Ok(certs) => {
            for cert in certs {
                // A system certificate reqwest cannot read is skipped, as rustls would.
                if let Ok(c) = reqwest::Certificate::from_der(cert.as_ref()) {
                    builder = builder.add_root_certificate(c);
                    roots += 1;
                }
            }
        }
        Err(e) => log::warn!("openid-connect: system CA certificates could not be loaded ({e})"),
    }
    if let Some(path) = extra_ca {
        crate::upstream::trust::check_ca_file(path)?;
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
        for c in certs {
            builder = builder.add_root_certificate(c);
            roots += 1;
        }
    }
    if roots == 0 {
        log::warn!("openid-connect: no trusted CA certificates; using the built-in Mozilla roots");
        builder = builder.tls_built_in_root_certs(true);
    }
    builder.build().map_err(|e| format!("building the openid-connect HTTP client: {e}"))
}

/// Whether keys may be fetched from `url`: an absolute https URL, or http to a host named in
/// `http_hosts` (the `oidc_insecure_http_hosts` setting, for tests). Returns the URL's host.
pub fn check_idp_url(url: &str, http_hosts: &[String]) -> Result<String, String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(|| format!("`{url}` has no host"))?;
    match uri.scheme_str() {
        Some("https") => Ok(host.to_string()),
        Some("http") if http_hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) => Ok(host.to_string()),
        Some("http") => Err(format!(
            "`{url}` is plain http: keys fetched that way can be replaced by anyone on the path \
             (use https; the setting oidc_insecure_http_hosts allows named hosts, for tests only)"
        )),
        _ => Err(format!("`{url}` is not an https URL")),
    }
}

/// Whether a discovery document fetched from `url` (`<issuer>/.well-known/openid-configuration`)
/// may be trusted with `issuer`: it must be `expected` exactly (RFC 8414 §3.3); without one
/// (the configuration named the discovery URL, not the issuer), the issuer the URL was made
/// from, but for the trailing `/` that making the URL removes (OpenID Connect Discovery §4).
fn issuer_matches(url: &str, expected: Option<&str>, issuer: &str) -> bool {
    match expected {
        Some(expected) => issuer == expected,
        None => {
            let base = url.strip_suffix(WELL_KNOWN).unwrap_or(url);
            issuer == base || issuer.strip_suffix('/') == Some(base)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Caches

/// Where a cache's keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JwksSource {
    /// An OpenID Connect discovery document URL; its `jwks_uri` holds the keys. `issuer`: the
    /// issuer the document must name exactly, when the configuration named it (rather than
    /// the discovery URL).
    Discovery { url: String, issuer: Option<String> },
    /// A JWKS URL.
    Jwks(String),
}

impl JwksSource {
    pub fn url(&self) -> &str {
        match self {
            JwksSource::Discovery { url, .. } | JwksSource::Jwks(url) => url,
        }
    }
}

/// The keys of one source, as of the last successful refresh.
#[derive(Debug, Default)]
pub struct KeySet {
    pub keys: Vec<Jwk>,
    /// The discovery document's `issuer`, when the source is a discovery document.
    pub issuer: Option<String>,
    /// The `jwks_uri` the keys came from.
    pub jwks_uri: Option<String>,
}

/// The keys of one source, refreshed off the request path.
pub struct JwksCache {
    source: JwksSource,
    client: reqwest::Client,
    /// Hosts keys may be fetched from over plain http (`oidc_insecure_http_hosts`).
    http_hosts: Arc<[String]>,
    /// Refreshes that succeeded, and that failed (the keys in use were kept).
    successes: AtomicU64,
    failures: AtomicU64,
    current: ArcSwap<KeySet>,
    /// One refresh at a time.
    refresh_lock: tokio::sync::Mutex<()>,
    in_flight: AtomicBool,
    /// Counts finished refresh attempts (successful or not); watched by requests waiting for
    /// an on-demand refresh.
    generation: tokio::sync::watch::Sender<u64>,
    /// When the last on-demand refresh started.
    last_on_demand: Mutex<Option<Instant>>,
    /// Milliseconds between two on-demand refreshes.
    on_demand_interval_ms: AtomicU64,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("source", &self.source)
            .field("keys", &self.current.load().keys.len())
            .finish()
    }
}

/// Resets `in_flight` and announces a finished attempt, even if the refresh is cancelled.
struct InFlight<'a>(&'a JwksCache);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.store(false, Ordering::Release);
        self.0.generation.send_modify(|g| *g = g.wrapping_add(1));
    }
}

impl JwksCache {
    pub fn new(source: JwksSource, client: reqwest::Client) -> JwksCache {
        JwksCache {
            source,
            client,
            http_hosts: Arc::from(Vec::new()),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            current: ArcSwap::from_pointee(KeySet::default()),
            refresh_lock: tokio::sync::Mutex::new(()),
            in_flight: AtomicBool::new(false),
            generation: tokio::sync::watch::channel(0).0,
            last_on_demand: Mutex::new(None),
            on_demand_interval_ms: AtomicU64::new(DEFAULT_ON_DEMAND_INTERVAL.as_millis() as u64),
        }
    }

    /// Allow plain http to these hosts (`oidc_insecure_http_hosts`, for tests).
    pub fn allowing_http(mut self, hosts: Arc<[String]>) -> JwksCache {
        self.http_hosts = hosts;
        self
    }

    pub fn source(&self) -> &JwksSource {
        &self.source
    }

    /// How many refreshes succeeded, and failed, since the cache was made.
    pub fn refreshes(&self) -> (u64, u64) {
        (self.successes.load(Ordering::Relaxed), self.failures.load(Ordering::Relaxed))
    }

    /// The current keys (lock-free).
    pub fn keys(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.current.load()
    }

    /// Lower the minimum time between two on-demand refreshes (a cache shared by several
    /// plugins uses the smallest of their `rediscovery_lifetime`s).
    pub fn limit_on_demand_interval(&self, interval: Duration) {
        let ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        self.on_demand_interval_ms.fetch_min(ms, Ordering::Relaxed);
    }

    pub fn on_demand_interval(&self) -> Duration {
        Duration::from_millis(self.on_demand_interval_ms.load(Ordering::Relaxed))
    }

    /// Fetch the keys now. On success the new set replaces the old one and its size is
    /// returned; on failure the old keys stay and the reason is logged (warn) and returned.
    pub async fn refresh(&self) -> Result<usize, String> {
        let _one_at_a_time = self.refresh_lock.lock().await;
        self.in_flight.store(true, Ordering::Release);
        let _done = InFlight(self);
        let previous = self.current.load_full();
        match self.fetch(&previous).await {
            Ok(set) => {
                let n = set.keys.len();
                self.current.store(Arc::new(set));
                self.successes.fetch_add(1, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "openid-connect: refreshing keys from {} failed: {e}; keeping the {} key(s) in use",
                    self.source.url(),
                    previous.keys.len()
                );
                Err(e)
            }
        }
    }

    /// A token named a `kid` no key has: start a refresh, unless this cache did so on demand
    /// less than its interval ago (then `None`). A refresh already running is joined instead.
    /// The refresh runs in its own task, so it completes even if the request stops waiting.
    pub fn refresh_for_unknown_kid(self: &Arc<Self>) -> Option<RefreshWait> {
        let mut rx = self.generation.subscribe();
        let seen = *rx.borrow_and_update();
        if !self.in_flight.load(Ordering::Acquire) {
            let runtime = tokio::runtime::Handle::try_current().ok()?;
            if !self.take_on_demand_slot(Instant::now()) {
                return None;
            }
            let me = Arc::clone(self);
            runtime.spawn(async move {
                let _ = me.refresh().await;
            });
        }
        Some(RefreshWait { rx, seen })
    }

    fn take_on_demand_slot(&self, now: Instant) -> bool {
        let mut last = match self.last_on_demand.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let allowed = match *last {
            None => true,
            Some(t) => now.saturating_duration_since(t) >= self.on_demand_interval(),
        };
        if allowed {
            *last = Some(now);
        }
        allowed
    }

    async fn fetch(&self, previous: &KeySet) -> Result<KeySet, String> {
        let (jwks_uri, issuer) = match &self.source {
            JwksSource::Jwks(url) => {
                check_idp_url(url, &self.http_hosts)?;
                (url.clone(), None)
            }
            JwksSource::Discovery { url, issuer } => match self.discover(url, issuer.as_deref()).await {
                Ok(found) => found,
                // The IdP's discovery is down but its keys may not be: use the last jwks_uri.
                Err(e) => match &previous.jwks_uri {
                    Some(uri) => {
                        log::warn!("openid-connect: discovery at {url} failed: {e}; using the known jwks_uri");
                        (uri.clone(), previous.issuer.clone())
                    }
                    None => return Err(format!("discovery: {e}")),
                },
            },
        };
        let body = self.get(&jwks_uri).await?;
        let parsed = parse_jwks(&body).map_err(|e| format!("{jwks_uri}: {e}"))?;
        if !parsed.ignored.is_empty() {
            log::info!(
                "openid-connect: {jwks_uri}: ignored {} key(s): {}",
                parsed.ignored.len(),
                parsed.ignored.join("; ")
            );
        }
        Ok(KeySet { keys: parsed.keys, issuer, jwks_uri: Some(jwks_uri) })
    }

    /// The discovery document's `jwks_uri` and `issuer`, once the document is trusted: its
    /// issuer is the one it was fetched for, and its `jwks_uri` is https.
    async fn discover(&self, url: &str, expected: Option<&str>) -> Result<(String, Option<String>), String> {
        check_idp_url(url, &self.http_hosts)?;
        let body = self.get(url).await?;
        let doc: Value = serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON ({e})"))?;
        let issuer = doc.get("issuer").and_then(Value::as_str).ok_or_else(|| format!("{url}: no issuer"))?;
        if !issuer_matches(url, expected, issuer) {
            let wanted = expected.map_or_else(|| "the issuer it was fetched for".to_string(), |e| format!("{e:?}"));
            return Err(format!("{url}: the document names issuer {issuer:?}, not {wanted}; not trusted"));
        }
        let jwks_uri = doc.get("jwks_uri").and_then(Value::as_str).ok_or_else(|| format!("{url}: no jwks_uri"))?;
        check_idp_url(jwks_uri, &self.http_hosts).map_err(|e| format!("{url}: jwks_uri {e}"))?;
        Ok((jwks_uri.to_string(), Some(issuer.to_string())))
    }

    /// GET a JSON document: 200 only (a redirect is not followed), at most
    /// [`MAX_DOCUMENT_BYTES`].
    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut resp = self
            .client
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if resp.status().is_redirection() {
            let to = resp.headers().get(http::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("");
            let to: String = to.chars().take(200).collect();
            return Err(format!(
                "{url}: HTTP {} redirect to {to:?} not followed (keys are fetched only from the configured URLs)",
                resp.status().as_u16()
            ));
        }
        if resp.status() != reqwest::StatusCode::OK {
            return Err(format!("{url}: HTTP {}", resp.status().as_u16()));
        }
        if resp.content_length().is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64) {
            return Err(format!("{url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("{url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// A refresh a request may wait for (bound the wait with a timeout).
pub struct RefreshWait {
    rx: tokio::sync::watch::Receiver<u64>,
    seen: u64,
}

impl RefreshWait {
    /// Resolves once the refresh has finished (successfully or not).
    pub async fn finished(self) {
        let RefreshWait { mut rx, seen } = self;
        let _ = rx.wait_for(|g| *g != seen).await;
    }
}

/// The caches of the process, one per source, shared by every plugin instance naming it and
/// kept across configuration loads, so a reload neither forgets keys nor fetches them again.
/// The HTTP client is built (with the gateway's `tls_trusted_ca`) when the first cache is.
pub struct JwksRegistry {
    extra_ca: Option<PathBuf>,
    /// Hosts identity providers may be reached at over plain http (`oidc_insecure_http_hosts`).
    http_hosts: Arc<[String]>,
    inner: Mutex<Registered>,
}

#[derive(Default)]
struct Registered {
    client: Option<reqwest::Client>,
    caches: HashMap<JwksSource, Arc<JwksCache>>,
    order: Vec<Arc<JwksCache>>,
    /// Counts configuration loads.
    load: u64,
    /// The load that last asked for each source, and whether it created the cache.
    claimed: HashMap<JwksSource, (u64, bool)>,
    /// The on-demand intervals the latest load's plugins ask for, applied to caches the
    /// running configuration shares only once that load is in service ([`JwksRegistry::commit`]).
    pending: HashMap<JwksSource, Duration>,
}

impl JwksRegistry {
    /// `http_hosts`: hosts whose keys may be fetched over plain http (for tests).
    pub fn new(extra_ca: Option<PathBuf>, http_hosts: Vec<String>) -> JwksRegistry {
        JwksRegistry { extra_ca, http_hosts: Arc::from(http_hosts), inner: Mutex::new(Registered::default()) }
    }

    /// The hosts keys may be fetched from over plain http.
    pub fn http_hosts(&self) -> &[String] {
        &self.http_hosts
    }

    fn registered(&self) -> std::sync::MutexGuard<'_, Registered> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A configuration load starts: the caches it asks for are its own ([`claimed`](Self::claimed)).
    pub fn begin_load(&self) {
        let mut r = self.registered();
        r.load += 1;
        r.pending.clear();
    }

    /// The cache of `source` for a plugin that refreshes it on demand at most once per
    /// `on_demand_interval` (a cache shared by several plugins uses the smallest). Created on
    /// first use; an existing cache keeps its keys.
    pub fn cache(&self, source: JwksSource, on_demand_interval: Duration) -> Result<Arc<JwksCache>, String> {
        let mut r = self.registered();
        let load = r.load;
        let pending = r.pending.get(&source).map_or(on_demand_interval, |p| (*p).min(on_demand_interval));
        r.pending.insert(source.clone(), pending);
        if let Some(c) = r.caches.get(&source).cloned() {
            let created_now = match r.claimed.get(&source) {
                Some((l, created)) => *l == load && *created,
                None => false,
            };
            if created_now {
                // Not serving yet: this load's plugins set its interval directly.
                c.limit_on_demand_interval(on_demand_interval);
            } else {
                r.claimed.insert(source, (load, false));
            }
            return Ok(c);
        }
        let client = match &r.client {
            Some(c) => c.clone(),
            None => {
                let c = http_client(self.extra_ca.as_deref())
                    .map_err(|e| format!("cannot build the HTTP client for identity providers: {e}"))?;
                r.client = Some(c.clone());
                c
            }
        };
        let cache = Arc::new(JwksCache::new(source.clone(), client).allowing_http(Arc::clone(&self.http_hosts)));
        cache.limit_on_demand_interval(on_demand_interval);
        r.claimed.insert(source.clone(), (load, true));
        r.caches.insert(source, Arc::clone(&cache));
        r.order.push(Arc::clone(&cache));
        Ok(cache)
    }

    /// Every cache, in creation order.
    pub fn all(&self) -> Vec<Arc<JwksCache>> {
        self.registered().order.clone()
    }

    /// The caches the latest load asked for, in creation order: its configuration's, for
    /// [`run_refresher`].
    pub fn claimed(&self) -> Vec<Arc<JwksCache>> {
        let r = self.registered();
        r.order.iter().filter(|c| r.claimed.get(c.source()).is_some_and(|(l, _)| *l == r.load)).cloned().collect()
    }

    /// The latest load is in service: its plugins' on-demand intervals apply to the caches it
    /// shares with the configuration before it, and caches no plugin names any more go.
    pub fn commit(&self) {
        let mut r = self.registered();
        let load = r.load;
        let pending = std::mem::take(&mut r.pending);
        for (source, interval) in &pending {
            if let Some(c) = r.caches.get(source) {
                c.on_demand_interval_ms
                    .store(u64::try_from(interval.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
            }
        }
        r.pending = pending;
        r.claimed.retain(|_, (l, _)| *l == load);
        let Registered { caches, order, claimed, .. } = &mut *r;
        caches.retain(|s, _| claimed.contains_key(s));
        order.retain(|c| claimed.contains_key(c.source()));
    }
}

/// `aigate_oidc_key_refreshes_total{url, result}`: the refreshes of every cache the registry
/// holds, read from the caches' counters when metrics are scraped (the `url` values are
/// configured issuers and key URLs, so bounded).
pub struct RefreshMetrics {
    registry: Arc<JwksRegistry>,
    desc: prometheus::core::Desc,
}

const REFRESH_METRIC: &str = "aigate_oidc_key_refreshes_total";
const REFRESH_HELP: &str =
    "openid-connect key set refreshes, by discovery or JWKS URL and result (a failed one keeps the keys in use).";

impl RefreshMetrics {
    pub fn new(registry: Arc<JwksRegistry>) -> prometheus::Result<RefreshMetrics> {
        let desc = prometheus::core::Desc::new(
            REFRESH_METRIC.into(),
            REFRESH_HELP.into(),
            vec!["url".into(), "result".into()],
            HashMap::new(),
        )?;
        Ok(RefreshMetrics { registry, desc })
    }
}

impl prometheus::core::Collector for RefreshMetrics {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let opts = prometheus::Opts::new(REFRESH_METRIC, REFRESH_HELP);
        let Ok(counter) = prometheus::IntCounterVec::new(opts, &["url", "result"]) else {
            return Vec::new();
        };
        for cache in self.registry.all() {
            let (ok, failed) = cache.refreshes();
            counter.with_label_values(&[cache.source().url(), "success"]).inc_by(ok);
            counter.with_label_values(&[cache.source().url(), "failure"]).inc_by(failed);
        }
        prometheus::core::Collector::collect(&counter)
    }
}

/// Refresh every cache each `interval` until `shutdown` completes. The first refresh happens
/// one interval after the start (the gateway refreshes once before serving).
pub async fn run_refresher(caches: Vec<Arc<JwksCache>>, interval: Duration, shutdown: impl Future) {
    let interval = interval.max(Duration::from_secs(1));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticks.tick() => {
                for cache in &caches {
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = cache.refresh() => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_demand_slots_are_rate_limited() {
        let cache = JwksCache::new(JwksSource::Jwks("http://127.0.0.1:9/jwks".into()), reqwest::Client::new());
        let t0 = Instant::now();
        assert!(cache.take_on_demand_slot(t0));
        assert!(!cache.take_on_demand_slot(t0 + Duration::from_secs(29)));
        assert!(cache.take_on_demand_slot(t0 + Duration::from_secs(30)));
        cache.limit_on_demand_interval(Duration::from_secs(5));
        cache.limit_on_demand_interval(Duration::from_secs(50));
        assert_eq!(cache.on_demand_interval(), Duration::from_secs(5));
        assert!(!cache.take_on_demand_slot(t0 + Duration::from_secs(34)));
        assert!(cache.take_on_demand_slot(t0 + Duration::from_secs(35)));
    }

    #[test]
    fn key_urls_must_be_https_unless_a_host_is_allowed() {
        let none: Vec<String> = Vec::new();
        let local = vec!["127.0.0.1".to_string(), "IdP.test".to_string()];
        assert_eq!(check_idp_url("https://idp.example/keys", &none).unwrap(), "idp.example");
        assert!(check_idp_url("http://idp.example/keys", &none).unwrap_err().contains("plain http"));
        assert!(check_idp_url("http://127.0.0.1:8080/keys", &none).is_err());
        assert!(check_idp_url("http://127.0.0.1:8080/keys", &local).is_ok());
        assert!(check_idp_url("http://idp.TEST/keys", &local).is_ok());
        assert!(check_idp_url("http://127.0.0.2/keys", &local).is_err());
        for bad in ["ftp://idp/keys", "idp/keys", "/keys", "https://", "not a url"] {
            assert!(check_idp_url(bad, &local).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_discovery_document_names_the_issuer_it_was_fetched_for() {
        let url = "https://idp.example/realms/x/.well-known/openid-configuration";
        // The issuer configured: exactly it.
        let exact = Some("https://idp.example/realms/x");
        assert!(issuer_matches(url, exact, "https://idp.example/realms/x"));
        assert!(!issuer_matches(url, exact, "https://idp.example/realms/x/"));
        assert!(issuer_matches(url, Some("https://idp.example/realms/x/"), "https://idp.example/realms/x/"));
        assert!(!issuer_matches(url, Some("https://idp.example/realms/x/"), "https://idp.example/realms/x"));
        // The discovery URL configured: the issuer it was made from, with or without its `/`.
        assert!(issuer_matches(url, None, "https://idp.example/realms/x"));
        assert!(issuer_matches(url, None, "https://idp.example/realms/x/"));
        for other in [
            "https://idp.example/realms/y",
            "https://idp.example/realms/x//",
            "https://IDP.example/realms/x",
            "https://idp.example/realms",
            "http://idp.example/realms/x",
            "https://evil.example/realms/x",
            "",
        ] {
            assert!(!issuer_matches(url, None, other), "{other}");
            assert!(!issuer_matches(url, exact, other), "{other}");
        }
    }

    #[tokio::test]
    async fn refreshes_are_counted_for_the_metrics() {
        let r = Arc::new(JwksRegistry::new(None, Vec::new()));
        // Nothing listens on port 9 of 127.0.0.1, and plain http is not allowed anyway.
        let cache = r.cache(JwksSource::Jwks("http://127.0.0.1:9/keys".into()), Duration::from_secs(1)).unwrap();
        assert!(cache.refresh().await.unwrap_err().contains("plain http"));
        assert_eq!(cache.refreshes(), (0, 1));
        let metrics = RefreshMetrics::new(Arc::clone(&r)).unwrap();
        let prom = prometheus::Registry::new();
        prom.register(Box::new(metrics)).unwrap();
        let mut text = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &prom.gather(), &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains(r#"aigate_oidc_key_refreshes_total{result="failure",url="http://127.0.0.1:9/keys"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"aigate_oidc_key_refreshes_total{result="success",url="http://127.0.0.1:9/keys"} 0"#));
    }

    #[test]
    fn registry_shares_caches_by_source() {
        let r = JwksRegistry::new(None, Vec::new());
        assert!(r.all().is_empty());
        let url = "https://idp/.well-known/openid-configuration";
        let minute = Duration::from_secs(60);
        let discovery = || JwksSource::Discovery { url: url.into(), issuer: None };
        let a = r.cache(discovery(), minute).unwrap();
        let b = r.cache(discovery(), minute).unwrap();
        let c = r.cache(JwksSource::Jwks(url.into()), minute).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(r.all().len(), 2);
    }

    #[test]
    fn http_client_builds_with_and_without_an_extra_ca() {
        http_client(None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["test-ca".into()]).unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, ca.cert.pem()).unwrap();
        http_client(Some(&p)).unwrap();
        std::fs::write(&p, "not a pem").unwrap();
        assert!(http_client(Some(&p)).is_err());
        assert!(http_client(Some(&dir.path().join("missing.pem"))).is_err());
    }

    #[test]
    fn reloads_keep_caches_and_apply_intervals_once_in_service() {
        let r = JwksRegistry::new(None, Vec::new());
        let source = || JwksSource::Jwks("https://idp/keys".into());
        r.begin_load();
        let first = r.cache(source(), Duration::from_secs(30)).unwrap();
        let other = r.cache(JwksSource::Jwks("https://other/keys".into()), Duration::from_secs(30)).unwrap();
        r.commit();
        // A second load names the first source only, with another interval.
        r.begin_load();
        let again = r.cache(source(), Duration::from_secs(90)).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the cache and its keys are kept");
        assert_eq!(r.claimed().len(), 1);
        // Not in service yet: the running configuration's interval stays.
        assert_eq!(first.on_demand_interval(), Duration::from_secs(30));
        r.commit();
        assert_eq!(first.on_demand_interval(), Duration::from_secs(90));
        // The cache no configuration names any more is gone.
        assert_eq!(r.all().len(), 1);
        assert!(!r.all().iter().any(|c| Arc::ptr_eq(c, &other)));
    }
}
