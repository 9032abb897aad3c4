use super::*;
use crate::consumers::Consumer;
use crate::jose::jws::{kong_b64_decode, MAX_TOKEN_LEN};
use crate::jose::pem_keys::pem_decode;
use crate::jose::test_keys::*;
use crate::jose::Algorithm;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use ring::{hmac, signature};
use serde_json::{json, Map};

const NOW: u64 = 1_700_000_000;

fn id(i: usize) -> ConsumerId {
    ConsumerId::new(i)
}

fn consumers() -> Consumers {
    let mut c = Consumers::default();
    for name in ["alex", "bo", "anon"] {
        c.add(Consumer::new(format!("id-{name}"), Some(name.into()), None, Vec::new()));
    }
    c
}

fn plugin(yaml: &str) -> Jwt {
    let schema: JwtSchema = serde_yaml::from_str(yaml).unwrap();
    Jwt::compile(schema, &consumers()).unwrap()
}

fn req(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
    for (k, v) in headers {
        r.append_header(k.to_string(), *v).unwrap();
    }
    r
}

fn bearer_req(token: &str) -> RequestHeader {
    req("/", &[("authorization", &format!("Bearer {token}"))])
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `<header>.<claims>.<sign(header.claims)>`
fn token(header: Value, claims: Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let sig = sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

fn hmac_signer(alg: hmac::Algorithm, secret: &[u8]) -> impl Fn(&[u8]) -> Vec<u8> {
    let key = hmac::Key::new(alg, secret);
    move |m| hmac::sign(&key, m).as_ref().to_vec()
}

fn hs256(claims: Value, secret: &str) -> String {
    token(json!({"alg": "HS256", "typ": "JWT"}), claims, hmac_signer(hmac::HMAC_SHA256, secret.as_bytes()))
}

fn creds_hs256() -> JwtCredentials {
    let mut c = JwtCredentials::default();
    c.add(id(0), Some("alex-key".into()), None, Some("alex-secret".into()), None).unwrap();
    c.add(id(1), Some("bo-key".into()), Some("HS256".into()), Some("bo-secret".into()), None).unwrap();
    c
}

fn rsa_pair() -> RsaKeyPair {
    let (label, der) = pem_decode(RSA_PRIVATE_PEM).unwrap();
    assert_eq!(label, "PRIVATE KEY");
    RsaKeyPair::from_pkcs8(&der).unwrap()
}

fn rsa_signer<'a>(pair: &'a RsaKeyPair, pad: &'static dyn signature::RsaEncoding) -> impl Fn(&[u8]) -> Vec<u8> + 'a {
    move |m| {
        let mut sig = vec![0u8; pair.public().modulus_len()];
        pair.sign(pad, &SystemRandom::new(), m, &mut sig).unwrap();
        sig
    }
}

fn check(jwt: &Jwt, creds: &JwtCredentials, token: &str) -> Result<JwtOk, JwtFailure> {
    jwt.check(&bearer_req(token), creds, NOW)
}

/// The body as Kong's `kong.response.exit` writes it (aigate adds a `request_id` to messages).
fn kong_body(body: &FailureBody) -> String {
    let map: Map<String, Value> = match body {
        FailureBody::Message(m) => std::iter::once(("message".to_string(), Value::from(m.as_ref()))).collect(),
        FailureBody::Claims(c) => c.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect(),
    };
    serde_json::to_string(&map).unwrap()
}

fn www(j: &Jwt, f: &JwtFailure) -> Option<String> {
    j.www_authenticate(f).map(|s| s.to_string())
}

fn message(jwt: &Jwt, r: Result<JwtOk, JwtFailure>) -> String {
    let f = r.unwrap_err();
    kong_body(&jwt.failure(f).body)
}

#[test]
fn schema_defaults() {
    let j = plugin("{}");
    assert_eq!(j.uri_param_names, vec!["jwt"]);
    assert!(j.cookie_names.is_empty());
    assert_eq!(j.header_names, vec!["authorization"]);
    assert_eq!(&*j.key_claim_name, "iss");
    assert!(!j.secret_is_base64);
    assert!(j.claims_to_verify.is_empty());
    assert!(j.run_on_preflight);
    assert_eq!(j.maximum_expiration, 0.0);
    assert_eq!(j.anonymous, None);
    // A decK dump writes every field, nulls included.
    let j = plugin(
        "{uri_param_names: [jwt], cookie_names: [], header_names: [authorization], key_claim_name: iss, \
         secret_is_base64: false, claims_to_verify: null, anonymous: null, run_on_preflight: true, \
         maximum_expiration: 0, realm: null}",
    );
    assert_eq!(&*j.www_authenticate, "Bearer");
    let j = plugin("{claims_to_verify: [exp, nbf, exp], maximum_expiration: 60, header_names: [X_Token]}");
    assert_eq!(j.claims_to_verify, vec![Claim::Exp, Claim::Nbf]);
    assert_eq!(j.maximum_expiration, 60.0);
    assert_eq!(j.header_names, vec!["x-token"]);
}

#[test]
fn schema_errors() {
    let c = consumers();
    let bad = |yaml: &str| {
        let schema: JwtSchema = serde_yaml::from_str(yaml).unwrap();
        Jwt::compile(schema, &c).unwrap_err()
    };
    assert!(serde_yaml::from_str::<JwtSchema>("uri_param_name: [jwt]").is_err());
    assert!(serde_yaml::from_str::<JwtSchema>("hide_credentials: true").is_err());
    assert_eq!(bad("claims_to_verify: [iat]")[0].path, "claims_to_verify[0]");
    assert_eq!(bad("maximum_expiration: 60")[0].path, "claims_to_verify");
    assert_eq!(bad("{maximum_expiration: 60, claims_to_verify: [nbf]}")[0].path, "claims_to_verify");
    assert_eq!(bad("{maximum_expiration: 31536001, claims_to_verify: [exp]}")[0].path, "maximum_expiration");
    assert_eq!(bad("{maximum_expiration: -1, claims_to_verify: [exp]}")[0].path, "maximum_expiration");
    assert!(plugin("{maximum_expiration: 31536000, claims_to_verify: [exp]}").maximum_expiration > 0.0);
    assert_eq!(bad("header_names: ['bad name']")[0].path, "header_names[0]");
    assert_eq!(bad("uri_param_names: ['']")[0].path, "uri_param_names[0]");
    assert_eq!(bad("cookie_names: [a, '']")[0].path, "cookie_names[1]");
    assert_eq!(bad("key_claim_name: ''")[0].path, "key_claim_name");
}

#[test]
fn anonymous_resolves() {
    let c = consumers();
    assert_eq!(plugin("anonymous: anon").anonymous, c.find("anon"));
    assert_eq!(plugin("anonymous: id-bo").anonymous, c.find("bo"));
    assert_eq!(plugin("anonymous: ''").anonymous, None);
    let schema: JwtSchema = serde_yaml::from_str("anonymous: ghost").unwrap();
    let issues = Jwt::compile(schema, &c).unwrap_err();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].path, "anonymous");
    assert!(issues[0].what.contains("ghost"));
}

#[test]
fn realm_header_values() {
    let j = plugin("{}");
    assert_eq!(www(&j, &JwtFailure::NoToken).as_deref(), Some("Bearer"));
    assert_eq!(www(&j, &JwtFailure::InvalidSignature).as_deref(), Some("Bearer error=\"invalid_token\""));
    let j = plugin("realm: kong");
    assert_eq!(www(&j, &JwtFailure::NoToken).as_deref(), Some("Bearer realm=\"kong\""));
    assert_eq!(www(&j, &JwtFailure::MultipleTokens).as_deref(), Some("Bearer realm=\"kong\" error=\"invalid_token\""));
    let gone = JwtFailure::ConsumerNotFound { claim: "iss".into(), key: "k".into() };
    assert_eq!(www(&j, &gone), None);
}

#[test]
fn kong_answers_for_every_case() {
    let j = plugin("realm: api");
    let iss: Arc<str> = Arc::from("iss");
    let err = Some("Bearer realm=\"api\" error=\"invalid_token\"");
    let cases: Vec<(JwtFailure, &str, Option<&str>)> = vec![
        (JwtFailure::NoToken, r#"{"message":"Unauthorized"}"#, Some("Bearer realm=\"api\"")),
        (JwtFailure::MultipleTokens, r#"{"message":"Multiple tokens provided"}"#, err),
        (JwtFailure::Unrecognizable, r#"{"message":"Unrecognizable token"}"#, err),
        (JwtFailure::BadToken(BadToken::InvalidJson), r#"{"message":"Bad token; invalid JSON"}"#, err),
        (JwtFailure::BadToken(BadToken::InvalidAlg), r#"{"message":"Bad token; invalid alg"}"#, err),
        (JwtFailure::BadToken(BadToken::InvalidClaims), r#"{"message":"Bad token; invalid claims"}"#, err),
        (JwtFailure::BadToken(BadToken::InvalidSignature), r#"{"message":"Bad token; invalid signature"}"#, err),
        (JwtFailure::NoKeyClaim(iss.clone()), r#"{"message":"No mandatory 'iss' in claims"}"#, err),
        (JwtFailure::InvalidKeyClaim(iss.clone()), r#"{"message":"Invalid 'iss' in claims"}"#, err),
        (JwtFailure::NoCredentials(iss.clone()), r#"{"message":"No credentials found for given 'iss'"}"#, err),
        (JwtFailure::InvalidAlgorithm, r#"{"message":"Invalid algorithm"}"#, err),
        (JwtFailure::InvalidSecret, r#"{"message":"Invalid key/secret"}"#, err),
        (JwtFailure::InvalidSignature, r#"{"message":"Invalid signature"}"#, err),
        (JwtFailure::Claims(vec![("exp", "token expired")]), r#"{"exp":"token expired"}"#, err),
        (JwtFailure::Claims(vec![("nbf", "token not valid yet")]), r#"{"nbf":"token not valid yet"}"#, err),
        (
            JwtFailure::Claims(vec![("exp", "exceeds maximum allowed expiration")]),
            r#"{"exp":"exceeds maximum allowed expiration"}"#,
            err,
        ),
        (
            JwtFailure::ConsumerNotFound { claim: iss.clone(), key: "k1".into() },
            r#"{"message":"Could not find consumer for 'iss=k1'"}"#,
            None,
        ),
    ];
    for (failure, body, www) in cases {
        assert_eq!(failure.status(), 401);
        let answer = j.failure(failure.clone());
        assert_eq!(kong_body(&answer.body), body, "{failure:?}");
        assert_eq!(answer.www_authenticate.as_deref(), www, "{failure:?}");
        assert_eq!((answer.status, answer.reason), (401, failure.reason()));
        assert_eq!(failure.message().is_none(), matches!(failure, JwtFailure::Claims(_)));
        assert!(!failure.reason().is_empty());
    }
    assert_eq!(JwtFailure::InvalidSignature.www_authenticate_error(), Some(true));
    assert_eq!(JwtFailure::NoToken.www_authenticate_error(), Some(false));
}

#[test]
fn hmac_algorithms_round_trip() {
    let j = plugin("{}");
    for (name, alg) in [("HS256", hmac::HMAC_SHA256), ("HS384", hmac::HMAC_SHA384), ("HS512", hmac::HMAC_SHA512)] {
        let mut c = JwtCredentials::default();
        c.add(id(1), Some("k".into()), Some(name.into()), Some("s3cret".into()), None).unwrap();
        let t = token(json!({"alg": name, "typ": "JWT"}), json!({"iss": "k"}), hmac_signer(alg, b"s3cret"));
        assert_eq!(check(&j, &c, &t), Ok(JwtOk { consumer: id(1), key: Arc::from("k") }), "{name}");
        let wrong = token(json!({"alg": name}), json!({"iss": "k"}), hmac_signer(alg, b"s3cret!"));
        assert_eq!(check(&j, &c, &wrong), Err(JwtFailure::InvalidSignature), "{name}");
        // A truncated MAC is not a MAC.
        let (head, sig) = t.rsplit_once('.').unwrap();
        let short = format!("{head}.{}", &sig[..sig.len() - 4]);
        assert_eq!(check(&j, &c, &short), Err(JwtFailure::InvalidSignature), "{name}");
    }
}

#[test]
fn jwt_io_reference_token() {
    // The well-known jwt.io example (HS256, secret "your-256-bit-secret", sub 1234567890).
    let t = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    let mut c = JwtCredentials::default();
    c.add(id(2), Some("1234567890".into()), None, Some("your-256-bit-secret".into()), None).unwrap();
    let j = plugin("key_claim_name: sub");
    assert_eq!(check(&j, &c, t).unwrap().consumer, id(2));
    let j = plugin("{}");
    assert_eq!(message(&j, check(&j, &c, t)), r#"{"message":"No mandatory 'iss' in claims"}"#);
}

#[test]
fn secret_is_base64() {
    let j = plugin("secret_is_base64: true");
    let raw = b"\x00\x01binary\xffsecret";
    let mut c = JwtCredentials::default();
    // URL-safe alphabet, no padding: as Kong decodes it.
    c.add(id(0), Some("k".into()), None, Some(URL_SAFE_NO_PAD.encode(raw)), None).unwrap();
    c.add(id(1), Some("bad".into()), None, Some("not base64!".into()), None).unwrap();
    let t = token(json!({"alg": "HS256"}), json!({"iss": "k"}), hmac_signer(hmac::HMAC_SHA256, raw));
    assert_eq!(check(&j, &c, &t).unwrap().consumer, id(0));
    // Without secret_is_base64 the encoded text itself is the secret.
    assert_eq!(check(&plugin("{}"), &c, &t), Err(JwtFailure::InvalidSignature));
    let t = token(json!({"alg": "HS256"}), json!({"iss": "bad"}), hmac_signer(hmac::HMAC_SHA256, b"x"));
    assert_eq!(check(&j, &c, &t), Err(JwtFailure::InvalidSecret));
}

#[test]
fn rsa_algorithms_round_trip() {
    let pair = rsa_pair();
    let j = plugin("{}");
    let cases: [(&str, &'static dyn signature::RsaEncoding); 6] = [
        ("RS256", &signature::RSA_PKCS1_SHA256),
        ("RS384", &signature::RSA_PKCS1_SHA384),
        ("RS512", &signature::RSA_PKCS1_SHA512),
        ("PS256", &signature::RSA_PSS_SHA256),
        ("PS384", &signature::RSA_PSS_SHA384),
        ("PS512", &signature::RSA_PSS_SHA512),
    ];
    for (pem_name, pem) in [("spki", RSA_PUBLIC_PEM), ("pkcs1", RSA_PUBLIC_PKCS1_PEM)] {
        for (name, pad) in cases {
            let mut c = JwtCredentials::default();
            c.add(id(1), Some("rsa-key".into()), Some(name.into()), Some("ignored".into()), Some(pem.into()))
                .unwrap_or_else(|e| panic!("{pem_name} {name}: {e}"));
            let t = token(json!({"alg": name, "typ": "JWT"}), json!({"iss": "rsa-key"}), rsa_signer(&pair, pad));
            assert_eq!(check(&j, &c, &t).map(|ok| ok.consumer), Ok(id(1)), "{pem_name} {name}");
            // Tamper with the claims: the signature no longer holds.
            let mut parts: Vec<&str> = t.split('.').collect();
            let other = b64(json!({"iss": "rsa-key", "admin": true}).to_string().as_bytes());
            parts[1] = &other;
            assert_eq!(check(&j, &c, &parts.join(".")), Err(JwtFailure::InvalidSignature), "{name}");
        }
    }
    // The ring key pair's public key is the PEM's key.
    let (_, pkcs1) = pem_decode(RSA_PUBLIC_PKCS1_PEM).unwrap();
    assert_eq!(pair.public().as_ref(), &pkcs1[..]);
}

#[test]
fn openssl_signed_rsa_tokens_verify() {
    let j = plugin("{}");
    for (alg, t) in [("RS256", OPENSSL_RS256), ("PS256", OPENSSL_PS256)] {
        let mut c = JwtCredentials::default();
        c.add(id(0), Some("rsa-key".into()), Some(alg.into()), None, Some(RSA_PUBLIC_PEM.into())).unwrap();
        assert_eq!(check(&j, &c, t).unwrap().key.as_ref(), "rsa-key", "{alg}");
    }
    // PKCS#1 v1.5 and PSS are different algorithms for the same key.
    let mut c = JwtCredentials::default();
    c.add(id(0), Some("rsa-key".into()), Some("PS256".into()), None, Some(RSA_PUBLIC_PEM.into())).unwrap();
    assert_eq!(check(&j, &c, OPENSSL_RS256), Err(JwtFailure::InvalidAlgorithm));
}

#[test]
fn ecdsa_and_eddsa_round_trip() {
    let rng = SystemRandom::new();
    let j = plugin("{}");
    for (name, gen_alg, sign_alg) in [
        ("ES256", &rcgen::PKCS_ECDSA_P256_SHA256, &signature::ECDSA_P256_SHA256_FIXED_SIGNING),
        ("ES384", &rcgen::PKCS_ECDSA_P384_SHA384, &signature::ECDSA_P384_SHA384_FIXED_SIGNING),
    ] {
        // rcgen writes the SubjectPublicKeyInfo PEM; ring signs.
        let kp = rcgen::KeyPair::generate_for(gen_alg).unwrap();
        let signer = EcdsaKeyPair::from_pkcs8(sign_alg, &kp.serialize_der(), &rng).unwrap();
        let mut c = JwtCredentials::default();
        c.add(id(2), Some("ec".into()), Some(name.into()), None, Some(kp.public_key_pem())).unwrap();
        let sign = |m: &[u8]| signer.sign(&rng, m).unwrap().as_ref().to_vec();
        let t = token(json!({"alg": name}), json!({"iss": "ec"}), sign);
        assert_eq!(check(&j, &c, &t).map(|ok| ok.consumer), Ok(id(2)), "{name}");
        let other = rcgen::KeyPair::generate_for(gen_alg).unwrap();
        let other = EcdsaKeyPair::from_pkcs8(sign_alg, &other.serialize_der(), &rng).unwrap();
        let t = token(json!({"alg": name}), json!({"iss": "ec"}), |m| other.sign(&rng, m).unwrap().as_ref().to_vec());
        assert_eq!(check(&j, &c, &t), Err(JwtFailure::InvalidSignature), "{name}");
        // An ASN.1 (DER) signature is not the JOSE r||s form.
        let asn1_alg = if name == "ES256" {
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING
        } else {
            &signature::ECDSA_P384_SHA384_ASN1_SIGNING
        };
        let asn1 = EcdsaKeyPair::from_pkcs8(asn1_alg, &kp.serialize_der(), &rng).unwrap();
        let t = token(json!({"alg": name}), json!({"iss": "ec"}), |m| asn1.sign(&rng, m).unwrap().as_ref().to_vec());
        assert_eq!(check(&j, &c, &t), Err(JwtFailure::InvalidSignature), "{name}");
    }
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let signer = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&kp.serialize_der()).unwrap();
    let mut c = JwtCredentials::default();
    c.add(id(0), Some("ed".into()), Some("EdDSA".into()), None, Some(kp.public_key_pem())).unwrap();
    let t = token(json!({"alg": "EdDSA"}), json!({"iss": "ed"}), |m| signer.sign(m).as_ref().to_vec());
    assert_eq!(check(&j, &c, &t).map(|ok| ok.consumer), Ok(id(0)));
    let mut forged = t.clone();
    forged.replace_range(forged.len() - 3.., "AAA");
    assert_eq!(check(&j, &c, &forged), Err(JwtFailure::InvalidSignature));
    // The ring key pair's public key is what the PEM held.
    assert_eq!(c.find("ed").map(|c| (c.consumer, c.algorithm)), Some((id(0), Algorithm::EdDsa)));
    assert_eq!(signer.public_key().as_ref().len(), 32);
}

#[test]
fn algorithm_confusion_is_refused() {
    let j = plugin("{}");
    let mut c = JwtCredentials::default();
    c.add(id(0), Some("rsa".into()), Some("RS256".into()), None, Some(RSA_PUBLIC_PEM.into())).unwrap();
    // The classic attack: HS256 keyed with the (public) PEM text.
    for secret in [RSA_PUBLIC_PEM.as_bytes(), pem_decode(RSA_PUBLIC_PEM).unwrap().1.as_slice()] {
        let t = token(json!({"alg": "HS256"}), json!({"iss": "rsa"}), hmac_signer(hmac::HMAC_SHA256, secret));
        assert_eq!(check(&j, &c, &t), Err(JwtFailure::InvalidAlgorithm));
        // Claiming RS256 in the header while the signature is an HMAC fails verification.
        let t = token(json!({"alg": "RS256"}), json!({"iss": "rsa"}), hmac_signer(hmac::HMAC_SHA256, secret));
        assert_eq!(check(&j, &c, &t), Err(JwtFailure::InvalidSignature));
    }
    // And the other way round: an HS256 credential never accepts an RSA-signed token.
    let mut c = JwtCredentials::default();
    c.add(id(0), Some("hs".into()), None, Some(RSA_PUBLIC_PEM.into()), None).unwrap();
    let pair = rsa_pair();
    let t = token(json!({"alg": "RS256"}), json!({"iss": "hs"}), rsa_signer(&pair, &signature::RSA_PKCS1_SHA256));
    assert_eq!(check(&j, &c, &t), Err(JwtFailure::InvalidAlgorithm));
    // alg names are case-sensitive.
    let t = token(json!({"alg": "hs256"}), json!({"iss": "hs"}), hmac_signer(hmac::HMAC_SHA256, b"x"));
    assert_eq!(check(&j, &c, &t), Err(JwtFailure::BadToken(BadToken::InvalidAlg)));
    // A known alg that is not the credential's.
    let t = token(json!({"alg": "ES512"}), json!({"iss": "hs"}), |_| vec![1, 2, 3]);
    assert_eq!(check(&j, &c, &t), Err(JwtFailure::InvalidAlgorithm));
}

#[test]
fn alg_none_and_missing_alg_are_refused() {
    let j = plugin("{}");
    let c = creds_hs256();
    for header in [
        json!({"alg": "none"}),
        json!({"alg": "None"}),
        json!({"alg": "NONE"}),
        json!({"alg": ""}),
        json!({"alg": null}),
        json!({"alg": ["HS256"]}),
        json!({"typ": "JWT"}),
        json!(["HS256"]),
        json!("HS256"),
        json!(42),
    ] {
        let unsigned = format!(
            "{}.{}.",
            b64(header.to_string().as_bytes()),
            b64(json!({"iss": "alex-key"}).to_string().as_bytes())
        );
        assert_eq!(check(&j, &c, &unsigned), Err(JwtFailure::BadToken(BadToken::InvalidAlg)), "{header}");
    }
    // alg none with the real HMAC appended still fails on alg.
    let t = token(json!({"alg": "none"}), json!({"iss": "alex-key"}), hmac_signer(hmac::HMAC_SHA256, b"alex-secret"));
    assert_eq!(check(&j, &c, &t), Err(JwtFailure::BadToken(BadToken::InvalidAlg)));
    // HS256 with an empty signature.
    let t = format!("{}.{}.", b64(br#"{"alg":"HS256"}"#), b64(json!({"iss": "alex-key"}).to_string().as_bytes()));
    assert_eq!(check(&j, &c, &t), Err(JwtFailure::InvalidSignature));
}

#[test]
fn bad_tokens() {
    let j = plugin("{}");
    let c = creds_hs256();
    let h = b64(br#"{"alg":"HS256"}"#);
    let cl = b64(br#"{"iss":"alex-key"}"#);
    let json_err = Err(JwtFailure::BadToken(BadToken::InvalidJson));
    assert_eq!(check(&j, &c, "abc"), json_err);
    assert_eq!(check(&j, &c, &format!("{h}.{cl}")), json_err);
    assert_eq!(check(&j, &c, "..."), json_err);
    assert_eq!(check(&j, &c, &format!("{h}.!!!.sig")), json_err);
    assert_eq!(check(&j, &c, &format!("{}.{cl}.sig", b64(b"{not json"))), json_err);
    assert_eq!(check(&j, &c, &format!("{h}.{}.sig", b64(b""))), json_err);
    // Claims that are not an object.
    for claims in ["false", "null", "12", "true"] {
        let t = format!("{h}.{}.c2ln", b64(claims.as_bytes()));
        assert_eq!(check(&j, &c, &t), Err(JwtFailure::BadToken(BadToken::InvalidClaims)), "{claims}");
    }
    // An array or a string reads as claims without fields (as in Kong).
    let t = format!("{h}.{}.c2ln", b64(b"[1,2]"));
    assert_eq!(check(&j, &c, &t), Err(JwtFailure::NoKeyClaim("iss".into())));
    // Signature that is not base64 (a fourth part makes the third contain a dot).
    assert_eq!(check(&j, &c, &format!("{h}.{cl}.a.b")), Err(JwtFailure::BadToken(BadToken::InvalidSignature)));
    assert_eq!(check(&j, &c, &format!("{h}.{cl}.***")), Err(JwtFailure::BadToken(BadToken::InvalidSignature)));
    assert_eq!(check(&j, &c, &format!("{h}.{cl}.A")), Err(JwtFailure::BadToken(BadToken::InvalidSignature)));
    // Too long: refused before decoding.
    let long = format!("{h}.{}.sig", "A".repeat(MAX_TOKEN_LEN));
    assert_eq!(check(&j, &c, &long), Err(JwtFailure::Unrecognizable));
}

#[test]
fn kong_base64_is_lenient() {
    let j = plugin("{}");
    let c = creds_hs256();
    let good = hs256(json!({"iss": "alex-key", "x": "??>>"}), "alex-secret");
    let parts: Vec<&str> = good.split('.').collect();
    // Padded segments and the standard alphabet in the signature are accepted, as Kong does.
    let pad = |s: &str| format!("{s}{}", "=".repeat((4 - s.len() % 4) % 4));
    let padded = format!("{}.{}.{}", parts[0], parts[1], pad(parts[2]));
    assert_eq!(check(&j, &c, &padded).unwrap().consumer, id(0));
    // Padding the signed parts changes the signing input, so the HMAC no longer matches.
    let padded = format!("{}.{}.{}", pad(parts[0]), pad(parts[1]), parts[2]);
    assert_eq!(check(&j, &c, &padded), Err(JwtFailure::InvalidSignature));
    let std_sig = parts[2].replace('-', "+").replace('_', "/");
    let t = format!("{}.{}.{}", parts[0], parts[1], std_sig);
    assert_eq!(check(&j, &c, &t).unwrap().consumer, id(0));
    assert_eq!(kong_b64_decode(b"aGk").as_deref(), Some(&b"hi"[..]));
    assert_eq!(kong_b64_decode(b"aGk=").as_deref(), Some(&b"hi"[..]));
    assert_eq!(kong_b64_decode(b"aGk=garbage").as_deref(), Some(&b"hi"[..]));
    assert_eq!(kong_b64_decode(b"a"), None);
    assert_eq!(kong_b64_decode(b"a*bc"), None);
    assert_eq!(kong_b64_decode(b"").as_deref(), Some(&b""[..]));
}

#[test]
fn key_claim_rules() {
    let j = plugin("{}");
    let c = creds_hs256();
    let r = check(&j, &c, &hs256(json!({"sub": "x"}), "alex-secret"));
    assert_eq!(message(&j, r), r#"{"message":"No mandatory 'iss' in claims"}"#);
    let r = check(&j, &c, &hs256(json!({"iss": ""}), "alex-secret"));
    assert_eq!(message(&j, r), r#"{"message":"Invalid 'iss' in claims"}"#);
    let r = check(&j, &c, &hs256(json!({"iss": 7}), "alex-secret"));
    assert_eq!(r, Err(JwtFailure::InvalidKeyClaim("iss".into())));
    let r = check(&j, &c, &hs256(json!({"iss": "nobody"}), "alex-secret"));
    assert_eq!(message(&j, r), r#"{"message":"No credentials found for given 'iss'"}"#);
    // A key claim in the JOSE header (e.g. kid) is found there.
    let j = plugin("key_claim_name: kid");
    let t = token(
        json!({"alg": "HS256", "kid": "bo-key"}),
        json!({"sub": "x"}),
        hmac_signer(hmac::HMAC_SHA256, b"bo-secret"),
    );
    assert_eq!(check(&j, &c, &t).unwrap(), JwtOk { consumer: id(1), key: Arc::from("bo-key") });
    // The claims win over the header; a false claim falls through to the header, as in Lua.
    let t = token(
        json!({"alg": "HS256", "kid": "bo-key"}),
        json!({"kid": "alex-key"}),
        hmac_signer(hmac::HMAC_SHA256, b"alex-secret"),
    );
    assert_eq!(check(&j, &c, &t).unwrap().consumer, id(0));
    let t = token(
        json!({"alg": "HS256", "kid": "bo-key"}),
        json!({"kid": false}),
        hmac_signer(hmac::HMAC_SHA256, b"bo-secret"),
    );
    assert_eq!(check(&j, &c, &t).unwrap().consumer, id(1));
    let r = check(&j, &c, &hs256(json!({"iss": "alex-key"}), "alex-secret"));
    assert_eq!(message(&j, r), r#"{"message":"No mandatory 'kid' in claims"}"#);
}

#[test]
fn signature_from_another_consumer() {
    let j = plugin("{}");
    let c = creds_hs256();
    // bo's token claiming to be alex.
    let r = check(&j, &c, &hs256(json!({"iss": "alex-key"}), "bo-secret"));
    assert_eq!(message(&j, r), r#"{"message":"Invalid signature"}"#);
    let ok = check(&j, &c, &hs256(json!({"iss": "bo-key"}), "bo-secret")).unwrap();
    assert_eq!((ok.consumer, ok.key.as_ref()), (id(1), "bo-key"));
}

#[test]
fn exp_and_nbf() {
    let c = creds_hs256();
    let t = |claims: Value| hs256(claims, "alex-secret");
    let now = NOW as i64;
    // Not verified unless configured: an expired token passes.
    let j = plugin("{}");
    assert!(check(&j, &c, &t(json!({"iss": "alex-key", "exp": now - 10}))).is_ok());
    let j = plugin("claims_to_verify: [exp]");
    assert!(check(&j, &c, &t(json!({"iss": "alex-key", "exp": now + 1}))).is_ok());
    // exp == now is expired (no leeway).
    let r = check(&j, &c, &t(json!({"iss": "alex-key", "exp": now})));
    assert_eq!(message(&j, r), r#"{"exp":"token expired"}"#);
    let r = check(&j, &c, &t(json!({"iss": "alex-key", "exp": (now as f64) - 0.5})));
    assert_eq!(r, Err(JwtFailure::Claims(vec![("exp", "token expired")])));
    for bad in [json!("9999999999"), json!(null), json!(true), json!([1])] {
        let r = check(&j, &c, &t(json!({"iss": "alex-key", "exp": bad})));
        assert_eq!(message(&j, r), r#"{"exp":"must be a number"}"#);
    }
    let r = check(&j, &c, &t(json!({"iss": "alex-key"})));
    assert_eq!(message(&j, r), r#"{"exp":"must be a number"}"#);
    let j = plugin("claims_to_verify: [nbf]");
    assert!(check(&j, &c, &t(json!({"iss": "alex-key", "nbf": now}))).is_ok());
    let r = check(&j, &c, &t(json!({"iss": "alex-key", "nbf": now + 1})));
    assert_eq!(message(&j, r), r#"{"nbf":"token not valid yet"}"#);
    // Both at once: one object with both claims, in configuration order.
    let j = plugin("claims_to_verify: [nbf, exp]");
    let r = check(&j, &c, &t(json!({"iss": "alex-key", "nbf": now + 5, "exp": now - 5})));
    assert_eq!(r, Err(JwtFailure::Claims(vec![("nbf", "token not valid yet"), ("exp", "token expired")])));
    let body: Value = serde_json::from_str(&message(&j, r)).unwrap();
    assert_eq!(body, json!({"exp": "token expired", "nbf": "token not valid yet"}));
    // Claims are only checked once the signature holds.
    let r = check(&j, &c, &hs256(json!({"iss": "alex-key", "exp": now - 5}), "wrong"));
    assert_eq!(r, Err(JwtFailure::InvalidSignature));
}

#[test]
fn maximum_expiration() {
    let c = creds_hs256();
    let t = |claims: Value| hs256(claims, "alex-secret");
    let now = NOW as i64;
    let j = plugin("{claims_to_verify: [exp], maximum_expiration: 3600}");
    assert!(check(&j, &c, &t(json!({"iss": "alex-key", "exp": now + 3600}))).is_ok());
    let r = check(&j, &c, &t(json!({"iss": "alex-key", "exp": now + 3601})));
    assert_eq!(message(&j, r), r#"{"exp":"exceeds maximum allowed expiration"}"#);
    // Expiry is reported before the maximum.
    let r = check(&j, &c, &t(json!({"iss": "alex-key", "exp": now - 1})));
    assert_eq!(message(&j, r), r#"{"exp":"token expired"}"#);
    let r = check(&j, &c, &t(json!({"iss": "alex-key"})));
    assert_eq!(message(&j, r), r#"{"exp":"must be a number"}"#);
}

#[test]
fn token_sources() {
    let c = creds_hs256();
    let alex = hs256(json!({"iss": "alex-key"}), "alex-secret");
    let bo = hs256(json!({"iss": "bo-key"}), "bo-secret");
    let j = plugin("cookie_names: [session]");
    let who = |r: &RequestHeader| j.check(r, &c, NOW).map(|ok| ok.consumer);
    // Query parameter.
    assert_eq!(who(&req(&format!("/x?a=1&jwt={alex}"), &[])), Ok(id(0)));
    // Cookie, name matched case-insensitively.
    assert_eq!(who(&req("/x", &[("cookie", &format!("a=b; Session={bo}; c=d"))])), Ok(id(1)));
    assert_eq!(who(&req("/x", &[("cookie", "a=b"), ("cookie", &format!("session={bo}"))])), Ok(id(1)));
    // Header, Bearer or bearer, extra white space.
    assert_eq!(who(&req("/x", &[("authorization", &format!("Bearer {alex}"))])), Ok(id(0)));
    assert_eq!(who(&req("/x", &[("authorization", &format!("bearer \t {alex}"))])), Ok(id(0)));
    // Kong's regex is not anchored.
    assert_eq!(who(&req("/x", &[("authorization", &format!("Token x, Bearer {alex}"))])), Ok(id(0)));
    // Without the prefix (or with another casing) the header is not a token.
    assert_eq!(who(&req("/x", &[("authorization", &alex)])), Err(JwtFailure::NoToken));
    assert_eq!(who(&req("/x", &[("authorization", &format!("BEARER {alex}"))])), Err(JwtFailure::NoToken));
    assert_eq!(who(&req("/x", &[("authorization", "Bearer")])), Err(JwtFailure::NoToken));
    assert_eq!(who(&req("/x", &[("authorization", "Bearer   ")])), Err(JwtFailure::NoToken));
    assert_eq!(who(&req("/x", &[("authorization", &format!("Basic {alex}"))])), Err(JwtFailure::NoToken));
    // Cookies must be configured, and are off by default.
    let default = plugin("{}");
    let r = req("/x", &[("cookie", &format!("session={bo}"))]);
    assert_eq!(default.check(&r, &c, NOW), Err(JwtFailure::NoToken));
    // Nothing at all.
    let r = default.check(&req("/x", &[]), &c, NOW);
    assert_eq!(message(&default, r), r#"{"message":"Unauthorized"}"#);
    // Empty values are no token.
    assert_eq!(who(&req("/x?jwt=", &[("cookie", "session=")])), Err(JwtFailure::NoToken));
    // `?jwt` without `=` is a token Kong cannot read.
    assert_eq!(who(&req("/x?jwt", &[])), Err(JwtFailure::Unrecognizable));
    // Query names are case-sensitive and percent-decoded.
    assert_eq!(who(&req(&format!("/x?JWT={alex}"), &[])), Err(JwtFailure::NoToken));
    assert_eq!(who(&req(&format!("/x?%6Awt={alex}"), &[])), Ok(id(0)));
}

#[test]
fn custom_header_names() {
    let c = creds_hs256();
    let alex = hs256(json!({"iss": "alex-key"}), "alex-secret");
    let j = plugin("header_names: [X_Api_Token]\nuri_param_names: [token, access_token]");
    assert_eq!(j.check(&req("/", &[("x-api-token", &format!("Bearer {alex}"))]), &c, NOW).unwrap().consumer, id(0));
    assert_eq!(j.check(&req("/", &[("authorization", &format!("Bearer {alex}"))]), &c, NOW), Err(JwtFailure::NoToken));
    assert_eq!(j.check(&req(&format!("/?access_token={alex}"), &[]), &c, NOW).unwrap().consumer, id(0));
    assert_eq!(j.check(&req(&format!("/?jwt={alex}"), &[]), &c, NOW), Err(JwtFailure::NoToken));
    // A repeated header is refused (Kong reads the first line and forwards the second).
    let r = req("/", &[("x-api-token", &format!("Bearer {alex}")), ("x-api-token", "Bearer other")]);
    assert_eq!(j.check(&r, &c, NOW), Err(JwtFailure::MultipleTokens));
}

#[test]
fn the_key_claim_names_a_credential_exactly() {
    let c = creds_hs256();
    let j = plugin("{}");
    assert_eq!(check(&j, &c, &hs256(json!({"iss": "alex-key"}), "alex-secret")).unwrap().consumer, id(0));
    // No case folding, trimming, prefix or normalisation: a near miss is no credential.
    for near in ["Alex-key", "alex-key ", " alex-key", "alex-ke", "alex-key\u{0}", "alex\u{2010}key", "alex-keyx"] {
        let t = hs256(json!({"iss": near}), "alex-secret");
        assert_eq!(check(&j, &c, &t), Err(JwtFailure::NoCredentials(Arc::from("iss"))), "{near:?}");
    }
    // Nor another field of the consumer: the claim is a credential's key, never a username.
    let t = hs256(json!({"iss": "alex"}), "alex-secret");
    assert_eq!(check(&j, &c, &t), Err(JwtFailure::NoCredentials(Arc::from("iss"))));
}

#[test]
fn multiple_tokens() {
    let c = creds_hs256();
    let alex = hs256(json!({"iss": "alex-key"}), "alex-secret");
    let bo = hs256(json!({"iss": "bo-key"}), "bo-secret");
    let j = plugin("cookie_names: [session]");
    let r = |path: &str, h: &[(&str, &str)]| j.check(&req(path, h), &c, NOW);
    let auth = format!("Bearer {alex}");
    // One token, in one place: fine.
    assert_eq!(r(&format!("/?jwt={alex}"), &[]).unwrap().consumer, id(0));
    assert_eq!(r("/", &[("cookie", &format!("other=1; session={alex}"))]).unwrap().consumer, id(0));
    // The same token in two places is refused (Kong merges it): one reading of every token.
    assert_eq!(r(&format!("/?jwt={alex}&jwt={alex}"), &[]), Err(JwtFailure::MultipleTokens));
    assert_eq!(r(&format!("/?jwt={alex}"), &[("authorization", &auth)]), Err(JwtFailure::MultipleTokens));
    assert_eq!(
        r("/", &[("cookie", &format!("session={alex}")), ("authorization", &auth)]),
        Err(JwtFailure::MultipleTokens)
    );
    // Two cookies of the name, in one Cookie line or two (nginx's `$cookie_` reads the first).
    assert_eq!(r("/", &[("cookie", &format!("session={alex}; Session={bo}"))]), Err(JwtFailure::MultipleTokens));
    assert_eq!(
        r("/", &[("cookie", &format!("session={alex}")), ("cookie", &format!("session={alex}"))]),
        Err(JwtFailure::MultipleTokens)
    );
    // Two Authorization lines, whatever the second holds (Kong checks the first only).
    for second in [auth.as_str(), "Bearer garbage", "Basic YTpi"] {
        assert_eq!(r("/", &[("authorization", &auth), ("authorization", second)]), Err(JwtFailure::MultipleTokens));
    }
    // Different ones are refused, wherever they are.
    let m = r(&format!("/?jwt={bo}"), &[("authorization", &auth)]);
    assert_eq!(message(&j, m), r#"{"message":"Multiple tokens provided"}"#);
    assert_eq!(r(&format!("/?jwt={alex}&jwt={bo}"), &[]), Err(JwtFailure::MultipleTokens));
    assert_eq!(
        r("/", &[("cookie", &format!("session={bo}")), ("authorization", &auth)]),
        Err(JwtFailure::MultipleTokens)
    );
    assert_eq!(r(&format!("/?jwt&jwt={alex}"), &[]), Err(JwtFailure::MultipleTokens));
    // Even when one of them is garbage.
    assert_eq!(r("/?jwt=garbage", &[("authorization", &auth)]), Err(JwtFailure::MultipleTokens));
    let www = www(&j, &JwtFailure::MultipleTokens);
    assert_eq!(www.as_deref(), Some("Bearer error=\"invalid_token\""));
}

#[test]
fn hostile_tokens_never_panic() {
    let j = plugin("{claims_to_verify: [exp, nbf]}");
    let mut c = creds_hs256();
    c.add(id(2), Some("rsa".into()), Some("RS256".into()), None, Some(RSA_PUBLIC_PEM.into())).unwrap();
    let samples = [
        hs256(json!({"iss": "alex-key", "exp": 1e300, "nbf": -1e300}), "alex-secret"),
        hs256(json!({"iss": "rsa"}), "x"),
        token(json!({"alg": "RS256"}), json!({"iss": "rsa"}), |_| vec![0; 256]),
        token(json!({"alg": "RS256"}), json!({"iss": "rsa"}), |_| vec![0xff; 4096]),
        token(json!({"alg": "RS256"}), json!({"iss": "rsa"}), |_| vec![]),
        format!("{}.{}.x", b64("[".repeat(5000).as_bytes()), b64(b"{}")),
        "é.é.é".to_string(),
        ".".repeat(100),
    ];
    for s in &samples {
        let _ = check(&j, &c, s);
    }
    // A simple deterministic fuzz over token-like bytes.
    let mut x: u32 = 0x1234_5678;
    let alphabet = b"eyJhbGciOiJIUzI1NiJ9._-=+/AZaz09 \t";
    for _ in 0..2000 {
        let mut t = String::new();
        for _ in 0..(x % 120) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            t.push(alphabet[(x as usize) % alphabet.len()] as char);
        }
        let _ = check(&j, &c, t.trim());
        let _ = kong_b64_decode(t.as_bytes());
    }
}
