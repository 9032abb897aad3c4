//! Process state: what the gateway keeps for as long as it runs, across configuration reloads —
//! the settings, metric families, the access log, the resolver, the runtime stores, and the
//! current configuration generation (swapped whole by a reload). The proxy's phases, the
//! status listener and the lifecycle task read it; it depends on none of them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;

use crate::config::settings::Settings;
use crate::config::LoadContext;
use crate::mcp::session::SessionCodec;
use crate::model::Config;
use crate::plugins::openid_connect::RefreshMetrics;
use crate::store::cluster::ClusterOwnership;
use crate::store::ownership::{MemoryStore, OwnershipStore};
use crate::store::pins::{PinStore, SharedPins};
use crate::store::redis::RedisLink;
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::metrics::{HandleTable, LlmHandles, Metrics, RouteHandles};
use crate::upstream::resolver::Resolver;

/// A request id: 32 lower-case hex digits (like Kong's), kept inline.
#[derive(Clone, Copy)]
pub struct RequestId([u8; 32]);

impl RequestId {
    pub fn new(prefix: u64, n: u64) -> RequestId {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (i, b) in prefix.to_be_bytes().iter().chain(n.to_be_bytes().iter()).enumerate() {
            out[2 * i] = HEX[(b >> 4) as usize];
            out[2 * i + 1] = HEX[(b & 15) as usize];
        }
        RequestId(out)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// One loaded configuration with the metric handles resolved for it.
pub struct Generation {
    pub config: Config,
    pub route_metrics: Vec<HandleTable<RouteHandles>>,
    pub unrouted_metrics: HandleTable<RouteHandles>,
    pub llm_metrics: Vec<HandleTable<LlmHandles>>,
    pub loaded_at: SystemTime,
}

impl Generation {
    pub fn new(config: Config) -> Generation {
        let consumers = config.consumers.list.len();
        Generation {
            route_metrics: config.routes.iter().map(|_| HandleTable::new(consumers)).collect(),
            unrouted_metrics: HandleTable::new(0),
            llm_metrics: (0..config.ai_target_count).map(|_| HandleTable::new(consumers)).collect(),
            loaded_at: SystemTime::now(),
            config,
        }
    }
}

/// Process-wide state: survives configuration reloads.
pub struct ProcessState {
    pub settings: Settings,
    /// The runtime stores configurations hold handles into (identity providers' keys, LLM
    /// targets' health), kept across reloads; a reload compiles against them.
    pub stores: LoadContext,
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLog,
    pub resolver: Resolver,
    pub current: ArcSwap<Generation>,
    pub started: Instant,
    pub ready: AtomicBool,
    /// Set on SIGTERM or SIGQUIT: answers close their connections so clients move to fresh
    /// ones (the new process, after an upgrade) instead of being dropped while idle.
    pub draining: AtomicBool,
    /// Who owns which response and MCP approval request (this process's memory, or the
    /// cluster's through `cluster_redis`).
    pub ownership: Arc<dyn OwnershipStore>,
    /// Observed MCP tool-list digests (likewise).
    pub pins: PinStore,
    /// Binds the MCP session ids handed to clients to their consumer (keyed by
    /// `cluster_secret`, else by a random secret of this process).
    pub sessions: SessionCodec,
    id_prefix: u64,
    id_counter: AtomicU64,
}

impl ProcessState {
    pub fn new(
        settings: Settings,
        stores: LoadContext,
        metrics: Arc<Metrics>,
        access_log: AccessLog,
        generation: Generation,
    ) -> ProcessState {
        let resolver = Resolver::new(settings.upstream_resolve.clone());
        // Identity providers' key refreshes, read from their caches at each scrape.
        let key_refreshes = RefreshMetrics::new(Arc::clone(&stores.jwks));
        if let Err(e) = key_refreshes.and_then(|m| metrics.registry.register(Box::new(m))) {
            log::error!("the openid-connect refresh metric is not available: {e}");
        }
        let (ownership, pins) = stores_for(&settings, &metrics);
        let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        ProcessState {
            resolver,
            current: ArcSwap::from_pointee(generation),
            started: Instant::now(),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            ownership,
            pins,
            sessions: SessionCodec::new(&session_secret(&settings)),
            id_prefix: seed ^ (u64::from(std::process::id()) << 32),
            id_counter: AtomicU64::new(0),
            settings,
            stores,
            metrics,
            access_log,
        }
    }

    /// Start the stores' background work (after the process forked into the background).
    pub fn start_stores(&self) {
        self.pins.start();
    }

    pub fn next_request_id(&self) -> RequestId {
        RequestId::new(self.id_prefix, self.id_counter.fetch_add(1, Ordering::Relaxed))
    }
}

/// `cluster_secret`, or 32 random bytes when it is not set (sessions then bind to this process).
fn session_secret(settings: &Settings) -> Vec<u8> {
    if let Some(s) = &settings.cluster_secret {
        return s.expose().to_vec();
    }
    let mut key = [0u8; 32];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key).is_err() {
        log::error!("no system randomness for the MCP session secret; set cluster_secret");
    }
    key.to_vec()
}

/// Ownership and pins in this process, or shared by the cluster through `cluster_redis`.
fn stores_for(settings: &Settings, metrics: &Arc<Metrics>) -> (Arc<dyn OwnershipStore>, PinStore) {
    let (ttl, max) = (settings.response_store_ttl, settings.response_store_max_entries);
    // Checked by `aigate check` before the process runs.
    let Ok(Some(endpoint)) = settings.cluster_endpoint() else {
        return (Arc::new(MemoryStore::new(ttl, max)), PinStore::default());
    };
    let link = RedisLink::new(endpoint, "cluster store");
    let counter = |store: &str| {
        let c = metrics.cluster_store_error(store);
        Box::new(move || c.inc()) as Box<dyn Fn() + Send + Sync>
    };
    let ownership = ClusterOwnership::new(Arc::clone(&link), ttl, max, counter("ownership"));
    (ownership, PinStore::shared(SharedPins::new(link, counter("pins"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_32_hex() {
        let id = RequestId::new(0xdead_beef, 1);
        assert_eq!(id.as_str(), "00000000deadbeef0000000000000001");
    }
}
