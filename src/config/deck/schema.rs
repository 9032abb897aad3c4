//! The decK declarative format as users write it (external schema). Every struct refuses unknown
//! fields: a security gateway must not silently ignore a setting it does not understand.
//! Plugin `config` blocks stay untyped here; each plugin module parses its own.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeckFile {
    #[serde(rename = "_format_version")]
    pub format_version: Option<String>,
    #[serde(rename = "_transform")]
    pub transform: Option<bool>,
    #[serde(default)]
    pub services: Vec<DeckService>,
    #[serde(default)]
    pub routes: Vec<DeckRoute>,
    #[serde(default)]
    pub plugins: Vec<DeckPlugin>,
    #[serde(default)]
    pub consumers: Vec<DeckConsumer>,
    #[serde(default)]
    pub consumer_groups: Vec<DeckConsumerGroup>,
}

/// decK's top-level `consumer_groups` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeckConsumerGroup {
    pub name: Option<String>,
    pub id: Option<String>,
    pub created_at: Option<i64>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Members, by username, custom_id or id.
    #[serde(default)]
    pub consumers: Vec<EntityRefObject>,
    /// Plugins scoped to the group (refused: aigate does not scope plugins to groups).
    #[serde(default)]
    pub plugins: Vec<serde_yaml::Value>,
}

/// A group a consumer belongs to (`consumers[].groups[]`), by name or id.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeckGroupRef {
    pub name: Option<String>,
    pub id: Option<String>,
    pub created_at: Option<i64>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeckService {
    pub name: Option<String>,
    pub id: Option<String>,
    pub url: Option<String>,
    pub protocol: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
    pub retries: Option<u32>,
    pub connect_timeout: Option<u64>,
    pub read_timeout: Option<u64>,
    pub write_timeout: Option<u64>,
    pub enabled: Option<bool>,
    pub tls_verify: Option<bool>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub routes: Vec<DeckRoute>,
    #[serde(default)]
    pub plugins: Vec<DeckPlugin>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeckRoute {
    pub name: Option<String>,
    pub id: Option<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub protocols: Option<Vec<String>>,
    pub strip_path: Option<bool>,
    pub preserve_host: Option<bool>,
    pub regex_priority: Option<i64>,
    pub path_handling: Option<String>,
    pub https_redirect_status_code: Option<u16>,
    pub request_buffering: Option<bool>,
    pub response_buffering: Option<bool>,
    /// For top-level routes: the service they belong to.
    pub service: Option<EntityRef>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub plugins: Vec<DeckPlugin>,
}

/// A reference to another entity: `service: {name: x}`, `{id: ...}`, or a bare string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum EntityRef {
    Bare(String),
    Object(EntityRefObject),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityRefObject {
    pub name: Option<String>,
    pub id: Option<String>,
    pub username: Option<String>,
    pub custom_id: Option<String>,
    pub created_at: Option<i64>,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl EntityRef {
    /// The name, username or id this reference gives.
    pub fn key(&self) -> Option<&str> {
        match self {
            EntityRef::Bare(s) => Some(s.as_str()),
            EntityRef::Object(o) => {
                o.name.as_deref().or(o.username.as_deref()).or(o.id.as_deref()).or(o.custom_id.as_deref())
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeckPlugin {
    pub name: String,
    pub id: Option<String>,
    pub instance_name: Option<String>,
    #[serde(default)]
    pub config: Option<serde_yaml::Value>,
    pub enabled: Option<bool>,
    pub service: Option<EntityRef>,
    pub route: Option<EntityRef>,
    pub consumer: Option<EntityRef>,
    /// Scoping a plugin to a consumer group (refused: not supported by aigate).
    pub consumer_group: Option<EntityRef>,
    pub protocols: Option<Vec<String>>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeckConsumer {
    pub username: Option<String>,
    pub custom_id: Option<String>,
    pub id: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub keyauth_credentials: Vec<DeckKeyAuthCredential>,
    #[serde(default)]
    pub acls: Vec<DeckAcl>,
    #[serde(default)]
    pub jwt_secrets: Vec<DeckJwtSecret>,
    /// Consumer groups the consumer is in (declared in top-level `consumer_groups`).
    #[serde(default)]
    pub groups: Vec<DeckGroupRef>,
    #[serde(default)]
    pub plugins: Vec<DeckPlugin>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeckKeyAuthCredential {
    /// The key in plain text, or its stored form `sha256:<hex>` (see `aigate hash-key`).
    pub key: String,
    pub id: Option<String>,
    pub ttl: Option<u64>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeckAcl {
    pub group: String,
    pub id: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeckJwtSecret {
    pub key: Option<String>,
    pub algorithm: Option<String>,
    pub secret: Option<String>,
    pub rsa_public_key: Option<String>,
    pub id: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}
