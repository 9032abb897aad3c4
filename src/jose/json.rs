//! JSON as a token's header and claims are read: one reading only. RFC 7519 §4 lets a JWT
//! parser either refuse duplicate member names or keep the last one; the second leaves room for
//! two readers (this gateway, an upstream, a log pipeline) to see different values of `alg`,
//! `iss` or a scope, so a member name that occurs twice in the same object, at any depth, is
//! refused here (RFC 8725 §3.12's spirit: no ambiguity about what was checked).
//!
//! Built on serde_json's parser (its grammar, UTF-8 and nesting limits); the only difference
//! from `serde_json::from_slice::<Value>` is the duplicate check, which costs nothing more
//! than the insert it rides on.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parse `bytes` as one JSON value in which no object has the same member name twice (names
/// compared after unescaping, so `"a"` and `"\u0061"` are the same name).
pub fn parse_unique(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Unique>(bytes).ok().map(|u| u.0)
}

struct Unique(Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("not a finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Unique::deserialize(d).map(|u| u.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Unique(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let Unique(v) = map.next_value()?;
            if out.insert(name, v).is_some() {
                return Err(de::Error::custom("a member name occurs twice"));
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{"alg":"RS256","kid":"k","n":[1,-2,3.5,1e300],"o":{"a":null,"b":true}}"#,
            r#"[1,2,{"a":"\u00e9"}]"#,
            r#""text""#,
            "18446744073709551615",
            "-9223372036854775808",
            " {} ",
        ] {
            let ours = parse_unique(text.as_bytes());
            let theirs = serde_json::from_slice::<Value>(text.as_bytes()).ok();
            assert_eq!(ours, theirs, "{text}");
        }
        assert_eq!(parse_unique(br#"{"a":1}"#), Some(json!({"a": 1})));
        for bad in [&b"{"[..], b"{\"a\":1} x", b"1e400", b"\xff", b"", b"{\"a\":}", b"[1,]"] {
            assert_eq!(parse_unique(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn duplicate_member_names_are_refused_at_any_depth() {
        for text in [
            r#"{"alg":"none","typ":"JWT","alg":"HS256"}"#,
            r#"{"iss":"a","iss":"a"}"#,
            r#"{"iss":"a","\u0069ss":"b"}"#,
            r#"{"ext":{"role":"user","role":"admin"}}"#,
            r#"{"list":[{"x":1,"x":2}]}"#,
            r#"[{"a":1,"a":1}]"#,
        ] {
            assert_eq!(parse_unique(text.as_bytes()), None, "{text}");
            assert!(serde_json::from_slice::<Value>(text.as_bytes()).is_ok(), "serde_json alone keeps one: {text}");
        }
        // The same name in different objects is fine.
        assert!(parse_unique(br#"{"a":{"a":1},"b":{"a":2}}"#).is_some());
        // Names differing only in case are different names.
        assert!(parse_unique(br#"{"iss":"a","ISS":"b"}"#).is_some());
    }
}
