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

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

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

#[derive(Debug, Clone, Serialize)]
pub struct PinState {
    /// The accepted digest of the full tool list (`null` after an operator accepted a narrowed
    /// list's tools, until a full list agreeing with them is seen).
    pub accepted: Option<String>,
    /// The digest of the last list observed.
    pub observed: Option<String>,
    /// Whether that list was narrowed by the request's `allowed_tools`.
    pub observed_narrowed: bool,
    /// Set when a changed list blocks the server.
    pub blocked: bool,
    pub changes: u64,
    #[serde(skip)]
    accepted_tools: BTreeMap<String, String>,
    #[serde(skip)]
    observed_tools: BTreeMap<String, String>,
}

#[derive(Default)]
pub struct PinStore {
    inner: Mutex<BTreeMap<String, PinState>>,
}

fn tool_map(tools: &[(String, String)]) -> BTreeMap<String, String> {
    tools.iter().take(MAX_PINNED_TOOLS).cloned().collect()
}

impl PinStore {
    /// Record the tool list a provider reported for `label`.
    pub fn observe(&self, label: &str, list: ListedTools<'_>, configured: Option<&str>, mode: PinMode) -> Observation {
        let Ok(mut m) = self.inner.lock() else { return Observation::Same };
        let st = m.entry(label.to_string()).or_insert(PinState {
            accepted: configured.map(str::to_string),
            observed: None,
            observed_narrowed: false,
            blocked: false,
            changes: 0,
            accepted_tools: BTreeMap::new(),
            observed_tools: BTreeMap::new(),
        });
        st.observed = Some(list.digest.to_string());
        st.observed_narrowed = !list.full;
        let listed = tool_map(list.tools);
        let agrees = |accepted: &BTreeMap<String, String>| listed.iter().all(|(n, d)| accepted.get(n) == Some(d));
        let outcome: Result<(), String> = if list.full {
            st.observed_tools = listed.clone();
            match st.accepted.clone() {
                None if st.accepted_tools.is_empty() => {
                    st.accepted = Some(list.digest.to_string());
                    st.accepted_tools = listed;
                    return Observation::FirstSeen;
                }
                // Tools an operator accepted from a narrowed list: a full list agreeing with
                // them becomes the pin.
                None if agrees(&st.accepted_tools) => {
                    st.accepted = Some(list.digest.to_string());
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

    /// An operator accepts the list last observed for `label`; returns what was accepted.
    pub fn accept(&self, label: &str) -> Option<String> {
        let mut m = self.inner.lock().ok()?;
        let st = m.get_mut(label)?;
        st.blocked = false;
        if st.observed_narrowed {
            // A narrowed list's tools are accepted; the full list is pinned when next seen.
            let observed = std::mem::take(&mut st.observed_tools);
            st.accepted_tools.extend(observed);
            st.accepted = None;
            return st.observed.clone();
        }
        st.accepted = st.observed.clone();
        st.accepted_tools = st.observed_tools.clone();
        st.accepted.clone()
    }

    pub fn snapshot(&self) -> BTreeMap<String, PinState> {
        self.inner.lock().map(|m| m.clone()).unwrap_or_default()
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
        assert_eq!(p.accept("git"), Some("sha256:b".into()));
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
        assert!(p.accept("git").is_some());
        assert_eq!(p.blocked("git"), None);
        let next = tools(&[("read", "d1b"), ("write", "d2")]);
        assert_eq!(p.observe("git", full("sha256:next", &next), None, PinMode::Block), Observation::Same);
        assert_eq!(p.snapshot()["git"].accepted.as_deref(), Some("sha256:next"));
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
