//! Object ownership kept in Redis (the `cluster_redis` setting; MCP pins are shared the same
//! way, `pins::SharedPins`), so that every gateway behind a load balancer knows who owns which
//! response, conversation, item, stored chat completion and MCP approval request.
//!
//! Pingora records a new id in a synchronous body filter,
//! before the bytes holding it reach the client, so the record goes to this node's memory at
//! once and to Redis right after, off the request path (a failed write is retried until Redis
//! takes it). A check is answered from memory; an id this node does not know is looked up in
//! Redis, and when Redis does not have it either, looked up again a few times over ~100 ms —
//! the time a record written by another node may still be on its way. So an id created through
//! node A is accepted by node B as soon as A's write has reached Redis (well under a
//! millisecond on a LAN, and within the 100 ms the lookup waits); it is refused (404) to
//! anyone else everywhere. While Redis is down, each node knows only its own records.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ownership::{note_miss, MemoryStore, Miss, OwnershipStore};
use super::redis::{spawn, RedisLink};
use crate::core::ObjectKind;

/// How long a lookup keeps asking Redis for an id it does not have (a record on its way).
const LOOKUP_RETRIES: [Duration; 3] = [Duration::from_millis(10), Duration::from_millis(30), Duration::from_millis(60)];
/// Writes kept for a retry while Redis is down, at most.
const MAX_QUEUED: usize = 100_000;
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// Counts a failed read or write (`aigate_cluster_store_errors_total`).
pub type OnError = Box<dyn Fn() + Send + Sync>;

/// An owner record as kept in Redis.
#[derive(Serialize, Deserialize)]
struct Record {
    o: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    t: Option<String>,
}

enum Write {
    Set { key: String, value: String },
    Del { key: String },
}

/// Response ownership shared through Redis, with this node's memory as its first view.
pub struct ClusterOwnership {
    local: MemoryStore,
    link: Arc<RedisLink>,
    ttl: Duration,
    on_error: OnError,
    queue: Mutex<VecDeque<Write>>,
    me: Weak<ClusterOwnership>,
    retrier: OnceLock<()>,
}

/// The Redis key of an object: namespaced, and a digest of its kind and id (ids are not written
/// to Redis as such; an id of one kind never finds another kind's record).
fn owner_key(kind: ObjectKind, id: &str) -> String {
    let mut h = Sha256::new();
    h.update([kind.tag(), b':']);
    h.update(id.as_bytes());
    let d = h.finalize();
    format!("aigate:own:{}", hex::encode(&d[..16]))
}

impl ClusterOwnership {
    pub fn new(link: Arc<RedisLink>, ttl: Duration, max_entries: usize, on_error: OnError) -> Arc<ClusterOwnership> {
        Arc::new_cyclic(|me| ClusterOwnership {
            local: MemoryStore::new(ttl, max_entries),
            link,
            ttl,
            on_error,
            queue: Mutex::new(VecDeque::new()),
            me: me.clone(),
            retrier: OnceLock::new(),
        })
    }

    fn write(&self, w: Write) {
        let Some(me) = self.me.upgrade() else { return };
        me.start_retrier();
        spawn(async move {
            if let Err(w) = me.send(w).await {
                (me.on_error)();
                me.enqueue(w);
            }
        });
    }

    async fn send(&self, w: Write) -> Result<(), Write> {
        let ttl_ms = self.ttl.as_millis().min(u128::from(u64::MAX)) as u64;
        let result = match &w {
            Write::Set { key, value } => {
                let (key, value) = (key.clone(), value.clone());
                self.link
                    .call(|mut c| async move {
                        redis::cmd("SET").arg(key).arg(value).arg("PX").arg(ttl_ms).query_async::<()>(&mut c).await
                    })
                    .await
            }
            Write::Del { key } => {
                let key = key.clone();
                self.link.call(|mut c| async move { redis::cmd("DEL").arg(key).query_async::<()>(&mut c).await }).await
            }
        };
        result.map_err(|_| w)
    }

    fn enqueue(&self, w: Write) {
        if let Ok(mut q) = self.queue.lock() {
            if q.len() >= MAX_QUEUED {
                q.pop_front();
            }
            q.push_back(w);
        }
    }

    /// Retry queued writes while Redis is back.
    fn start_retrier(&self) {
        self.retrier.get_or_init(|| {
            let me = self.me.clone();
            spawn(async move {
                loop {
                    tokio::time::sleep(RETRY_EVERY).await;
                    let Some(store) = me.upgrade() else { return };
                    if !store.link.is_up() {
                        continue;
                    }
                    loop {
                        let next = store.queue.lock().ok().and_then(|mut q| q.pop_front());
                        let Some(w) = next else { break };
                        if let Err(w) = store.send(w).await {
                            (store.on_error)();
                            if let Ok(mut q) = store.queue.lock() {
                                q.push_front(w);
                            }
                            break;
                        }
                    }
                }
            });
        });
    }

    /// The records of `objects` in Redis, into this node's memory; returns those Redis lacks.
    async fn load(&self, objects: &[Miss]) -> Vec<Miss> {
        let keys: Vec<String> = objects.iter().map(|(kind, id)| owner_key(*kind, id)).collect();
        let found: Result<Vec<Option<String>>, _> =
            self.link.call(|mut c| async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await }).await;
        let Ok(found) = found else {
            (self.on_error)();
            return Vec::new();
        };
        let mut missing = Vec::new();
        for ((kind, id), value) in objects.iter().zip(found) {
            match value.and_then(|v| serde_json::from_str::<Record>(&v).ok()) {
                Some(r) => {
                    let mcp = r.s.zip(r.t);
                    self.local.record(*kind, id, &r.o, mcp);
                }
                None => missing.push((*kind, id.clone())),
            }
        }
        missing
    }
}

#[async_trait]
impl OwnershipStore for ClusterOwnership {
    fn record(&self, kind: ObjectKind, id: &str, owner: &str, mcp: Option<(String, String)>) {
        self.local.record(kind, id, owner, mcp.clone());
        let (s, t) = match mcp {
            Some((s, t)) => (Some(s), Some(t)),
            None => (None, None),
        };
        let value = serde_json::to_string(&Record { o: owner.to_string(), s, t }).unwrap_or_default();
        self.write(Write::Set { key: owner_key(kind, id), value });
    }

    fn owned_by(&self, kind: ObjectKind, id: &str, owner: &str) -> bool {
        if self.local.owned_by(kind, id, owner) {
            return true;
        }
        if !self.local.knows(kind, id) {
            note_miss(kind, id);
        }
        false
    }

    fn approval(&self, id: &str, owner: &str) -> Option<(String, String)> {
        let found = self.local.approval(id, owner);
        let kind = ObjectKind::McpApprovalRequest;
        if found.is_none() && !self.local.knows(kind, id) {
            note_miss(kind, id);
        }
        found
    }

    fn forget(&self, kind: ObjectKind, id: &str) {
        self.local.forget(kind, id);
        self.write(Write::Del { key: owner_key(kind, id) });
    }

    fn len(&self) -> usize {
        self.local.len()
    }

    async fn fetch(&self, misses: &[Miss]) {
        let mut missing = self.load(misses).await;
        for wait in LOOKUP_RETRIES {
            if missing.is_empty() || !self.link.is_up() {
                return;
            }
            tokio::time::sleep(wait).await;
            missing = self.load(&missing).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_digests_of_ids() {
        let k = owner_key(ObjectKind::Response, "resp_123");
        assert!(k.starts_with("aigate:own:") && k.len() == "aigate:own:".len() + 32, "{k}");
        assert!(!k.contains("resp_123"));
        assert_ne!(k, owner_key(ObjectKind::Response, "resp_124"));
        // The kind is part of the key: an id of one kind never finds another's record.
        assert_ne!(k, owner_key(ObjectKind::Item, "resp_123"));
        assert_ne!(owner_key(ObjectKind::Conversation, "x"), owner_key(ObjectKind::ChatCompletion, "x"));
    }

    #[test]
    fn records_round_trip() {
        let v = serde_json::to_string(&Record { o: "alex-id".into(), s: Some("git".into()), t: Some("pr".into()) })
            .unwrap();
        let r: Record = serde_json::from_str(&v).unwrap();
        assert_eq!((r.o.as_str(), r.s.as_deref(), r.t.as_deref()), ("alex-id", Some("git"), Some("pr")));
        assert_eq!(serde_json::to_string(&Record { o: "a".into(), s: None, t: None }).unwrap(), r#"{"o":"a"}"#);
    }
}
