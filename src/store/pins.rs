//! Tool-definition pinning for MCP servers: the tool list a provider reports (`mcp_list_tools`
//! items) is compared with the accepted one. A change is counted; in `block` mode the server is
//! refused until an operator accepts the new list (status listener:
//! `POST /mcp/pins/<server_label>/accept`, or the digest written into the config) — the defence
//! against an MCP server whose tools are silently altered ("rug pull").
//!
//! What is pinned is the server's **full** list: the one a request lists under the server's
//! configured tool filter. A consumer that narrows `allowed_tools` gets a shorter list from the
//! provider; that list never replaces the pin and never counts as a change by being shorter —
//! each tool on it is checked against the same tool of the pinned full list (a tool whose
//! definition differs, or that the full list did not have, is a change). Before any full list
//! is pinned, narrowed lists cannot be verified and are not pinned either.
//!
//! With a cluster store (`cluster_redis`), the pins are the cluster's ([`SharedPins`]). Each node
//! decides an observed list with the rules above (it keeps the tool definitions it has seen);
//! the verdict is then recorded in Redis by a script, atomically for the whole cluster: a full
//! list seen first or unchanged (trust on first use there too: a different full list accepted
//! first by another node is a change), and every change (full or narrowed) with its block. An
//! operator's accept is done in Redis. Every node reads all pins back every second and merges
//! them: the accepted digest, the observed one, the block and the change count are the
//! cluster's; the tool definitions stay this node's own, and are dropped when the cluster
//! accepted a full list this node did not see whole (narrowed lists are then unverified here
//! until it sees a full list). After an accept of a narrowed list's tools the cluster pins no
//! full list until one agreeing with them is seen by a node that knows them; a node that does
//! not know them reports the next full list as a change (blocked in `block` mode: the operator
//! accepts it). A pin accepted or blocked on one node is in force on all within a second.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::Duration;

use redis::Script;
use serde::{Deserialize, Serialize};

use super::redis::{spawn, RedisLink};

/// How often every node reads the cluster's pins back.
pub const PIN_REFRESH: Duration = Duration::from_secs(1);

type OnError = Box<dyn Fn() + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinMode {
    Off,
    Warn,
    Block,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// Nothing was accepted yet: this full list is now the accepted one (trust on first use).
    FirstSeen,
    Same,
    /// A narrowed list before any full list was pinned: nothing to compare with.
    Unverified,
    Changed {
        accepted: String,
        observed: String,
    },
}

/// A tool list as the provider reported it.
#[derive(Debug, Clone, Copy)]
pub struct ListedTools<'a> {
    /// Digest of the whole list.
    pub digest: &'a str,
    /// Each tool's name and the digest of its definition.
    pub tools: &'a [(String, String)],
    /// Listed under the server's configured filter (not narrowed by the request).
    pub full: bool,
}

/// Tools per server whose definitions are remembered for checking narrowed lists.
const MAX_PINNED_TOOLS: usize = 1024;

/// A server's pin (as the status listener shows it, and as Redis keeps it for a cluster).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PinState {
    /// The accepted digest of the full tool list (`null` after an operator accepted a narrowed
    /// list's tools, until a full list agreeing with them is seen).
    #[serde(default)]
    pub accepted: Option<String>,
    /// The digest of the last list observed.
    #[serde(default)]
    pub observed: Option<String>,
    /// Whether that list was narrowed by the request's `allowed_tools`.
    #[serde(default)]
    pub observed_narrowed: bool,
    /// Set when a changed list blocks the server.
    #[serde(default)]
    pub blocked: bool,
    #[serde(default)]
    pub changes: u64,
    /// An operator accepted a narrowed list's tools: no full list is pinned until one agreeing
    /// with them is seen (never trusted on first use meanwhile).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    #[serde(skip)]
    accepted_tools: BTreeMap<String, String>,
    #[serde(skip)]
    observed_tools: BTreeMap<String, String>,
    /// The list `observed_tools` came from, as this node saw it: its digest, and whether it was
    /// full (with a cluster store, `observed` is the cluster's last list, maybe another node's).
    #[serde(skip)]
    own: Option<(String, bool)>,
}

#[derive(Default)]
pub struct PinStore {
    inner: Arc<Mutex<BTreeMap<String, PinState>>>,
    shared: Option<Arc<SharedPins>>,
    refresher: OnceLock<()>,
}

fn tool_map(tools: &[(String, String)]) -> BTreeMap<String, String> {
    tools.iter().take(MAX_PINNED_TOOLS).cloned().collect()
}

impl PinStore {
    /// Pins shared by the cluster through Redis.
    pub fn shared(pins: SharedPins) -> PinStore {
        PinStore { inner: Arc::default(), shared: Some(Arc::new(pins)), refresher: OnceLock::new() }
    }

    /// Start reading the cluster's pins back (after the process forked); nothing to do alone.
    pub fn start(&self) {
        let Some(shared) = self.shared.clone() else { return };
        self.refresher.get_or_init(|| {
            let inner = Arc::clone(&self.inner);
            spawn(async move {
                let mut tick = tokio::time::interval(PIN_REFRESH);
                loop {
                    tick.tick().await;
                    if let Some(all) = shared.all().await {
                        if let Ok(mut m) = inner.lock() {
                            for (label, remote) in all {
                                merge(&mut m, label, remote);
                            }
                        }
                    }
                }
            });
        });
    }

    /// Record the tool list a provider reported for `label` (and, with a cluster store, tell
    /// the cluster what this node decided).
    pub fn observe(&self, label: &str, list: ListedTools<'_>, configured: Option<&str>, mode: PinMode) -> Observation {
        let seen = self.observe_here(label, list, configured, mode);
        let verdict = match (&seen, list.full) {
            (Observation::FirstSeen, _) => Some(Verdict::First),
            (Observation::Same, true) => Some(Verdict::Same),
            (Observation::Changed { .. }, true) => Some(Verdict::Changed),
            (Observation::Changed { .. }, false) => Some(Verdict::ChangedNarrowed),
            // A narrowed list that agrees, or cannot be verified yet, changes nothing.
            _ => None,
        };
        if let (Some(shared), Some(verdict)) = (self.shared.clone(), verdict) {
            let (inner, label, digest) = (Arc::clone(&self.inner), label.to_string(), list.digest.to_string());
            let configured = configured.map(str::to_string);
            spawn(async move {
                let st = shared.observe(&label, &digest, configured.as_deref(), mode == PinMode::Block, verdict).await;
                if let (Some(st), Ok(mut m)) = (st, inner.lock()) {
                    merge(&mut m, label, st);
                }
            });
        }
        seen
    }

    fn observe_here(&self, label: &str, list: ListedTools<'_>, configured: Option<&str>, mode: PinMode) -> Observation {
        let Ok(mut m) = self.inner.lock() else { return Observation::Same };
        let st = m.entry(label.to_string()).or_insert(PinState {
            accepted: configured.map(str::to_string),
            observed: None,
            observed_narrowed: false,
            blocked: false,
            changes: 0,
            pending: false,
            accepted_tools: BTreeMap::new(),
            observed_tools: BTreeMap::new(),
            own: None,
        });
        st.observed = Some(list.digest.to_string());
        st.observed_narrowed = !list.full;
        let listed = tool_map(list.tools);
        let agrees = |accepted: &BTreeMap<String, String>| listed.iter().all(|(n, d)| accepted.get(n) == Some(d));
        let outcome: Result<(), String> = if list.full {
            st.observed_tools = listed.clone();
            st.own = Some((list.digest.to_string(), true));
            match st.accepted.clone() {
                None if st.accepted_tools.is_empty() && !st.pending => {
                    st.accepted = Some(list.digest.to_string());
                    st.accepted_tools = listed;
                    return Observation::FirstSeen;
                }
                // Tools an operator accepted from a narrowed list: a full list agreeing with
                // them becomes the pin.
                None if !st.accepted_tools.is_empty() && agrees(&st.accepted_tools) => {
                    st.accepted = Some(list.digest.to_string());
                    st.pending = false;
                    st.accepted_tools = listed;
                    return Observation::Same;
                }
                None => Err("(accepted tools)".to_string()),
                Some(a) if a == list.digest => {
                    if st.accepted_tools.is_empty() {
                        st.accepted_tools = listed;
                    }
                    return Observation::Same;
                }
                Some(a) => Err(a),
            }
        } else {
            if st.accepted_tools.is_empty() {
                return Observation::Unverified;
            }
            if agrees(&st.accepted_tools) {
                return Observation::Same;
            }
            st.observed_tools.extend(listed);
            st.own = Some((list.digest.to_string(), false));
            Err(st.accepted.clone().unwrap_or_else(|| "(accepted tools)".into()))
        };
        let Err(accepted) = outcome else { return Observation::Same };
        st.changes += 1;
        if mode == PinMode::Block {
            st.blocked = true;
        }
        Observation::Changed { accepted, observed: list.digest.to_string() }
    }

    /// The digest that blocks `label`, if it is blocked.
    pub fn blocked(&self, label: &str) -> Option<String> {
        let m = self.inner.lock().ok()?;
        let st = m.get(label)?;
        if st.blocked {
            st.observed.clone()
        } else {
            None
        }
    }

    /// An operator accepts the list last observed for `label` (for the whole cluster, with a
    /// cluster store); returns what was accepted.
    pub async fn accept(&self, label: &str) -> Option<String> {
        if let Some(shared) = &self.shared {
            if let Ok(Some(remote)) = shared.accept(label).await {
                let accepted = if remote.observed_narrowed { remote.observed.clone() } else { remote.accepted.clone() };
                if let Ok(mut m) = self.inner.lock() {
                    merge(&mut m, label.to_string(), remote);
                }
                return accepted;
            }
            // Redis does not know it (or is down): accepted here; the next observation tells
            // the cluster.
        }
        self.accept_here(label)
    }

    fn accept_here(&self, label: &str) -> Option<String> {
        let mut m = self.inner.lock().ok()?;
        let st = m.get_mut(label)?;
        st.blocked = false;
        if st.observed_narrowed {
            // A narrowed list's tools are accepted; the full list is pinned when next seen.
            let observed = std::mem::take(&mut st.observed_tools);
            st.accepted_tools.extend(observed);
            st.accepted = None;
            st.pending = true;
            return st.observed.clone();
        }
        st.pending = false;
        st.accepted = st.observed.clone();
        st.accepted_tools = st.observed_tools.clone();
        st.accepted.clone()
    }

    pub fn snapshot(&self) -> BTreeMap<String, PinState> {
        self.inner.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// What a node decided about an observed list, for the cluster's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A full list, the first this node saw (trust on first use, unless the cluster pinned
    /// another list or waits for one agreeing with accepted tools).
    First,
    /// A full list equal to (or agreeing with) what this node had accepted.
    Same,
    /// A full list that changed.
    Changed,
    /// A narrowed list with a tool that changed.
    ChangedNarrowed,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::First => "first",
            Verdict::Same => "same",
            Verdict::Changed => "changed",
            Verdict::ChangedNarrowed => "changed_narrowed",
        }
    }
}

/// The cluster's state of a label merged into this node's: the digests, the block, the change
/// count and whether a full list is pending are the cluster's; the tool definitions are this
/// node's. When the cluster accepted a full list, this node's accepted tools are that list's if
/// this node saw it whole, else none (narrowed lists are unverified here until it sees a full
/// list); when it accepted a narrowed list's tools, this node adds them if it saw that list.
fn merge(m: &mut BTreeMap<String, PinState>, label: String, remote: PinState) {
    let Some(st) = m.get_mut(&label) else {
        m.insert(label, remote);
        return;
    };
    let saw = |digest: &Option<String>, full: bool| {
        st.own.as_ref().is_some_and(|(d, f)| *f == full && Some(d) == digest.as_ref())
    };
    if remote.pending && !st.pending && remote.accepted.is_none() {
        if saw(&remote.observed, false) {
            let observed = std::mem::take(&mut st.observed_tools);
            st.accepted_tools.extend(observed);
        }
    } else if remote.accepted.is_some() && remote.accepted != st.accepted {
        st.accepted_tools = if saw(&remote.accepted, true) { st.observed_tools.clone() } else { BTreeMap::new() };
    }
    st.accepted = remote.accepted;
    st.observed = remote.observed;
    st.observed_narrowed = remote.observed_narrowed;
    st.blocked = remote.blocked;
    st.changes = remote.changes;
    st.pending = remote.pending;
}

const PINS_KEY: &str = "aigate:pins";

/// Record a node's verdict on an observed tool list for the cluster: a full list is trusted on
/// first use unless the cluster pinned another (or waits for one agreeing with accepted
/// tools, which only a node that knows them can say: `same`); every change counts and blocks.
static OBSERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- KEYS[1]: the pins hash; ARGV: server label, observed digest, configured digest ('' if
-- none), mode (warn or block), verdict (first, same, changed, changed_narrowed). Returns the
-- label's state after, as JSON.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local st = {changes = 0, blocked = false, observed_narrowed = false}
if raw then st = cjson.decode(raw) end
if st.accepted == cjson.null then st.accepted = nil end
if st.accepted == nil and not st.pending and ARGV[3] ~= '' then st.accepted = ARGV[3] end
st.observed = ARGV[2]
st.observed_narrowed = (ARGV[5] == 'changed_narrowed')
local changed = false
if ARGV[5] == 'changed' or ARGV[5] == 'changed_narrowed' then
  changed = true
elseif st.accepted == nil then
  if st.pending and ARGV[5] ~= 'same' then
    changed = true
  else
    st.accepted = ARGV[2]
    st.pending = false
  end
elseif st.accepted ~= ARGV[2] then
  changed = true
end
if changed then
  st.changes = (st.changes or 0) + 1
  if ARGV[4] == 'block' then st.blocked = true end
end
local out = cjson.encode(st)
redis.call('HSET', KEYS[1], ARGV[1], out)
return out
",
    )
});

/// An operator accepts the list last observed for a label.
static ACCEPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
-- KEYS[1]: the pins hash; ARGV[1]: server label. Returns the state after (JSON), or nil.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return false end
local st = cjson.decode(raw)
st.blocked = false
if st.observed_narrowed then
  -- A narrowed list's tools: the full list is pinned when one agreeing with them is seen.
  st.accepted = cjson.null
  st.pending = true
else
  st.accepted = st.observed
  st.pending = false
end
local out = cjson.encode(st)
redis.call('HSET', KEYS[1], ARGV[1], out)
return out
",
    )
});

/// The pins of the cluster, in Redis.
pub struct SharedPins {
    link: Arc<RedisLink>,
    on_error: OnError,
}

impl SharedPins {
    pub fn new(link: Arc<RedisLink>, on_error: OnError) -> SharedPins {
        SharedPins { link, on_error }
    }

    fn parse(json: &str) -> Option<PinState> {
        serde_json::from_str(json).ok()
    }

    /// Record an observation for the cluster; the label's state after it.
    pub async fn observe(
        &self,
        label: &str,
        digest: &str,
        configured: Option<&str>,
        block: bool,
        verdict: Verdict,
    ) -> Option<PinState> {
        let args = vec![
            label.to_string(),
            digest.to_string(),
            configured.unwrap_or("").to_string(),
            if block { "block" } else { "warn" }.to_string(),
            verdict.as_str().to_string(),
        ];
        match self.link.script::<String>(&OBSERVE, vec![PINS_KEY.into()], args).await {
            Ok(json) => Self::parse(&json),
            Err(_) => {
                (self.on_error)();
                None
            }
        }
    }

    /// Accept the list last observed for `label`, for the cluster. `Err` when Redis could not
    /// be asked; `Ok(None)` when Redis has no state for the label.
    pub async fn accept(&self, label: &str) -> Result<Option<PinState>, ()> {
        match self.link.script::<Option<String>>(&ACCEPT, vec![PINS_KEY.into()], vec![label.to_string()]).await {
            Ok(json) => Ok(json.and_then(|j| Self::parse(&j))),
            Err(_) => {
                (self.on_error)();
                Err(())
            }
        }
    }

    /// Every label's state, as the cluster has it.
    pub async fn all(&self) -> Option<BTreeMap<String, PinState>> {
        let all: Result<Vec<(String, String)>, _> =
            self.link.call(|mut c| async move { redis::cmd("HGETALL").arg(PINS_KEY).query_async(&mut c).await }).await;
        match all {
            Ok(pairs) => Some(pairs.into_iter().filter_map(|(k, v)| Self::parse(&v).map(|s| (k, s))).collect()),
            Err(_) => {
                (self.on_error)();
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(defs: &[(&str, &str)]) -> Vec<(String, String)> {
        defs.iter().map(|(n, d)| (n.to_string(), d.to_string())).collect()
    }

    fn full<'a>(digest: &'a str, t: &'a [(String, String)]) -> ListedTools<'a> {
        ListedTools { digest, tools: t, full: true }
    }

    fn narrowed<'a>(digest: &'a str, t: &'a [(String, String)]) -> ListedTools<'a> {
        ListedTools { digest, tools: t, full: false }
    }

    #[test]
    fn trust_on_first_use_then_block_until_accepted() {
        let p = PinStore::default();
        let a = tools(&[("read", "d1"), ("write", "d2")]);
        let b = tools(&[("read", "d1"), ("write", "d2-changed")]);
        assert_eq!(p.observe("git", full("sha256:a", &a), None, PinMode::Block), Observation::FirstSeen);
        assert_eq!(p.observe("git", full("sha256:a", &a), None, PinMode::Block), Observation::Same);
        assert_eq!(p.blocked("git"), None);
        assert!(matches!(p.observe("git", full("sha256:b", &b), None, PinMode::Block), Observation::Changed { .. }));
        assert_eq!(p.blocked("git"), Some("sha256:b".into()));
        assert_eq!(p.accept_here("git"), Some("sha256:b".into()));
        assert_eq!(p.blocked("git"), None);
        assert_eq!(p.observe("git", full("sha256:b", &b), None, PinMode::Block), Observation::Same);
    }

    #[test]
    fn a_narrowed_list_never_flips_the_pin() {
        let p = PinStore::default();
        let all = tools(&[("read", "d1"), ("write", "d2")]);
        // Before any full list: nothing to compare with, nothing pinned.
        assert_eq!(p.observe("git", narrowed("sha256:r", &all[..1]), None, PinMode::Block), Observation::Unverified);
        assert_eq!(p.snapshot()["git"].accepted, None);
        assert_eq!(p.observe("git", full("sha256:all", &all), None, PinMode::Block), Observation::FirstSeen);
        // One consumer's narrowed list is a subset of the same definitions: no change.
        assert_eq!(p.observe("git", narrowed("sha256:r", &all[..1]), None, PinMode::Block), Observation::Same);
        assert_eq!(p.observe("git", full("sha256:all", &all), None, PinMode::Block), Observation::Same);
        assert_eq!(p.blocked("git"), None);
        assert_eq!(p.snapshot()["git"].changes, 0);
        // A narrowed list showing a changed definition is a change of the server.
        let evil = tools(&[("read", "d1-evil")]);
        assert!(matches!(
            p.observe("git", narrowed("sha256:r2", &evil), None, PinMode::Block),
            Observation::Changed { .. }
        ));
        assert!(p.blocked("git").is_some());
        // So is a tool the full list did not have.
        let p2 = PinStore::default();
        p2.observe("git", full("sha256:all", &all), None, PinMode::Warn);
        let new = tools(&[("exfiltrate", "d9")]);
        assert!(matches!(
            p2.observe("git", narrowed("sha256:x", &new), None, PinMode::Warn),
            Observation::Changed { .. }
        ));
        assert_eq!(p2.blocked("git"), None, "warn never blocks");
    }

    #[test]
    fn accepting_a_narrowed_change_pins_the_next_agreeing_full_list() {
        let p = PinStore::default();
        let all = tools(&[("read", "d1"), ("write", "d2")]);
        p.observe("git", full("sha256:all", &all), None, PinMode::Block);
        let changed = tools(&[("read", "d1b")]);
        p.observe("git", narrowed("sha256:r", &changed), None, PinMode::Block);
        assert!(p.accept_here("git").is_some());
        assert_eq!(p.blocked("git"), None);
        let next = tools(&[("read", "d1b"), ("write", "d2")]);
        assert_eq!(p.observe("git", full("sha256:next", &next), None, PinMode::Block), Observation::Same);
        assert_eq!(p.snapshot()["git"].accepted.as_deref(), Some("sha256:next"));
    }

    /// The cluster's state as another node's script left it.
    fn remote(accepted: Option<&str>, observed: &str, narrowed: bool, blocked: bool, pending: bool) -> PinState {
        let json = serde_json::json!({"accepted": accepted, "observed": observed, "observed_narrowed": narrowed,
            "blocked": blocked, "changes": 1, "pending": pending});
        serde_json::from_value(json).unwrap()
    }

    fn merged(p: &PinStore, st: PinState) {
        merge(&mut p.inner.lock().unwrap(), "git".into(), st);
    }

    #[test]
    fn the_clusters_state_merges_keeping_this_nodes_tools() {
        let all = tools(&[("read", "d1"), ("write", "d2")]);
        // Accepted elsewhere: a list this node saw whole keeps its tools for narrowed checks.
        let p = PinStore::default();
        p.observe("git", full("sha256:all", &all), None, PinMode::Block);
        let changed_all = tools(&[("read", "d1b"), ("write", "d2")]);
        p.observe("git", full("sha256:new", &changed_all), None, PinMode::Block);
        merged(&p, remote(Some("sha256:new"), "sha256:new", false, false, false));
        assert_eq!(p.blocked("git"), None);
        let read_b = tools(&[("read", "d1b")]);
        assert_eq!(p.observe("git", narrowed("sha256:rb", &read_b), None, PinMode::Block), Observation::Same);
        let read = tools(&[("read", "d1")]);
        assert!(matches!(
            p.observe("git", narrowed("sha256:r", &read), None, PinMode::Block),
            Observation::Changed { .. }
        ));

        // Accepted elsewhere, a list this node never saw: its old tools are dropped, narrowed
        // lists are unverified until the pinned full list is seen here.
        let p = PinStore::default();
        p.observe("git", full("sha256:all", &all), None, PinMode::Block);
        merged(&p, remote(Some("sha256:other"), "sha256:other", false, false, false));
        assert_eq!(p.observe("git", narrowed("sha256:r", &read), None, PinMode::Block), Observation::Unverified);
        assert!(matches!(
            p.observe("git", full("sha256:all", &all), None, PinMode::Block),
            Observation::Changed { .. }
        ));

        // Blocked elsewhere, then a narrowed list's tools accepted: a node that saw that list
        // adds its tools; one that did not never trusts the next full list on first use.
        let p = PinStore::default();
        p.observe("git", full("sha256:all", &all), None, PinMode::Block);
        p.observe("git", narrowed("sha256:rb", &read_b), None, PinMode::Block);
        merged(&p, remote(None, "sha256:rb", true, false, true));
        assert_eq!(p.blocked("git"), None);
        let next = tools(&[("read", "d1b"), ("write", "d2")]);
        assert_eq!(p.observe("git", full("sha256:next", &next), None, PinMode::Block), Observation::Same);
        let fresh = PinStore::default();
        merged(&fresh, remote(None, "sha256:rb", true, false, true));
        assert!(matches!(
            fresh.observe("git", full("sha256:next", &next), None, PinMode::Block),
            Observation::Changed { .. }
        ));
        assert_eq!(fresh.blocked("git"), Some("sha256:next".into()));
    }

    #[test]
    fn a_configured_digest_is_the_accepted_one_and_warn_never_blocks() {
        let p = PinStore::default();
        let t = tools(&[("a", "1")]);
        assert!(matches!(
            p.observe("docs", full("sha256:new", &t), Some("sha256:old"), PinMode::Warn),
            Observation::Changed { .. }
        ));
        assert_eq!(p.blocked("docs"), None);
        assert_eq!(p.snapshot()["docs"].changes, 1);
        // Narrowed lists cannot be checked against a digest alone.
        let p = PinStore::default();
        assert_eq!(
            p.observe("docs", narrowed("sha256:n", &t), Some("sha256:old"), PinMode::Block),
            Observation::Unverified
        );
        assert_eq!(p.observe("docs", full("sha256:old", &t), Some("sha256:old"), PinMode::Block), Observation::Same);
        assert_eq!(p.observe("docs", narrowed("sha256:n", &t), Some("sha256:old"), PinMode::Block), Observation::Same);
    }
}
