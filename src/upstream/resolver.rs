//! Host names of upstreams are resolved off the request path: once before serving, then again
//! every `dns_refresh_interval` by a background task. The request path only reads the last
//! answer (a lock-free load). A name that stops resolving keeps its last good addresses; a name
//! that never resolved makes its requests fail with a DNS error, never a panic.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

type HostKey = (String, u16);

/// `upstream_resolve`: `host:port` → a fixed address, like curl's `--resolve`. SNI and
/// certificate checks still use the host name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides(Vec<(String, u16, SocketAddr)>);

impl Overrides {
    /// Read `"host:port": "ip:port"` entries; every entry that is not is named in the error.
    pub fn parse(map: &BTreeMap<String, String>) -> Result<Overrides, String> {
        let mut entries = Vec::new();
        let mut bad = Vec::new();
        for (k, v) in map {
            let key = k.rsplit_once(':').filter(|(h, _)| !h.is_empty()).and_then(|(h, p)| {
                Some((h.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase(), p.parse().ok()?))
            });
            let Some((host, port)) = key else {
                bad.push(format!("key `{k}` is not host:port"));
                continue;
            };
            match v.parse::<SocketAddr>() {
                Ok(addr) => entries.push((host, port, addr)),
                Err(_) => bad.push(format!("`{v}` (for {k}) is not an ip:port address")),
            }
        }
        if bad.is_empty() {
            Ok(Overrides(entries))
        } else {
            Err(format!(
                "{} (fix: write entries as in curl --resolve, e.g. \"api.openai.com:443\": \"127.0.0.1:9443\")",
                bad.join("; ")
            ))
        }
    }

    /// The fixed address for `host:port`, if there is one (host names compare case-insensitively).
    pub fn get(&self, host: &str, port: u16) -> Option<SocketAddr> {
        self.0.iter().find(|(h, p, _)| *p == port && h.eq_ignore_ascii_case(host)).map(|(_, _, a)| *a)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> serde::Deserialize<'de> for Overrides {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Overrides, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(d)?;
        Overrides::parse(&map).map_err(serde::de::Error::custom)
    }
}

#[derive(Default)]
struct Answers {
    map: HashMap<HostKey, Vec<SocketAddr>>,
}

pub struct Resolver {
    /// `upstream_resolve`: few entries, scanned without allocating.
    overrides: Overrides,
    answers: ArcSwap<Answers>,
    hosts: Mutex<Vec<HostKey>>,
    next: AtomicUsize,
}

impl Resolver {
    pub fn new(overrides: Overrides) -> Resolver {
        Resolver {
            overrides,
            answers: ArcSwap::from_pointee(Answers::default()),
            hosts: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
        }
    }

    /// The address to connect to for `host:port`, from `upstream_resolve`, an IP literal or the
    /// last DNS answer. Never blocks.
    pub fn lookup(&self, host: &str, port: u16) -> Option<SocketAddr> {
        if let Some(a) = self.override_for(host, port) {
            return Some(a);
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(SocketAddr::new(ip, port));
        }
        let answers = self.answers.load();
        let addrs = answers.map.get(&(host.to_string(), port))?;
        match addrs.len() {
            0 => None,
            1 => Some(addrs[0]),
            n => Some(addrs[self.next.fetch_add(1, Ordering::Relaxed) % n]),
        }
    }

    /// How many addresses `host:port` has (1 for literals and overrides).
    pub fn address_count(&self, host: &str, port: u16) -> usize {
        if self.override_for(host, port).is_some() || host.parse::<IpAddr>().is_ok() {
            return 1;
        }
        self.answers.load().map.get(&(host.to_string(), port)).map_or(0, Vec::len)
    }

    fn override_for(&self, host: &str, port: u16) -> Option<SocketAddr> {
        self.overrides.get(host, port)
    }

    /// Set the names to keep resolved (from the current config).
    pub fn set_hosts(&self, hosts: impl IntoIterator<Item = (String, u16)>) {
        let mut wanted: Vec<HostKey> = hosts
            .into_iter()
            .filter(|(h, p)| h.parse::<IpAddr>().is_err() && self.override_for(h, *p).is_none())
            .collect();
        wanted.sort();
        wanted.dedup();
        if let Ok(mut h) = self.hosts.lock() {
            *h = wanted;
        }
    }

    /// Resolve every name once; failures keep the previous answer. Returns the names that have
    /// no address at all.
    pub async fn refresh(&self, timeout: Duration) -> Vec<String> {
        let hosts = self.hosts.lock().map(|h| h.clone()).unwrap_or_default();
        let previous = self.answers.load_full();
        let mut next = Answers::default();
        let mut unresolved = Vec::new();
        for key in hosts {
            let fresh = match tokio::time::timeout(timeout, tokio::net::lookup_host((key.0.as_str(), key.1))).await {
                Ok(Ok(addrs)) => {
                    let mut v: Vec<SocketAddr> = addrs.collect();
                    v.sort();
                    v.dedup();
                    v
                }
                Ok(Err(e)) => {
                    log::warn!("resolving upstream host {}: {e}", key.0);
                    Vec::new()
                }
                Err(_) => {
                    log::warn!("resolving upstream host {} timed out", key.0);
                    Vec::new()
                }
            };
            let addrs = if fresh.is_empty() { previous.map.get(&key).cloned().unwrap_or_default() } else { fresh };
            if addrs.is_empty() {
                unresolved.push(format!("{}:{}", key.0, key.1));
            }
            next.map.insert(key, addrs);
        }
        self.answers.store(Arc::new(next));
        unresolved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_overrides_and_names() {
        let mut o = BTreeMap::new();
        o.insert("api.openai.com:443".to_string(), "127.0.0.1:9443".to_string());
        let r = Resolver::new(Overrides::parse(&o).unwrap());
        assert_eq!(r.lookup("api.openai.com", 443), Some("127.0.0.1:9443".parse().unwrap()));
        assert_eq!(r.lookup("127.0.0.2", 80), Some("127.0.0.2:80".parse().unwrap()));
        assert_eq!(r.lookup("::1", 80), Some("[::1]:80".parse().unwrap()));
        // Not resolved yet: no answer, no blocking lookup.
        assert_eq!(r.lookup("localhost", 8080), None);
        r.set_hosts([
            ("localhost".to_string(), 8080),
            ("api.openai.com".to_string(), 443),
            ("no-such-host.invalid".to_string(), 80),
        ]);
        let unresolved = r.refresh(Duration::from_secs(5)).await;
        assert_eq!(unresolved, vec!["no-such-host.invalid:80".to_string()]);
        assert_eq!(r.lookup("localhost", 8080).map(|a| a.port()), Some(8080));
        assert_eq!(r.lookup("no-such-host.invalid", 80), None);
    }

    #[test]
    fn overrides_name_every_bad_entry() {
        let mut o = BTreeMap::new();
        o.insert("API.openai.com:443".to_string(), "127.0.0.1:9443".to_string());
        o.insert("[::1]:80".to_string(), "[::1]:8080".to_string());
        let ok = Overrides::parse(&o).unwrap();
        assert_eq!(ok.get("api.OPENAI.com", 443), Some("127.0.0.1:9443".parse().unwrap()));
        assert_eq!(ok.get("::1", 80), Some("[::1]:8080".parse().unwrap()));
        assert_eq!(ok.get("api.openai.com", 80), None);
        o.insert("no-port".to_string(), "127.0.0.1:1".to_string());
        o.insert("x:1".to_string(), "not an address".to_string());
        let err = Overrides::parse(&o).unwrap_err();
        assert!(err.contains("no-port") && err.contains("not an address"), "{err}");
    }
}
