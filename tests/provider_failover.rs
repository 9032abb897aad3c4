//! "OpenAI first, Anthropic when it fails": ai-proxy-advanced with targets of two providers.
//! A Chat Completions client whose OpenAI target fails is served by the Anthropic one — the
//! body rendered again for it (translated), the answer translated back and naming the model
//! that actually served it, in the body and in `X-Kong-LLM-Model`, and counted under the
//! provider that served it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use serde_json::{json, Value};
use support::gateway::{client, GatewaySpec, TestBed, ANTHROPIC_KEY, PROVIDER_KEY};

const DECK: &str = r#"_format_version: "3.0"
services:
- name: llm
  url: http://unused.invalid
  routes:
  - name: chat
    paths: [/v1/chat/completions]
plugins:
- name: ai-proxy-advanced
  config:
    balancer:
      algorithm: priority
      failover_criteria: [error, timeout, http_503]
    targets:
    - route_type: llm/v1/chat
      weight: 100
      auth: {header_name: Authorization, header_value: 'Bearer ${{ env "DECK_OPENAI_API_KEY" }}'}
      model: {provider: openai, name: gpt-4o, model_alias: smart, options: {upstream_url: "https://a.openai.test/v1/chat/completions"}}
    - route_type: llm/v1/chat
      weight: 10
      auth: {header_name: x-api-key, header_value: '${{ env "DECK_ANTHROPIC_API_KEY" }}'}
      model: {provider: anthropic, name: claude-x, model_alias: smart, options: {anthropic_version: "2023-06-01", max_tokens: 256}}
"#;

#[tokio::test]
async fn a_failing_openai_target_fails_over_to_anthropic_with_translation() {
    let bed = TestBed::new().await;
    let openai = bed.extra_upstream(&["a.openai.test"]).await;
    let anthropic = bed.extra_upstream(&["api.anthropic.com"]).await;
    *openai.state.fail_status.lock().unwrap() = Some(503);
    *anthropic.state.expected_key.lock().unwrap() = Some(ANTHROPIC_KEY.to_string());
    let gw = bed.start_resolving(
        GatewaySpec::new(&[("kong.yaml", DECK)]).settings("llm_target_max_fails: 100\n"),
        &[("a.openai.test:443", openai.addr), ("api.anthropic.com:443", anthropic.addr)],
    );
    let ask = |stream: bool| {
        let mut body = json!({"model": "smart", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
            "max_tokens": 100, "temperature": 0.3});
        if stream {
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        client().post(gw.url("/v1/chat/completions")).header("authorization", "Bearer sk-client").json(&body).send()
    };

    let resp = ask(false).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-kong-llm-model"], "anthropic/claude-x");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "claude-x", "the answer names the model that served it");
    assert!(body["choices"][0]["message"]["content"].as_str().unwrap().starts_with("[1 system block(s)]"));

    // OpenAI got the OpenAI-format body with its own model and key...
    let first = openai.state.last().unwrap();
    assert_eq!(first.target, "/v1/chat/completions");
    assert_eq!(first.json()["model"], "gpt-4o");
    assert_eq!(first.json()["messages"][0]["role"], "system");
    assert_eq!(first.header("authorization"), Some(format!("Bearer {PROVIDER_KEY}").as_str()));
    // ... Anthropic the same request rendered for it: its model, its options, its key, and
    // nothing of the first target's or the client's.
    let second = anthropic.state.last().unwrap();
    assert_eq!(second.target, "/v1/messages");
    let sent = second.json();
    assert_eq!((sent["model"].as_str(), sent["max_tokens"].as_u64()), (Some("claude-x"), Some(256)));
    assert_eq!(sent["system"][0]["text"], "Be brief.");
    assert_eq!(second.header("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(second.header("authorization"), None);

    let text = ask(true).await.unwrap().text().await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{text}");
    let first_chunk: Value = serde_json::from_str(events[0]).unwrap();
    assert_eq!(
        (first_chunk["model"].as_str(), first_chunk["choices"][0]["delta"]["role"].as_str()),
        (Some("claude-x"), Some("assistant"))
    );
    let usage: Value = serde_json::from_str(events[events.len() - 2]).unwrap();
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0, "{text}");

    assert_eq!(openai.state.count(), 2);
    assert_eq!(anthropic.state.count(), 2);
    let m = gw.metrics().await;
    let reported = anthropic.state.usage_reported.lock().unwrap().clone();
    let outputs: u64 = reported.iter().map(|u| u["output_tokens"].as_u64().unwrap()).sum();
    assert_eq!(
        support::prom::value(&m, "aigate_llm_tokens_total", &[("provider", "anthropic"), ("token_type", "output")]),
        Some(outputs as f64)
    );
    assert_eq!(support::prom::value(&m, "aigate_llm_tokens_total", &[("provider", "openai")]), None);
    assert_eq!(
        support::prom::value(&m, "aigate_upstream_errors_total", &[("kind", "http_503")]),
        Some(2.0),
        "each request failed once on OpenAI"
    );
    let log = gw.access_log_at_least(2).await;
    assert!(log.len() == 2 && log.iter().all(|l| l["upstream_attempts"] == 2), "{log:?}");
}
