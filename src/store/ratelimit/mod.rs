//! Rate-limit and budget counters: how many requests, tokens or micro-dollars a subject (a
//! plugin instance and whom it counts — a consumer, a credential, an IP…) used in a window.
//!
//! [`Counters`] is the interface the plugins use: [`Counters::admit`] checks every limit of a
//! request at once and, when all are under, adds its cost to each (all or nothing);
//! [`Counters::charge`] adds what a request used after its answer. Two implementations:
//! [`local::LocalCounters`] (this process only) and [`redis::RedisCounters`] (shared by every
//! gateway using the same Redis: synchronous — one script per decision — or counted locally
//! and synced every `sync_rate` seconds). [`CounterStores`] hands them out to the plugins when a
//! configuration compiles and keeps them, with their counts, across reloads.

pub mod local;
pub mod redis;
pub mod window;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use smallvec::SmallVec;

use super::redis::{RedisEndpoint, RedisLink};
pub use window::{Period, Window};

/// Who is counted: a plugin instance's namespace and an identifier within it, as a 128-bit
/// digest (so a header value or an IP used as identifier is never stored or sent as such).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject(pub u128);

impl Subject {
    /// The subject of `parts` (a namespace, then the identifier), digested.
    pub fn of(parts: &[&[u8]]) -> Subject {
        let mut h = Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
        let d = h.finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        Subject(u128::from_be_bytes(b))
    }
}

/// One counter: a subject's use in one window, kept until `expires_ms` (a sliding window's
/// counter is read again while it is the previous one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CounterId {
    pub subject: Subject,
    pub window: Window,
    pub expires_ms: i64,
}

impl CounterId {
    pub fn fixed(subject: Subject, window: Window) -> CounterId {
        CounterId { subject, window, expires_ms: window.end_ms }
    }

    /// A counter of a sliding window: it is also read as the next window's previous one.
    pub fn sliding(subject: Subject, window: Window) -> CounterId {
        CounterId { subject, window, expires_ms: window.end_ms + window.len_ms() }
    }

    /// The Redis key: namespaced, the subject as hex, the window's start and length.
    pub fn redis_key(&self) -> String {
        format!(
            "aigate:rl:{:032x}:{}:{}",
            self.subject.0,
            self.window.start_ms.div_euclid(1000),
            self.window.len_ms().div_euclid(1000)
        )
    }
}

/// One limit a request is checked against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    /// The counter of the current window (where the cost goes).
    pub current: CounterId,
    /// A sliding window's previous counter and how much of it still counts.
    pub previous: Option<(CounterId, f64)>,
    /// Requests, tokens or micro-units; a request is admitted while the use is under it.
    pub limit: f64,
}

/// What one slot had used before this request.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Used {
    pub current: i64,
    pub previous: i64,
}

impl Used {
    /// The use the limit is compared with: `current + previous × weight`.
    pub fn estimate(&self, slot: &Slot) -> f64 {
        self.current as f64 + slot.previous.map_or(0.0, |(_, w)| self.previous as f64 * w)
    }
}

/// The answer to an admission.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// Per slot, in order: the use before this request.
    pub used: SmallVec<[Used; 4]>,
    /// The first slot at or over its limit: the request is refused and nothing was added.
    pub refused: Option<usize>,
    /// Decided without the shared backend (Redis down, slow or not yet synced): this node's
    /// view only.
    pub degraded: bool,
}

/// The shared backend could not be asked and the plugin is not fault tolerant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

#[async_trait]
pub trait Counters: Send + Sync {
    /// Check every slot; if each one's use is under its limit, add `cost` (≥ 0; 0 = check
    /// only) to each slot's current counter. With `fault_tolerant`, a backend failure is
    /// answered from this node's view (`degraded`); otherwise it is an error.
    async fn admit(&self, slots: &[Slot], cost: i64, now_ms: i64, fault_tolerant: bool)
        -> Result<Checked, Unavailable>;

    /// [`Counters::admit`] without waiting, when this store decides in the process (local
    /// counters, or the periodic view between syncs); `None` when the decision needs the
    /// shared backend. Callers try it first: most decisions then cost no future at all.
    fn admit_now(
        &self,
        _slots: &[Slot],
        _cost: i64,
        _now_ms: i64,
        _fault_tolerant: bool,
    ) -> Option<Result<Checked, Unavailable>> {
        None
    }

    /// Add what a request used (tokens, micro-units) to counters. Counted here at once; a
    /// shared backend is told off the request path.
    fn charge(&self, counters: &[CounterId], amount: i64, now_ms: i64);

    /// What each slot has used, as this process sees it now (nothing created or added; a
    /// shared backend is not asked): for the metrics, off the request path.
    fn peek(&self, slots: &[Slot], now_ms: i64) -> SmallVec<[Used; 4]>;
}

/// How a Redis-backed store talks to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncMode {
    /// One script call per decision, on the request path.
    Synchronous,
    /// Counted in this process and synced every interval, off the request path.
    Periodic(Duration),
}

/// The counter stores of the process, handed to plugins when a configuration compiles and kept
/// across reloads (a store, and its counts, lives as long as a plugin uses it).
pub struct CounterStores {
    local: Arc<local::LocalCounters>,
    redis: Mutex<HashMap<(RedisEndpoint, SyncMode), Arc<redis::RedisCounters>>>,
    links: Mutex<HashMap<RedisEndpoint, Arc<RedisLink>>>,
}

impl Default for CounterStores {
    fn default() -> Self {
        CounterStores {
            local: Arc::new(local::LocalCounters::new(local::DEFAULT_MAX_ENTRIES)),
            redis: Mutex::new(HashMap::new()),
            links: Mutex::new(HashMap::new()),
        }
    }
}

impl CounterStores {
    /// This process's counters.
    pub fn local(&self) -> Arc<dyn Counters> {
        self.local.clone()
    }

    /// Counters shared through Redis (one connection per endpoint, one store per endpoint and
    /// mode).
    pub fn redis(&self, endpoint: &RedisEndpoint, mode: SyncMode) -> Arc<dyn Counters> {
        let link = match self.links.lock() {
            Ok(mut links) => {
                links.entry(endpoint.clone()).or_insert_with(|| RedisLink::new(endpoint.clone(), "rate limits")).clone()
            }
            Err(_) => RedisLink::new(endpoint.clone(), "rate limits"),
        };
        match self.redis.lock() {
            Ok(mut stores) => stores
                .entry((endpoint.clone(), mode))
                .or_insert_with(|| redis::RedisCounters::new(link, mode, local::DEFAULT_MAX_ENTRIES))
                .clone(),
            Err(_) => redis::RedisCounters::new(link, mode, local::DEFAULT_MAX_ENTRIES),
        }
    }

    /// After a reload: drop the Redis stores and connections no plugin holds any more (their
    /// pending counts are pushed first by their sync task, which ends with them).
    pub fn retain_used(&self) {
        if let Ok(mut stores) = self.redis.lock() {
            stores.retain(|_, s| Arc::strong_count(s) > 1);
        }
        let used: Vec<RedisEndpoint> =
            self.redis.lock().map(|s| s.keys().map(|(e, _)| e.clone()).collect()).unwrap_or_default();
        if let Ok(mut links) = self.links.lock() {
            links.retain(|e, _| used.contains(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_stable_and_separate_their_parts() {
        let a = Subject::of(&[b"plugin-1", b"alex"]);
        assert_eq!(a, Subject::of(&[b"plugin-1", b"alex"]));
        assert_ne!(a, Subject::of(&[b"plugin-1a", b"lex"]));
        assert_ne!(a, Subject::of(&[b"plugin-2", b"alex"]));
        let id = CounterId::fixed(a, Period::Minute.window(1_795_685_706_123));
        let key = id.redis_key();
        assert!(key.starts_with("aigate:rl:"), "{key}");
        assert!(key.ends_with(":1795685700:60"), "{key}");
        assert!(!key.contains("alex"));
    }
}
