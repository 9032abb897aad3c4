//! JSON Web Key Sets (RFC 7517/7518) as identity providers publish them: each usable
//! signature key becomes a [`Jwk`] in the form ring verifies with; keys that cannot be used
//! (encryption keys, HMAC secrets, private keys, weak RSA, unknown types) are ignored one by one
//! with the reason, for the logs.

use base64::Engine;
use serde_json::Value;

use super::jws::B64URL;
use super::pem_keys::rsa_components;
use super::{Algorithm, PublicKey};

/// Keys past this many in one set are ignored.
pub const MAX_KEYS: usize = 100;

/// What a key is, which decides the algorithms it can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    pub fn supports(self, alg: Algorithm) -> bool {
        match self {
            KeyKind::Rsa => matches!(
                alg,
                Algorithm::Rs256
                    | Algorithm::Rs384
                    | Algorithm::Rs512
                    | Algorithm::Ps256
                    | Algorithm::Ps384
                    | Algorithm::Ps512
            ),
            KeyKind::P256 => alg == Algorithm::Es256,
            KeyKind::P384 => alg == Algorithm::Es384,
            KeyKind::Ed25519 => alg == Algorithm::EdDsa,
        }
    }
}

/// One usable verification key.
#[derive(Debug)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The key's `alg`, when it names one: then only that algorithm is accepted.
    pub alg: Option<Algorithm>,
    pub kind: KeyKind,
    pub key: PublicKey,
}

impl Jwk {
    /// Whether a token signed with `alg` may be checked with this key.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.kind.supports(alg) && self.alg.is_none_or(|a| a == alg)
    }

    pub fn verify(&self, alg: Algorithm, msg: &[u8], sig: &[u8]) -> bool {
        self.accepts(alg) && self.key.verify(alg, msg, sig)
    }
}

/// A parsed key set, and what was left out of it.
#[derive(Debug, Default)]
pub struct ParsedJwks {
    pub keys: Vec<Jwk>,
    /// Why each ignored key was ignored (kid or index, and the reason), for the logs.
    pub ignored: Vec<String>,
}

/// Parse a JWKS document. Keys that cannot be used (encryption keys, unknown types, HMAC
/// secrets, private keys, bad encodings, weak RSA, ...) are ignored, not fatal; a document that
/// is not a key set, or holds no usable key, is an error.
pub fn parse_jwks(body: &[u8]) -> Result<ParsedJwks, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let keys = doc.get("keys").and_then(Value::as_array).ok_or("not a key set (no `keys` array)")?;
    let mut out = ParsedJwks::default();
    for (i, k) in keys.iter().enumerate() {
        let name = match k.get("kid").and_then(Value::as_str) {
            Some(kid) => format!("kid {kid:?}"),
            None => format!("key #{i}"),
        };
        if out.keys.len() >= MAX_KEYS {
            out.ignored.push(format!("{name}: more than {MAX_KEYS} keys"));
            continue;
        }
        match parse_jwk(k) {
            Ok(jwk) => out.keys.push(jwk),
            Err(why) => out.ignored.push(format!("{name}: {why}")),
        }
    }
    if out.keys.is_empty() {
        return Err(format!("no usable signing key ({} ignored)", out.ignored.len()));
    }
    Ok(out)
}

fn parse_jwk(k: &Value) -> Result<Jwk, String> {
    let k = k.as_object().ok_or("not an object")?;
    let text = |name: &str| -> Result<Option<&str>, String> {
        match k.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("`{name}` is not a string")),
        }
    };
    if let Some(u) = text("use")? {
        if u != "sig" {
            return Err(format!("use {u:?} is not sig"));
        }
    }
    if let Some(ops) = k.get("key_ops") {
        let verify = ops.as_array().is_some_and(|a| a.iter().any(|o| o.as_str() == Some("verify")));
        if !verify {
            return Err("key_ops does not include verify".into());
        }
    }
    if k.contains_key("d") {
        // A published private key: anyone could sign with it.
        return Err("holds a private key; refused".into());
    }
    let kid = text("kid")?.map(str::to_string);
    let alg = match text("alg")? {
        None => None,
        Some(name) => Some(Algorithm::from_name(name).ok_or_else(|| format!("alg {name:?} is not supported"))?),
    };
    let b64 = |name: &str| -> Result<Vec<u8>, String> {
        let v = text(name)?.ok_or_else(|| format!("`{name}` is missing"))?;
        B64URL.decode(v).map_err(|_| format!("`{name}` is not base64url"))
    };
    let kty = text("kty")?.ok_or("kty is missing")?;
    let (kind, key) = match kty {
        "RSA" => {
            let n = b64("n")?;
            let e = b64("e")?;
            let strip = |v: &[u8]| -> Vec<u8> { v.iter().copied().skip_while(|&b| b == 0).collect() };
            let c = rsa_components(&strip(&n), &strip(&e)).map_err(|e| format!("the RSA key {e}"))?;
            (KeyKind::Rsa, PublicKey::Rsa(c))
        }
        "EC" => {
            let (kind, len) = match text("crv")? {
                Some("P-256") => (KeyKind::P256, 32),
                Some("P-384") => (KeyKind::P384, 48),
                other => return Err(format!("EC curve {other:?} is not supported (P-256, P-384)")),
            };
            let x = b64("x")?;
            let y = b64("y")?;
            if x.len() != len || y.len() != len {
                return Err("EC coordinates have the wrong length".into());
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (kind, PublicKey::Point(point))
        }
        "OKP" => {
            if text("crv")? != Some("Ed25519") {
                return Err("OKP curve is not Ed25519".into());
            }
            let x = b64("x")?;
            if x.len() != 32 {
                return Err("Ed25519 key has the wrong length".into());
            }
            (KeyKind::Ed25519, PublicKey::Point(x))
        }
        other => return Err(format!("kty {other:?} is not supported")),
    };
    if let Some(a) = alg {
        if !kind.supports(a) {
            return Err(format!("alg {} does not fit kty {kty}", a.name()));
        }
    }
    Ok(Jwk { kid, alg, kind, key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn rsa_n() -> Vec<u8> {
        // An odd 2048-bit modulus (not a real key: parsing only).
        let mut n = vec![0xc5u8; 256];
        n[255] = 0x01;
        n
    }

    #[test]
    fn parses_each_key_type_and_ignores_junk() {
        let p256 = [7u8; 32];
        let p384 = [9u8; 48];
        let doc = json!({"keys": [
            {"kty": "RSA", "kid": "r", "n": b64(&rsa_n()), "e": "AQAB", "alg": "RS256", "use": "sig"},
            // A leading zero byte on n is tolerated.
            {"kty": "RSA", "kid": "r0", "n": b64(&[&[0u8][..], &rsa_n()].concat()), "e": "AQAB"},
            {"kty": "EC", "kid": "e256", "crv": "P-256", "x": b64(&p256), "y": b64(&p256)},
            {"kty": "EC", "kid": "e384", "crv": "P-384", "x": b64(&p384), "y": b64(&p384), "alg": "ES384"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(&[1u8; 32])},
            // Junk, each ignored on its own.
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": b64(&rsa_n()), "e": "AQAB"},
            {"kty": "RSA", "kid": "ops", "key_ops": ["encrypt"], "n": b64(&rsa_n()), "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "small", "n": b64(&[0xc5u8; 128]), "e": "AQAB"},
            // 256 bytes, but only 2041 bits: too weak all the same.
            {"kty": "RSA", "kid": "2041-bit", "n": b64(&[&[0x01u8][..], &rsa_n()[1..]].concat()), "e": "AQAB"},
            {"kty": "RSA", "kid": "even-e", "n": b64(&rsa_n()), "e": "AQA"},
            {"kty": "RSA", "kid": "priv", "n": b64(&rsa_n()), "e": "AQAB", "d": "AQAB"},
            {"kty": "RSA", "kid": "no-n", "e": "AQAB"},
            {"kty": "RSA", "kid": "bad-b64", "n": "!!!", "e": "AQAB"},
            {"kty": "EC", "kid": "p521", "crv": "P-521", "x": b64(&[1u8; 66]), "y": b64(&[1u8; 66])},
            {"kty": "EC", "kid": "short", "crv": "P-256", "x": b64(&[1u8; 31]), "y": b64(&p256)},
            {"kty": "OKP", "kid": "x25519", "crv": "X25519", "x": b64(&[1u8; 32])},
            {"kty": "OKP", "kid": "ed-short", "crv": "Ed25519", "x": b64(&[1u8; 31])},
            {"kty": "RSA", "kid": "wrong-alg", "alg": "ES256", "n": b64(&rsa_n()), "e": "AQAB"},
            {"kty": "RSA", "kid": "hs-alg", "alg": "HS256", "n": b64(&rsa_n()), "e": "AQAB"},
            {"kty": "RSA", "kid": "none-alg", "alg": "none", "n": b64(&rsa_n()), "e": "AQAB"},
            {"kty": 5},
            {"kid": 5, "kty": "RSA"},
            "not an object",
            null,
        ]});
        let parsed = parse_jwks(doc.to_string().as_bytes()).unwrap();
        let kids: Vec<&str> = parsed.keys.iter().filter_map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, ["r", "r0", "e256", "e384", "ed"]);
        assert_eq!(parsed.ignored.len(), 20, "{:?}", parsed.ignored);
        assert!(parsed.ignored.iter().any(|i| i.starts_with("kid \"2041-bit\"") && i.contains("a 2041-bit RSA key")));
        let kinds: Vec<KeyKind> = parsed.keys.iter().map(|k| k.kind).collect();
        assert_eq!(kinds, [KeyKind::Rsa, KeyKind::Rsa, KeyKind::P256, KeyKind::P384, KeyKind::Ed25519]);
        // alg on the key restricts it; without alg, the key type decides.
        assert!(parsed.keys[0].accepts(Algorithm::Rs256));
        assert!(!parsed.keys[0].accepts(Algorithm::Ps256));
        assert!(parsed.keys[1].accepts(Algorithm::Ps512));
        assert!(!parsed.keys[1].accepts(Algorithm::Es256));
        assert!(!parsed.keys[1].accepts(Algorithm::Hs256));
        assert!(parsed.keys[2].accepts(Algorithm::Es256) && !parsed.keys[2].accepts(Algorithm::Es384));
        assert!(parsed.keys[4].accepts(Algorithm::EdDsa) && !parsed.keys[4].accepts(Algorithm::Es256));
    }

    #[test]
    fn documents_that_are_not_key_sets() {
        for body in [&b""[..], b"{", b"[]", b"{}", b"{\"keys\": 5}", b"{\"keys\": []}", b"null"] {
            assert!(parse_jwks(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        let only_junk = json!({"keys": [{"kty": "oct", "k": "eA"}]});
        assert!(parse_jwks(only_junk.to_string().as_bytes()).unwrap_err().contains("1 ignored"));
    }

    #[test]
    fn too_many_keys_are_cut() {
        let key = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[1u8; 32])});
        let doc = json!({"keys": vec![key; MAX_KEYS + 5]});
        let parsed = parse_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.keys.len(), MAX_KEYS);
        assert_eq!(parsed.ignored.len(), 5);
    }

    #[test]
    fn hostile_documents_never_panic() {
        let mut x: u32 = 0x9e37_79b9;
        let alphabet = br#"{}[]":,kty RSA EC OKP n e x y crv P-256 kid AQAB 0123456789"#;
        for _ in 0..3000 {
            let mut t = Vec::new();
            for _ in 0..(x % 200) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                t.push(alphabet[(x as usize) % alphabet.len()]);
            }
            let _ = parse_jwks(&t);
            let _ = parse_jwks(format!("{{\"keys\":[{}]}}", String::from_utf8_lossy(&t)).as_bytes());
        }
    }
}
