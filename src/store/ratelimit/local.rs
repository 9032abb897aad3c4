//! Counters in this process: [`CounterTable`], a bounded, sharded map of counters that expire
//! with their windows, and [`LocalCounters`], the store that counts in it alone. The Redis store
//! keeps one too, as its local view: what Redis said last (`base`), what this node counted
//! since and has not pushed yet (`pending`), and what is being pushed (`inflight`).

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};

use foldhash::fast::RandomState;

use async_trait::async_trait;
use smallvec::SmallVec;

use super::{Checked, CounterId, Counters, Slot, Subject, Unavailable, Used};

const SHARDS: usize = 16;
/// Counters kept at most (about 100 bytes each); beyond it the oldest go first.
pub const DEFAULT_MAX_ENTRIES: usize = 500_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: CounterId,
    /// The count as last known from the shared backend (or the whole count, when local only).
    base: i64,
    /// Counted here, not yet pushed.
    pending: i64,
    /// Being pushed.
    inflight: i64,
    /// The backend has told its count at least once (a counter this node only read, such as
    /// a sliding window's previous one, is read back until it has).
    known: bool,
}

impl Entry {
    fn total(&self) -> i64 {
        self.base + self.pending + self.inflight
    }
}

#[derive(Default)]
struct Shard {
    /// A subject's counters together, found with one probe and read from one place in memory
    /// (a request checks all of a subject's windows at once: one cold lookup, not one per
    /// window). Keyed with a random seed per process (foldhash): fast on the request path, and
    /// a subject chosen by a client (a header value) cannot be made to collide.
    map: HashMap<Subject, SmallVec<[Entry; 4]>, RandomState>,
    /// Counters in insertion order (one may be listed after it was dropped: skipped then).
    order: VecDeque<CounterId>,
    /// Counters kept, over all subjects.
    len: usize,
    /// The length of `order` at which expired counters are swept from the whole shard (not
    /// only from the front of `order`).
    sweep_at: usize,
}

impl Shard {
    fn get(&self, id: &CounterId) -> Option<&Entry> {
        self.map.get(&id.subject)?.iter().find(|e| e.id == *id)
    }

    fn get_mut(&mut self, id: &CounterId) -> Option<&mut Entry> {
        self.map.get_mut(&id.subject)?.iter_mut().find(|e| e.id == *id)
    }

    /// Keep a new counter at 0 (its subject's expired counters are dropped meanwhile).
    fn insert(&mut self, id: CounterId, now_ms: i64) {
        let list = self.map.entry(id.subject).or_default();
        let before = list.len();
        list.retain(|e| e.id.expires_ms > now_ms && e.id != id);
        self.len = self.len + list.len() + 1 - before;
        list.push(Entry { id, base: 0, pending: 0, inflight: 0, known: false });
        self.order.push_back(id);
    }

    fn remove(&mut self, id: &CounterId) {
        let Some(list) = self.map.get_mut(&id.subject) else { return };
        if let Some(i) = list.iter().position(|e| e.id == *id) {
            list.swap_remove(i);
            self.len -= 1;
        }
        if list.is_empty() {
            self.map.remove(&id.subject);
        }
    }

    fn entries_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.map.values_mut().flat_map(|list| list.iter_mut())
    }
}

/// A shard is swept of its expired counters when its insertion list has grown to twice its
/// length after the last sweep (and to at least this many).
const MIN_SWEEP: usize = 64;

/// Where an addition goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Into the count itself (local only, or a value the backend confirmed).
    Base,
    /// Into what is still to be pushed to the backend.
    Pending,
}

/// A shard and its lock in a 128-byte block of their own (two cache lines, as the adjacent-line
/// prefetcher pairs them): side by side, the worker threads locking neighbouring shards wrote to
/// the same line and took it from each other's cache.
#[repr(align(128))]
struct ShardLock(Mutex<Shard>);

/// The guards of one operation, by shard index.
type Guards<'a> = [Option<MutexGuard<'a, Shard>>; SHARDS];

pub struct CounterTable {
    shards: Vec<ShardLock>,
    max_per_shard: usize,
    hasher: RandomState,
}

impl CounterTable {
    pub fn new(max_entries: usize) -> CounterTable {
        CounterTable {
            shards: (0..SHARDS).map(|_| ShardLock(Mutex::new(Shard::default()))).collect(),
            max_per_shard: max_entries.div_ceil(SHARDS).max(1),
            hasher: RandomState::default(),
        }
    }

    /// A subject's counters all live in one shard, so one lock covers a request's windows.
    fn shard_of(&self, id: &CounterId) -> usize {
        (self.hasher.hash_one(id.subject) as usize) % SHARDS
    }

    /// Lock the shards of `ids`, each once, in index order (no deadlock between requests); a
    /// guard per shard index, `None` for shards not needed (or poisoned).
    fn lock<'a>(&'a self, ids: impl Iterator<Item = &'a CounterId>) -> Guards<'a> {
        let mut wanted = 0u32;
        for id in ids {
            wanted |= 1 << self.shard_of(id);
        }
        let mut guards: Guards<'a> = Default::default();
        while wanted != 0 {
            let i = wanted.trailing_zeros() as usize;
            wanted &= wanted - 1;
            guards[i] = self.shards[i].0.lock().ok();
        }
        guards
    }

    /// A counter's total. Counting into `Pending`, a counter not kept yet is created (at 0):
    /// counters seen here are synced (read back) even when nothing is added to them.
    fn read(&self, guards: &mut Guards<'_>, id: &CounterId, now_ms: i64, record: Record) -> i64 {
        let Some(g) = guards[self.shard_of(id)].as_mut() else { return 0 };
        match g.get(id) {
            Some(e) if e.id.expires_ms > now_ms => e.total(),
            Some(_) => 0,
            None => {
                if record == Record::Pending && id.expires_ms > now_ms {
                    self.add_in(g, id, 0, record, now_ms);
                }
                0
            }
        }
    }

    fn add_in(&self, shard: &mut Shard, id: &CounterId, amount: i64, record: Record, now_ms: i64) {
        if shard.get(id).is_none_or(|e| e.id.expires_ms <= now_ms) {
            shard.insert(*id, now_ms);
            self.bound(shard, now_ms);
        }
        let Some(e) = shard.get_mut(id) else { return };
        match record {
            Record::Base => e.base += amount,
            Record::Pending => e.pending += amount,
        }
    }

    /// Drop expired counters, and the oldest beyond the bound.
    ///
    /// `order` is by insertion, not by expiry: a second's counter inserted behind an hour's
    /// stays there, expired, until the hour's goes. So the front is dropped while it is expired
    /// (cheap, every time), a subject's expired counters go when it gets a new one, and the
    /// whole shard is swept when `order` has doubled since the last sweep (amortized O(1) per
    /// insertion): without it the expired counters piled up to the bound (500,000 by
    /// default), evicting live counters first and making every lookup and every sync slower.
    fn bound(&self, shard: &mut Shard, now_ms: i64) {
        if shard.order.len() >= shard.sweep_at.max(MIN_SWEEP) {
            shard.map.retain(|_, list| {
                list.retain(|e| e.id.expires_ms > now_ms);
                !list.is_empty()
            });
            shard.len = shard.map.values().map(|list| list.len()).sum();
            let Shard { map, order, .. } = shard;
            order.retain(|id| map.get(&id.subject).is_some_and(|list| list.iter().any(|e| e.id == *id)));
            shard.sweep_at = shard.order.len() * 2;
        }
        while shard.len > self.max_per_shard {
            let Some(oldest) = shard.order.pop_front() else { break };
            shard.remove(&oldest);
        }
        while let Some(front) = shard.order.front() {
            match shard.get(front) {
                Some(e) if e.id.expires_ms > now_ms => break,
                _ => {
                    let front = *front;
                    shard.order.pop_front();
                    shard.remove(&front);
                }
            }
        }
    }

    /// Check every slot against the counts here; when all are under, add `cost` to each
    /// current counter (as `record` says). All under one set of locks: exact in this process.
    pub fn admit(&self, slots: &[Slot], cost: i64, now_ms: i64, record: Record) -> Checked {
        let ids = slots.iter().flat_map(|s| std::iter::once(&s.current).chain(s.previous.as_ref().map(|(p, _)| p)));
        let mut guards = self.lock(ids);
        let mut used = SmallVec::with_capacity(slots.len());
        let mut refused = None;
        for (i, s) in slots.iter().enumerate() {
            let u = Used {
                current: self.read(&mut guards, &s.current, now_ms, record),
                previous: s.previous.map_or(0, |(p, _)| self.read(&mut guards, &p, now_ms, record)),
            };
            if refused.is_none() && u.estimate(s) >= s.limit {
                refused = Some(i);
            }
            used.push(u);
        }
        if refused.is_none() && cost != 0 {
            for s in slots {
                if let Some(g) = guards[self.shard_of(&s.current)].as_mut() {
                    self.add_in(g, &s.current, cost, record, now_ms);
                }
            }
        }
        Checked { used, refused, degraded: false }
    }

    /// Add `amount` to one counter (the tests' shorthand for [`CounterTable::add_all`]).
    #[cfg(test)]
    pub fn add(&self, id: &CounterId, amount: i64, record: Record, now_ms: i64) {
        self.add_all(std::slice::from_ref(id), amount, record, now_ms);
    }

    /// Add `amount` to each counter (a subject's counters: one lock).
    pub fn add_all(&self, ids: &[CounterId], amount: i64, record: Record, now_ms: i64) {
        let mut guards = self.lock(ids.iter());
        for id in ids {
            if let Some(g) = guards[self.shard_of(id)].as_mut() {
                self.add_in(g, id, amount, record, now_ms);
            }
        }
    }

    /// The backend says the counter holds `value` (everything pushed so far included).
    pub fn confirm(&self, id: &CounterId, value: i64, now_ms: i64) {
        if let Ok(mut g) = self.shards[self.shard_of(id)].0.lock() {
            if g.get(id).is_none() && id.expires_ms > now_ms {
                self.add_in(&mut g, id, 0, Record::Base, now_ms);
            }
            if let Some(e) = g.get_mut(id) {
                e.base = e.base.max(value);
                e.known = true;
            }
        }
    }

    /// Start a sync: the live counters with something to push and, for a full sync
    /// (`read_back` is `Some(grace)`), also those to read back: every counter whose window is
    /// open or ended less than `grace` ms ago, and any the backend has not told yet. A window
    /// that ended longer ago no longer changes (charges go to the current windows; the other
    /// nodes pushed their last counts within the grace), so a sliding window's previous counter
    /// is read once, not every sync. Each with what it has pending (the delta to push), moved
    /// to in-flight.
    pub fn begin_sync(&self, read_back: Option<i64>, now_ms: i64) -> Vec<(CounterId, i64)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let Ok(mut g) = shard.0.lock() else { continue };
            self.bound(&mut g, now_ms);
            for e in g.entries_mut() {
                let read = read_back.is_some_and(|grace| e.id.window.end_ms + grace > now_ms || !e.known);
                if e.id.expires_ms <= now_ms || (e.pending == 0 && !read) {
                    continue;
                }
                out.push((e.id, Self::take_pending(e)));
            }
        }
        out
    }

    /// Start a sync of some counters only (a charge pushed at once).
    pub fn begin_sync_of(&self, ids: &[CounterId], now_ms: i64) -> Vec<(CounterId, i64)> {
        let mut out = Vec::new();
        for id in ids {
            let Ok(mut g) = self.shards[self.shard_of(id)].0.lock() else { continue };
            if let Some(e) = g.get_mut(id).filter(|e| e.id.expires_ms > now_ms && e.pending != 0) {
                out.push((e.id, Self::take_pending(e)));
            }
        }
        out
    }

    fn take_pending(e: &mut Entry) -> i64 {
        let delta = std::mem::take(&mut e.pending);
        e.inflight += delta;
        delta
    }

    /// End the push of `delta` to `id`: the backend holds `total` now (counts only grow in a
    /// window, so the largest total seen is the latest; while another push is in flight the
    /// view may count it twice, erring on the side of the limit), or `None`: the push failed
    /// and the delta is pending again.
    pub fn end_sync(&self, id: &CounterId, delta: i64, total: Option<i64>) {
        if let Ok(mut g) = self.shards[self.shard_of(id)].0.lock() {
            if let Some(e) = g.get_mut(id) {
                e.inflight -= delta;
                match total {
                    Some(v) => {
                        e.base = e.base.max(v);
                        e.known = true;
                    }
                    None => e.pending += delta,
                }
            }
        }
    }

    /// What this node counted into `id` that the backend has not confirmed yet.
    pub fn unconfirmed(&self, id: &CounterId, now_ms: i64) -> i64 {
        self.shards[self.shard_of(id)]
            .0
            .lock()
            .ok()
            .and_then(|g| g.get(id).filter(|e| e.id.expires_ms > now_ms).map(|e| e.pending + e.inflight))
            .unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().map(|g| g.len).unwrap_or(0)).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counting in this process only (`policy: local`, ai-rate-limiting-advanced's
/// `strategy: local` or `sync_rate: -1`): exact on one node, per node on several.
pub struct LocalCounters {
    table: CounterTable,
}

impl LocalCounters {
    pub fn new(max_entries: usize) -> LocalCounters {
        LocalCounters { table: CounterTable::new(max_entries) }
    }
}

#[async_trait]
impl Counters for LocalCounters {
    async fn admit(&self, slots: &[Slot], cost: i64, now_ms: i64, _: bool) -> Result<Checked, Unavailable> {
        Ok(self.table.admit(slots, cost, now_ms, Record::Base))
    }

    fn admit_now(&self, slots: &[Slot], cost: i64, now_ms: i64, _: bool) -> Option<Result<Checked, Unavailable>> {
        Some(Ok(self.table.admit(slots, cost, now_ms, Record::Base)))
    }

    fn charge(&self, counters: &[CounterId], amount: i64, now_ms: i64) {
        self.table.add_all(counters, amount, Record::Base, now_ms);
    }

    fn peek(&self, slots: &[Slot], now_ms: i64) -> SmallVec<[Used; 4]> {
        self.table.admit(slots, 0, now_ms, Record::Base).used
    }
}

#[cfg(test)]
mod tests {
    use super::super::window::{epoch_window, sliding_weight, Period};
    use super::super::Subject;
    use super::*;

    const NOW: i64 = 1_795_685_706_123;

    fn slot(subject: Subject, period: Period, limit: f64) -> Slot {
        Slot { current: CounterId::fixed(subject, period.window(NOW)), previous: None, limit }
    }

    #[test]
    fn admits_while_under_every_limit_all_or_nothing() {
        let t = CounterTable::new(1000);
        let s = Subject::of(&[b"p", b"alex"]);
        let slots = [slot(s, Period::Second, 5.0), slot(s, Period::Minute, 3.0)];
        for i in 0..3 {
            let c = t.admit(&slots, 1, NOW, Record::Base);
            assert_eq!(c.refused, None, "request {i}");
            assert_eq!(c.used[1].current, i);
        }
        let c = t.admit(&slots, 1, NOW, Record::Base);
        assert_eq!(c.refused, Some(1));
        // Nothing was added to the second's counter by the refused request.
        assert_eq!(t.admit(&slots, 0, NOW, Record::Base).used[0].current, 3);
        // Another subject has its own counters; the next minute starts from zero.
        assert_eq!(
            t.admit(&[slot(Subject::of(&[b"p", b"bo"]), Period::Minute, 3.0)], 1, NOW, Record::Base).refused,
            None
        );
        let later = NOW + 60_000;
        let next = [Slot { current: CounterId::fixed(s, Period::Minute.window(later)), previous: None, limit: 3.0 }];
        assert_eq!(t.admit(&next, 1, later, Record::Base).used[0].current, 0);
    }

    #[test]
    fn fractional_limits_admit_while_under_as_kong_does() {
        let t = CounterTable::new(1000);
        let s = Subject::of(&[b"p", b"x"]);
        let slots = [slot(s, Period::Minute, 2.5)];
        let admitted = (0..5).filter(|_| t.admit(&slots, 1, NOW, Record::Base).refused.is_none()).count();
        assert_eq!(admitted, 3);
    }

    #[test]
    fn sliding_windows_weigh_the_previous_one() {
        let t = CounterTable::new(1000);
        let s = Subject::of(&[b"ai", b"alex"]);
        let now = 30_000; // half-way through the window [0, 60 s)
        let w = epoch_window(60, now);
        let prev = CounterId::sliding(s, w.previous());
        t.add(&prev, 100, Record::Base, -1);
        let slot =
            Slot { current: CounterId::sliding(s, w), previous: Some((prev, sliding_weight(&w, now))), limit: 60.0 };
        // 100 × 0.5 = 50 < 60: admitted (check only), then 20 tokens charged: 70 ≥ 60.
        let c = t.admit(&[slot], 0, now, Record::Base);
        assert_eq!((c.refused, c.used[0].estimate(&slot)), (None, 50.0));
        t.add(&slot.current, 20, Record::Base, now);
        assert_eq!(t.admit(&[slot], 0, now, Record::Base).refused, Some(0));
    }

    #[test]
    fn counters_expire_with_their_window_and_the_table_is_bounded() {
        let t = CounterTable::new(32);
        for i in 0..1000u32 {
            t.add(&CounterId::fixed(Subject(u128::from(i)), Period::Minute.window(NOW)), 1, Record::Base, NOW);
        }
        assert!(t.len() <= 32 + SHARDS, "{}", t.len());
        let id = CounterId::fixed(Subject(7), Period::Second.window(NOW));
        t.add(&id, 5, Record::Base, NOW);
        let later = NOW + 2_000;
        assert_eq!(
            t.admit(&[Slot { current: id, previous: None, limit: 1.0 }], 0, later, Record::Base).used[0].current,
            0
        );
    }

    #[test]
    fn expired_counters_behind_a_live_one_are_dropped() {
        // One subject (one shard): an hour's counter first, then a second's counter for each of
        // 5,000 seconds. Each second's expires behind the hour's, which stays live.
        let t = CounterTable::new(DEFAULT_MAX_ENTRIES);
        let s = Subject(9);
        let hour = CounterId::fixed(s, Period::Hour.window(NOW));
        t.add(&hour, 7, Record::Base, NOW);
        let start = Period::Hour.window(NOW).start_ms;
        for i in 0..5000 {
            let now = start + i * 500;
            t.add(&CounterId::fixed(s, Period::Second.window(now)), 1, Record::Base, now);
        }
        let now = start + 4999 * 500;
        // The hour's and the current second's: each new second's counter took the place of the
        // expired ones of its subject.
        assert_eq!(t.len(), 2);
        let slot = |id| Slot { current: id, previous: None, limit: 1e9 };
        assert_eq!(t.admit(&[slot(hour)], 0, now, Record::Base).used[0].current, 7);
        let last = CounterId::fixed(s, Period::Second.window(now));
        assert_eq!(t.admit(&[slot(last)], 0, now, Record::Base).used[0].current, 2);
        // The insertion order stays consistent with the map across sweeps: later front drops
        // never take the live hour's counter.
        for i in 0..1000 {
            let now = now + i * 1000;
            t.add(&CounterId::fixed(s, Period::Second.window(now)), 1, Record::Base, now);
        }
        let end = now + 999 * 1000;
        assert_eq!(t.admit(&[slot(hour)], 0, end, Record::Base).used[0].current, 7);
    }

    #[test]
    fn a_full_sync_reads_back_open_windows_and_just_ended_ones() {
        let t = CounterTable::new(100);
        let s = Subject(3);
        let w = Period::Minute.window(NOW);
        let (current, previous) = (CounterId::sliding(s, w), CounterId::sliding(s, w.previous()));
        let slot = Slot { current, previous: Some((previous, 0.5)), limit: 1e9 };
        t.admit(&[slot], 0, NOW, Record::Pending);
        let ids = |grace| t.begin_sync(Some(grace), NOW).into_iter().map(|(id, _)| id).collect::<Vec<_>>();
        // The previous minute ended (NOW - w.start_ms) ms ago; until the backend has told its
        // count once (other nodes' use of it), it is read back however long ago it ended.
        let ended = NOW - w.start_ms;
        let mut both = ids(ended);
        both.sort_by_key(|id| id.window.start_ms);
        assert_eq!(both, vec![previous, current]);
        t.end_sync(&previous, 0, Some(9));
        t.end_sync(&current, 0, Some(1));
        assert_eq!(ids(ended), vec![current]);
        assert_eq!(ids(ended + 1).len(), 2);
        // Something to push is pushed, whatever its window.
        t.add(&previous, 2, Record::Pending, NOW);
        assert_eq!(t.begin_sync(Some(0), NOW).len(), 2);
        assert_eq!(t.begin_sync(None, NOW), vec![]);
    }

    #[test]
    fn a_sync_moves_pending_to_inflight_and_back_on_failure() {
        let t = CounterTable::new(100);
        let id = CounterId::fixed(Subject(1), Period::Minute.window(NOW));
        t.add(&id, 3, Record::Pending, NOW);
        let batch = t.begin_sync(None, NOW);
        assert_eq!(batch, vec![(id, 3)]);
        t.add(&id, 2, Record::Pending, NOW);
        let total = |t: &CounterTable| {
            t.admit(&[Slot { current: id, previous: None, limit: 1e9 }], 0, NOW, Record::Base).used[0].current
        };
        assert_eq!(total(&t), 5);
        t.end_sync(&id, 3, None);
        assert_eq!(t.begin_sync(None, NOW), vec![(id, 5)]);
        // Redis holds 12 (5 from here, 7 from other nodes).
        t.end_sync(&id, 5, Some(12));
        assert_eq!(total(&t), 12);
        assert!(t.begin_sync(None, NOW).is_empty());
        // Two pushes in flight at once: each pushes its own delta; the totals may come back in
        // any order.
        t.add(&id, 4, Record::Pending, NOW);
        let first = t.begin_sync_of(&[id], NOW);
        t.add(&id, 6, Record::Pending, NOW);
        let second = t.begin_sync_of(&[id], NOW);
        assert_eq!((first, second), (vec![(id, 4)], vec![(id, 6)]));
        assert_eq!(total(&t), 22);
        t.end_sync(&id, 6, Some(22));
        t.end_sync(&id, 4, Some(16));
        assert_eq!(total(&t), 22);
    }
}
