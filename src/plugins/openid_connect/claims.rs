//! Reading claims as Kong's openid-connect does: by path (nested objects), as sets of values
//! (space-separated strings or arrays, for scopes; whole strings or arrays, for audiences), and
//! as text (for consumer mapping and credential ids).

use std::borrow::Cow;

use serde_json::{Map, Value};

/// A claim by path (`["realm_access", "roles"]` is nested); null and false read as absent, as
/// in Kong.
pub(super) fn claim<'a>(claims: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut v = claims.get(first)?;
    for name in rest {
        v = v.as_object()?.get(name)?;
    }
    match v {
        Value::Null | Value::Bool(false) => None,
        v => Some(v),
    }
}

/// A claim as a set of values: a space-separated string, or an array of them.
pub(super) fn value_set(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |v: &Value| match v {
        Value::String(s) => out.extend(s.split_ascii_whitespace().map(str::to_string)),
        Value::Number(n) => out.push(n.to_string()),
        Value::Bool(b) => out.push(b.to_string()),
        _ => {}
    };
    match v {
        Value::Array(items) => items.iter().for_each(&mut add),
        v => add(v),
    }
    out
}

/// A claim as a list of values, each taken whole: a string is one value, an array its items
/// (RFC 7519 §4.1.3's `aud`). Nothing is split on white space.
pub(super) fn value_list(v: &Value) -> Vec<String> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        _ => None,
    };
    match v {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        v => one(v).into_iter().collect(),
    }
}

/// Whether `text` can be sent as an HTTP header value as it is: no control characters (CR,
/// LF, NUL, DEL, ...) but tab.
pub(super) fn header_safe(text: &str) -> bool {
    text.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

pub(super) fn any_set_satisfied(required: &[Vec<String>], have: &[String]) -> bool {
    required.iter().any(|set| set.iter().all(|r| have.contains(r)))
}

/// A claim as text, as Kong reads it for consumer mapping: strings, numbers and booleans as
/// written, arrays joined with spaces.
pub(super) fn claim_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::Array(items) => {
            let parts: Vec<Cow<'_, str>> = items.iter().filter_map(scalar_text).collect();
            (!parts.is_empty()).then(|| Cow::Owned(parts.join(" ")))
        }
        v => scalar_text(v),
    }
}

pub(super) fn scalar_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) if !s.is_empty() => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn audiences_are_whole_strings_scopes_are_split() {
        assert_eq!(value_list(&json!("api other")), ["api other"]);
        assert_eq!(value_list(&json!(["api", "b c", 5, null])), ["api", "b c"]);
        assert!(value_list(&json!(5)).is_empty());
        assert_eq!(value_set(&json!("api other")), ["api", "other"]);
        assert!(!any_set_satisfied(&[vec!["api".into()]], &value_list(&json!("api other"))));
        assert!(any_set_satisfied(&[vec!["api".into()]], &value_list(&json!(["other", "api"]))));
    }

    #[test]
    fn header_safe_text() {
        assert!(header_safe("https://idp#user-1"));
        assert!(header_safe("tab\there, é, ~"));
        for bad in ["a\r\nX-Evil: 1", "a\nb", "a\rb", "a\0b", "a\u{7f}", "a\u{1b}[31m"] {
            assert!(!header_safe(bad), "{bad:?}");
        }
    }
}
