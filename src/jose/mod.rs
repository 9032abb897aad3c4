//! JOSE for the plugins that read signed tokens (jwt, openid-connect): the signing algorithms
//! and how ring checks each ([`Algorithm`], [`PublicKey`]), one compact-JWS decoder with Kong's
//! and RFC 7515's rules ([`jws`]) over a JSON reader that refuses duplicate member names
//! ([`json`]), public keys from PEM ([`pem_keys`]) and from JWK sets ([`jwk`]). Keys are parsed
//! and checked when they are loaded; nothing here can panic on a hostile token, and an
//! algorithm is only ever checked with a key of its own type.

pub mod json;
pub mod jwk;
pub mod jws;
pub mod pem_keys;
#[cfg(test)]
pub(crate) mod test_keys;

use ring::{hmac, signature};

/// The signing algorithms Kong's jwt plugin knows, by their exact (case-sensitive) JOSE names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Hs256,
    Hs384,
    Hs512,
    Rs256,
    Rs384,
    Rs512,
    Es256,
    Es384,
    /// Recognised in tokens (as Kong) but never verified: ring has no P-521.
    Es512,
    Ps256,
    Ps384,
    Ps512,
    EdDsa,
}

impl Algorithm {
    pub const ALL: &'static [Algorithm] = &[
        Algorithm::Hs256,
        Algorithm::Hs384,
        Algorithm::Hs512,
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::Es512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
        Algorithm::EdDsa,
    ];

    /// Exact, case-sensitive JOSE names, as Kong.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Self::ALL.iter().copied().find(|a| a.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Hs256 => "HS256",
            Algorithm::Hs384 => "HS384",
            Algorithm::Hs512 => "HS512",
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Rs512 => "RS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::Es512 => "ES512",
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    /// ring's HMAC for the HS* algorithms.
    pub fn hmac(self) -> Option<hmac::Algorithm> {
        match self {
            Algorithm::Hs256 => Some(hmac::HMAC_SHA256),
            Algorithm::Hs384 => Some(hmac::HMAC_SHA384),
            Algorithm::Hs512 => Some(hmac::HMAC_SHA512),
            _ => None,
        }
    }

    fn rsa(self) -> Option<&'static signature::RsaParameters> {
        match self {
            Algorithm::Rs256 => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
            Algorithm::Rs384 => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
            Algorithm::Rs512 => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
            Algorithm::Ps256 => Some(&signature::RSA_PSS_2048_8192_SHA256),
            Algorithm::Ps384 => Some(&signature::RSA_PSS_2048_8192_SHA384),
            Algorithm::Ps512 => Some(&signature::RSA_PSS_2048_8192_SHA512),
            _ => None,
        }
    }
}

/// A public key in the form ring verifies with.
#[derive(Debug)]
pub enum PublicKey {
    Rsa(signature::RsaPublicKeyComponents<Vec<u8>>),
    /// An uncompressed EC point (ES256/ES384) or a raw Ed25519 key.
    Point(Vec<u8>),
}

impl PublicKey {
    /// Check `sig` over `msg` with `algorithm`; false for any algorithm this key cannot serve
    /// (HMAC, ES512, an RSA algorithm on a point, ...).
    pub fn verify(&self, algorithm: Algorithm, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            PublicKey::Rsa(components) => match algorithm.rsa() {
                Some(params) => components.verify(params, msg, sig).is_ok(),
                None => false,
            },
            PublicKey::Point(bytes) => {
                let alg: &'static dyn signature::VerificationAlgorithm = match algorithm {
                    Algorithm::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Algorithm::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
                    Algorithm::EdDsa => &signature::ED25519,
                    _ => return false,
                };
                signature::UnparsedPublicKey::new(alg, bytes).verify(msg, sig).is_ok()
            }
        }
    }
}
