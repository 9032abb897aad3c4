//! Who owns which provider object. A response, conversation, item or stored chat completion
//! created through the gateway belongs to the consumer that created it; another consumer naming
//! it (in a path such as `GET /v1/responses/{id}`, or in a body field such as
//! `previous_response_id`, `conversation` or an `item_reference`) is told it does not exist, so
//! one tenant can neither read nor continue another's conversation. Unknown ids are refused to
//! everyone: an id the gateway never saw was not created through it. Entries are keyed by the
//! object's [`ObjectKind`] and its id, so an id of one kind never vouches for another.
//!
//! The same store remembers MCP approval requests, so an approval response can only approve a
//! request its own consumer received.
//!
//! [`OwnershipStore`] is the interface; [`MemoryStore`] keeps entries in memory with a TTL and
//! a size bound, compactly (ids and owners as keyed 128/64-bit hashes, about 60 bytes an entry)
//! and in shards so that threads rarely wait on each other. The cluster store
//! (`store::cluster`, on Redis) implements the same trait with a `MemoryStore` as its local
//! view: checks are answered from it, and an id it does not know is noted
//! ([`collect_misses`]) so that the caller can [`OwnershipStore::fetch`] it and check again.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::core::ObjectKind;

#[async_trait]
pub trait OwnershipStore: Send + Sync {
    /// Record the object `kind`/`id` as `owner`'s; an MCP approval request also records its
    /// server and tool.
    fn record(&self, kind: ObjectKind, id: &str, owner: &str, mcp: Option<(String, String)>);
    /// Whether `owner` owns the object `kind`/`id` (false for ids the store does not know).
    fn owned_by(&self, kind: ObjectKind, id: &str, owner: &str) -> bool;
    /// The server and tool of an approval request `owner` received.
    fn approval(&self, id: &str, owner: &str) -> Option<(String, String)>;
    fn forget(&self, kind: ObjectKind, id: &str);
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Objects this node did not know (noted by [`collect_misses`]) looked up where the cluster
    /// keeps them; the checks are then run again. Nothing to do for a store of this process alone.
    async fn fetch(&self, _misses: &[Miss]) {}
}

/// An object a shared store's local view did not know: its kind and id.
pub type Miss = (ObjectKind, String);

/// Objects looked up in one check, at most (a request names a few).
const MAX_MISSES: usize = 32;

thread_local! {
    static MISSES: RefCell<Option<Vec<Miss>>> = const { RefCell::new(None) };
}

/// Run a (synchronous) check and return, with its result, the ids a shared store did not know
/// locally while it ran: the caller fetches them ([`OwnershipStore::fetch`]) and runs the check
/// again. The check runs on this thread without yielding, so the ids are exactly its own.
pub fn collect_misses<T>(check: impl FnOnce() -> T) -> (T, Vec<Miss>) {
    MISSES.with(|m| *m.borrow_mut() = Some(Vec::new()));
    let out = check();
    let misses = MISSES.with(|m| m.borrow_mut().take()).unwrap_or_default();
    (out, misses)
}

/// A shared store's local view did not know the object `kind`/`id`.
pub fn note_miss(kind: ObjectKind, id: &str) {
    MISSES.with(|m| {
        if let Some(v) = m.borrow_mut().as_mut() {
            if v.len() < MAX_MISSES && !v.iter().any(|(k, x)| *k == kind && x == id) {
                v.push((kind, id.to_string()));
            }
        }
    });
}

const SHARDS: usize = 16;

struct Entry {
    owner: u64,
    /// Seconds after the store's epoch.
    expires: u32,
    mcp: Option<Box<(String, String)>>,
}

#[derive(Default)]
struct Shard {
    map: HashMap<u128, Entry>,
    /// Insertion order, for eviction when full.
    order: VecDeque<u128>,
}

pub struct MemoryStore {
    ttl: Duration,
    max_per_shard: usize,
    epoch: Instant,
    keys: (std::collections::hash_map::RandomState, std::collections::hash_map::RandomState),
    shards: Vec<Mutex<Shard>>,
}

impl MemoryStore {
    pub fn new(ttl: Duration, max_entries: usize) -> MemoryStore {
        MemoryStore {
            ttl,
            max_per_shard: max_entries.div_ceil(SHARDS).max(1),
            epoch: Instant::now(),
            keys: Default::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }

    fn id_key(&self, kind: ObjectKind, id: &str) -> u128 {
        let mut a = self.keys.0.build_hasher();
        a.write_u8(kind.tag());
        a.write(id.as_bytes());
        let mut b = self.keys.1.build_hasher();
        b.write_u8(kind.tag());
        b.write(id.as_bytes());
        (u128::from(a.finish()) << 64) | u128::from(b.finish())
    }

    fn owner_key(&self, owner: &str) -> u64 {
        let mut h = self.keys.0.build_hasher();
        h.write(b"owner:");
        h.write(owner.as_bytes());
        h.finish()
    }

    fn now(&self) -> u32 {
        self.epoch.elapsed().as_secs() as u32
    }

    fn shard(&self, key: u128) -> &Mutex<Shard> {
        &self.shards[(key as usize) % SHARDS]
    }

    /// Whether the object `kind`/`id` is known here (owned by anyone).
    pub fn knows(&self, kind: ObjectKind, id: &str) -> bool {
        self.with_entry(kind, id, |_| ()).is_some()
    }

    fn with_entry<T>(&self, kind: ObjectKind, id: &str, f: impl FnOnce(&Entry) -> T) -> Option<T> {
        let key = self.id_key(kind, id);
        let shard = self.shard(key).lock().ok()?;
        let e = shard.map.get(&key)?;
        (e.expires > self.now()).then(|| f(e))
    }
}

impl OwnershipStore for MemoryStore {
    fn record(&self, kind: ObjectKind, id: &str, owner: &str, mcp: Option<(String, String)>) {
        let key = self.id_key(kind, id);
        let now = self.now();
        let expires = now.saturating_add(self.ttl.as_secs().min(u64::from(u32::MAX)) as u32).max(now + 1);
        let entry = Entry { owner: self.owner_key(owner), expires, mcp: mcp.map(Box::new) };
        let Ok(mut shard) = self.shard(key).lock() else { return };
        if shard.map.insert(key, entry).is_none() {
            shard.order.push_back(key);
        }
        // Beyond the bound, the oldest go first; expired ones at the front go too.
        while shard.map.len() > self.max_per_shard {
            let Some(oldest) = shard.order.pop_front() else { break };
            shard.map.remove(&oldest);
        }
        while let Some(&front) = shard.order.front() {
            match shard.map.get(&front) {
                Some(e) if e.expires > now => break,
                _ => {
                    shard.order.pop_front();
                    shard.map.remove(&front);
                }
            }
        }
    }

    fn owned_by(&self, kind: ObjectKind, id: &str, owner: &str) -> bool {
        let owner = self.owner_key(owner);
        self.with_entry(kind, id, |e| e.owner == owner).unwrap_or(false)
    }

    fn approval(&self, id: &str, owner: &str) -> Option<(String, String)> {
        let owner = self.owner_key(owner);
        self.with_entry(ObjectKind::McpApprovalRequest, id, |e| {
            if e.owner == owner {
                e.mcp.as_deref().cloned()
            } else {
                None
            }
        })
        .flatten()
    }

    fn forget(&self, kind: ObjectKind, id: &str) {
        let key = self.id_key(kind, id);
        if let Ok(mut shard) = self.shard(key).lock() {
            shard.map.remove(&key);
        }
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map(|s| s.map.len()).unwrap_or(0)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: ObjectKind = ObjectKind::Response;

    #[test]
    fn records_checks_and_forgets() {
        let s = MemoryStore::new(Duration::from_secs(60), 100);
        s.record(R, "resp_1", "alex", None);
        assert!(s.owned_by(R, "resp_1", "alex"));
        assert!(!s.owned_by(R, "resp_1", "bo"));
        assert!(!s.owned_by(R, "resp_2", "alex"));
        // Exact and case-sensitive.
        assert!(!s.owned_by(R, "RESP_1", "alex"));
        assert!(!s.owned_by(R, "resp_1 ", "alex"));
        s.forget(R, "resp_1");
        assert!(!s.owned_by(R, "resp_1", "alex"));
    }

    #[test]
    fn an_id_of_one_kind_never_vouches_for_another() {
        let s = MemoryStore::new(Duration::from_secs(60), 100);
        s.record(ObjectKind::Conversation, "x_1", "alex", None);
        assert!(s.owned_by(ObjectKind::Conversation, "x_1", "alex"));
        for kind in [R, ObjectKind::Item, ObjectKind::ChatCompletion, ObjectKind::McpApprovalRequest] {
            assert!(!s.owned_by(kind, "x_1", "alex"), "{kind:?}");
        }
        s.forget(R, "x_1");
        assert!(s.owned_by(ObjectKind::Conversation, "x_1", "alex"));
    }

    #[test]
    fn approvals_are_the_owners_only() {
        let s = MemoryStore::new(Duration::from_secs(60), 100);
        s.record(ObjectKind::McpApprovalRequest, "mcpr_1", "alex", Some(("git".into(), "create_pr".into())));
        assert_eq!(s.approval("mcpr_1", "alex"), Some(("git".into(), "create_pr".into())));
        assert_eq!(s.approval("mcpr_1", "bo"), None);
        s.record(R, "resp_1", "alex", None);
        assert_eq!(s.approval("resp_1", "alex"), None);
    }

    #[test]
    fn misses_are_collected_per_check() {
        assert_eq!(collect_misses(|| note_miss(R, "x")).1, vec![(R, "x".to_string())]);
        let ((), misses) = collect_misses(|| {
            note_miss(R, "resp_1");
            note_miss(R, "resp_1");
            note_miss(ObjectKind::Item, "resp_1");
            note_miss(ObjectKind::McpApprovalRequest, "mcpr_2");
        });
        assert_eq!(
            misses,
            vec![
                (R, "resp_1".to_string()),
                (ObjectKind::Item, "resp_1".to_string()),
                (ObjectKind::McpApprovalRequest, "mcpr_2".to_string())
            ]
        );
        // Outside a check, nothing is kept.
        note_miss(R, "resp_3");
        assert!(collect_misses(|| ()).1.is_empty());
    }

    #[test]
    fn entries_expire() {
        let s = MemoryStore::new(Duration::from_secs(1), 100);
        s.record(R, "resp_1", "alex", None);
        assert!(s.owned_by(R, "resp_1", "alex"));
        std::thread::sleep(Duration::from_millis(2100));
        assert!(!s.owned_by(R, "resp_1", "alex"));
    }

    #[test]
    fn the_size_is_bounded_oldest_out() {
        let s = MemoryStore::new(Duration::from_secs(60), 16 * 3);
        for i in 0..1000 {
            s.record(R, &format!("resp_{i}"), "alex", None);
        }
        assert!(s.len() <= 48, "{}", s.len());
        assert!(!s.owned_by(R, "resp_0", "alex"));
        assert!(s.owned_by(R, "resp_999", "alex"));
    }
}
