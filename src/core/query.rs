//! Query strings and form bodies: find parameters, percent-decode them, remove them.

use std::borrow::Cow;

/// Every value of parameter `name` in a `a=1&b=2` string (query or form body), decoded.
pub fn values<'a>(query: &'a [u8], name: &'a str) -> impl Iterator<Item = Cow<'a, [u8]>> + 'a {
    query.split(|&b| b == b'&').filter_map(move |pair| {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        (decode(k).as_ref() == name.as_bytes()).then(|| decode(v))
    })
}

/// Remove every `name=...` pair, keeping the rest in order. `None` when nothing was removed.
pub fn without(query: &[u8], name: &str) -> Option<Vec<u8>> {
    without_pairs(query, b'&', b"&", |pair| pair, |key| decode(key).as_ref() == name.as_bytes())
}

/// `input` split at `separator` into `key=value` pairs (each first passed through `trim`),
/// without the pairs whose key `remove` picks and the empty ones, joined with `joiner`. `None`
/// when nothing was removed. Query strings and `Cookie` headers both have this shape.
pub fn without_pairs(
    input: &[u8],
    separator: u8,
    joiner: &[u8],
    trim: impl Fn(&[u8]) -> &[u8],
    remove: impl Fn(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    let mut removed = false;
    let mut out = Vec::with_capacity(input.len());
    for pair in input.split(|&b| b == separator).map(&trim) {
        let key = pair.split(|&b| b == b'=').next().unwrap_or_default();
        if remove(key) {
            removed = true;
            continue;
        }
        if pair.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.extend_from_slice(joiner);
        }
        out.extend_from_slice(pair);
    }
    removed.then_some(out)
}

/// Percent-encode a query or form component (unreserved characters kept).
pub fn encode_component(s: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

/// A query string or form body as decoded `(name, value)` pairs, in order (a pair without `=`
/// has an empty value; empty pairs are dropped).
pub fn pairs(input: &[u8]) -> Vec<(String, String)> {
    input
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            (String::from_utf8_lossy(&decode(k)).into_owned(), String::from_utf8_lossy(&decode(v)).into_owned())
        })
        .collect()
}

/// `(name, value)` pairs encoded as `a=1&b=2`.
pub fn encode_pairs(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&encode_component(k.as_bytes()));
        out.push('=');
        out.push_str(&encode_component(v.as_bytes()));
    }
    out.into_bytes()
}

/// Percent-decode, with `+` as space (form encoding). Invalid escapes are kept as written.
pub fn decode(s: &[u8]) -> Cow<'_, [u8]> {
    if !s.iter().any(|&b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

pub fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_decodes() {
        let q = b"a=1&apikey=hello%5Fworld&b&apikey=x+y";
        let v: Vec<_> = values(q, "apikey").map(|c| c.into_owned()).collect();
        assert_eq!(v, vec![b"hello_world".to_vec(), b"x y".to_vec()]);
        assert_eq!(values(q, "b").next().unwrap().as_ref(), b"");
        assert_eq!(values(q, "c").count(), 0);
        // An encoded parameter name is the same parameter.
        assert_eq!(values(b"api%6Bey=1", "apikey").count(), 1);
    }

    #[test]
    fn removes() {
        assert_eq!(without(b"a=1&apikey=k&b=2", "apikey").unwrap(), b"a=1&b=2");
        assert_eq!(without(b"apikey=k", "apikey").unwrap(), b"");
        assert_eq!(without(b"a=1", "apikey"), None);
    }

    #[test]
    fn bad_escapes_stay() {
        assert_eq!(decode(b"%zz%4").as_ref(), b"%zz%4");
        assert_eq!(decode(b"%41%").as_ref(), b"A%");
        assert_eq!(decode(b"%").as_ref(), b"%");
    }
}
