//! Reading translated bodies: a JSON object's members in order with raw values (a name given
//! twice refused), strings borrowed when they have no escapes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Why a value could not be read as an object.
#[derive(Debug, PartialEq, Eq)]
pub enum ObjectError {
    NotAnObject,
    Duplicate(String),
}

/// The members of a JSON object, in order.
pub fn members(json: &str) -> Result<Vec<(Cow<'_, str>, &RawValue)>, ObjectError> {
    let Members(m) = serde_json::from_str(json).map_err(|_| ObjectError::NotAnObject)?;
    for (i, (k, _)) in m.iter().enumerate() {
        if m[..i].iter().any(|(seen, _)| seen == k) {
            return Err(ObjectError::Duplicate(k.to_string()));
        }
    }
    Ok(m)
}

struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(Text(k)) = map.next_key::<Text<'de>>()? {
                    out.push((k, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A string, borrowed from the input when it has no escapes.
#[derive(Debug)]
pub struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_in_order_and_duplicates() {
        let m = members(r#"{"b":1,"a":{"x":[1]},"c":"s"}"#).unwrap();
        let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["b", "a", "c"]);
        assert_eq!(m[1].1.get(), r#"{"x":[1]}"#);
        assert_eq!(members(r#"{"a":1,"\u0061":2}"#).err(), Some(ObjectError::Duplicate("a".into())));
        assert_eq!(members("[1]").err(), Some(ObjectError::NotAnObject));
        let t: Text = serde_json::from_str(r#""plain""#).unwrap();
        assert!(matches!(t.0, Cow::Borrowed("plain")));
        let t: Text = serde_json::from_str(r#""a\nb""#).unwrap();
        assert_eq!(t.0, "a\nb");
    }
}
