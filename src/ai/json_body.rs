//! A JSON request body opened at its top level only: field values stay as raw, validated slices
//! of the original bytes, so policies can read and replace a few small fields (`model`, `tools`)
//! and the body is written back with one copy, however large `input` is. The one pass that
//! opens it ([`body_scan`](super::body_scan)) also validates every depth and finds the ids the
//! body names.

use std::borrow::Cow;

pub use super::body_scan::BodyError;
use super::body_scan::{scan, BodyRefs};

enum Value<'a> {
    Raw(&'a str),
    Owned(String),
}

impl Value<'_> {
    fn json(&self) -> &str {
        match self {
            Value::Raw(r) => r,
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
    /// Open a body that must be a JSON object with no key repeated at any depth.
    pub fn parse(body: &'a [u8]) -> Result<RequestDoc<'a>, BodyError> {
        Self::parse_with_refs(body).map(|(doc, _)| doc)
    }

    /// The same, with the ids the body names (one pass: [`body_scan`](super::body_scan)).
    pub fn parse_with_refs(body: &'a [u8]) -> Result<(RequestDoc<'a>, BodyRefs), BodyError> {
        let (top, refs) = scan(body)?;
        let fields = top.into_iter().map(|(k, v)| (k, Value::Raw(v))).collect();
        Ok((RequestDoc { fields, source_len: body.len(), changed: false }, refs))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

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
