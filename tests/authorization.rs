//! jwt and acl through the real gateway, combined as Kong combines them (every auth plugin
//! must pass; with `anonymous` set on each, any one is enough), on an LLM route.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use base64::Engine;
use serde_json::{json, Value};
use support::gateway::{client, GatewayProcess, GatewaySpec, TestBed, PROVIDER_KEY};

const DECK: &str = r#"_format_version: "3.0"
services:
- name: llm
  url: http://unused.invalid
  routes:
  - name: jwt-route
    paths: [/jwt]
    plugins:
    - name: jwt
      config: {claims_to_verify: [exp], uri_param_names: [jwt]}
  - name: either
    paths: [/either]
    plugins:
    - name: jwt
      config: {anonymous: anon}
    - name: key-auth
      config: {anonymous: anon}
    - name: acl
      config: {deny: [nobody]}
  - name: gold
    paths: [/gold]
    plugins:
    - name: key-auth
    - name: acl
      config: {allow: [gold]}
plugins:
- name: ai-proxy
  config:
    route_type: llm/v1/responses
    auth: {header_name: Authorization, header_value: Bearer ${{ env "DECK_OPENAI_API_KEY" }}}
    model: {provider: openai, name: gpt-4o}
consumers:
- username: alex
  acls: [{group: gold}]
  keyauth_credentials: [{key: alex_key}]
  jwt_secrets: [{key: alex-iss, secret: alex-hmac-secret}]
- username: bo
  keyauth_credentials: [{key: bo_key}]
  jwt_secrets: [{key: bo-iss, algorithm: HS512, secret: bo-hmac-secret}]
- username: anon
  acls: [{group: nobody}]
"#;

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// An HS256/HS512 token signed at test time.
fn token(alg: &str, secret: &[u8], claims: Value) -> String {
    let header = b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes());
    let payload = b64(claims.to_string().as_bytes());
    let input = format!("{header}.{payload}");
    let key = match alg {
        "HS512" => ring::hmac::Key::new(ring::hmac::HMAC_SHA512, secret),
        _ => ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
    };
    let sig = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(sig.as_ref()))
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

async fn post(gw: &GatewayProcess, path: &str, headers: &[(&str, &str)]) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = client().post(gw.url(path)).json(&json!({"input": "hi"}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let h = r.headers().clone();
    (status, r.json().await.unwrap_or(Value::Null), h)
}

fn start(bed: &TestBed) -> GatewayProcess {
    bed.start(GatewaySpec::new(&[("kong.yaml", DECK)]))
}

#[tokio::test]
async fn jwt_answers_as_kong_and_the_token_never_reaches_the_provider() {
    let bed = TestBed::new().await;
    let gw = start(&bed);
    let good = token("HS256", b"alex-hmac-secret", json!({"iss": "alex-iss", "exp": now() + 600}));
    let (status, body, _) = post(&gw, "/jwt", &[("authorization", &format!("Bearer {good}"))]).await;
    assert_eq!(status, 200, "{body}");
    let sent = bed.mock.state.last().unwrap();
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {PROVIDER_KEY}").as_str()));
    assert!(!format!("{:?}", sent.headers).contains(&good));
    // In the query string too: taken out before the provider.
    let (status, _, _) = post(&gw, &format!("/jwt?jwt={good}&keep=1"), &[]).await;
    assert_eq!(status, 200);
    let sent = bed.mock.state.last().unwrap();
    assert_eq!(sent.target, "/v1/responses?keep=1");

    let forged = token("HS256", b"wrong-secret", json!({"iss": "alex-iss", "exp": now() + 600}));
    let (status, body, h) = post(&gw, "/jwt", &[("authorization", &format!("Bearer {forged}"))]).await;
    assert_eq!((status, body["message"].as_str()), (401, Some("Invalid signature")));
    assert_eq!(h["www-authenticate"], "Bearer error=\"invalid_token\"");
    let (status, body, h) = post(&gw, "/jwt", &[]).await;
    assert_eq!((status, body["message"].as_str()), (401, Some("Unauthorized")));
    assert_eq!(h["www-authenticate"], "Bearer");
    let expired = token("HS256", b"alex-hmac-secret", json!({"iss": "alex-iss", "exp": now() - 10}));
    let (status, body, _) = post(&gw, "/jwt", &[("authorization", &format!("Bearer {expired}"))]).await;
    assert_eq!((status, body), (401, json!({"exp": "token expired"})));
    // alg none, and a token for a credential of another algorithm.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(json!({"iss": "alex-iss", "exp": now() + 600}).to_string().as_bytes())
    );
    assert_eq!(post(&gw, "/jwt", &[("authorization", &format!("Bearer {none}"))]).await.0, 401);
    let wrong_alg = token("HS256", b"bo-hmac-secret", json!({"iss": "bo-iss", "exp": now() + 600}));
    let (status, body, _) = post(&gw, "/jwt", &[("authorization", &format!("Bearer {wrong_alg}"))]).await;
    assert_eq!((status, body["message"].as_str()), (401, Some("Invalid algorithm")));
    let bo = token("HS512", b"bo-hmac-secret", json!({"iss": "bo-iss", "exp": now() + 600}));
    assert_eq!(post(&gw, "/jwt", &[("authorization", &format!("Bearer {bo}"))]).await.0, 200);
}

#[tokio::test]
async fn anonymous_on_every_auth_plugin_makes_them_alternatives() {
    let bed = TestBed::new().await;
    let gw = start(&bed);
    let jwt = token("HS256", b"alex-hmac-secret", json!({"iss": "alex-iss"}));
    assert_eq!(post(&gw, "/either", &[("apikey", "bo_key")]).await.0, 200, "key alone");
    assert_eq!(post(&gw, "/either", &[("authorization", &format!("Bearer {jwt}"))]).await.0, 200, "jwt alone");
    // Neither: the anonymous consumer, whom the acl turns away.
    let (status, body, _) = post(&gw, "/either", &[]).await;
    assert_eq!((status, body["message"].as_str()), (403, Some("You cannot consume this service")));
    // A wrong key with a good token still passes (the token's plugin ran first).
    assert_eq!(post(&gw, "/either", &[("authorization", &format!("Bearer {jwt}")), ("apikey", "nope")]).await.0, 200);
    let log = gw.access_log_at_least(4).await;
    let mut consumers: Vec<&str> = log.iter().filter_map(|l| l["consumer"].as_str()).collect();
    consumers.sort();
    assert_eq!(consumers, vec!["alex", "alex", "anon", "bo"]);
}

#[tokio::test]
async fn acl_allow_lists() {
    let bed = TestBed::new().await;
    let gw = start(&bed);
    assert_eq!(post(&gw, "/gold", &[("apikey", "alex_key")]).await.0, 200);
    let (status, body, _) = post(&gw, "/gold", &[("apikey", "bo_key")]).await;
    assert_eq!((status, body["message"].as_str()), (403, Some("You cannot consume this service")));
    assert_eq!(post(&gw, "/gold", &[]).await.0, 401);
    assert_eq!(bed.mock.state.count(), 1);
}
