//! Who owns which Responses-API object. A response created through the gateway belongs to the
//! consumer that created it; another consumer asking for it (`GET`/`DELETE /v1/responses/{id}`,
//! `.../cancel`, `.../input_items`, or `previous_response_id`) is told it does not exist, so
//! one tenant can neither read nor continue another's conversation. Unknown ids are refused to
//! everyone: an id the gateway never saw was not created through it.
//!
//! The same store remembers MCP approval requests, so an approval response can only approve a
//! request its own consumer received.
//!
//! [`OwnershipStore`] is the interface; [`MemoryStore`] keeps entries in memory with a TTL
//! and a size bound. A shared backend (for several gateway nodes) implements the same trait.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the gateway remembers about an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    /// The owning consumer's stable id.
    pub owner: String,
    /// For MCP approval requests: the server label and tool.
    pub mcp: Option<(String, String)>,
}

pub trait OwnershipStore: Send + Sync {
    fn record(&self, id: &str, owned: Owned);
    fn get(&self, id: &str) -> Option<Owned>;
    fn forget(&self, id: &str);
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Entry {
    owned: Owned,
    expires: Instant,
}

struct Inner {
    map: HashMap<String, Entry>,
    /// Insertion order, for eviction when full (ids may repeat after a re-record).
    order: VecDeque<String>,
}

pub struct MemoryStore {
    ttl: Duration,
    max_entries: usize,
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new(ttl: Duration, max_entries: usize) -> MemoryStore {
        MemoryStore {
            ttl,
            max_entries: max_entries.max(1),
            inner: Mutex::new(Inner { map: HashMap::new(), order: VecDeque::new() }),
        }
    }
}

impl OwnershipStore for MemoryStore {
    fn record(&self, id: &str, owned: Owned) {
        let Ok(mut inner) = self.inner.lock() else { return };
        let now = Instant::now();
        let fresh = inner.map.insert(id.to_string(), Entry { owned, expires: now + self.ttl }).is_none();
        if fresh {
            inner.order.push_back(id.to_string());
        }
        // Drop the oldest (expired first, then whatever is oldest) beyond the bound.
        while inner.map.len() > self.max_entries {
            let Some(oldest) = inner.order.pop_front() else { break };
            inner.map.remove(&oldest);
        }
        // Opportunistic expiry at the front of the queue.
        while let Some(front) = inner.order.front() {
            match inner.map.get(front) {
                Some(e) if e.expires > now => break,
                _ => {
                    if let Some(id) = inner.order.pop_front() {
                        inner.map.remove(&id);
                    }
                }
            }
        }
    }

    fn get(&self, id: &str) -> Option<Owned> {
        let inner = self.inner.lock().ok()?;
        let e = inner.map.get(id)?;
        (e.expires > Instant::now()).then(|| e.owned.clone())
    }

    fn forget(&self, id: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.map.remove(id);
        }
    }

    fn len(&self) -> usize {
        self.inner.lock().map(|i| i.map.len()).unwrap_or(0)
    }
}

/// The object id a Responses sub-resource path names: `/resp_123/cancel` → `resp_123`.
pub fn id_from_suffix(suffix: &str) -> Option<&str> {
    let id = suffix.strip_prefix('/')?.split('/').next()?;
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(o: &str) -> Owned {
        Owned { owner: o.into(), mcp: None }
    }

    #[test]
    fn records_and_forgets() {
        let s = MemoryStore::new(Duration::from_secs(60), 10);
        s.record("resp_1", owned("alex"));
        assert_eq!(s.get("resp_1").map(|o| o.owner), Some("alex".into()));
        assert_eq!(s.get("resp_2"), None);
        s.forget("resp_1");
        assert_eq!(s.get("resp_1"), None);
    }

    #[test]
    fn entries_expire() {
        let s = MemoryStore::new(Duration::from_millis(20), 10);
        s.record("resp_1", owned("alex"));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(s.get("resp_1"), None);
        s.record("resp_2", owned("bo"));
        assert_eq!(s.len(), 1, "the expired one was dropped");
    }

    #[test]
    fn the_size_is_bounded_oldest_out() {
        let s = MemoryStore::new(Duration::from_secs(60), 3);
        for i in 0..5 {
            s.record(&format!("resp_{i}"), owned("alex"));
        }
        assert_eq!(s.len(), 3);
        assert_eq!(s.get("resp_0"), None);
        assert!(s.get("resp_4").is_some());
    }

    #[test]
    fn suffixes() {
        assert_eq!(id_from_suffix("/resp_1"), Some("resp_1"));
        assert_eq!(id_from_suffix("/resp_1/cancel"), Some("resp_1"));
        assert_eq!(id_from_suffix("/resp_1/input_items"), Some("resp_1"));
        assert_eq!(id_from_suffix(""), None);
        assert_eq!(id_from_suffix("/"), None);
    }
}
