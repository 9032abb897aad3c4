//! key-auth: identify the consumer by an API key in a header, the query string or the body,
//! with Kong's schema, messages and `WWW-Authenticate` header.

use std::borrow::Cow;

use pingora_http::RequestHeader;
use serde::Deserialize;

use super::{unsupported_unless_default, ConfigIssue};
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
    pub key_names: Vec<String>,
    pub hide_credentials: bool,
    pub anonymous: Option<ConsumerId>,
    pub key_in_header: bool,
    pub key_in_query: bool,
    pub key_in_body: bool,
    pub run_on_preflight: bool,
    /// The whole `WWW-Authenticate` value.
    pub www_authenticate: String,
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
        let www_authenticate = match schema.realm.as_deref() {
            Some(realm) => format!("Key realm=\"{realm}\""),
            None => "Key".to_string(),
        };
        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(KeyAuth {
            key_names: schema.key_names.iter().map(|n| n.to_ascii_lowercase()).collect(),
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
    pub fn authenticate<'r>(
        &self,
        req: &'r RequestHeader,
        body: Option<(&'r [u8], BodyKind)>,
        consumers: &Consumers,
    ) -> Result<(CredentialRef, KeyLocation), KeyAuthFailure> {
        for (i, name) in self.key_names.iter().enumerate() {
            let mut found: Option<(Cow<'r, [u8]>, KeyLocation)> = None;
            let mut count = 0usize;
            let mut empty = false;
            if self.key_in_header {
                for v in req.headers.get_all(name.as_str()) {
                    if v.is_empty() {
                        empty = true;
                        continue;
                    }
                    count += 1;
                    found.get_or_insert((Cow::Borrowed(v.as_bytes()), KeyLocation::Header(i)));
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
                            found = Some((Cow::Owned(v.into_owned()), KeyLocation::Query(i)));
                        }
                    }
                }
            }
            if self.key_in_body {
                if let Some((bytes, kind)) = body {
                    for v in body_values(bytes, kind, name) {
                        count += 1;
                        if found.is_none() {
                            found = Some((Cow::Owned(v.into_owned()), KeyLocation::Body(i)));
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
            if let Some((key, location)) = found {
                return match consumers.find_key(&key) {
                    Some(cred) => Ok((cred, location)),
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

/// Where a key was found: which source, and the index of the key name that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLocation {
    Header(usize),
    Query(usize),
    Body(usize),
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

/// The body encodings `key_in_body` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Form,
    Other,
}

impl BodyKind {
    pub fn from_content_type(ct: Option<&[u8]>) -> BodyKind {
        let Some(ct) = ct else { return BodyKind::Other };
        let essence = ct.split(|&b| b == b';').next().unwrap_or_default();
        let essence = essence.trim_ascii();
        if essence.eq_ignore_ascii_case(b"application/json") || essence.ends_with(b"+json") {
            BodyKind::Json
        } else if essence.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
            BodyKind::Form
        } else {
            BodyKind::Other
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
mod tests {
    use super::*;
    use crate::consumers::{parse_key, Consumer};

    fn consumers() -> Consumers {
        let mut c = Consumers::default();
        for (name, key) in [("alex", "hello_world"), ("anon", "")] {
            let id = c.add(Consumer {
                id: format!("id-{name}"),
                username: Some(name.into()),
                custom_id: None,
                label: name.into(),
                groups: vec![],
                groups_header: String::new(),
            });
            if !key.is_empty() {
                c.add_key(parse_key(key).unwrap(), id, format!("cred-{name}"));
            }
        }
        c
    }

    fn plugin(yaml: &str, c: &Consumers) -> KeyAuth {
        let schema: KeyAuthSchema = serde_yaml::from_str(yaml).unwrap();
        KeyAuth::compile(schema, c).unwrap()
    }

    fn req(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", path.as_bytes(), None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn kong_answers() {
        let c = consumers();
        let ka = plugin("key_names: [apikey]", &c);
        let ok = ka.authenticate(&req("/anything", &[("apikey", "hello_world")]), None, &c).unwrap();
        assert_eq!(c.get(ok.0.consumer).label, "alex");
        assert_eq!(ok.1, KeyLocation::Header(0));
        assert_eq!(
            ka.authenticate(&req("/anything", &[("apikey", "another_key")]), None, &c),
            Err(KeyAuthFailure::Invalid)
        );
        assert_eq!(ka.authenticate(&req("/anything", &[]), None, &c), Err(KeyAuthFailure::Missing));
        assert_eq!(ka.authenticate(&req("/anything", &[("apikey", "")]), None, &c), Err(KeyAuthFailure::Missing));
        // An empty key stops the search, as in Kong.
        let ka2 = plugin("key_names: [apikey, x-key]", &c);
        assert_eq!(
            ka2.authenticate(&req("/anything", &[("apikey", ""), ("x-key", "hello_world")]), None, &c),
            Err(KeyAuthFailure::Missing)
        );
        assert_eq!(KeyAuthFailure::Missing.message(), "No API key found in request");
        assert_eq!(KeyAuthFailure::Invalid.message(), "Unauthorized");
    }

    #[test]
    fn header_names_are_case_insensitive_and_query_works() {
        let c = consumers();
        let ka = plugin("key_names: [ApiKey]", &c);
        assert!(ka.authenticate(&req("/a", &[("APIKEY", "hello_world")]), None, &c).is_ok());
        let ka = plugin("key_names: [apikey]", &c);
        let (_, loc) = ka.authenticate(&req("/a?apikey=hello%5Fworld", &[]), None, &c).unwrap();
        assert_eq!(loc, KeyLocation::Query(0));
        let ka = plugin("key_names: [apikey]\nkey_in_query: false", &c);
        assert_eq!(ka.authenticate(&req("/a?apikey=hello_world", &[]), None, &c), Err(KeyAuthFailure::Missing));
    }

    #[test]
    fn duplicates_are_refused() {
        let c = consumers();
        let ka = plugin("{}", &c);
        let two = req("/a", &[("apikey", "hello_world"), ("apikey", "hello_world")]);
        assert_eq!(ka.authenticate(&two, None, &c), Err(KeyAuthFailure::Duplicate));
        let both = req("/a?apikey=hello_world", &[("apikey", "hello_world")]);
        assert_eq!(ka.authenticate(&both, None, &c), Err(KeyAuthFailure::Duplicate));
        let twice_in_query = req("/a?apikey=x&apikey=y", &[]);
        assert_eq!(ka.authenticate(&twice_in_query, None, &c), Err(KeyAuthFailure::Duplicate));
    }

    #[test]
    fn first_key_name_present_decides() {
        let c = consumers();
        let ka = plugin("key_names: [x-api-key, apikey]", &c);
        let (_, loc) =
            ka.authenticate(&req("/a", &[("apikey", "nope"), ("x-api-key", "hello_world")]), None, &c).unwrap();
        assert_eq!(loc, KeyLocation::Header(0));
    }

    #[test]
    fn keys_in_bodies() {
        let c = consumers();
        let ka = plugin("key_in_body: true", &c);
        let r = req("/a", &[]);
        let json = br#"{"apikey":"hello_world","input":"hi"}"#;
        assert!(ka.authenticate(&r, Some((json, BodyKind::Json)), &c).is_ok());
        let form = b"x=1&apikey=hello_world";
        assert!(ka.authenticate(&r, Some((form, BodyKind::Form)), &c).is_ok());
        assert_eq!(ka.authenticate(&r, Some((json, BodyKind::Other)), &c), Err(KeyAuthFailure::Missing));
        let not_string = br#"{"apikey":["hello_world"]}"#;
        assert_eq!(ka.authenticate(&r, Some((not_string, BodyKind::Json)), &c), Err(KeyAuthFailure::Missing));
        // Off by default: a key in the body is not looked at.
        let ka = plugin("{}", &c);
        assert_eq!(ka.authenticate(&r, Some((json, BodyKind::Json)), &c), Err(KeyAuthFailure::Missing));
    }

    #[test]
    fn schema_errors() {
        let c = consumers();
        let bad = |yaml: &str| {
            let schema: KeyAuthSchema = serde_yaml::from_str(yaml).unwrap();
            KeyAuth::compile(schema, &c).unwrap_err()
        };
        assert_eq!(bad("anonymous: ghost")[0].path, "anonymous");
        assert_eq!(bad("key_names: ['bad name']")[0].path, "key_names[0]");
        assert_eq!(bad("key_names: []")[0].path, "key_names");
        assert!(serde_yaml::from_str::<KeyAuthSchema>("key_nmes: [a]").is_err());
        assert!(!bad("identity_realms: [{scope: konnect, id: x, region: us}]").is_empty());
        let ok: KeyAuthSchema = serde_yaml::from_str("identity_realms: [{scope: cp, id: null, region: null}]").unwrap();
        assert!(KeyAuth::compile(ok, &c).is_ok());
    }

    #[test]
    fn realm() {
        let c = consumers();
        assert_eq!(plugin("{}", &c).www_authenticate, "Key");
        assert_eq!(plugin("realm: kong", &c).www_authenticate, "Key realm=\"kong\"");
    }

    #[test]
    fn anonymous_resolves() {
        let c = consumers();
        let ka = plugin("anonymous: anon", &c);
        assert_eq!(ka.anonymous, c.find("anon"));
    }
}
