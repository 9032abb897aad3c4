//! key-auth: identify the consumer by an API key in a header, the query string or the body,
//! with Kong's schema, messages and `WWW-Authenticate` header.

use std::borrow::Cow;
use std::sync::Arc;

use pingora_http::RequestHeader;
use serde::Deserialize;

use super::auth::{
    Attempt, AuthFailure, AuthRequest, Authenticated, Authenticator, BodyKind, Credential, CredentialLocation,
    CredentialPlace, Place,
};
use super::{unsupported_unless_default, ConfigIssue, PluginKind};
use crate::consumers::{Consumers, CredentialRef};
use crate::core::query;
use crate::core::ConsumerId;

/// Kong's key-auth schema.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAuthSchema {
    #[serde(default = "default_key_names")]
    pub key_names: Vec<String>,
    #[serde(default)]
    pub hide_credentials: bool,
    pub anonymous: Option<String>,
    #[serde(default = "yes")]
    pub key_in_header: bool,
    #[serde(default = "yes")]
    pub key_in_query: bool,
    #[serde(default)]
    pub key_in_body: bool,
    #[serde(default = "yes")]
    pub run_on_preflight: bool,
    pub realm: Option<String>,
    /// Konnect identity realms: only the default (a local consumer store) is supported.
    pub identity_realms: Option<serde_yaml::Value>,
}

fn default_key_names() -> Vec<String> {
    vec!["apikey".to_string()]
}

fn yes() -> bool {
    true
}

/// key-auth as compiled for the request path.
#[derive(Debug)]
pub struct KeyAuth {
    /// Lower-cased header names (headers are case-insensitive); query and body names as written.
    pub key_names: Vec<Arc<str>>,
    pub hide_credentials: bool,
    pub anonymous: Option<ConsumerId>,
    pub key_in_header: bool,
    pub key_in_query: bool,
    pub key_in_body: bool,
    pub run_on_preflight: bool,
    /// The whole `WWW-Authenticate` value.
    pub www_authenticate: Arc<str>,
}

impl KeyAuth {
    pub fn compile(schema: KeyAuthSchema, consumers: &Consumers) -> Result<KeyAuth, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        if schema.key_names.is_empty() {
            issues.push(ConfigIssue::new("key_names", "key_names is empty", "name at least one key, e.g. [apikey]"));
        }
        for (i, name) in schema.key_names.iter().enumerate() {
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~!#$&'*+^`|".contains(&b));
            if !valid {
                issues.push(ConfigIssue::new(
                    format!("key_names[{i}]"),
                    format!("`{name}` is not a valid header name"),
                    "use letters, digits, - and _",
                ));
            }
        }
        if !schema.key_in_header && !schema.key_in_query && !schema.key_in_body {
            issues.push(ConfigIssue::new(
                "",
                "key_in_header, key_in_query and key_in_body are all false: no key could ever be found",
                "enable at least one place to look for the key",
            ));
        }
        let anonymous = super::anonymous_consumer(&mut issues, consumers, schema.anonymous.as_deref());
        unsupported_unless_default(&mut issues, "identity_realms", &schema.identity_realms, is_default_realms);
        let www_authenticate: Arc<str> = match schema.realm.as_deref() {
            Some(realm) => format!("Key realm=\"{realm}\"").into(),
            None => "Key".into(),
        };
        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(KeyAuth {
            key_names: schema.key_names.iter().map(|n| Arc::from(n.to_ascii_lowercase())).collect(),
            hide_credentials: schema.hide_credentials,
            anonymous,
            key_in_header: schema.key_in_header,
            key_in_query: schema.key_in_query,
            key_in_body: schema.key_in_body,
            run_on_preflight: schema.run_on_preflight,
            www_authenticate,
        })
    }

    /// Find the presented key and its consumer.
    ///
    /// `body` is the complete request body when the gateway has it (needed for `key_in_body`).
    /// Key names are tried in order; the first one present decides. A key given twice — the
    /// same header twice, or in the header and the query string — is refused as a duplicate, so
    /// that the gateway and the upstream can never disagree on which key was meant.
    pub fn check<'r>(
        &self,
        req: &'r RequestHeader,
        body: Option<(&'r [u8], BodyKind)>,
        consumers: &Consumers,
    ) -> Result<(CredentialRef, CredentialLocation), KeyAuthFailure> {
        for name in &self.key_names {
            let mut found: Option<(Cow<'r, [u8]>, CredentialPlace)> = None;
            let mut count = 0usize;
            let mut empty = false;
            if self.key_in_header {
                for v in req.headers.get_all(&**name) {
                    if v.is_empty() {
                        empty = true;
                        continue;
                    }
                    count += 1;
                    found.get_or_insert((Cow::Borrowed(v.as_bytes()), CredentialPlace::Header));
                }
            }
            if self.key_in_query {
                if let Some(q) = req.uri.query() {
                    for v in query::values(q.as_bytes(), name) {
                        if v.is_empty() {
                            empty = true;
                            continue;
                        }
                        count += 1;
                        if found.is_none() {
                            found = Some((Cow::Owned(v.into_owned()), CredentialPlace::Query));
                        }
                    }
                }
            }
            if self.key_in_body {
                if let Some((bytes, kind)) = body {
                    for v in body_values(bytes, kind, name) {
                        count += 1;
                        if found.is_none() {
                            found = Some((Cow::Owned(v.into_owned()), CredentialPlace::BodyField));
                        }
                    }
                }
            }
            if count > 1 {
                return Err(KeyAuthFailure::Duplicate);
            }
            if count == 0 && empty {
                // Kong: an empty key is a missing key, and the search stops there.
                return Err(KeyAuthFailure::Missing);
            }
            if let Some((key, place)) = found {
                return match consumers.find_key(&key) {
                    Some(cred) => Ok((cred, CredentialLocation { place, name: Arc::clone(name) })),
                    None => Err(KeyAuthFailure::Invalid),
                };
            }
        }
        Err(KeyAuthFailure::Missing)
    }
}

fn is_default_realms(v: &serde_yaml::Value) -> bool {
    // Kong's default: [{scope: cp, id: null, region: null}]
    let Some(seq) = v.as_sequence() else {
        return false;
    };
    seq.iter().all(|item| {
        item.get("scope").and_then(|s| s.as_str()) == Some("cp")
            && item.get("id").is_none_or(|x| x.is_null())
            && item.get("region").is_none_or(|x| x.is_null())
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAuthFailure {
    Missing,
    Invalid,
    Duplicate,
}

impl KeyAuthFailure {
    /// Kong's message for each case.
    pub fn message(self) -> &'static str {
        match self {
            KeyAuthFailure::Missing => "No API key found in request",
            KeyAuthFailure::Invalid => "Unauthorized",
            KeyAuthFailure::Duplicate => "Duplicate API key found",
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            KeyAuthFailure::Missing => "missing",
            KeyAuthFailure::Invalid => "invalid",
            KeyAuthFailure::Duplicate => "duplicate",
        }
    }
}

impl Authenticator for KeyAuth {
    fn kind(&self) -> PluginKind {
        PluginKind::KeyAuth
    }

    fn anonymous(&self) -> Option<ConsumerId> {
        self.anonymous
    }

    fn run_on_preflight(&self) -> bool {
        self.run_on_preflight
    }

    fn needs_body(&self) -> bool {
        self.key_in_body
    }

    fn authenticate<'a>(&'a self, req: &'a AuthRequest<'a>) -> Attempt<'a> {
        Attempt::Ready(match self.check(req.head, req.body, req.consumers) {
            Ok((cred, location)) => Ok(Authenticated {
                consumer: Some(cred.consumer),
                credential: Credential::Key(cred.credential),
                location: Some(location),
            }),
            Err(f) => Err(AuthFailure::new(401, f.message(), f.reason()).with_www_authenticate(&self.www_authenticate)),
        })
    }

    /// The key where it was found (Kong also clears a same-named query parameter when the key
    /// was in a header, and the reverse), when `hide_credentials` is set, and always before an
    /// LLM provider.
    fn strip_credentials(&self, found: Option<&CredentialLocation>, to_llm: bool, strip: &mut dyn FnMut(Place<'_>)) {
        let Some(found) = found.filter(|_| self.hide_credentials || to_llm) else { return };
        match found.place {
            CredentialPlace::Header | CredentialPlace::Query => {
                strip(Place { place: CredentialPlace::Header, name: &found.name });
                strip(Place { place: CredentialPlace::Query, name: &found.name });
            }
            CredentialPlace::BodyField | CredentialPlace::Cookie => strip(found.borrow()),
        }
    }
}

/// String values of a top-level field `name` in a JSON object or form body.
fn body_values<'a>(body: &'a [u8], kind: BodyKind, name: &'a str) -> Vec<Cow<'a, [u8]>> {
    match kind {
        BodyKind::Form => query::values(body, name).filter(|v| !v.is_empty()).collect(),
        BodyKind::Json => {
            let Ok(map) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body) else {
                return Vec::new();
            };
            match map.get(name) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => {
                    vec![Cow::Owned(s.as_bytes().to_vec())]
                }
                _ => Vec::new(),
            }
        }
        BodyKind::Other => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
