//! Public keys from PEM, as jwt credentials carry them (`rsa_public_key`): `BEGIN PUBLIC KEY`
//! (SubjectPublicKeyInfo) for RSA, EC P-256/P-384 and Ed25519, or `BEGIN RSA PUBLIC KEY`
//! (PKCS#1). PEM framing is read by the `pem` crate, DER by RustCrypto's `spki` and `pkcs1`
//! (strict DER); what is left here is choosing the key type an algorithm needs and saying
//! plainly what is wrong with a key that does not fit.

use spki::ObjectIdentifier;

use super::{Algorithm, PublicKey};

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_ED448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");

/// The first PEM block of `text` (text around it is ignored): its label and decoded body.
pub fn pem_decode(text: &str) -> Result<(String, Vec<u8>), String> {
    if !text.contains("-----BEGIN ") {
        return Err("is not PEM (no -----BEGIN line)".into());
    }
    let block = pem::parse(text).map_err(|e| match e {
        pem::PemError::InvalidData(_) => "is not PEM (its body is not base64)".to_string(),
        pem::PemError::InvalidHeader(_) => "has PEM headers (an encrypted key?); give a plain public key".to_string(),
        pem::PemError::MalformedFraming | pem::PemError::MissingEndTag | pem::PemError::MismatchedTags(..) => {
            "is not PEM (no matching -----END line)".to_string()
        }
        other => format!("is not PEM ({other})"),
    })?;
    if block.headers().iter().next().is_some() {
        return Err("has PEM headers (an encrypted key?); give a plain public key".into());
    }
    if block.contents().is_empty() {
        return Err("is an empty PEM block".into());
    }
    Ok((block.tag().to_string(), block.into_contents()))
}

/// What a key is, which decides the algorithms it can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    P256,
    P384,
    P521,
    Ed25519,
}

impl KeyType {
    fn describe(self) -> &'static str {
        match self {
            KeyType::Rsa => "an RSA key",
            KeyType::P256 => "an EC P-256 key",
            KeyType::P384 => "an EC P-384 key",
            KeyType::P521 => "an EC P-521 key",
            KeyType::Ed25519 => "an Ed25519 key",
        }
    }
}

/// SubjectPublicKeyInfo → key type and the subjectPublicKey bytes.
pub fn parse_spki(der: &[u8]) -> Result<(KeyType, &[u8]), String> {
    let spki = spki::SubjectPublicKeyInfoRef::try_from(der).map_err(|_| "is not a valid DER public key".to_string())?;
    let key = spki
        .subject_public_key
        .as_bytes()
        .filter(|k| !k.is_empty())
        .ok_or("is not a valid DER public key (bad BIT STRING)")?;
    let alg = &spki.algorithm;
    let kind = match alg.oid {
        OID_RSA if alg.parameters.is_none_or(|p| p.is_null()) => KeyType::Rsa,
        OID_EC => match alg.parameters_oid() {
            Ok(OID_P256) => KeyType::P256,
            Ok(OID_P384) => KeyType::P384,
            Ok(OID_P521) => KeyType::P521,
            Ok(_) => return Err("holds an EC key on an unsupported curve (use P-256 or P-384)".into()),
            Err(_) => return Err("is not a valid DER public key".into()),
        },
        OID_ED25519 if alg.parameters.is_none() => KeyType::Ed25519,
        OID_RSA_PSS => {
            return Err("holds an RSASSA-PSS-restricted key; give a plain RSA public key (rsaEncryption)".into())
        }
        OID_ED448 => return Err("holds an Ed448 key, which is not supported (EdDSA means Ed25519)".into()),
        _ => return Err("holds a public key of an unsupported type".into()),
    };
    Ok((kind, key))
}

/// PKCS#1 RSAPublicKey → (n, e), checked against ring's limits.
pub fn parse_rsa_public_key(der: &[u8]) -> Result<ring::signature::RsaPublicKeyComponents<Vec<u8>>, String> {
    let key = pkcs1::RsaPublicKey::try_from(der).map_err(|_| "is not a valid RSA public key".to_string())?;
    rsa_components(key.modulus.as_bytes(), key.public_exponent.as_bytes())
}

/// An RSA public key from its modulus and exponent (unsigned big-endian, no leading zeros),
/// checked against ring's limits (2048-8192 bits, odd e in 3..2^33).
pub fn rsa_components(n: &[u8], e: &[u8]) -> Result<ring::signature::RsaPublicKeyComponents<Vec<u8>>, String> {
    let (Some(&first), Some(&last)) = (n.first(), n.last()) else {
        return Err("is not a valid RSA public key".into());
    };
    if first == 0 || e.first().is_none_or(|&b| b == 0) {
        return Err("is not a valid RSA public key".into());
    }
    // The modulus's real bit length, not its byte length rounded up: a 2041-bit modulus fills
    // 256 bytes too (ring's own check rounds up to whole bytes).
    let bits = (n.len() - 1) * 8 + (8 - first.leading_zeros() as usize);
    if bits < 2048 {
        return Err(format!("holds a {bits}-bit RSA key; aigate needs at least 2048 bits"));
    }
    if bits > 8192 {
        return Err(format!("holds a {bits}-bit RSA key; aigate accepts at most 8192 bits"));
    }
    if last & 1 == 0 {
        return Err("is not a valid RSA public key (even modulus)".into());
    }
    if e.len() > 5 {
        return Err("holds an RSA key with an unsupported public exponent".into());
    }
    let e_value = e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    if !(3..1u64 << 33).contains(&e_value) || e_value & 1 == 0 {
        return Err("holds an RSA key with an unsupported public exponent".into());
    }
    Ok(ring::signature::RsaPublicKeyComponents { n: n.to_vec(), e: e.to_vec() })
}

/// The public key a PEM text holds, checked to be of the type `algorithm` needs. Errors read
/// after the field name (`rsa_public_key holds an RSA key but ES256 needs ...`).
pub fn public_key_from_pem(pem: &str, algorithm: Algorithm) -> Result<PublicKey, String> {
    let (label, der) = pem_decode(pem)?;
    let (kind, key): (KeyType, &[u8]) = match label.as_str() {
        "PUBLIC KEY" => parse_spki(&der)?,
        "RSA PUBLIC KEY" => (KeyType::Rsa, &der),
        l if l.contains("PRIVATE KEY") => {
            return Err("holds a private key; give the public key (BEGIN PUBLIC KEY) instead".into())
        }
        "CERTIFICATE" => {
            return Err("holds a certificate; give its public key (openssl x509 -pubkey -noout) instead".into())
        }
        other => return Err(format!("holds a PEM `{other}` block; expected BEGIN PUBLIC KEY")),
    };
    let wanted = match algorithm {
        Algorithm::Rs256
        | Algorithm::Rs384
        | Algorithm::Rs512
        | Algorithm::Ps256
        | Algorithm::Ps384
        | Algorithm::Ps512 => KeyType::Rsa,
        Algorithm::Es256 => KeyType::P256,
        Algorithm::Es384 => KeyType::P384,
        Algorithm::EdDsa => KeyType::Ed25519,
        _ => return Err(format!("is not used by {}", algorithm.name())),
    };
    if kind != wanted {
        return Err(format!("holds {} but {} needs {}", kind.describe(), algorithm.name(), wanted.describe()));
    }
    match kind {
        KeyType::Rsa => Ok(PublicKey::Rsa(parse_rsa_public_key(key)?)),
        KeyType::P256 | KeyType::P384 => {
            let coord = if kind == KeyType::P256 { 32 } else { 48 };
            match key.first() {
                Some(4) if key.len() == 1 + 2 * coord => Ok(PublicKey::Point(key.to_vec())),
                Some(2 | 3) => Err("holds a compressed EC point; give the uncompressed form".into()),
                _ => Err("is not a valid EC public key".into()),
            }
        }
        KeyType::Ed25519 if key.len() == 32 => Ok(PublicKey::Point(key.to_vec())),
        _ => Err("is not a valid public key".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::test_keys::*;

    #[test]
    fn der_parsing_never_panics() {
        // Every truncation and many single-byte corruptions of real keys are refused cleanly.
        for pem in [RSA_PUBLIC_PEM, RSA_PUBLIC_PKCS1_PEM, P256_PUBLIC_PEM, P521_PUBLIC_PEM] {
            let (label, der) = pem_decode(pem).unwrap();
            for cut in 0..der.len() {
                let _ = parse_spki(&der[..cut]);
                let _ = parse_rsa_public_key(&der[..cut]);
            }
            for i in 0..der.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut d = der.clone();
                    d[i] ^= flip;
                    let _ = parse_spki(&d);
                    let _ = parse_rsa_public_key(&d);
                }
            }
            assert!(label.contains("PUBLIC KEY"));
        }
        // Length edge cases (indefinite, too long, non-minimal, beyond the input) are not DER.
        for bad in [
            &[0x30, 0x80][..],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x81, 0x05, 0, 0, 0, 0, 0],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x02, 1, 2],
        ] {
            assert!(parse_spki(bad).is_err(), "{bad:?}");
            assert!(parse_rsa_public_key(bad).is_err(), "{bad:?}");
        }
        // A negative or non-minimal RSA integer is refused.
        let (_, pkcs1) = pem_decode(RSA_PUBLIC_PKCS1_PEM).unwrap();
        assert!(parse_rsa_public_key(&pkcs1).is_ok());
        let mut negative = pkcs1.clone();
        negative[8] = 0x80;
        assert!(parse_rsa_public_key(&negative).is_err());
    }

    #[test]
    fn rsa_keys_are_measured_by_their_real_bit_length() {
        let (_, der) = pem_decode(RSA_2041_PUBLIC_PEM).unwrap();
        let (kind, key) = parse_spki(&der).unwrap();
        assert_eq!(kind, KeyType::Rsa);
        assert!(parse_rsa_public_key(key).unwrap_err().contains("2041-bit"));
        assert!(public_key_from_pem(RSA_2041_PUBLIC_PEM, Algorithm::Rs256).unwrap_err().contains("2041-bit RSA key"));
        // Around the limit, with an odd modulus of 256 bytes.
        let n = |top: u8| {
            let mut n = vec![0xffu8; 256];
            n[0] = top;
            n
        };
        assert!(rsa_components(&n(0x7f), &[1, 0, 1]).unwrap_err().contains("2047-bit"));
        assert!(rsa_components(&n(0x80), &[1, 0, 1]).is_ok());
        assert!(rsa_components(&n(0x01), &[1, 0, 1]).unwrap_err().contains("2041-bit"));
        assert!(public_key_from_pem(RSA_PUBLIC_PEM, Algorithm::Rs256).is_ok());
    }

    #[test]
    fn pem_framing_errors_say_what_is_wrong() {
        assert!(pem_decode("not a pem").unwrap_err().contains("no -----BEGIN"));
        assert!(pem_decode("-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----")
            .unwrap_err()
            .contains("base64"));
        assert!(pem_decode("-----BEGIN PUBLIC KEY-----\nAAAA\n").unwrap_err().contains("END"));
        let encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert!(pem_decode(encrypted).unwrap_err().contains("headers"));
        // Surrounding text and CRLF line ends are fine.
        let crlf = format!("comment\r\n{}\r\n", RSA_PUBLIC_PEM.replace('\n', "\r\n"));
        assert_eq!(pem_decode(&crlf).unwrap(), pem_decode(RSA_PUBLIC_PEM).unwrap());
    }
}
