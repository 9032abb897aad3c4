//! Consumers' `jwt_secrets`: the credentials the jwt plugin checks tokens against, by `key`
//! (the value a token's `iss`, or `key_claim_name`, must hold). Each is parsed once at load into
//! what ring verifies with: HMAC keys (raw and base64-decoded, for `secret_is_base64`) or a
//! public key of exactly its algorithm's type.

use std::collections::HashMap;
use std::sync::Arc;

use ring::hmac;

use crate::core::ConsumerId;
use crate::jose::jws::kong_b64_decode;
use crate::jose::pem_keys::public_key_from_pem;
use crate::jose::{Algorithm, PublicKey};

/// Every consumer's `jwt_secrets`, by key.
#[derive(Debug, Default)]
pub struct JwtCredentials {
    by_key: HashMap<String, JwtCredential>,
}

/// One `jwt_secrets` entry.
#[derive(Debug)]
pub struct JwtCredential {
    pub consumer: ConsumerId,
    /// The credential's `key` (sent upstream as `X-Credential-Identifier`, never a secret).
    pub key: Arc<str>,
    /// The only algorithm a token for this credential may use.
    pub algorithm: Algorithm,
    verifier: Verifier,
}

#[derive(Debug)]
enum Verifier {
    /// Boxed: ring's HMAC keys hold precomputed digest states and are large.
    Hmac(Box<HmacKeys>),
    Public(PublicKey),
}

#[derive(Debug)]
struct HmacKeys {
    raw: hmac::Key,
    /// The secret base64-decoded (for `secret_is_base64`), when it decodes to something.
    decoded: Option<hmac::Key>,
}

/// `secret_is_base64` is set but the secret does not decode (Kong: "Invalid key/secret").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnusableSecret;

impl JwtCredential {
    /// Check `sig` over `msg` with this credential's own algorithm and key.
    pub fn verify(&self, msg: &[u8], sig: &[u8], secret_is_base64: bool) -> Result<bool, UnusableSecret> {
        Ok(match &self.verifier {
            Verifier::Hmac(keys) => {
                let key = match (secret_is_base64, &keys.decoded) {
                    (false, _) => &keys.raw,
                    (true, Some(decoded)) => decoded,
                    (true, None) => return Err(UnusableSecret),
                };
                // Constant time.
                hmac::verify(key, msg, sig).is_ok()
            }
            Verifier::Public(key) => key.verify(self.algorithm, msg, sig),
        })
    }
}

impl JwtCredentials {
    /// Add one `jwt_secrets` entry of `consumer`. The algorithm defaults to HS256. HS* use
    /// `secret`; the others use `rsa_public_key`, a PEM public key (`BEGIN PUBLIC KEY`, or
    /// `BEGIN RSA PUBLIC KEY` for RSA) of the algorithm's type. The unused field is ignored
    /// (decK dumps carry Kong's generated `secret` on RSA credentials too).
    pub fn add(
        &mut self,
        consumer: ConsumerId,
        key: Option<String>,
        algorithm: Option<String>,
        secret: Option<String>,
        rsa_public_key: Option<String>,
    ) -> Result<(), String> {
        let key = key.ok_or_else(|| {
            "key is required: aigate does not generate jwt_secrets keys (set it to the `iss` your tokens carry)"
                .to_string()
        })?;
        if key.is_empty() {
            return Err("key is empty".into());
        }
        if key.bytes().any(|b| b.is_ascii_control()) {
            // It goes upstream as X-Credential-Identifier.
            return Err("key holds a control character (a line break?); it must fit in an HTTP header".into());
        }
        if self.by_key.contains_key(&key) {
            return Err(format!("key `{key}` is already used by another jwt_secrets entry"));
        }
        let algorithm = match algorithm.as_deref() {
            None => Algorithm::Hs256,
            Some(name) => Algorithm::from_name(name).ok_or_else(|| {
                let known: Vec<&str> =
                    Algorithm::ALL.iter().filter(|a| **a != Algorithm::Es512).map(|a| a.name()).collect();
                format!("algorithm `{name}` is not one of {}", known.join(", "))
            })?,
        };
        let verifier = match algorithm {
            Algorithm::Es512 => {
                return Err("algorithm ES512 (curve P-521) is not supported by aigate; use ES256 or ES384".into())
            }
            Algorithm::Hs256 | Algorithm::Hs384 | Algorithm::Hs512 => {
                let alg = algorithm.hmac().ok_or("internal: not an HMAC algorithm")?;
                let secret = secret.ok_or_else(|| {
                    format!("secret is required for {}: aigate does not generate secrets", algorithm.name())
                })?;
                if secret.is_empty() {
                    return Err("secret is empty".into());
                }
                let decoded = kong_b64_decode(secret.as_bytes()).filter(|d| !d.is_empty());
                Verifier::Hmac(Box::new(HmacKeys {
                    raw: hmac::Key::new(alg, secret.as_bytes()),
                    decoded: decoded.map(|d| hmac::Key::new(alg, &d)),
                }))
            }
            _ => {
                let pem = rsa_public_key
                    .ok_or_else(|| format!("rsa_public_key (a PEM public key) is required for {}", algorithm.name()))?;
                Verifier::Public(public_key_from_pem(&pem, algorithm).map_err(|e| format!("rsa_public_key {e}"))?)
            }
        };
        let key: Arc<str> = Arc::from(key);
        self.by_key.insert(key.to_string(), JwtCredential { consumer, key, algorithm, verifier });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The credential whose `key` a token names.
    pub fn find(&self, key: &str) -> Option<&JwtCredential> {
        self.by_key.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::test_keys::*;

    fn id(i: usize) -> ConsumerId {
        ConsumerId::new(i)
    }

    fn get(c: &JwtCredentials, key: &str) -> Option<(ConsumerId, Algorithm)> {
        c.find(key).map(|c| (c.consumer, c.algorithm))
    }
    #[test]
    fn credential_errors() {
        let mut c = JwtCredentials::default();
        let mut add = |key: Option<&str>, alg: Option<&str>, secret: Option<&str>, pem: Option<&str>| {
            c.add(id(0), key.map(Into::into), alg.map(Into::into), secret.map(Into::into), pem.map(Into::into))
        };
        assert!(add(None, None, Some("s"), None).unwrap_err().contains("key is required"));
        assert!(add(Some(""), None, Some("s"), None).unwrap_err().contains("empty"));
        assert!(add(Some("iss\r\nx: 1"), None, Some("s"), None).unwrap_err().contains("control character"));
        assert!(add(Some("iss\t"), None, Some("s"), None).unwrap_err().contains("control character"));
        add(Some("k"), None, Some("s"), None).unwrap();
        assert!(add(Some("k"), None, Some("t"), None).unwrap_err().contains("already used"));
        assert!(add(Some("k2"), Some("HS1024"), Some("s"), None).unwrap_err().contains("not one of"));
        assert!(add(Some("k2"), Some("hs256"), Some("s"), None).unwrap_err().contains("not one of"));
        assert!(add(Some("k2"), Some("none"), Some("s"), None).unwrap_err().contains("not one of"));
        assert!(add(Some("k2"), Some("ES512"), None, Some(P521_PUBLIC_PEM)).unwrap_err().contains("ES512"));
        assert!(add(Some("k2"), None, None, None).unwrap_err().contains("secret is required"));
        assert!(add(Some("k2"), Some("HS512"), Some(""), None).unwrap_err().contains("empty"));
        assert!(add(Some("k2"), Some("RS256"), Some("s"), None).unwrap_err().contains("rsa_public_key"));
        let pem_err = |alg: &str, pem: &str| {
            let mut c = JwtCredentials::default();
            c.add(id(0), Some("k".into()), Some(alg.into()), None, Some(pem.into())).unwrap_err()
        };
        assert!(pem_err("RS256", "not a pem").contains("not PEM"));
        assert!(pem_err("RS256", "-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----").contains("base64"));
        assert!(pem_err("RS256", "-----BEGIN PUBLIC KEY-----\nAAAA\n").contains("END"));
        assert!(pem_err("RS256", "-----BEGIN PUBLIC KEY-----\nMAMCAQE=\n-----END PUBLIC KEY-----").contains("DER"));
        assert!(pem_err("RS256", RSA_PRIVATE_PEM).contains("private key"));
        assert!(
            pem_err("RS256", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----").contains("certificate")
        );
        assert!(pem_err("RS256", RSA_1024_PUBLIC_PEM).contains("1024-bit"));
        // 256 bytes of modulus, 2041 bits: refused by its real length.
        assert!(pem_err("RS256", RSA_2041_PUBLIC_PEM).contains("holds a 2041-bit RSA key; aigate needs at least 2048"));
        assert!(pem_err("PS512", RSA_2041_PUBLIC_PEM).contains("2041-bit"));
        assert!(pem_err("RS256", P256_PUBLIC_PEM).contains("needs an RSA key"));
        assert!(pem_err("ES384", P256_PUBLIC_PEM).contains("needs an EC P-384 key"));
        assert!(pem_err("EdDSA", RSA_PUBLIC_PEM).contains("needs an Ed25519 key"));
        assert!(pem_err("ES256", RSA_PUBLIC_PKCS1_PEM).contains("needs an EC P-256 key"));
        assert!(pem_err("ES256", P521_PUBLIC_PEM).contains("P-521"));
        assert!(pem_err("ES256", P256_COMPRESSED_PEM).contains("compressed"));
        // The openssl-made uncompressed P-256 key loads.
        let mut ok = JwtCredentials::default();
        ok.add(id(3), Some("p256".into()), Some("ES256".into()), None, Some(P256_PUBLIC_PEM.into())).unwrap();
        // A PEM with CRLF line ends and surrounding text loads too.
        let crlf = format!("comment\r\n{}\r\n", RSA_PUBLIC_PEM.replace('\n', "\r\n"));
        ok.add(id(3), Some("crlf".into()), Some("RS256".into()), None, Some(crlf)).unwrap();
        assert_eq!(ok.len(), 2);
        assert!(!ok.is_empty());
        assert_eq!(get(&ok, "p256"), Some((id(3), Algorithm::Es256)));
        assert_eq!(get(&ok, "nope"), None);
    }
}
