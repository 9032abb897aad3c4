//! `llm_format: anthropic`: Anthropic-native clients (the `anthropic` SDKs, Claude Code) through
//! the real gateway — their own format passed through, with the gateway's key, Kong's model
//! rules and options under Anthropic's field names, the client's API version, exact usage from
//! Anthropic's cumulative stream, and the gateway's refusals in Anthropic's envelope.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use serde_json::{json, Value};
use support::gateway::{client, GatewayProcess, GatewaySpec, TestBed, ANTHROPIC_KEY};
use support::mock_openai::MockOpenAi;

struct Bed {
    _bed: TestBed,
    anthropic: MockOpenAi,
    gw: GatewayProcess,
}

fn deck(extra_plugins: &str) -> String {
    format!(
        r#"_format_version: "3.0"
services:
- name: llm
  url: http://unused.invalid
  routes:
  - name: claude
    paths: [/claude]
plugins:
- name: key-auth
  config: {{key_names: [x-api-key]}}
- name: ai-proxy
  config:
    route_type: llm/v1/chat
    llm_format: anthropic
    auth: {{header_name: x-api-key, header_value: '${{{{ env "DECK_ANTHROPIC_API_KEY" }}}}'}}
    model:
      provider: anthropic
      name: claude-x
      options: {{anthropic_version: "2023-06-01", max_tokens: 200}}
{extra_plugins}consumers:
- username: alex
  keyauth_credentials: [{{key: hello_world}}]
"#
    )
}

async fn bed(extra_plugins: &str) -> Bed {
    let bed = TestBed::new().await;
    let anthropic = bed.extra_upstream(&["api.anthropic.com"]).await;
    *anthropic.state.expected_key.lock().unwrap() = Some(ANTHROPIC_KEY.to_string());
    let gw = bed.start_resolving(
        GatewaySpec::new(&[("kong.yaml", &deck(extra_plugins))]),
        &[("api.anthropic.com:443", anthropic.addr)],
    );
    Bed { _bed: bed, anthropic, gw }
}

/// A request as Claude Code sends one: the consumer's key in `x-api-key`.
fn post(b: &Bed, path: &str, body: Value) -> reqwest::RequestBuilder {
    client()
        .post(b.gw.url(path))
        .header("x-api-key", "hello_world")
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .json(&body)
}

#[tokio::test]
async fn messages_pass_through_with_the_gateways_key() {
    let b = bed("").await;
    let body = json!({"model": "claude-x", "max_tokens": 50, "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]});
    for path in ["/claude/v1/messages", "/claude/v1/messages?beta=true", "/claude/messages", "/claude"] {
        let resp = post(&b, path, body.clone()).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["x-kong-llm-model"], "anthropic/claude-x");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["type"], "message", "{path}: {v}");
        let seen = b.anthropic.state.last().unwrap();
        assert_eq!(seen.target.split('?').next(), Some("/v1/messages"), "{path}");
        assert_eq!(seen.header("x-api-key"), Some(ANTHROPIC_KEY));
        assert_eq!(seen.header("authorization"), None);
        // The client's API version and betas select behaviour it was written for: kept.
        assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(seen.header("anthropic-beta"), Some("prompt-caching-2024-07-31"));
        // Configured options override the client's, under Anthropic's field names.
        assert_eq!(seen.json()["max_tokens"], 200);
        assert_eq!(seen.json()["system"], "Be brief.");
    }
    // A client that sends no version gets the configured one.
    let resp = client()
        .post(b.gw.url("/claude/v1/messages"))
        .header("x-api-key", "hello_world")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(b.anthropic.state.last().unwrap().header("anthropic-version"), Some("2023-06-01"));
}

#[tokio::test]
async fn streams_pass_through_and_usage_is_exact() {
    let b = bed("").await;
    let body =
        json!({"model": "claude-x", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
    let resp = post(&b, "/claude/v1/messages", body).header("x-mock-cache", "40").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    // Anthropic's own events, `event:` lines included (the SDKs need them).
    assert!(text.starts_with("event: message_start\ndata: "), "{text}");
    assert!(text.contains("event: message_delta\n") && text.trim_end().ends_with("{\"type\":\"message_stop\"}"));
    let reported = b.anthropic.state.usage_reported.lock().unwrap()[0].clone();
    let input = reported["input_tokens"].as_u64().unwrap() + 40 + 20;
    let m = b.gw.metrics().await;
    let tok =
        |t: &str| support::prom::value(&m, "aigate_llm_tokens_total", &[("provider", "anthropic"), ("token_type", t)]);
    assert_eq!(tok("input"), Some(input as f64));
    assert_eq!(tok("output"), reported["output_tokens"].as_f64());
    assert_eq!((tok("cached"), tok("cache_write")), (Some(40.0), Some(20.0)));
    assert_eq!(tok("total"), Some((input + reported["output_tokens"].as_u64().unwrap()) as f64));
    let log = b.gw.access_log_at_least(1).await;
    let line = log.last().unwrap();
    assert_eq!((line["mode"].as_str(), line["tokens"]["input"].as_u64()), (Some("stream"), Some(input)));
}

#[tokio::test]
async fn count_tokens_takes_the_model_rules_only_and_uses_no_tokens() {
    let b = bed("").await;
    let resp = post(
        &b,
        "/claude/v1/messages/count_tokens",
        json!({"model": "claude-x", "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.json::<Value>().await.unwrap()["input_tokens"].as_u64().unwrap() > 0);
    let seen = b.anthropic.state.last().unwrap();
    assert_eq!(seen.target, "/v1/messages/count_tokens");
    // The stand-in refuses max_tokens here, as Anthropic does: the option was not added.
    assert!(seen.json().get("max_tokens").is_none());
    let m = b.gw.metrics().await;
    assert_eq!(support::prom::value(&m, "aigate_llm_tokens_total", &[("provider", "anthropic")]), Some(0.0));
    assert_eq!(support::prom::value(&m, "aigate_llm_usage_missing_total", &[("provider", "anthropic")]), Some(0.0));
}

#[tokio::test]
async fn refusals_are_in_anthropics_envelope_and_never_forwarded() {
    let b = bed("").await;
    let resp = post(
        &b,
        "/claude/v1/messages",
        json!({"model": "claude-opus", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["message"], "cannot use own model - must be: claude-x");
    assert!(v["request_id"].is_string());
    // Paths that are not Messages calls are not sent anywhere with the gateway's key.
    for (method, path) in
        [("GET", "/claude/v1/models"), ("POST", "/claude/v1/messages/batches"), ("GET", "/claude/v1/messages")]
    {
        let resp = client()
            .request(method.parse().unwrap(), b.gw.url(path))
            .header("x-api-key", "hello_world")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{method} {path}");
        assert_eq!(resp.json::<Value>().await.unwrap()["error"]["type"], "not_found_error");
    }
    // Objects of the whole account (Files API documents, code-execution containers) are not
    // named through a shared key.
    let named = [
        json!({"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "file", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w"}},
            {"type": "text", "text": "Summarise"}]}]}),
        json!({"model": "claude-x", "max_tokens": 5, "container": "container_011CPR5CNjB747bTd36fQLFk",
            "messages": [{"role": "user", "content": "Hi"}]}),
    ];
    for body in named {
        let resp = post(&b, "/claude/v1/messages", body.clone()).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["type"], "error", "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("not available through this gateway"), "{v}");
    }
    // No consumer key: key-auth's own refusal (Kong's shape).
    let resp = client().post(b.gw.url("/claude/v1/messages")).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(b.anthropic.state.count(), 0);
}

#[tokio::test]
async fn mcp_servers_are_refused_where_ai_mcp_guard_governs_mcp() {
    let guard = "- name: ai-mcp-guard\n  config:\n    servers:\n    - {server_label: gitmcp, server_url: 'https://mcp.example/'}\n";
    let b = bed(guard).await;
    let resp = post(
        &b,
        "/claude/v1/messages",
        json!({"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}],
            "mcp_servers": [{"type": "url", "url": "https://evil.example/mcp", "name": "evil"}]}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["type"], "permission_error");
    assert_eq!(b.anthropic.state.count(), 0);
}
