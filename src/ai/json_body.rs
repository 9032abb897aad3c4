//! A JSON request body opened at its top level only: field values stay as raw, validated slices
//! of the original bytes, so policies can read and replace a few small fields (`model`, `tools`)
//! and the body is written back with one copy, however large `input` is.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON, or truncated.
    Invalid(String),
    /// Valid JSON, but not an object.
    NotAnObject,
    /// The same top-level field twice: the gateway and the provider could read different values.
    DuplicateField(String),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Invalid(e) => write!(f, "request body is not valid JSON: {e}"),
            BodyError::NotAnObject => write!(f, "request body must be a JSON object"),
            BodyError::DuplicateField(k) => {
                write!(f, "request body has the field \"{k}\" more than once")
            }
        }
    }
}

enum Value<'a> {
    Raw(&'a RawValue),
    Owned(String),
}

impl Value<'_> {
    fn json(&self) -> &str {
        match self {
            Value::Raw(r) => r.get(),
            Value::Owned(s) => s,
        }
    }
}

/// The top-level fields of a JSON object body, in order.
pub struct RequestDoc<'a> {
    fields: Vec<(Cow<'a, str>, Value<'a>)>,
    source_len: usize,
    changed: bool,
}

impl<'a> RequestDoc<'a> {
    pub fn parse(body: &'a [u8]) -> Result<RequestDoc<'a>, BodyError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let top = match TopLevel::deserialize(&mut de) {
            Ok(t) => t,
            Err(e) => {
                return Err(match e.classify() {
                    serde_json::error::Category::Data if e.to_string().starts_with(NOT_OBJECT) => {
                        BodyError::NotAnObject
                    }
                    _ => BodyError::Invalid(e.to_string()),
                })
            }
        };
        de.end().map_err(|e| BodyError::Invalid(e.to_string()))?;
        let mut fields: Vec<(Cow<'a, str>, Value<'a>)> = Vec::with_capacity(top.0.len());
        for (k, v) in top.0 {
            if fields.iter().any(|(existing, _)| *existing == k) {
                return Err(BodyError::DuplicateField(k.into_owned()));
            }
            fields.push((k, Value::Raw(v)));
        }
        Ok(RequestDoc { fields, source_len: body.len(), changed: false })
    }

    /// Every field, in order: its name and raw JSON text.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_ref(), v.json()))
    }

    /// The raw JSON text of a field.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.json())
    }

    /// A field decoded into `T`; `Err` when present but of another type.
    pub fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, String> {
        match self.raw(key) {
            None => Ok(None),
            Some("null") => Ok(None),
            Some(raw) => serde_json::from_str(raw).map(Some).map_err(|e| format!("\"{key}\": {e}")),
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.fields.iter().any(|(k, _)| k == key)
    }

    /// Set a field to a value (serialised here), keeping its place or appending it.
    pub fn set<T: serde::Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        let json = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
        self.set_raw(key, json);
    }

    /// Set a field to JSON text the caller guarantees is valid.
    pub fn set_raw(&mut self, key: &str, json: String) {
        self.changed = true;
        if let Some((_, v)) = self.fields.iter_mut().find(|(k, _)| k == key) {
            *v = Value::Owned(json);
        } else {
            self.fields.push((Cow::Owned(key.to_string()), Value::Owned(json)));
        }
    }

    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.fields.len();
        self.fields.retain(|(k, _)| k != key);
        let removed = self.fields.len() != before;
        self.changed |= removed;
        removed
    }

    /// Whether any field was set or removed.
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Write the object back: compact separators, fields in order, untouched values verbatim.
    pub fn to_bytes(&self) -> Vec<u8> {
        let extra: usize = self
            .fields
            .iter()
            .map(|(k, v)| match v {
                Value::Owned(s) => s.len() + k.len() + 4,
                Value::Raw(_) => 0,
            })
            .sum();
        let mut out = Vec::with_capacity(self.source_len + extra + 2);
        out.push(b'{');
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Writing a str to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, k.as_ref());
            out.push(b':');
            out.extend_from_slice(v.json().as_bytes());
        }
        out.push(b'}');
        out
    }
}

const NOT_OBJECT: &str = "invalid type";

struct TopLevel<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    let v: &'de RawValue = map.next_value()?;
                    fields.push((k, v));
                }
                Ok(TopLevel(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// A key borrowed from the input when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_rewrites_top_level_fields() {
        let body = br#"{"input":"How do I use GitHub MCP?","tools":[{"type":"mcp"}],"model":"gpt-4o"}"#;
        let mut doc = RequestDoc::parse(body).unwrap();
        assert_eq!(doc.get::<String>("model").unwrap().as_deref(), Some("gpt-4o"));
        assert_eq!(doc.raw("tools"), Some(r#"[{"type":"mcp"}]"#));
        assert!(!doc.changed());
        doc.set("max_output_tokens", &512);
        doc.set("temperature", &1.0);
        doc.remove("model");
        let out = String::from_utf8(doc.to_bytes()).unwrap();
        assert_eq!(
            out,
            r#"{"input":"How do I use GitHub MCP?","tools":[{"type":"mcp"}],"max_output_tokens":512,"temperature":1.0}"#
        );
        let reparsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(reparsed["max_output_tokens"], 512);
    }

    #[test]
    fn untouched_values_are_kept_verbatim() {
        let body = "{\"input\" : [ {\"x\": 1.50e2, \"s\":\"\\u00e9\\n\"} ] , \"k\\u0065y\":true}";
        let doc = RequestDoc::parse(body.as_bytes()).unwrap();
        let out = String::from_utf8(doc.to_bytes()).unwrap();
        assert_eq!(out, "{\"input\":[ {\"x\": 1.50e2, \"s\":\"\\u00e9\\n\"} ],\"key\":true}");
        assert_eq!(doc.raw("key"), Some("true"));
    }

    #[test]
    fn refusals() {
        assert!(matches!(RequestDoc::parse(b"{\"a\":"), Err(BodyError::Invalid(_))));
        assert!(matches!(RequestDoc::parse(b""), Err(BodyError::Invalid(_))));
        assert!(matches!(RequestDoc::parse(b"{} {}"), Err(BodyError::Invalid(_))));
        assert_eq!(RequestDoc::parse(b"[1,2]").err(), Some(BodyError::NotAnObject));
        assert_eq!(RequestDoc::parse(b"\"text\"").err(), Some(BodyError::NotAnObject));
        assert_eq!(RequestDoc::parse(b"42").err(), Some(BodyError::NotAnObject));
        assert_eq!(
            RequestDoc::parse(br#"{"model":"a","model":"b"}"#).err(),
            Some(BodyError::DuplicateField("model".into()))
        );
        // An escaped spelling of the same key is the same key.
        assert_eq!(
            RequestDoc::parse(br#"{"model":"a","m\u006fdel":"b"}"#).err(),
            Some(BodyError::DuplicateField("model".into()))
        );
    }

    /// Found by fuzzing (fuzz/fuzz_targets/request_body.rs): a number too large for an f64 is
    /// valid JSON; it is kept as written, not turned into an error or a different number.
    #[test]
    fn huge_numbers_are_kept_verbatim() {
        let mut doc = RequestDoc::parse(br#"{"": 1E958, "n": -0.0e-999}"#).unwrap();
        doc.set("model", "gpt-4o");
        let out = doc.to_bytes();
        assert_eq!(out, br#"{"":1E958,"n":-0.0e-999,"model":"gpt-4o"}"#.to_vec());
        assert!(serde_json::from_slice::<Box<RawValue>>(&out).is_ok());
    }

    #[test]
    fn typed_reads_report_wrong_types() {
        let doc = RequestDoc::parse(br#"{"model":42,"stream":null}"#).unwrap();
        assert!(doc.get::<String>("model").is_err());
        assert_eq!(doc.get::<bool>("stream").unwrap(), None);
        assert_eq!(doc.get::<bool>("absent").unwrap(), None);
    }
}
