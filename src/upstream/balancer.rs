//! Choosing among ai-proxy-advanced targets: Kong's algorithms (round-robin, priority,
//! lowest-latency, consistent-hashing) and failover criteria, over a passive-health state
//! passed in — a target that keeps failing is taken out for a while, then tried again.
//!
//! Health is runtime state, not configuration: a [`HealthRegistry`] (held by the process, not
//! by a loaded configuration) keeps one [`TargetHealth`] per target identity (provider,
//! endpoint, model), and a configuration's balancers hold handles to them, so a reload keeps
//! knowing which targets are down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderName;
use once_cell::sync::Lazy;

use crate::core::Endpoint;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    Priority,
    LowestLatency,
    ConsistentHashing,
}

/// When a failed attempt moves on to the next target (Kong's `failover_criteria`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverCriteria {
    pub error: bool,
    pub timeout: bool,
    pub http_429: bool,
    pub http_5xx: Vec<u16>,
    pub non_idempotent: bool,
}

impl Default for FailoverCriteria {
    fn default() -> Self {
        FailoverCriteria { error: true, timeout: true, http_429: false, http_5xx: Vec::new(), non_idempotent: false }
    }
}

impl FailoverCriteria {
    /// Whether an upstream answer with this status counts as a failure to fail over from.
    pub fn status_fails(&self, status: u16) -> bool {
        (status == 429 && self.http_429) || self.http_5xx.contains(&status)
    }
}

/// A plugin's balancing settings (Kong's `balancer` block).
#[derive(Debug, Clone)]
pub struct Balancing {
    pub algorithm: Algorithm,
    pub retries: u32,
    pub failover: FailoverCriteria,
    pub connect_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub write_timeout: Option<Duration>,
    pub hash_on_header: Option<HeaderName>,
}

impl Default for Balancing {
    fn default() -> Self {
        Balancing {
            algorithm: Algorithm::RoundRobin,
            retries: 5,
            failover: FailoverCriteria::default(),
            connect_timeout: None,
            read_timeout: None,
            write_timeout: None,
            hash_on_header: None,
        }
    }
}

static EPOCH: Lazy<Instant> = Lazy::new(Instant::now);

fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64
}

/// Which upstream a target is, for keeping its health across configuration reloads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetKey {
    pub provider: &'static str,
    pub endpoint: Endpoint,
    pub model: Option<String>,
}

/// One target's passive health and measured latency.
#[derive(Debug)]
pub struct TargetHealth {
    /// Consecutive failures that take the target out (settings `llm_target_max_fails`).
    max_fails: u32,
    /// How long it stays out, in ms (`llm_target_fail_timeout`).
    fail_timeout_ms: u64,
    consecutive_failures: AtomicU32,
    /// Milliseconds since EPOCH until which the target is out; 0 when healthy.
    down_until: AtomicU64,
    /// Exponentially weighted latency in microseconds; 0 until measured.
    latency_us: AtomicU64,
}

impl TargetHealth {
    pub fn new(max_fails: u32, fail_timeout: Duration) -> TargetHealth {
        TargetHealth {
            max_fails: max_fails.max(1),
            fail_timeout_ms: u64::try_from(fail_timeout.as_millis()).unwrap_or(u64::MAX),
            consecutive_failures: AtomicU32::new(0),
            down_until: AtomicU64::new(0),
            latency_us: AtomicU64::new(0),
        }
    }

    pub fn is_healthy(&self) -> bool {
        let until = self.down_until.load(Ordering::Relaxed);
        until == 0 || now_ms() >= until
    }

    /// Record a successful answer and its latency (time to the first byte of the response).
    pub fn report_success(&self, latency: Duration) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.down_until.store(0, Ordering::Relaxed);
        let sample = (latency.as_micros() as u64).max(1);
        let old = self.latency_us.load(Ordering::Relaxed);
        let new = if old == 0 { sample } else { (old * 7 + sample) / 8 };
        self.latency_us.store(new.max(1), Ordering::Relaxed);
    }

    /// Record a failure; returns true when this failure took the target out.
    pub fn report_failure(&self) -> bool {
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.max_fails && self.is_healthy() {
            self.down_until.store(now_ms().saturating_add(self.fail_timeout_ms), Ordering::Relaxed);
            // Start counting again after the pause: one more failure will not re-arm it at once.
            self.consecutive_failures.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }

    fn latency_us(&self) -> u64 {
        self.latency_us.load(Ordering::Relaxed)
    }
}

/// The health of every target, by identity, for the life of the process.
#[derive(Debug)]
pub struct HealthRegistry {
    max_fails: u32,
    fail_timeout: Duration,
    targets: Mutex<HashMap<TargetKey, Arc<TargetHealth>>>,
}

impl Default for HealthRegistry {
    /// The settings' defaults (nginx's): 3 failures, 10 s out.
    fn default() -> Self {
        HealthRegistry::new(3, Duration::from_secs(10))
    }
}

impl HealthRegistry {
    pub fn new(max_fails: u32, fail_timeout: Duration) -> HealthRegistry {
        HealthRegistry { max_fails, fail_timeout, targets: Mutex::new(HashMap::new()) }
    }

    fn targets(&self) -> std::sync::MutexGuard<'_, HashMap<TargetKey, Arc<TargetHealth>>> {
        match self.targets.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The health of `key`, shared with every configuration naming the same target.
    pub fn health(&self, key: TargetKey) -> Arc<TargetHealth> {
        let mut targets = self.targets();
        let health =
            targets.entry(key).or_insert_with(|| Arc::new(TargetHealth::new(self.max_fails, self.fail_timeout)));
        Arc::clone(health)
    }

    /// Forget targets no configuration in use names any more.
    pub fn retain(&self, keep: impl Fn(&TargetKey) -> bool) {
        self.targets().retain(|k, _| keep(k));
    }
}

/// A set of target indexes already tried by this request (targets are at most 64).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tried(u64);

impl Tried {
    pub fn add(&mut self, i: usize) {
        if i < 64 {
            self.0 |= 1 << i;
        }
    }
    pub fn contains(self, i: usize) -> bool {
        i < 64 && self.0 & (1 << i) != 0
    }
}

pub const MAX_TARGETS: usize = 64;

/// Picks a plugin's target for a request: its weights, a rotation position, and handles to its
/// targets' health.
#[derive(Debug)]
pub struct Balancer {
    weights: Vec<u32>,
    total_weight: u64,
    next: AtomicUsize,
    health: Vec<Arc<TargetHealth>>,
}

impl Balancer {
    /// `weights` and `health` are per target, in the same order.
    pub fn new(weights: Vec<u32>, health: Vec<Arc<TargetHealth>>) -> Balancer {
        let total_weight = weights.iter().map(|&w| u64::from(w.max(1))).sum();
        Balancer { health, weights, total_weight, next: AtomicUsize::new(0) }
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    pub fn health(&self, i: usize) -> &TargetHealth {
        &self.health[i]
    }

    /// Pick a target not yet tried. Healthy targets first; when every untried target is marked
    /// down, one of them is still tried rather than failing without trying.
    pub fn pick(&self, algorithm: Algorithm, tried: Tried, hash_key: Option<&[u8]>) -> Option<usize> {
        // One target (the common case): no choice to make.
        if self.len() == 1 {
            return (!tried.contains(0)).then_some(0);
        }
        let untried = |i: &usize| !tried.contains(*i);
        let healthy: Vec<usize> = (0..self.len()).filter(untried).filter(|&i| self.health[i].is_healthy()).collect();
        let pool: Vec<usize> = if healthy.is_empty() { (0..self.len()).filter(untried).collect() } else { healthy };
        if pool.is_empty() {
            return None;
        }
        if pool.len() == 1 {
            return Some(pool[0]);
        }
        Some(match algorithm {
            Algorithm::RoundRobin => self.weighted_round_robin(&pool),
            Algorithm::Priority => {
                let top = pool.iter().map(|&i| self.weights[i]).max().unwrap_or(0);
                let best: Vec<usize> = pool.iter().copied().filter(|&i| self.weights[i] == top).collect();
                best[self.next.fetch_add(1, Ordering::Relaxed) % best.len()]
            }
            Algorithm::LowestLatency => {
                // Unmeasured targets (0) go first so that every target gets measured.
                let min = pool.iter().map(|&i| self.health[i].latency_us()).min().unwrap_or(0);
                let best: Vec<usize> = pool.iter().copied().filter(|&i| self.health[i].latency_us() == min).collect();
                best[self.next.fetch_add(1, Ordering::Relaxed) % best.len()]
            }
            Algorithm::ConsistentHashing => match hash_key {
                Some(key) => rendezvous(key, &pool, &self.weights),
                None => self.weighted_round_robin(&pool),
            },
        })
    }

    fn weighted_round_robin(&self, pool: &[usize]) -> usize {
        let n = self.next.fetch_add(1, Ordering::Relaxed) as u64;
        let total: u64 = if pool.len() == self.len() {
            self.total_weight
        } else {
            pool.iter().map(|&i| u64::from(self.weights[i].max(1))).sum()
        };
        let mut slot = n % total.max(1);
        for &i in pool {
            let w = u64::from(self.weights[i].max(1));
            if slot < w {
                return i;
            }
            slot -= w;
        }
        pool[0]
    }
}

/// Highest-random-weight hashing: the same key picks the same target while it is available, and
/// removing a target moves only the keys that were on it.
fn rendezvous(key: &[u8], pool: &[usize], weights: &[u32]) -> usize {
    let mut best = pool[0];
    let mut best_score = f64::MIN;
    for &i in pool {
        let h = fnv1a(key, i as u64);
        // Map to (0,1], then weight: -w / ln(u) is the standard weighted HRW score.
        let u = ((h >> 11) as f64 + 1.0) / ((1u64 << 53) as f64 + 1.0);
        let score = f64::from(weights[i].max(1)) / -u.ln();
        if score > best_score {
            best_score = score;
            best = i;
        }
    }
    best
}

fn fnv1a(key: &[u8], salt: u64) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325 ^ salt.wrapping_mul(0x9E3779B97F4A7C15);
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    // Final avalanche (splitmix64).
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58476d1ce4e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d049bb133111eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balancer(weights: Vec<u32>) -> Balancer {
        let health = weights.iter().map(|_| Arc::new(TargetHealth::new(3, Duration::from_secs(10)))).collect();
        Balancer::new(weights, health)
    }

    #[test]
    fn round_robin_follows_weights() {
        let b = balancer(vec![100, 300]);
        let mut counts = [0; 2];
        for _ in 0..400 {
            counts[b.pick(Algorithm::RoundRobin, Tried::default(), None).unwrap()] += 1;
        }
        assert_eq!(counts, [100, 300]);
    }

    #[test]
    fn tried_targets_are_skipped_and_exhaustion_ends() {
        let b = balancer(vec![1, 1, 1]);
        let mut tried = Tried::default();
        let mut seen = vec![];
        while let Some(i) = b.pick(Algorithm::RoundRobin, tried, None) {
            tried.add(i);
            seen.push(i);
        }
        seen.sort();
        assert_eq!(seen, vec![0, 1, 2]);
    }

    #[test]
    fn priority_prefers_the_heaviest_until_it_fails() {
        let b = balancer(vec![10, 100, 100]);
        for _ in 0..10 {
            assert_ne!(b.pick(Algorithm::Priority, Tried::default(), None), Some(0));
        }
        let mut tried = Tried::default();
        tried.add(1);
        tried.add(2);
        assert_eq!(b.pick(Algorithm::Priority, tried, None), Some(0));
    }

    #[test]
    fn lowest_latency_measures_then_prefers_the_fastest() {
        let b = balancer(vec![1, 1]);
        b.health(0).report_success(Duration::from_millis(50));
        // Target 1 unmeasured: tried first.
        assert_eq!(b.pick(Algorithm::LowestLatency, Tried::default(), None), Some(1));
        b.health(1).report_success(Duration::from_millis(5));
        for _ in 0..5 {
            assert_eq!(b.pick(Algorithm::LowestLatency, Tried::default(), None), Some(1));
        }
    }

    #[test]
    fn consistent_hashing_is_stable_and_moves_little() {
        let b = balancer(vec![1, 1, 1, 1]);
        let keys: Vec<String> = (0..1000).map(|i| format!("consumer-{i}")).collect();
        let first: Vec<usize> = keys
            .iter()
            .map(|k| b.pick(Algorithm::ConsistentHashing, Tried::default(), Some(k.as_bytes())).unwrap())
            .collect();
        let again: Vec<usize> = keys
            .iter()
            .map(|k| b.pick(Algorithm::ConsistentHashing, Tried::default(), Some(k.as_bytes())).unwrap())
            .collect();
        assert_eq!(first, again);
        let mut per = [0; 4];
        for &i in &first {
            per[i] += 1;
        }
        assert!(per.iter().all(|&n| n > 150), "uneven spread {per:?}");
        // Excluding target 3 moves only the keys that were on it.
        let mut tried = Tried::default();
        tried.add(3);
        for (k, &before) in keys.iter().zip(&first) {
            let after = b.pick(Algorithm::ConsistentHashing, tried, Some(k.as_bytes())).unwrap();
            if before != 3 {
                assert_eq!(before, after);
            }
        }
    }

    #[test]
    fn passive_health_takes_out_and_puts_back() {
        let b = balancer(vec![1, 1]);
        assert!(!b.health(0).report_failure());
        assert!(!b.health(0).report_failure());
        assert!(b.health(0).report_failure());
        assert!(!b.health(0).is_healthy());
        for _ in 0..10 {
            assert_eq!(b.pick(Algorithm::RoundRobin, Tried::default(), None), Some(1));
        }
        // When every untried target is down, one is still tried.
        let mut tried = Tried::default();
        tried.add(1);
        assert_eq!(b.pick(Algorithm::RoundRobin, tried, None), Some(0));
        // The pause ends.
        b.health(0).down_until.store(now_ms(), Ordering::Relaxed);
        assert!(b.health(0).is_healthy());
        b.health(0).report_success(Duration::from_millis(1));
        assert!(b.health(0).is_healthy());
    }

    #[test]
    fn status_criteria() {
        let c = FailoverCriteria { http_429: true, http_5xx: vec![503], ..Default::default() };
        assert!(c.status_fails(429));
        assert!(c.status_fails(503));
        assert!(!c.status_fails(500));
        assert!(!c.status_fails(400));
        assert!(!FailoverCriteria::default().status_fails(503));
    }

    #[test]
    fn the_registry_shares_health_by_target_identity() {
        let r = HealthRegistry::new(1, Duration::from_secs(60));
        let key = |model: &str| TargetKey {
            provider: "openai",
            endpoint: Endpoint::parse_url("https://api.openai.com/v1/responses").unwrap(),
            model: Some(model.into()),
        };
        let a = r.health(key("gpt-4o"));
        assert!(a.report_failure());
        // Another configuration naming the same target sees it down.
        assert!(!r.health(key("gpt-4o")).is_healthy());
        assert!(r.health(key("gpt-4o-mini")).is_healthy());
        r.retain(|k| k.model.as_deref() == Some("gpt-4o-mini"));
        assert!(r.health(key("gpt-4o")).is_healthy());
    }
}
