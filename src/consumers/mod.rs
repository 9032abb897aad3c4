//! Consumers and their key-auth credentials. Keys are kept only as SHA-256 digests: a plaintext
//! `key:` in a decK file is hashed at load and dropped, and `sha256:<hex>` is accepted as is.
//! Lookup hashes the presented key and finds the digest in a map, so its time does not depend on
//! how much of the key matches a stored one.

pub mod jwt_secrets;

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::core::ConsumerId;
use jwt_secrets::JwtCredentials;

pub struct Consumer {
    pub id: String,
    pub username: Option<String>,
    pub custom_id: Option<String>,
    /// The metric and log label: the username, else the custom_id, else the id.
    pub label: String,
    /// ACL groups, lower-cased duplicates removed, in file order.
    pub groups: Vec<String>,
    /// `X-Consumer-Groups` value, built once.
    pub groups_header: String,
    /// Consumer groups (decK `consumer_groups` with `consumers[].groups` or their
    /// `consumers` lists), by name, in file order.
    pub consumer_groups: Vec<String>,
}

impl Consumer {
    /// A consumer with its label (username, else custom_id, else id) and `X-Consumer-Groups`
    /// value made once.
    pub fn new(id: String, username: Option<String>, custom_id: Option<String>, groups: Vec<String>) -> Consumer {
        let label = username.clone().or_else(|| custom_id.clone()).unwrap_or_else(|| id.clone());
        Consumer {
            groups_header: groups.join(", "),
            id,
            username,
            custom_id,
            label,
            groups,
            consumer_groups: Vec::new(),
        }
    }

    /// Whether the consumer is in `group`: a consumer group, or (with `acl_groups`) an ACL group.
    pub fn in_group(&self, group: &str, acl_groups: bool) -> bool {
        self.consumer_groups.iter().any(|g| g == group) || (acl_groups && self.groups.iter().any(|g| g == group))
    }
}

/// A consumer's identifying fields, for plugins that map a value to a consumer by a named
/// field (openid-connect's `consumer_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerField {
    Id,
    Username,
    CustomId,
}

/// Where a matching key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialRef {
    pub consumer: ConsumerId,
    /// Index into `Consumers::credential_ids`.
    pub credential: usize,
}

pub type KeyDigest = [u8; 32];

#[derive(Default)]
pub struct Consumers {
    pub list: Vec<Consumer>,
    keys: HashMap<KeyDigest, CredentialRef, DigestHasherBuilder>,
    /// Credential ids (decK `id` or a derived one), sent upstream as `X-Credential-Identifier`.
    pub credential_ids: Vec<String>,
    by_name: HashMap<String, ConsumerId>,
    /// One index per identifying field, so a value is looked up by the field a rule names
    /// and never matches another consumer's other field.
    by_id: HashMap<String, ConsumerId>,
    by_username: HashMap<String, ConsumerId>,
    by_custom_id: HashMap<String, ConsumerId>,
    /// jwt credentials (`jwt_secrets`), by key.
    pub jwt: JwtCredentials,
}

impl Consumers {
    pub fn get(&self, id: ConsumerId) -> &Consumer {
        &self.list[id.index()]
    }

    pub fn get_mut(&mut self, id: ConsumerId) -> &mut Consumer {
        &mut self.list[id.index()]
    }

    /// Find a consumer by username, custom_id or id (for references such as `anonymous`).
    pub fn find(&self, name_or_id: &str) -> Option<ConsumerId> {
        self.by_name.get(name_or_id).copied()
    }

    /// Find a consumer whose `field` is exactly `value`.
    pub fn find_by(&self, field: ConsumerField, value: &str) -> Option<ConsumerId> {
        let index = match field {
            ConsumerField::Id => &self.by_id,
            ConsumerField::Username => &self.by_username,
            ConsumerField::CustomId => &self.by_custom_id,
        };
        index.get(value).copied()
    }

    pub fn add(&mut self, consumer: Consumer) -> ConsumerId {
        let id = ConsumerId::new(self.list.len());
        for name in [Some(&consumer.id), consumer.username.as_ref(), consumer.custom_id.as_ref()].into_iter().flatten()
        {
            self.by_name.entry(name.clone()).or_insert(id);
        }
        self.by_id.entry(consumer.id.clone()).or_insert(id);
        if let Some(u) = &consumer.username {
            self.by_username.entry(u.clone()).or_insert(id);
        }
        if let Some(c) = &consumer.custom_id {
            self.by_custom_id.entry(c.clone()).or_insert(id);
        }
        self.list.push(consumer);
        id
    }

    /// Register a key digest; returns false when the digest is already taken.
    pub fn add_key(&mut self, digest: KeyDigest, consumer: ConsumerId, credential_id: String) -> bool {
        if self.keys.contains_key(&digest) {
            return false;
        }
        let credential = self.credential_ids.len();
        self.credential_ids.push(credential_id);
        self.keys.insert(digest, CredentialRef { consumer, credential });
        true
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Look up a presented key.
    pub fn find_key(&self, presented: &[u8]) -> Option<CredentialRef> {
        self.keys.get(&digest_key(presented)).copied()
    }
}

pub fn digest_key(key: &[u8]) -> KeyDigest {
    Sha256::digest(key).into()
}

/// The stored form of a key, as printed by `aigate hash-key`.
pub fn stored_form(key: &[u8]) -> String {
    format!("sha256:{}", hex::encode(digest_key(key)))
}

/// Read a decK `key:` value: a stored form `sha256:<64 hex>` or a plaintext key.
pub fn parse_key(value: &str) -> Result<KeyDigest, String> {
    if let Some(hex_part) = value.strip_prefix("sha256:") {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| {
            "a key starting with sha256: must be followed by 64 hex digits (use `aigate hash-key`)".to_string()
        })?;
        return Ok(out);
    }
    if value.is_empty() {
        return Err("the key is empty".into());
    }
    Ok(digest_key(value.as_bytes()))
}

/// The map's keys are SHA-256 digests, already uniformly distributed: use 8 of their bytes as
/// the hash instead of hashing them again.
#[derive(Clone, Default)]
pub struct DigestHasherBuilder;

#[derive(Default)]
pub struct DigestHasher(u64);

impl std::hash::BuildHasher for DigestHasherBuilder {
    type Hasher = DigestHasher;
    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // A [u8; 32] hashes as its bytes; fold them so any length still works.
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumer(name: &str) -> Consumer {
        Consumer::new(format!("id-{name}"), Some(name.into()), None, Vec::new())
    }

    #[test]
    fn plaintext_and_stored_forms_find_the_same_consumer() {
        let mut c = Consumers::default();
        let alex = c.add(consumer("alex"));
        let bo = c.add(consumer("bo"));
        assert!(c.add_key(parse_key("hello_world").unwrap(), alex, "cred-1".into()));
        assert!(c.add_key(parse_key(&stored_form(b"bo-key")).unwrap(), bo, "cred-2".into()));
        assert_eq!(c.find_key(b"hello_world").map(|r| r.consumer), Some(alex));
        assert_eq!(c.find_key(b"bo-key").map(|r| r.consumer), Some(bo));
        assert_eq!(c.find_key(b"hello_worl"), None);
        assert_eq!(c.find_key(b""), None);
        assert_eq!(c.find("alex"), Some(alex));
        assert_eq!(c.find("id-bo"), Some(bo));
    }

    #[test]
    fn find_by_looks_in_one_field_only() {
        let mut c = Consumers::default();
        // `shared` is one consumer's custom_id and another's username.
        let first = c.add(Consumer::new("id-1".into(), Some("first".into()), Some("shared".into()), Vec::new()));
        let second = c.add(Consumer::new("id-2".into(), Some("shared".into()), None, Vec::new()));
        assert_eq!(c.find_by(ConsumerField::Username, "shared"), Some(second));
        assert_eq!(c.find_by(ConsumerField::CustomId, "shared"), Some(first));
        assert_eq!(c.find_by(ConsumerField::Id, "shared"), None);
        assert_eq!(c.find_by(ConsumerField::Id, "id-2"), Some(second));
        assert_eq!(c.find_by(ConsumerField::Username, "id-2"), None);
        assert_eq!(c.find_by(ConsumerField::Username, "Shared"), None);
    }

    #[test]
    fn a_key_can_belong_to_one_consumer_only() {
        let mut c = Consumers::default();
        let a = c.add(consumer("a"));
        assert!(c.add_key(digest_key(b"k"), a, "1".into()));
        assert!(!c.add_key(digest_key(b"k"), a, "2".into()));
    }

    #[test]
    fn stored_form_round_trips_and_rejects_bad_hex() {
        let s = stored_form(b"hello_world");
        assert_eq!(s.len(), "sha256:".len() + 64);
        assert_eq!(parse_key(&s).unwrap(), digest_key(b"hello_world"));
        assert!(parse_key("sha256:xyz").is_err());
        assert!(parse_key("").is_err());
    }
}
