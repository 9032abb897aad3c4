//! openid-connect bearer tokens through the real gateway: keys from a local identity
//! provider's discovery document (over TLS, trusted through tls_trusted_ca), issuer, audience
//! and scopes checked, the token's claim mapped to a consumer so that metrics, ACLs and MCP
//! rules apply per consumer, and a key rotation picked up on an unknown `kid`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use serde_json::{json, Value};
use support::gateway::{client, GatewayProcess, GatewaySpec, TestBed};
use support::idp::{Idp, SigningKey};
use support::mock_openai::TlsIdentity;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn deck(issuer: &str) -> String {
    format!(
        r#"_format_version: "3.0"
services:
- name: llm
  url: http://unused.invalid
  routes:
  - name: llm-route
    paths: [/v1/responses]
    plugins:
    - name: openid-connect
      config:
        issuer: {issuer}
        auth_methods: [bearer]
        audience_required: [aigate]
        scopes_required: [ai]
        consumer_claim: [preferred_username]
        consumer_by: [username]
    - name: ai-mcp-guard
      config:
        servers:
        - server_label: gitmcp
          server_url: https://api.githubcopilot.com/mcp/
          consumers: [alex]
plugins:
- name: ai-proxy
  config:
    route_type: llm/v1/responses
    auth: {{header_name: Authorization, header_value: Bearer ${{{{ env "DECK_OPENAI_API_KEY" }}}}}}
    model: {{provider: openai, name: gpt-4o}}
consumers:
- username: alex
- username: bo
"#
    )
}

struct Setup {
    bed: TestBed,
    idp: Idp,
    key: SigningKey,
    gw: GatewayProcess,
}

async fn setup() -> Setup {
    let bed = TestBed::new().await;
    let cert = bed.ca.server_cert(&["127.0.0.1"]);
    let key = SigningKey::generate("key-1");
    let idp = Idp::start(TlsIdentity { cert_pem: cert.cert_pem, key_pem: cert.key_pem }, &[&key]).await;
    let gw = bed.start(GatewaySpec::new(&[("kong.yaml", &deck(&idp.issuer))]));
    Setup { bed, idp, key, gw }
}

fn claims(s: &Setup, user: &str, extra: Value) -> Value {
    let mut c = json!({"iss": s.idp.issuer, "sub": format!("sub-{user}"), "preferred_username": user, "aud": "aigate", "scope": "openid ai", "exp": now() + 300, "iat": now()});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

async fn ask(s: &Setup, token: &str, body: Value) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = client().post(s.gw.url("/v1/responses")).bearer_auth(token).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let h = r.headers().clone();
    (status, r.json().await.unwrap_or(Value::Null), h)
}

#[tokio::test]
async fn tokens_map_to_consumers_and_their_rules() {
    let s = setup().await;
    let alex = s.key.sign(&claims(&s, "alex", json!({})));
    let (status, body, _) = ask(&s, &alex, json!({"input": "hi"})).await;
    assert_eq!(status, 200, "{body}\n{}", s.gw.logs());
    // The provider got its own key, not the token.
    let sent = s.bed.mock.state.last().unwrap();
    assert!(!sent.header("authorization").unwrap().contains(&alex));
    // MCP rules apply to the consumer the token names.
    let tool = json!({"type": "mcp", "server_label": "gitmcp", "server_url": "https://api.githubcopilot.com/mcp/"});
    assert_eq!(ask(&s, &alex, json!({"input": "x", "tools": [tool.clone()]})).await.0, 200);
    let bo = s.key.sign(&claims(&s, "bo", json!({})));
    assert_eq!(ask(&s, &bo, json!({"input": "x", "tools": [tool]})).await.0, 403);
    // Per-consumer metrics.
    let mut m = String::new();
    for _ in 0..50 {
        m = client().get(s.gw.status_url("/metrics")).send().await.unwrap().text().await.unwrap();
        if support::prom::value(&m, "aigate_http_requests_total", &[("consumer", "bo")]).is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        support::prom::value(&m, "aigate_http_requests_total", &[("consumer", "alex"), ("code", "200")]),
        Some(2.0)
    );
    assert_eq!(
        support::prom::value(&m, "aigate_http_requests_total", &[("consumer", "bo"), ("code", "403")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn issuer_audience_scope_and_expiry_are_enforced() {
    let s = setup().await;
    let cases = [
        (json!({"aud": "someone-else"}), 403),
        (json!({"scope": "openid"}), 403),
        (json!({"iss": "https://evil.example"}), 401),
        (json!({"exp": now() - 60}), 401),
        (json!({"preferred_username": "nobody"}), 403),
    ];
    for (extra, status) in cases {
        let t = s.key.sign(&claims(&s, "alex", extra.clone()));
        let (got, body, h) = ask(&s, &t, json!({"input": "x"})).await;
        assert_eq!(got, status, "{extra}: {body}");
        assert!(h["www-authenticate"].to_str().unwrap().starts_with("Bearer realm="), "{extra}");
    }
    // A token signed by a key the IdP never published.
    let stranger = SigningKey::generate("key-1");
    assert_eq!(ask(&s, &stranger.sign(&claims(&s, "alex", json!({}))), json!({"input": "x"})).await.0, 401);
    assert_eq!(ask(&s, "not.a.token", json!({"input": "x"})).await.0, 401);
    let r = client().post(s.gw.url("/v1/responses")).json(&json!({"input": "x"})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(s.bed.mock.state.count(), 0);
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_its_kid_is_first_seen() {
    let s = setup().await;
    let hits = s.idp.jwks_hits();
    let new_key = SigningKey::generate("key-2");
    s.idp.publish(&[&s.key, &new_key]);
    let t = new_key.sign(&claims(&s, "alex", json!({})));
    let (status, body, _) = ask(&s, &t, json!({"input": "x"})).await;
    assert_eq!(status, 200, "{body}");
    assert!(s.idp.jwks_hits() > hits);
}

#[tokio::test]
async fn a_reload_keeps_the_keys_it_has() {
    let s = setup().await;
    let t = s.key.sign(&claims(&s, "alex", json!({})));
    assert_eq!(ask(&s, &t, json!({"input": "x"})).await.0, 200);
    let hits = s.idp.jwks_hits();
    assert!(hits >= 1);
    // The identity provider's keys are process state: a reload of the same configuration
    // neither forgets them nor fetches them again.
    s.gw.reload().await;
    assert_eq!(ask(&s, &t, json!({"input": "x"})).await.0, 200);
    assert_eq!(s.idp.jwks_hits(), hits, "the keys were fetched again by the reload");
}
