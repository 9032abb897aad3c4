//! Counters shared through Redis, so that N gateways enforce one limit.
//!
//! - **Synchronous** (`sync_rate: -1` for rate-limiting, `0` for ai-rate-limiting-advanced): one
//!   Lua script per decision checks every limit and adds the cost atomically; exact across
//!   nodes. Charges after an answer are counted locally at once and pushed within
//!   [`CHARGE_BATCH_WINDOW`], off the request path, many in one call under load.
//! - **Periodic** (`sync_rate` > 0): decisions use this node's view (what Redis said at the last
//!   sync plus what this node counted since); every `sync_rate` seconds a task pushes this
//!   node's counts and reads everyone's (of the windows that can still change). No Redis call
//!   on the request path.
//!
//! Either way, when Redis fails or is too slow (the link's breaker), a fault-tolerant plugin
//! decides on the local view — which starts from the last count Redis gave, not from zero — and
//! what it counts meanwhile is pushed when Redis answers again, so an outage does not reset
//! the limits and its counts are not lost.

use std::sync::{Arc, LazyLock, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::Script;
use smallvec::SmallVec;
use tokio::sync::Notify;

use super::local::{CounterTable, Record};
use super::{Checked, CounterId, Counters, Slot, SyncMode, Unavailable, Used};
use crate::store::redis::{spawn, RedisLink};

/// Keys outlive their window by this much (clocks of different nodes differ a little).
const EXPIRY_SLACK_MS: i64 = 1000;
/// A synchronous store pushes counts it could not push at once this often.
const RETRY_PUSH_EVERY: Duration = Duration::from_secs(1);
/// Counters per script call when syncing.
const BATCH: usize = 256;
/// Charges arriving within this time of each other go to Redis in one call: under load one
/// script call carries many answers' charges instead of one each.
pub const CHARGE_BATCH_WINDOW: Duration = Duration::from_millis(2);

/// Check every limit; add the cost to every current counter only when all are under.
static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- KEYS[2i-1], KEYS[2i]: limit i's current counter and its previous one (a sliding window's).
-- ARGV[1]: the cost added to every current counter when admitted (0: check only).
-- ARGV[4i-2], ARGV[4i-1], ARGV[4i], ARGV[4i+1]: limit i, the previous counter's weight, the
-- current counter's expiry (Unix ms), and what the calling node charged to it that may not
-- have reached Redis yet (counted in the decision only).
-- Returns {refused (0: admitted, else the first limit reached), then per limit the current and
-- previous counts before this request}.
local cost = tonumber(ARGV[1])
local n = #KEYS / 2
local out = {0}
local refused = 0
for i = 1, n do
  local limit = tonumber(ARGV[4 * i - 2])
  local weight = tonumber(ARGV[4 * i - 1])
  local unsent = tonumber(ARGV[4 * i + 1])
  local cur = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local prev = 0
  if weight > 0 then prev = tonumber(redis.call('GET', KEYS[2 * i]) or '0') end
  out[2 * i] = cur
  out[2 * i + 1] = prev
  if refused == 0 and cur + unsent + prev * weight >= limit then refused = i end
end
if refused == 0 and cost ~= 0 then
  for i = 1, n do
    -- Costs are positive: the counter holds just the cost only when it was created now, and
    -- only then does it need its expiry (one command less per counter and request).
    if redis.call('INCRBY', KEYS[2 * i - 1], cost) == cost then
      redis.call('PEXPIREAT', KEYS[2 * i - 1], ARGV[4 * i])
    end
  end
end
out[1] = refused
return out
",
    )
});

/// Add this node's counts and read every counter's total.
static ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- KEYS[i]: a counter; ARGV[2i-1]: what to add (0: only read); ARGV[2i]: its expiry (Unix ms).
-- Returns each counter's total after.
local out = {}
for i = 1, #KEYS do
  local d = tonumber(ARGV[2 * i - 1])
  if d ~= 0 then
    -- Deltas are positive: a counter that holds just the delta was created now (its expiry).
    out[i] = redis.call('INCRBY', KEYS[i], d)
    if out[i] == d then redis.call('PEXPIREAT', KEYS[i], ARGV[2 * i]) end
  else
    out[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  end
end
return out
",
    )
});

pub struct RedisCounters {
    link: Arc<RedisLink>,
    mode: SyncMode,
    /// The local view: what Redis said, and what this node counted since.
    mirror: CounterTable,
    me: Weak<RedisCounters>,
    task: OnceLock<()>,
    /// Counters charged since the last push (synchronous mode), and the push task's wake-up.
    charged: Mutex<Vec<CounterId>>,
    charge_pushed: Arc<Notify>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn expiry(id: &CounterId) -> String {
    (id.expires_ms + EXPIRY_SLACK_MS).to_string()
}

impl RedisCounters {
    pub fn new(link: Arc<RedisLink>, mode: SyncMode, max_entries: usize) -> Arc<RedisCounters> {
        Arc::new_cyclic(|me| RedisCounters {
            link,
            mode,
            mirror: CounterTable::new(max_entries),
            me: me.clone(),
            task: OnceLock::new(),
            charged: Mutex::new(Vec::new()),
            charge_pushed: Arc::new(Notify::new()),
        })
    }

    /// Start the sync task on the stores' runtime (on first use: after the process forked).
    fn ensure_task(&self) {
        self.task.get_or_init(|| {
            let every = match self.mode {
                SyncMode::Synchronous => RETRY_PUSH_EVERY,
                SyncMode::Periodic(d) => d,
            };
            let me = self.me.clone();
            if self.mode == SyncMode::Synchronous {
                let (me, wake) = (self.me.clone(), Arc::clone(&self.charge_pushed));
                spawn(async move {
                    loop {
                        wake.notified().await;
                        tokio::time::sleep(CHARGE_BATCH_WINDOW).await;
                        let Some(store) = me.upgrade() else { return };
                        store.push_charged().await;
                    }
                });
            }
            spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(store) = me.upgrade() else { return };
                    store.sync().await;
                }
            });
        });
    }

    /// Push what this node counted; the periodic sync also reads back the counters that can
    /// still change (their window open, or ended less than two intervals and the expiry slack
    /// ago: the other nodes' last counts for it have arrived by then), learning the other
    /// nodes' counts that way.
    async fn sync(&self) {
        if !self.link.is_up() {
            return;
        }
        let read_back = match self.mode {
            SyncMode::Synchronous => None,
            SyncMode::Periodic(every) => Some(2 * every.as_millis() as i64 + EXPIRY_SLACK_MS),
        };
        let batch = self.mirror.begin_sync(read_back, now_ms());
        self.push(batch).await;
    }

    async fn push(&self, batch: Vec<(CounterId, i64)>) {
        let mut chunks = batch.chunks(BATCH);
        while let Some(chunk) = chunks.next() {
            let keys = chunk.iter().map(|(id, _)| id.redis_key()).collect();
            let args = chunk.iter().flat_map(|(id, d)| [d.to_string(), expiry(id)]).collect();
            match self.link.script::<Vec<i64>>(&ADD, keys, args).await {
                Ok(totals) if totals.len() == chunk.len() => {
                    for ((id, delta), total) in chunk.iter().zip(totals) {
                        self.mirror.end_sync(id, *delta, Some(total));
                    }
                }
                _ => {
                    // Pending again, this chunk and the rest: pushed when Redis answers.
                    for (id, delta) in chunk.iter().chain(chunks.flatten()) {
                        self.mirror.end_sync(id, *delta, None);
                    }
                    return;
                }
            }
        }
    }

    /// Push the charges made since the last push, in one call (or a few).
    async fn push_charged(&self) {
        let mut ids = self.charged.lock().map(|mut c| std::mem::take(&mut *c)).unwrap_or_default();
        if ids.is_empty() || !self.link.is_up() {
            // Left pending: the retry loop pushes them when Redis answers.
            return;
        }
        ids.sort_unstable_by_key(|id| (id.subject, id.window.start_ms, id.window.end_ms));
        ids.dedup();
        let batch = self.mirror.begin_sync_of(&ids, now_ms());
        self.push(batch).await;
    }

    /// Periodic mode: decide on this node's view (degraded while Redis is down).
    fn admit_periodically(
        &self,
        slots: &[Slot],
        cost: i64,
        now_ms: i64,
        fault_tolerant: bool,
    ) -> Result<Checked, Unavailable> {
        let up = self.link.is_up();
        if !up && !fault_tolerant {
            return Err(Unavailable("Redis is unreachable".into()));
        }
        Ok(Checked { degraded: !up, ..self.admit_locally(slots, cost, now_ms) })
    }

    /// Decide on this node's view, counting into what is still to be pushed.
    fn admit_locally(&self, slots: &[Slot], cost: i64, now_ms: i64) -> Checked {
        self.mirror.admit(slots, cost, now_ms, Record::Pending)
    }

    async fn admit_synchronously(&self, slots: &[Slot], cost: i64, now_ms: i64) -> Result<Checked, String> {
        let mut keys = Vec::with_capacity(slots.len() * 2);
        let mut args = Vec::with_capacity(slots.len() * 4 + 1);
        args.push(cost.to_string());
        // What this node charged and has not seen confirmed: a request sent right after an
        // answer sees that answer's charge here, even before it reaches Redis.
        let unsent: Vec<i64> = slots.iter().map(|s| self.mirror.unconfirmed(&s.current, now_ms)).collect();
        for (s, unsent) in slots.iter().zip(&unsent) {
            keys.push(s.current.redis_key());
            match s.previous {
                Some((p, w)) => {
                    keys.push(p.redis_key());
                    args.extend([s.limit.to_string(), w.to_string()]);
                }
                None => {
                    keys.push(format!("{}:-", s.current.redis_key()));
                    args.extend([s.limit.to_string(), "0".into()]);
                }
            }
            args.push(expiry(&s.current));
            args.push(unsent.to_string());
        }
        let reply: Vec<i64> = self.link.script(&ADMIT, keys, args).await.map_err(|e| e.to_string())?;
        if reply.len() != 1 + 2 * slots.len() {
            return Err(format!("unexpected answer from the admission script ({} values)", reply.len()));
        }
        let refused = usize::try_from(reply[0]).ok().filter(|&r| r > 0).map(|r| r - 1);
        let used: SmallVec<[Used; 4]> = reply[1..].chunks(2).map(|c| Used { current: c[0], previous: c[1] }).collect();
        // Keep the local view close to Redis's, for when Redis is not there.
        for (s, u) in slots.iter().zip(&used) {
            let added = if refused.is_none() { cost } else { 0 };
            self.mirror.confirm(&s.current, u.current + added, now_ms);
            if let Some((p, _)) = &s.previous {
                self.mirror.confirm(p, u.previous, now_ms);
            }
        }
        let used = used.into_iter().zip(unsent).map(|(u, x)| Used { current: u.current + x, ..u }).collect();
        Ok(Checked { used, refused, degraded: false })
    }
}

#[async_trait]
impl Counters for RedisCounters {
    async fn admit(
        &self,
        slots: &[Slot],
        cost: i64,
        now_ms: i64,
        fault_tolerant: bool,
    ) -> Result<Checked, Unavailable> {
        self.ensure_task();
        match self.mode {
            SyncMode::Synchronous => match self.admit_synchronously(slots, cost, now_ms).await {
                Ok(c) => Ok(c),
                Err(e) if !fault_tolerant => Err(Unavailable(e)),
                Err(_) => Ok(Checked { degraded: true, ..self.admit_locally(slots, cost, now_ms) }),
            },
            SyncMode::Periodic(_) => self.admit_periodically(slots, cost, now_ms, fault_tolerant),
        }
    }

    fn admit_now(
        &self,
        slots: &[Slot],
        cost: i64,
        now_ms: i64,
        fault_tolerant: bool,
    ) -> Option<Result<Checked, Unavailable>> {
        match self.mode {
            SyncMode::Synchronous => None,
            SyncMode::Periodic(_) => {
                self.ensure_task();
                Some(self.admit_periodically(slots, cost, now_ms, fault_tolerant))
            }
        }
    }

    fn charge(&self, counters: &[CounterId], amount: i64, now_ms: i64) {
        self.ensure_task();
        self.mirror.add_all(counters, amount, Record::Pending, now_ms);
        if self.mode == SyncMode::Synchronous {
            // Told to Redis within the batch window, so the other nodes see it within a few
            // milliseconds (this node counts it already).
            if let Ok(mut charged) = self.charged.lock() {
                charged.extend_from_slice(counters);
            }
            self.charge_pushed.notify_one();
        }
    }

    fn peek(&self, slots: &[Slot], now_ms: i64) -> SmallVec<[Used; 4]> {
        // Base records create no counter: a scrape does not make counters to sync.
        self.mirror.admit(slots, 0, now_ms, Record::Base).used
    }
}
