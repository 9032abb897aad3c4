//! No credential the gateway holds returns to a client: the provider key and the MCP
//! credentials ai-mcp-guard injects are masked in answers even when an OpenAI-compatible
//! upstream echoes the request's headers and tools back, in JSON and in streams, wherever the
//! upstream's chunks happen to cut them. The test upstream records that it did receive (and
//! echo) them; the client's received bytes must not hold them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use futures_util::StreamExt;
use serde_json::{json, Value};
use support::gateway::{client, walkthrough_deck, GatewayProcess, GatewaySpec, TestBed, PROVIDER_KEY};

const GATEWAY_PAT: &str = "github_pat_GATEWAY_owned_token_0123456789";

const EXTRA: &str = r#"_format_version: "3.0"
services:
- name: chat
  url: http://unused.invalid
  routes:
  - name: chat-route
    paths: [/chat]
    plugins:
    - name: ai-proxy
      config:
        route_type: llm/v1/chat
        auth: {header_name: Authorization, header_value: Bearer ${{ env "DECK_OPENAI_API_KEY" }}}
        model: {provider: openai, name: gpt-4o-mini}
plugins:
- name: ai-mcp-guard
  config:
    servers:
    - server_label: gitmcp
      server_url: https://api.githubcopilot.com/mcp/
      allowed_tools: [search_code]
      credential: {header: Authorization, value: "Bearer ${{ env "DECK_GITHUB_PAT" }}"}
"#;

fn spec() -> GatewaySpec {
    let mut deck = walkthrough_deck();
    deck.push(("05-extra.yaml".into(), EXTRA.into()));
    let refs: Vec<(&str, &str)> = deck.iter().map(|(n, c)| (n.as_str(), c.as_str())).collect();
    GatewaySpec::new(&refs).env("DECK_GITHUB_PAT", GATEWAY_PAT)
}

fn mcp_body(stream: bool) -> Value {
    json!({"input": "x", "stream": stream, "tools": [{"type": "mcp", "server_label": "gitmcp",
        "server_url": "https://api.githubcopilot.com/mcp/", "require_approval": "never"}]})
}

fn masked(secret: &str) -> String {
    format!("Bearer {}", "*".repeat(secret.len()))
}

/// POST and read every byte the client receives.
async fn post(gw: &GatewayProcess, path: &str, body: &Value, headers: &[(&str, String)]) -> (u16, Vec<u8>) {
    let mut req = client().post(gw.url(path)).header("apikey", "hello_world").header("x-mock-echo-headers", "1");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.json(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let mut stream = resp.bytes_stream();
    let mut got = Vec::new();
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    (status, got)
}

fn assert_clean(bytes: &[u8], what: &str) {
    let text = String::from_utf8_lossy(bytes);
    assert!(!text.contains(PROVIDER_KEY), "the provider key reached the client ({what}): {text}");
    assert!(!text.contains(GATEWAY_PAT), "the MCP credential reached the client ({what}): {text}");
}

/// The `data:` payloads of an SSE stream.
fn events(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect()
}

#[tokio::test]
async fn echoed_keys_and_mcp_credentials_are_masked_wherever_the_chunks_cut_them() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    let longest = PROVIDER_KEY.len().max(GATEWAY_PAT.len());
    for stream in [false, true] {
        // Unsplit, then cut 0..=len bytes into every echoed token.
        for k in std::iter::once(None).chain((0..=longest).map(Some)) {
            let split: Vec<(&str, String)> = k.map(|k| ("x-mock-split-in-token", k.to_string())).into_iter().collect();
            let (status, got) = post(&gw, "/anything", &mcp_body(stream), &split).await;
            let what = format!("stream {stream}, split {k:?}");
            assert_eq!(status, 200, "{what}: {}", String::from_utf8_lossy(&got));
            // The upstream did receive both, and echoed them.
            let sent = bed.mock.state.last().unwrap();
            assert_eq!(sent.header("authorization"), Some(format!("Bearer {PROVIDER_KEY}").as_str()));
            assert_eq!(sent.json()["tools"][0]["headers"]["Authorization"], format!("Bearer {GATEWAY_PAT}"));
            assert_clean(&got, &what);
            let response = if stream {
                let evs = events(&got);
                assert_eq!(evs.last().unwrap()["type"], "response.completed", "{what}");
                evs.last().unwrap()["response"].clone()
            } else {
                serde_json::from_slice(&got).unwrap_or_else(|e| panic!("{what}: {e}"))
            };
            // Masked in place, same length: the rest of the answer is intact.
            assert_eq!(response["echo_headers"]["authorization"], masked(PROVIDER_KEY), "{what}");
            assert_eq!(response["tools"][0]["headers"]["Authorization"], masked(GATEWAY_PAT), "{what}");
            assert_eq!(response["status"], "completed");
        }
    }
}

#[tokio::test]
async fn a_stored_response_read_back_and_a_chat_answer_are_masked_too() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    let (status, got) = post(&gw, "/anything", &mcp_body(false), &[]).await;
    assert_eq!(status, 200);
    let id = serde_json::from_slice::<Value>(&got).unwrap()["id"].as_str().unwrap().to_string();
    let resp = client().get(gw.url(&format!("/anything/{id}"))).header("apikey", "hello_world").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let got = resp.bytes().await.unwrap();
    assert!(String::from_utf8_lossy(&got).contains(&masked(GATEWAY_PAT)), "{}", String::from_utf8_lossy(&got));
    assert_clean(&got, "stored response");

    let chat = json!({"messages": [{"role": "user", "content": "hi"}]});
    for stream in [false, true] {
        for k in [None, Some(0), Some(1), Some(PROVIDER_KEY.len() / 2), Some(PROVIDER_KEY.len() - 1)] {
            let split: Vec<(&str, String)> = k.map(|k| ("x-mock-split-in-token", k.to_string())).into_iter().collect();
            let mut body = chat.clone();
            body["stream"] = json!(stream);
            let (status, got) = post(&gw, "/chat", &body, &split).await;
            let what = format!("chat stream {stream}, split {k:?}");
            assert_eq!(status, 200, "{what}: {}", String::from_utf8_lossy(&got));
            assert_clean(&got, &what);
            let first = if stream { events(&got)[0].clone() } else { serde_json::from_slice(&got).unwrap() };
            assert_eq!(first["echo_headers"]["authorization"], masked(PROVIDER_KEY), "{what}");
        }
    }
}

#[tokio::test]
async fn a_compressed_answer_that_cannot_be_checked_is_refused() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    let (status, got) = post(&gw, "/anything", &mcp_body(false), &[("x-mock-gzip", "1".into())]).await;
    assert_eq!(status, 502, "{}", String::from_utf8_lossy(&got));
    assert_clean(&got, "compressed");
    let err: Value = serde_json::from_slice(&got).unwrap();
    assert_eq!(err["error"]["code"], "compressed_response");
    // The upstream was asked for an uncompressed answer.
    assert_eq!(bed.mock.state.last().unwrap().header("accept-encoding"), Some("identity"));
}
