//! Self-hosted OpenAI-compatible servers (vLLM, Ollama, llama.cpp, LocalAI) as Kong declares
//! them — `provider: llama2` with `llama2_format: openai`, or `openai`/`mistral` with an
//! `upstream_url` — over plain http only where the settings allow it, with usage read exactly
//! even from servers that put it in every chunk.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use serde_json::{json, Value};
use support::gateway::{binary, client, GatewayProcess, GatewaySpec};
use support::mock_openai::MockOpenAi;

fn deck(url: &str) -> String {
    format!(
        r#"_format_version: "3.0"
services:
- name: llm
  url: http://unused.invalid
  routes:
  - name: local
    paths: [/local]
plugins:
- name: key-auth
- name: ai-proxy
  config:
    route_type: llm/v1/chat
    model: {{provider: llama2, name: llama3, options: {{llama2_format: openai, upstream_url: "{url}"}}}}
consumers:
- username: alex
  keyauth_credentials: [{{key: hello_world}}]
"#
    )
}

#[tokio::test]
async fn a_plain_http_server_named_in_the_settings_with_usage_in_every_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockOpenAi::start("127.0.0.1:0", None).await;
    let url = format!("http://127.0.0.1:{}/v1/chat/completions", server.addr.port());
    let gw = GatewayProcess::start(
        dir.path(),
        GatewaySpec::new(&[("kong.yaml", &deck(&url))])
            // Far less than 100 usage-carrying chunks: only the last ones are kept.
            .settings("llm_plain_http_hosts: [127.0.0.1]\nusage_scan_limit: 4k\n"),
    );
    let body = json!({"model": "llama3", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let text = client()
        .post(gw.url("/local"))
        .header("apikey", "hello_world")
        .header("authorization", "Bearer sk-client")
        .header("x-mock-usage-every-chunk", "1")
        .header("x-mock-deltas", "100")
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    // The last chunk's usage is the real one; the zeros before it are not counted.
    let last: Value = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .last()
        .unwrap();
    let total = last["usage"]["total_tokens"].as_u64().unwrap();
    assert!(total > 0);
    let m = gw.metrics().await;
    assert_eq!(
        support::prom::value(&m, "aigate_llm_tokens_total", &[("provider", "llama2"), ("token_type", "total")]),
        Some(total as f64)
    );
    // No key is configured: none is sent, and the client's never is.
    let seen = server.state.last().unwrap();
    assert_eq!(seen.target, "/v1/chat/completions");
    assert_eq!((seen.header("authorization"), seen.header("apikey")), (None, None));
}

#[test]
fn plain_http_is_refused_at_load_unless_the_settings_name_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let deck_path = dir.path().join("kong.yaml");
    std::fs::write(&deck_path, deck("http://vllm.internal:8000/v1/chat/completions")).unwrap();
    let check = |settings: &str| {
        let path = dir.path().join("aigate.yaml");
        std::fs::write(&path, format!("declarative_config: {}\n{settings}", deck_path.display())).unwrap();
        let out = std::process::Command::new(binary())
            .args(["check", "--config"])
            .arg(&path)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (ok, text) = check("");
    assert!(!ok, "{text}");
    assert!(text.contains("plain http") && text.contains("llm_plain_http_hosts"), "{text}");
    let (ok, text) = check("llm_plain_http_hosts: [other.internal]\n");
    assert!(!ok, "{text}");
    let (ok, text) = check("llm_plain_http_hosts: [vllm.internal]\n");
    assert!(ok, "{text}");
}
