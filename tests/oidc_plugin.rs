//! The openid-connect plugin against a live identity provider (the same local IdP the gateway
//! tests use, here over plain HTTP): keys of every type, issuer and time claims, scopes and
//! audience, algorithm attacks, key rotation and the rate limit on refreshes, failed refreshes,
//! consumer mapping, token places and answers. Schema checks and the parts that need no IdP
//! are unit tests beside the plugin.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::sync::Arc;
use std::time::Duration;

use aigate::consumers::{Consumer, Consumers};
use aigate::jose::jws::MAX_TOKEN_LEN;
use aigate::plugins::openid_connect::jwks::MAX_DOCUMENT_BYTES;
use aigate::plugins::openid_connect::{
    run_refresher, Checked, JwksRegistry, OidcError, OidcFailure, OidcOk, OpenIdConnect, OpenIdConnectSchema,
};
use pingora_http::RequestHeader;
use serde_json::{json, Value};
use support::idp::{b64, jwks, token_with, Idp, SigningKey};

const NOW: u64 = 1_700_000_000;

fn consumers() -> Consumers {
    let mut c = Consumers::default();
    for (name, custom) in [("alex", Some("cust-alex")), ("bo", None), ("anon", None)] {
        c.add(Consumer::new(format!("id-{name}"), Some(name.into()), custom.map(Into::into), Vec::new()));
    }
    c
}

fn compile(yaml: &str) -> OpenIdConnect {
    let schema: OpenIdConnectSchema = serde_yaml::from_str(yaml).unwrap();
    // The IdP is plain http on 127.0.0.1, as the setting oidc_insecure_http_hosts allows.
    OpenIdConnect::compile(schema, &consumers(), &JwksRegistry::new(None, vec!["127.0.0.1".into()])).unwrap()
}

/// Standard valid claims from `idp`, with `extra` merged in (null removes a claim).
fn claims(idp: &Idp, extra: Value) -> Value {
    let mut c = json!({"iss": idp.issuer, "sub": "user-1", "exp": NOW + 300, "iat": NOW - 10});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// An IdP serving `keys` and a plugin for it (`BASE` in `extra` is the IdP's URL), with the
/// initial refresh done.
async fn setup(extra: &str, keys: &[&SigningKey]) -> (Idp, OpenIdConnect) {
    let idp = Idp::plain(jwks(keys)).await;
    let plugin = compile(&format!("issuer: {}\n{}", idp.issuer, extra.replace("BASE", &idp.issuer)));
    for cache in plugin.caches() {
        let _ = cache.refresh().await;
    }
    (idp, plugin)
}

fn req(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
    for (k, v) in headers {
        r.append_header(k.to_string(), *v).unwrap();
    }
    r
}

/// The plugin's check, waiting for key refreshes as the authenticate phase does.
async fn authenticate(
    p: &OpenIdConnect,
    req: &RequestHeader,
    consumers: &Consumers,
    now: u64,
) -> Result<OidcOk, OidcFailure> {
    match p.check_cached(req, consumers, now) {
        Checked::Done(r) => r,
        Checked::AwaitingKeys { token, waits, .. } => p.after_refresh(&token, waits, consumers, now).await,
    }
}

async fn check(p: &OpenIdConnect, token: &str) -> Result<OidcOk, OidcError> {
    let r = req("/", &[("authorization", &format!("Bearer {token}"))]);
    authenticate(p, &r, &consumers(), NOW).await.map_err(|f| f.kind())
}

#[tokio::test]
async fn valid_tokens_of_every_key_type() {
    let rsa = SigningKey::rsa(Some("rsa"));
    let p256 = SigningKey::ec(Some("p256"), false);
    let p384 = SigningKey::ec(Some("p384"), true);
    let ed = SigningKey::ed(Some("ed"));
    let (idp, p) = setup("", &[&rsa, &p256, &p384, &ed]).await;
    let cases: [(&SigningKey, &str); 9] = [
        (&rsa, "RS256"),
        (&rsa, "RS384"),
        (&rsa, "RS512"),
        (&rsa, "PS256"),
        (&rsa, "PS384"),
        (&rsa, "PS512"),
        (&p256, "ES256"),
        (&p384, "ES384"),
        (&ed, "EdDSA"),
    ];
    for (key, alg) in cases {
        let ok = check(&p, &key.token(alg, claims(&idp, json!({})))).await.unwrap_or_else(|e| panic!("{alg}: {e:?}"));
        assert_eq!(ok.consumer, None);
        assert_eq!(ok.subject.as_deref(), Some("user-1"));
        assert_eq!(ok.credential_id, format!("{}#user-1", idp.issuer));
        // Any change to the signed parts breaks the signature.
        let t = key.token(alg, claims(&idp, json!({})));
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        parts[1] = b64(claims(&idp, json!({"sub": "admin"})).to_string().as_bytes());
        assert_eq!(check(&p, &parts.join(".")).await, Err(OidcError::Signature), "{alg}");
    }
    // The token was never fetched again: the keys were found in the cache.
    assert_eq!(idp.jwks_hits(), 1);
}

#[tokio::test]
async fn issuer_and_time_claims() {
    let key = SigningKey::ec(Some("k"), false);
    let (idp, p) = setup("", &[&key]).await;
    let t = |extra: Value| key.token("ES256", claims(&idp, extra));
    assert!(check(&p, &t(json!({}))).await.is_ok());
    assert_eq!(check(&p, &t(json!({"iss": "https://evil.example"}))).await, Err(OidcError::Issuer));
    assert_eq!(check(&p, &t(json!({"iss": format!("{}/", idp.issuer)}))).await, Err(OidcError::Issuer));
    assert_eq!(check(&p, &t(json!({"iss": null}))).await, Err(OidcError::Issuer));
    assert_eq!(check(&p, &t(json!({"iss": 5}))).await, Err(OidcError::Issuer));
    // exp is required, and exp == now is expired.
    assert_eq!(check(&p, &t(json!({"exp": NOW}))).await, Err(OidcError::Expired));
    assert_eq!(check(&p, &t(json!({"exp": NOW - 100}))).await, Err(OidcError::Expired));
    assert!(check(&p, &t(json!({"exp": NOW + 1}))).await.is_ok());
    assert_eq!(check(&p, &t(json!({"exp": null}))).await, Err(OidcError::BadClaims));
    assert_eq!(check(&p, &t(json!({"exp": "9999999999"}))).await, Err(OidcError::BadClaims));
    assert_eq!(check(&p, &t(json!({"nbf": NOW + 10}))).await, Err(OidcError::NotYetValid));
    assert!(check(&p, &t(json!({"nbf": NOW}))).await.is_ok());
    assert_eq!(check(&p, &t(json!({"nbf": "soon"}))).await, Err(OidcError::BadClaims));
    assert_eq!(check(&p, &t(json!({"iat": NOW + 10}))).await, Err(OidcError::IssuedInFuture));
    assert!(check(&p, &t(json!({"iat": null}))).await.is_ok());
    assert!(check(&p, &t(json!({"exp": (NOW as f64) + 0.5}))).await.is_ok());

    // Leeway applies to exp, nbf and iat.
    let (idp, p) = setup("leeway: 60", &[&key]).await;
    let t = |extra: Value| key.token("ES256", claims(&idp, extra));
    assert!(check(&p, &t(json!({"exp": NOW - 30, "nbf": NOW + 30, "iat": NOW + 30}))).await.is_ok());
    assert_eq!(check(&p, &t(json!({"exp": NOW - 60}))).await, Err(OidcError::Expired));
    assert_eq!(check(&p, &t(json!({"nbf": NOW + 61}))).await, Err(OidcError::NotYetValid));

    // verify_claims: false skips the time claims, not the issuer.
    let (idp, p) = setup("verify_claims: false", &[&key]).await;
    let t = |extra: Value| key.token("ES256", claims(&idp, extra));
    assert!(check(&p, &t(json!({"exp": null, "nbf": NOW + 1000}))).await.is_ok());
    assert_eq!(check(&p, &t(json!({"iss": "https://evil.example"}))).await, Err(OidcError::Issuer));

    // issuers_allowed replaces the issuer.
    let (idp, p) = setup("issuers_allowed: [https://a.example, https://b.example]", &[&key]).await;
    let t = |extra: Value| key.token("ES256", claims(&idp, extra));
    assert!(check(&p, &t(json!({"iss": "https://b.example"}))).await.is_ok());
    assert_eq!(check(&p, &t(json!({}))).await, Err(OidcError::Issuer));
}

#[tokio::test]
async fn scopes_and_audience() {
    let key = SigningKey::ed(Some("k"));
    let (idp, p) = setup("scopes_required: ['read write', admin]\naudience_required: [api, other]", &[&key]).await;
    let t = |extra: Value| key.token("EdDSA", claims(&idp, extra));
    let r = |scope: Value, aud: Value| t(json!({"scope": scope, "aud": aud}));
    assert!(check(&p, &r(json!("openid read write"), json!("api"))).await.is_ok());
    assert!(check(&p, &r(json!("admin"), json!(["x", "other"]))).await.is_ok());
    assert!(check(&p, &r(json!(["write", "read"]), json!("api"))).await.is_ok());
    assert_eq!(check(&p, &r(json!("read"), json!("api"))).await, Err(OidcError::Scope));
    assert_eq!(check(&p, &r(json!("readwrite admins"), json!("api"))).await, Err(OidcError::Scope));
    assert_eq!(check(&p, &t(json!({"aud": "api"}))).await, Err(OidcError::NoScopes));
    assert_eq!(check(&p, &r(json!(""), json!("api"))).await, Err(OidcError::Scope));
    assert_eq!(check(&p, &r(json!("admin"), json!("apis"))).await, Err(OidcError::Audience));
    assert_eq!(check(&p, &r(json!("admin"), json!(["x", "y"]))).await, Err(OidcError::Audience));
    assert_eq!(check(&p, &t(json!({"scope": "admin"}))).await, Err(OidcError::NoAudience));
    let f = authenticate(
        &p,
        &req("/", &[("authorization", &format!("Bearer {}", r(json!("read"), json!("api"))))]),
        &consumers(),
        NOW,
    )
    .await
    .unwrap_err();
    assert_eq!((f.status(), f.message(), f.reason()), (403, "Forbidden", "scope"));
    assert_eq!(f.www_authenticate(), format!("Bearer realm=\"127.0.0.1\", error=\"insufficient_scope\""));

    // A nested claim path (Keycloak's realm roles) and an array claim (scp).
    let (idp, p) = setup("scopes_required: [admin]\nscopes_claim: [realm_access, roles]", &[&key]).await;
    let t = |extra: Value| key.token("EdDSA", claims(&idp, extra));
    assert!(check(&p, &t(json!({"realm_access": {"roles": ["user", "admin"]}}))).await.is_ok());
    assert_eq!(check(&p, &t(json!({"realm_access": ["admin"]}))).await, Err(OidcError::NoScopes));
    assert_eq!(check(&p, &t(json!({"roles": ["admin"]}))).await, Err(OidcError::NoScopes));
    let (idp, p) = setup("scopes_required: [write]\nscopes_claim: [scp]", &[&key]).await;
    assert!(check(&p, &key.token("EdDSA", claims(&idp, json!({"scp": ["read", "write"]})))).await.is_ok());
}

#[tokio::test]
async fn algorithm_attacks_are_refused() {
    let rsa = SigningKey::rsa(Some("rsa"));
    let ec = SigningKey::ec(Some("ec"), false);
    let (idp, p) = setup("", &[&rsa, &ec]).await;
    let claims = claims(&idp, json!({}));
    // alg none, with or without a signature.
    for alg in ["none", "None", "NONE", ""] {
        let unsigned = token_with(json!({"alg": alg, "kid": "rsa"}), claims.clone(), |_| vec![]);
        assert_eq!(check(&p, &unsigned).await, Err(OidcError::Algorithm), "{alg}");
    }
    assert_eq!(
        check(&p, &token_with(json!({"kid": "rsa"}), claims.clone(), |_| vec![1])).await,
        Err(OidcError::Algorithm)
    );
    assert_eq!(
        check(&p, &token_with(json!({"alg": 256, "kid": "rsa"}), claims.clone(), |_| vec![1])).await,
        Err(OidcError::Algorithm)
    );
    // HS256 keyed with the public key (the classic confusion), with and without kid.
    let jwk_text = rsa.jwk.to_string();
    for header in [json!({"alg": "HS256", "kid": "rsa"}), json!({"alg": "HS256"}), json!({"alg": "HS512"})] {
        let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, jwk_text.as_bytes());
        let t = token_with(header.clone(), claims.clone(), |m| ring::hmac::sign(&hmac_key, m).as_ref().to_vec());
        assert_eq!(check(&p, &t).await, Err(OidcError::Algorithm), "{header}");
    }
    // ES512 (not supported) and an alg that does not fit the named key.
    assert_eq!(
        check(&p, &token_with(json!({"alg": "ES512", "kid": "ec"}), claims.clone(), |_| vec![1; 132])).await,
        Err(OidcError::Algorithm)
    );
    let t = token_with(json!({"alg": "ES256", "kid": "rsa"}), claims.clone(), |m| ec.sign_bytes("ES256", m));
    assert_eq!(check(&p, &t).await, Err(OidcError::Algorithm));
    let t = token_with(json!({"alg": "RS256", "kid": "ec"}), claims.clone(), |m| rsa.sign_bytes("RS256", m));
    assert_eq!(check(&p, &t).await, Err(OidcError::Algorithm));
    // PKCS#1 and PSS are different algorithms for the same key.
    let t = token_with(json!({"alg": "RS256", "kid": "rsa"}), claims.clone(), |m| rsa.sign_bytes("PS256", m));
    assert_eq!(check(&p, &t).await, Err(OidcError::Signature));
    // A key restricted to one alg by its JWK refuses others.
    let mut restricted = SigningKey::rsa(Some("only-ps"));
    restricted.jwk["alg"] = json!("PS256");
    idp.set_keys(jwks(&[&restricted]));
    for c in p.caches() {
        c.refresh().await.unwrap();
    }
    assert!(check(&p, &restricted.token("PS256", claims.clone())).await.is_ok());
    assert_eq!(check(&p, &restricted.token("RS256", claims.clone())).await, Err(OidcError::Algorithm));
    // Unknown critical header extensions are refused.
    let t = token_with(json!({"alg": "PS256", "kid": "only-ps", "crit": ["exp"]}), claims.clone(), |m| {
        restricted.sign_bytes("PS256", m)
    });
    assert_eq!(check(&p, &t).await, Err(OidcError::Malformed));
}

#[tokio::test]
async fn keys_without_kid() {
    let key = SigningKey::ec(None, true);
    let (idp, p) = setup("", &[&key]).await;
    // No kid in the token: every key of the right type is tried.
    assert!(check(&p, &key.token("ES384", claims(&idp, json!({})))).await.is_ok());
    // A kid in the token that no key has, but a kid-less key signed it.
    let t =
        token_with(json!({"alg": "ES384", "kid": "whatever"}), claims(&idp, json!({})), |m| key.sign_bytes("ES384", m));
    assert!(check(&p, &t).await.is_ok());
    // No key of that type at all.
    let other = SigningKey::ed(None);
    assert_eq!(check(&p, &other.token("EdDSA", claims(&idp, json!({})))).await, Err(OidcError::UnknownKey));
    let stranger = SigningKey::ec(None, true);
    assert_eq!(check(&p, &stranger.token("ES384", claims(&idp, json!({})))).await, Err(OidcError::Signature));
}

#[tokio::test]
async fn unknown_kid_refreshes_once_and_finds_rotated_keys() {
    let old = SigningKey::rsa(Some("2024"));
    let new = SigningKey::ec(Some("2025"), false);
    let (idp, p) = setup("", &[&old]).await;
    assert_eq!(idp.jwks_hits(), 1);
    // The IdP rotates; a token signed with the new key triggers a refresh and passes.
    idp.set_keys(jwks(&[&old, &new]));
    let ok = check(&p, &new.token("ES256", claims(&idp, json!({})))).await.unwrap();
    assert_eq!(ok.subject.as_deref(), Some("user-1"));
    assert_eq!(idp.jwks_hits(), 2);
    // Both keys now verify without further fetches.
    assert!(check(&p, &old.token("RS256", claims(&idp, json!({})))).await.is_ok());
    assert!(check(&p, &new.token("ES256", claims(&idp, json!({})))).await.is_ok());
    assert_eq!(idp.jwks_hits(), 2);
}

#[tokio::test]
async fn unknown_kid_flood_is_rate_limited() {
    let key = SigningKey::ed(Some("good"));
    let late = SigningKey::ec(Some("late"), false);
    let (idp, p) = setup("rediscovery_lifetime: 2", &[&key]).await;
    let hits = idp.jwks_hits();
    // A flood of random kids, concurrent and then sequential: one refresh in all.
    let tokens: Vec<String> = (0..20)
        .map(|i| {
            token_with(json!({"alg": "EdDSA", "kid": format!("random-{i}")}), claims(&idp, json!({})), |m| {
                key.sign_bytes("EdDSA", m)
            })
        })
        .collect();
    let results = futures_util::future::join_all(tokens.iter().map(|t| check(&p, t))).await;
    assert!(results.iter().all(|r| *r == Err(OidcError::UnknownKey)));
    for t in &tokens {
        assert_eq!(check(&p, t).await, Err(OidcError::UnknownKey));
    }
    assert_eq!(idp.jwks_hits(), hits + 1);
    // Within the limit, even a kid the IdP now has is refused...
    idp.set_keys(jwks(&[&key, &late]));
    let t = late.token("ES256", claims(&idp, json!({})));
    assert_eq!(check(&p, &t).await, Err(OidcError::UnknownKey));
    assert_eq!(idp.jwks_hits(), hits + 1);
    // ... and found once the limit has passed.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(check(&p, &t).await.is_ok());
    assert_eq!(idp.jwks_hits(), hits + 2);
    // Known keys never wait or fetch.
    assert!(check(&p, &key.token("EdDSA", claims(&idp, json!({})))).await.is_ok());
    assert_eq!(idp.jwks_hits(), hits + 2);
}

#[tokio::test]
async fn failed_refreshes_keep_the_keys() {
    let key = SigningKey::ec(Some("k"), false);
    let (idp, p) = setup("", &[&key]).await;
    let cache = Arc::clone(&p.caches()[0]);
    let good = key.token("ES256", claims(&idp, json!({})));
    assert!(check(&p, &good).await.is_ok());
    // IdP down (5xx), bad JSON, an empty key set, only junk keys, an oversized document.
    idp.set_status(200, 503);
    assert!(cache.refresh().await.unwrap_err().contains("503"));
    idp.set_status(200, 200);
    for body in [
        "not json".to_string(),
        r#"{"keys": []}"#.to_string(),
        r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#.to_string(),
        r#"{"no": "keys"}"#.to_string(),
        format!(r#"{{"keys": [], "pad": "{}"}}"#, "x".repeat(MAX_DOCUMENT_BYTES)),
    ] {
        idp.set_jwks_body(body);
        assert!(cache.refresh().await.is_err());
        assert_eq!(cache.keys().keys.len(), 1);
        assert!(check(&p, &good).await.is_ok());
    }
    // Discovery down, keys still served: the known jwks_uri is used.
    let next = SigningKey::ed(Some("next"));
    idp.set_keys(jwks(&[&key, &next]));
    idp.set_status(500, 200);
    assert_eq!(cache.refresh().await, Ok(2));
    assert!(check(&p, &next.token("EdDSA", claims(&idp, json!({})))).await.is_ok());
    // Junk keys next to good ones are ignored one by one.
    let mut doc = jwks(&[&key]);
    doc["keys"].as_array_mut().unwrap().extend([
        json!({"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}),
        json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
        json!("junk"),
    ]);
    idp.set_keys(doc);
    assert_eq!(cache.refresh().await, Ok(1));
    assert!(check(&p, &good).await.is_ok());
}

#[tokio::test]
async fn no_keys_until_the_idp_answers() {
    let key = SigningKey::ed(Some("k"));
    let idp = Idp::plain(jwks(&[&key])).await;
    idp.set_status(503, 503);
    let p = compile(&format!("{{issuer: '{}', rediscovery_lifetime: 0}}", idp.issuer));
    assert!(p.caches()[0].refresh().await.unwrap_err().contains("discovery"));
    let t = key.token("EdDSA", claims(&idp, json!({})));
    assert_eq!(check(&p, &t).await, Err(OidcError::NoKeys));
    // The IdP comes back: the next token fetches the keys on demand.
    idp.set_status(200, 200);
    assert!(check(&p, &t).await.is_ok());
}

#[tokio::test]
async fn extra_jwks_uris_without_discovery() {
    let key = SigningKey::rsa(Some("k"));
    let idp = Idp::plain(jwks(&[&key])).await;
    // The issuer has no discovery document: its refresh fails, the extra JWKS serves.
    let yaml = format!("{{issuer: '{0}/no-discovery', extra_jwks_uris: ['{0}/jwks.json']}}", idp.issuer);
    let p = compile(&yaml);
    assert_eq!(p.caches().len(), 2);
    assert!(p.caches()[0].refresh().await.is_err());
    assert_eq!(p.caches()[1].refresh().await, Ok(1));
    let claims = claims(&idp, json!({"iss": format!("{}/no-discovery", idp.issuer)}));
    assert!(check(&p, &key.token("RS256", claims)).await.is_ok());
}

#[tokio::test]
async fn consumer_mapping() {
    let key = SigningKey::ed(Some("k"));
    let (idp, p) = setup("consumer_claim: [preferred_username]", &[&key]).await;
    let t = |name: Value| key.token("EdDSA", claims(&idp, json!({"preferred_username": name})));
    let c = consumers();
    assert_eq!(check(&p, &t(json!("alex"))).await.unwrap().consumer, c.find("alex"));
    assert_eq!(check(&p, &t(json!("cust-alex"))).await.unwrap().consumer, c.find("alex"));
    assert_eq!(check(&p, &t(json!("bo"))).await.unwrap().consumer, c.find("bo"));
    // By id only when consumer_by says so.
    assert_eq!(check(&p, &t(json!("id-bo"))).await, Err(OidcError::ConsumerNotFound));
    assert_eq!(check(&p, &t(json!("nobody"))).await, Err(OidcError::ConsumerNotFound));
    assert_eq!(check(&p, &t(json!(null))).await, Err(OidcError::ConsumerNotFound));
    assert_eq!(check(&p, &t(json!({"a": 1}))).await, Err(OidcError::ConsumerNotFound));
    let f = authenticate(&p, &req("/", &[("authorization", &format!("Bearer {}", t(json!("nobody"))))]), &c, NOW)
        .await
        .unwrap_err();
    assert_eq!((f.status(), f.message(), f.reason()), (403, "Forbidden", "consumer_not_found"));

    let (idp, p) = setup("consumer_claim: [sub]\nconsumer_by: [id]\nconsumer_optional: true", &[&key]).await;
    let t = |sub: &str| key.token("EdDSA", claims(&idp, json!({"sub": sub})));
    assert_eq!(check(&p, &t("id-alex")).await.unwrap().consumer, c.find("alex"));
    let ok = check(&p, &t("alex")).await.unwrap();
    assert_eq!((ok.consumer, ok.subject.as_deref()), (None, Some("alex")));
    assert_eq!(ok.credential_id, format!("{}#alex", idp.issuer));

    // A nested claim path.
    let (idp, p) = setup("consumer_claim: [ext, user]\nconsumer_by: [username]", &[&key]).await;
    let ok = check(&p, &key.token("EdDSA", claims(&idp, json!({"ext": {"user": "bo"}})))).await.unwrap();
    assert_eq!(ok.consumer, c.find("bo"));
    assert_eq!(
        check(&p, &key.token("EdDSA", claims(&idp, json!({"ext": {"user": "cust-alex"}})))).await,
        Err(OidcError::ConsumerNotFound)
    );
    // credential_claim picks the credential id.
    let (idp, p) = setup("credential_claim: [client_id]", &[&key]).await;
    let ok = check(&p, &key.token("EdDSA", claims(&idp, json!({"client_id": "svc-7"})))).await.unwrap();
    assert_eq!(ok.credential_id, format!("{}#svc-7", idp.issuer));
    let ok = check(&p, &key.token("EdDSA", claims(&idp, json!({})))).await.unwrap();
    assert_eq!(ok.credential_id, idp.issuer);
}

#[tokio::test]
async fn token_places() {
    let key = SigningKey::ed(Some("k"));
    let (idp, p) = setup("bearer_token_param_type: [query]", &[&key]).await;
    let t = key.token("EdDSA", claims(&idp, json!({})));
    let c = consumers();
    assert!(authenticate(&p, &req(&format!("/x?a=1&access_token={t}"), &[]), &c, NOW).await.is_ok());
    // The header is not read unless configured.
    let r = req("/x", &[("authorization", &format!("Bearer {t}"))]);
    assert_eq!(authenticate(&p, &r, &c, NOW).await.unwrap_err().kind(), OidcError::Missing);
    assert_eq!(authenticate(&p, &req("/x?access_token=", &[]), &c, NOW).await.unwrap_err().kind(), OidcError::Missing);
    // Both places configured: a token in each is refused, never one checked and the other
    // passed on; an Authorization header of another scheme is no token.
    let (idp, p) = setup("bearer_token_param_type: [header, query]", &[&key]).await;
    let t = key.token("EdDSA", claims(&idp, json!({})));
    let r = req(&format!("/x?access_token={t}"), &[("authorization", "Bearer garbage")]);
    assert_eq!(authenticate(&p, &r, &c, NOW).await.unwrap_err().kind(), OidcError::MultipleTokens);
    let r = req(&format!("/x?access_token={t}"), &[("authorization", "Basic YTpi")]);
    assert!(authenticate(&p, &r, &c, NOW).await.is_ok());
    // The scheme is case-insensitive.
    for h in [format!("bearer {t}"), format!("BEARER  {t} "), format!("Bearer\t{t}")] {
        assert!(authenticate(&p, &req("/", &[("authorization", &h)]), &c, NOW).await.is_ok(), "{h}");
    }
    for h in ["Bearer", "Bearer ", "Bearerx abc", "Token abc", ""] {
        let f = authenticate(&p, &req("/", &[("authorization", h)]), &c, NOW).await.unwrap_err();
        assert_eq!(f.kind(), OidcError::Missing, "{h}");
        assert_eq!((f.status(), f.message()), (401, "Unauthorized"));
        // RFC 6750: no error code when no credentials were sent.
        assert_eq!(f.www_authenticate(), "Bearer realm=\"127.0.0.1\"");
    }
}

#[tokio::test]
async fn answers_and_messages() {
    let key = SigningKey::ed(Some("k"));
    let (idp, p) = setup("", &[&key]).await;
    let expired = key.token("EdDSA", claims(&idp, json!({"exp": NOW - 1})));
    let f = authenticate(&p, &req("/", &[("authorization", &format!("Bearer {expired}"))]), &consumers(), NOW)
        .await
        .unwrap_err();
    assert_eq!((f.status(), f.message(), f.reason()), (401, "Unauthorized", "expired"));
    assert_eq!(f.www_authenticate(), "Bearer realm=\"127.0.0.1\", error=\"invalid_token\"");
    let (idp, p) = setup(
        "expose_error_code: false\nunauthorized_error_message: Go away\nforbidden_error_message: Not you\n\
             scopes_required: [x]",
        &[&key],
    )
    .await;
    let f = authenticate(&p, &req("/", &[("authorization", &format!("Bearer {expired}"))]), &consumers(), NOW)
        .await
        .unwrap_err();
    assert_eq!((f.message(), f.www_authenticate()), ("Go away", "Bearer realm=\"127.0.0.1\""));
    let fine = key.token("EdDSA", claims(&idp, json!({})));
    let f = authenticate(&p, &req("/", &[("authorization", &format!("Bearer {fine}"))]), &consumers(), NOW)
        .await
        .unwrap_err();
    assert_eq!((f.status(), f.message(), f.www_authenticate()), (403, "Not you", "Bearer realm=\"127.0.0.1\""));
    // Every kind has a status and a label.
    for kind in [
        OidcError::Missing,
        OidcError::Malformed,
        OidcError::Algorithm,
        OidcError::UnknownKey,
        OidcError::NoKeys,
        OidcError::Signature,
        OidcError::Issuer,
        OidcError::Expired,
        OidcError::NotYetValid,
        OidcError::IssuedInFuture,
        OidcError::BadClaims,
    ] {
        assert_eq!(kind.status(), 401);
        assert!(!kind.reason().is_empty());
    }
    for kind in
        [OidcError::NoScopes, OidcError::Scope, OidcError::NoAudience, OidcError::Audience, OidcError::ConsumerNotFound]
    {
        assert_eq!(kind.status(), 403);
    }
}

#[tokio::test]
async fn malformed_tokens_never_panic() {
    let key = SigningKey::rsa(Some("k"));
    let (idp, p) = setup("bearer_token_param_type: [header, query]", &[&key]).await;
    let good = key.token("RS256", claims(&idp, json!({})));
    assert!(check(&p, &good).await.is_ok());
    let h = b64(br#"{"alg":"RS256","kid":"k"}"#);
    let c = b64(claims(&idp, json!({})).to_string().as_bytes());
    let samples = [
        "abc".to_string(),
        format!("{h}.{c}"),
        format!("{good}.extra"),
        "..".to_string(),
        "...".to_string(),
        format!("!!!.{c}.AAAA"),
        format!("{h}.!!!.AAAA"),
        format!("{h}.{c}.!!!"),
        format!("{}.{c}.AAAA", b64(b"[1,2]")),
        format!("{}.{c}.AAAA", b64(b"{not json")),
        format!("{h}.{}.AAAA", b64(b"null")),
        format!("{h}.{}.AAAA", b64(b"\"claims\"")),
        format!("{h}.{}.AAAA", b64(b"[]")),
        format!("{}.{c}.AAAA", b64(br#"{"alg":"RS256","kid":5}"#)),
        format!("{h}.{c}.A"),
        format!("{h}.{c}."),
        format!("{h}.{c}.{}", "A".repeat(MAX_TOKEN_LEN)),
    ];
    for s in &samples {
        let r = check(&p, s).await;
        assert!(matches!(r, Err(OidcError::Malformed | OidcError::Signature)), "{s}: {r:?}");
    }
    // Every single-character change of a valid token is refused.
    let alphabet = b"AZaz09-_.=";
    for i in 0..good.len() {
        for &ch in alphabet {
            let mut t = good.clone().into_bytes();
            if t[i] == ch {
                continue;
            }
            t[i] = ch;
            let t = String::from_utf8(t).unwrap();
            assert!(check(&p, &t).await.is_err(), "{i}");
        }
    }
    // Random token-like text and percent-encoded junk in the query.
    let mut x: u32 = 0x2545_f491;
    let chars = b"eyJhbGciOiJSUzI1NiJ9._-=+/AZaz09";
    for _ in 0..2000 {
        let mut t = String::new();
        for _ in 0..(x % 150) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            t.push(chars[(x as usize) % chars.len()] as char);
        }
        assert!(check(&p, &t).await.is_err());
    }
    for q in ["/?access_token=%ff%fe.%00.x", "/?access_token=a%2eb%2ec", "/?access_token&access_token=..."] {
        assert!(authenticate(&p, &req(q, &[]), &consumers(), NOW).await.is_err(), "{q}");
    }
}

#[tokio::test]
async fn background_refresher_picks_up_rotations_and_stops() {
    let old = SigningKey::ec(Some("old"), false);
    let new = SigningKey::ed(Some("new"));
    let (idp, p) = setup("", &[&old]).await;
    idp.set_keys(jwks(&[&new]));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_refresher(p.caches().to_vec(), Duration::from_secs(1), stopped));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let kids: Vec<Option<String>> = p.caches()[0].keys().keys.iter().map(|k| k.kid.clone()).collect();
    assert_eq!(kids, [Some("new".to_string())]);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task).await.unwrap().unwrap();
}
