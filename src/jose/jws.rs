//! Compact JWS (`<header>.<payload>.<signature>`): one decoder for both plugins that read signed
//! tokens. Its two profiles differ only where Kong's jwt plugin is lenient and openid-connect
//! follows RFC 7515, and each keeps its own order of checks (which decides the error a broken
//! token gets):
//!
//! | | [`Profile::Kong`] (jwt, as Kong's `jwt_parser`) | [`Profile::Strict`] (openid-connect) |
//! |---|---|---|
//! | base64 | url-safe or standard alphabet, padding optional, text from the first `=` ignored | base64url, padding tolerated |
//! | parts | split at the first two dots; more dots stay in the signature | exactly three |
//! | header | any JSON; not an object with a known `alg` is an algorithm error | a JSON object, `kid` a string |
//! | payload | an object; an array or a string reads as no claims | an object |
//! | order | header, payload, `crit`, `alg`, payload type, signature | parts, signature, `crit`, `alg`, `kid` |
//!
//! Both profiles go beyond Kong where a token could be read two ways: a header or payload in
//! which a member name occurs twice is not JSON to them ([`super::json`]; RFC 7519 §4 allows
//! refusing it), and a header with a `crit` member is refused (RFC 7515 §4.1.11: the
//! extensions it names must be understood, and aigate implements none; an empty or malformed
//! `crit` is refused too). Either way `alg` must be one of [`Algorithm`]'s exact names, so
//! `none` never decodes, and the caller checks the signature with the key of its own choosing,
//! never one the token names alone (`jku`, `x5u`, `jwk` and `x5c` headers are never read).

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use serde_json::{Map, Value};

use super::json::parse_unique;
use super::Algorithm;

/// Longer tokens are refused before any decoding.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Base64url as JOSE writes it (padding tolerated, no other alphabet).
pub const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Which rules a token is read with (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Kong,
    Strict,
}

/// A decoded token. The signature is not checked yet.
#[derive(Debug)]
pub struct Jws<'t> {
    /// `<header>.<payload>` as received: what the signature covers.
    pub signing_input: &'t [u8],
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    pub alg: Algorithm,
    pub signature: Vec<u8>,
}

impl Jws<'_> {
    /// The header's `kid` (a string; the strict profile refuses any other type).
    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }
}

/// Why a token does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsError {
    /// Not three parts, or a header or payload that is not base64 JSON (Kong: "invalid JSON"),
    /// or JSON with a member name twice in one object.
    Malformed,
    /// A `crit` header member: an extension that must be understood, and aigate implements none.
    Critical,
    /// `alg` missing, not a string, or not a known algorithm (`none` included).
    Algorithm,
    /// Kong: a payload that is JSON but neither an object, an array nor a string.
    Claims,
    /// Kong: a signature that is not base64.
    Signature,
}

/// Decode a compact JWS with `profile`'s rules.
pub fn decode(token: &[u8], profile: Profile) -> Result<Jws<'_>, JwsError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwsError::Malformed);
    }
    let (h64, c64, s64) = split(token, profile)?;
    let signing_input = token.get(..h64.len() + 1 + c64.len()).ok_or(JwsError::Malformed)?;
    let header = json(h64, profile)?;
    let claims = json(c64, profile)?;
    match profile {
        Profile::Kong => {
            let signature = kong_b64_decode(s64);
            let (header, alg) = match header {
                Value::Object(h) => {
                    if h.contains_key("crit") {
                        return Err(JwsError::Critical);
                    }
                    let alg = algorithm(&h)?;
                    (h, alg)
                }
                _ => return Err(JwsError::Algorithm),
            };
            let claims = match claims {
                Value::Object(m) => m,
                // Kong indexes strings and arrays as tables without those fields.
                Value::Array(_) | Value::String(_) => Map::new(),
                _ => return Err(JwsError::Claims),
            };
            let signature = signature.ok_or(JwsError::Signature)?;
            Ok(Jws { signing_input, header, claims, alg, signature })
        }
        Profile::Strict => {
            let (Value::Object(header), Value::Object(claims)) = (header, claims) else {
                return Err(JwsError::Malformed);
            };
            let signature = B64URL.decode(s64).map_err(|_| JwsError::Malformed)?;
            if header.contains_key("crit") {
                // Extensions we do not implement must not be ignored (RFC 7515 4.1.11).
                return Err(JwsError::Critical);
            }
            let alg = algorithm(&header)?;
            if !matches!(header.get("kid"), None | Some(Value::Null | Value::String(_))) {
                return Err(JwsError::Malformed);
            }
            Ok(Jws { signing_input, header, claims, alg, signature })
        }
    }
}

/// A token's three base64 parts: header, payload, signature.
type Parts<'t> = (&'t [u8], &'t [u8], &'t [u8]);

fn split(token: &[u8], profile: Profile) -> Result<Parts<'_>, JwsError> {
    match profile {
        Profile::Kong => {
            let mut parts = token.splitn(3, |&b| b == b'.');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(h), Some(c), Some(s)) => Ok((h, c, s)),
                _ => Err(JwsError::Malformed),
            }
        }
        Profile::Strict => {
            let mut parts = token.split(|&b| b == b'.');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(h), Some(c), Some(s), None) => Ok((h, c, s)),
                _ => Err(JwsError::Malformed),
            }
        }
    }
}

fn json(part: &[u8], profile: Profile) -> Result<Value, JwsError> {
    let bytes = match profile {
        Profile::Kong => kong_b64_decode(part),
        Profile::Strict => B64URL.decode(part).ok(),
    };
    bytes.and_then(|b| parse_unique(&b)).ok_or(JwsError::Malformed)
}

fn algorithm(header: &Map<String, Value>) -> Result<Algorithm, JwsError> {
    header.get("alg").and_then(Value::as_str).and_then(Algorithm::from_name).ok_or(JwsError::Algorithm)
}

/// Kong's base64 decoding: URL-safe or standard alphabet, padding optional, anything from the
/// first `=` on ignored (as `ngx.decode_base64`), unused trailing bits allowed.
pub fn kong_b64_decode(input: &[u8]) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    let end = input.iter().position(|&b| b == b'=').unwrap_or(input.len());
    let mapped: Vec<u8> = input[..end]
        .iter()
        .map(|&b| match b {
            b'-' => b'+',
            b'_' => b'/',
            b => b,
        })
        .collect();
    LENIENT.decode(mapped).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn profiles_differ_only_where_documented() {
        let h = b64(br#"{"alg":"HS256","kid":"k"}"#);
        let c = b64(br#"{"iss":"x"}"#);
        let t = format!("{h}.{c}.c2ln");
        for p in [Profile::Kong, Profile::Strict] {
            let jws = decode(t.as_bytes(), p).unwrap();
            assert_eq!((jws.alg, jws.kid(), jws.signature.as_slice()), (Algorithm::Hs256, Some("k"), &b"sig"[..]));
            assert_eq!(jws.signing_input, format!("{h}.{c}").as_bytes());
        }
        // A fourth part: Kong keeps it in the signature (not base64), strict refuses the shape.
        let four = format!("{t}.x");
        assert_eq!(decode(four.as_bytes(), Profile::Kong).unwrap_err(), JwsError::Signature);
        assert_eq!(decode(four.as_bytes(), Profile::Strict).unwrap_err(), JwsError::Malformed);
        // An array payload: no claims for Kong, malformed for strict.
        let arr = format!("{h}.{}.c2ln", b64(b"[1]"));
        assert!(decode(arr.as_bytes(), Profile::Kong).unwrap().claims.is_empty());
        assert_eq!(decode(arr.as_bytes(), Profile::Strict).unwrap_err(), JwsError::Malformed);
        // Padding and the standard alphabet: Kong only.
        let padded = format!("{h}.{c}.c2lnbmF0dXJl+/==");
        assert!(decode(padded.as_bytes(), Profile::Kong).is_ok());
        assert_eq!(decode(padded.as_bytes(), Profile::Strict).unwrap_err(), JwsError::Malformed);
        // A non-string kid: strict only.
        let kid = format!("{}.{c}.c2ln", b64(br#"{"alg":"HS256","kid":5}"#));
        assert_eq!(decode(kid.as_bytes(), Profile::Kong).unwrap().kid(), None);
        assert_eq!(decode(kid.as_bytes(), Profile::Strict).unwrap_err(), JwsError::Malformed);
    }

    #[test]
    fn crit_is_refused_by_both_profiles() {
        let c = b64(br#"{"iss":"x"}"#);
        for header in [
            r#"{"alg":"HS256","crit":["exp"]}"#,
            r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
            r#"{"alg":"HS256","crit":[]}"#,
            r#"{"alg":"HS256","crit":"exp"}"#,
            r#"{"alg":"HS256","crit":null}"#,
            r#"{"crit":["x"],"alg":"none"}"#,
        ] {
            let t = format!("{}.{c}.c2ln", b64(header.as_bytes()));
            for p in [Profile::Kong, Profile::Strict] {
                assert_eq!(decode(t.as_bytes(), p).unwrap_err(), JwsError::Critical, "{header} {p:?}");
            }
        }
    }

    #[test]
    fn duplicate_members_are_not_json() {
        let c = b64(br#"{"iss":"x"}"#);
        let h = b64(br#"{"alg":"HS256"}"#);
        let dup_header = format!("{}.{c}.c2ln", b64(br#"{"alg":"none","typ":"JWT","alg":"HS256"}"#));
        let dup_claims = format!("{h}.{}.c2ln", b64(br#"{"iss":"a","sub":"s","iss":"b"}"#));
        let dup_nested = format!("{h}.{}.c2ln", b64(br#"{"iss":"a","ext":{"r":1,"r":2}}"#));
        for t in [dup_header, dup_claims, dup_nested] {
            for p in [Profile::Kong, Profile::Strict] {
                assert_eq!(decode(t.as_bytes(), p).unwrap_err(), JwsError::Malformed, "{t} {p:?}");
            }
        }
    }

    #[test]
    fn none_and_unknown_algorithms_never_decode() {
        let c = b64(br#"{"iss":"x"}"#);
        for header in [r#"{"alg":"none"}"#, r#"{"alg":"hs256"}"#, r#"{"alg":5}"#, r#"{}"#, r#"["HS256"]"#] {
            let t = format!("{}.{c}.", b64(header.as_bytes()));
            assert_eq!(decode(t.as_bytes(), Profile::Kong).unwrap_err(), JwsError::Algorithm, "{header}");
            let strict = decode(t.as_bytes(), Profile::Strict).unwrap_err();
            assert!(matches!(strict, JwsError::Algorithm | JwsError::Malformed), "{header}");
        }
        let long = format!("{}.{c}.{}", b64(br#"{"alg":"HS256"}"#), "A".repeat(MAX_TOKEN_LEN));
        assert_eq!(decode(long.as_bytes(), Profile::Strict).unwrap_err(), JwsError::Malformed);
    }
}
