//! Tool-definition pinning for MCP servers: the digest of the tool list a provider reports
//! (`mcp_list_tools` items) is compared with the accepted one. A change is counted; in `block`
//! mode the server is refused until an operator accepts the new list (status listener:
//! `POST /mcp/pins/<server_label>/accept`, or the digest written into the config) — the
//! defence against an MCP server whose tools are silently altered ("rug pull").

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
    /// Nothing was accepted yet: this list is now the accepted one (trust on first use).
    FirstSeen,
    Same,
    Changed {
        accepted: String,
        observed: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct PinState {
    pub accepted: Option<String>,
    pub observed: Option<String>,
    /// Set when a changed list blocks the server.
    pub blocked: bool,
    pub changes: u64,
}

#[derive(Default)]
pub struct PinStore {
    inner: Mutex<BTreeMap<String, PinState>>,
}

impl PinStore {
    /// Record the digest a provider reported for `label`.
    pub fn observe(&self, label: &str, digest: &str, configured: Option<&str>, mode: PinMode) -> Observation {
        let Ok(mut m) = self.inner.lock() else { return Observation::Same };
        let st = m.entry(label.to_string()).or_insert(PinState {
            accepted: None,
            observed: None,
            blocked: false,
            changes: 0,
        });
        if st.accepted.is_none() {
            st.accepted = configured.map(str::to_string);
        }
        st.observed = Some(digest.to_string());
        match st.accepted.clone() {
            None => {
                st.accepted = Some(digest.to_string());
                Observation::FirstSeen
            }
            Some(a) if a == digest => Observation::Same,
            Some(a) => {
                st.changes += 1;
                if mode == PinMode::Block {
                    st.blocked = true;
                }
                Observation::Changed { accepted: a, observed: digest.to_string() }
            }
        }
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

    /// An operator accepts the list last observed for `label`; returns the accepted digest.
    pub fn accept(&self, label: &str) -> Option<String> {
        let mut m = self.inner.lock().ok()?;
        let st = m.get_mut(label)?;
        st.accepted = st.observed.clone();
        st.blocked = false;
        st.accepted.clone()
    }

    pub fn snapshot(&self) -> BTreeMap<String, PinState> {
        self.inner.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_on_first_use_then_block_until_accepted() {
        let p = PinStore::default();
        assert_eq!(p.observe("git", "sha256:a", None, PinMode::Block), Observation::FirstSeen);
        assert_eq!(p.observe("git", "sha256:a", None, PinMode::Block), Observation::Same);
        assert_eq!(p.blocked("git"), None);
        assert!(matches!(p.observe("git", "sha256:b", None, PinMode::Block), Observation::Changed { .. }));
        assert_eq!(p.blocked("git"), Some("sha256:b".into()));
        assert_eq!(p.accept("git"), Some("sha256:b".into()));
        assert_eq!(p.blocked("git"), None);
        assert_eq!(p.observe("git", "sha256:b", None, PinMode::Block), Observation::Same);
    }

    #[test]
    fn a_configured_digest_is_the_accepted_one_and_warn_never_blocks() {
        let p = PinStore::default();
        assert!(matches!(
            p.observe("docs", "sha256:new", Some("sha256:old"), PinMode::Warn),
            Observation::Changed { .. }
        ));
        assert_eq!(p.blocked("docs"), None);
        assert_eq!(p.snapshot()["docs"].changes, 1);
    }
}
