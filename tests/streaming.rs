//! Server-Sent Events pass through as they come: no buffering, event spacing kept.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use support::gateway::{client, walkthrough_deck, GatewaySpec, TestBed};

fn spec() -> GatewaySpec {
    let deck = walkthrough_deck();
    let refs: Vec<(&str, &str)> = deck.iter().map(|(n, c)| (n.as_str(), c.as_str())).collect();
    GatewaySpec::new(&refs)
}

/// Split an SSE byte stream into events' `type`s.
fn event_types(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["type"].as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn an_event_reaches_the_client_while_the_upstream_holds_the_next() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    let resp = client()
        .post(gw.url("/anything"))
        .header("apikey", "hello_world")
        .header("x-mock-hold-after", "3")
        .json(&serde_json::json!({"input": "stream please", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    // The first three events arrive although the upstream has not sent the fourth.
    let deadline = Instant::now() + Duration::from_secs(5);
    while event_types(&seen).len() < 3 {
        let chunk = tokio::time::timeout_at(deadline.into(), stream.next())
            .await
            .expect("events held back by the gateway")
            .unwrap()
            .unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert_eq!(event_types(&seen), vec!["response.created", "response.in_progress", "response.output_item.added"]);
    // Nothing more comes while the upstream holds.
    assert!(tokio::time::timeout(Duration::from_millis(300), stream.next()).await.is_err());
    bed.mock.state.release();
    while let Some(chunk) = stream.next().await {
        seen.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    let types = event_types(&seen);
    assert_eq!(types.last().map(String::as_str), Some("response.completed"));
    assert!(types.iter().filter(|t| *t == "response.output_text.delta").count() >= 5);
    // Every event intact, with its sequence number, in order.
    let seqs: Vec<u64> = seen
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str::<Value>(d).unwrap()["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn event_spacing_survives_the_gateway() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    let resp = client()
        .post(gw.url("/anything"))
        .header("apikey", "hello_world")
        .header("x-mock-event-gap-ms", "80")
        .header("x-mock-deltas", "3")
        .json(&serde_json::json!({"input": "x", "stream": true}))
        .send()
        .await
        .unwrap();
    let start = Instant::now();
    let mut stream = resp.bytes_stream();
    let mut arrivals = Vec::new();
    let mut buf = String::new();
    while let Some(chunk) = stream.next().await {
        buf.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        let n = event_types(&buf).len();
        while arrivals.len() < n {
            arrivals.push(start.elapsed());
        }
    }
    // Events arrive spread over time, not all at once at the end.
    assert!(arrivals.len() >= 10, "{arrivals:?}");
    let first = arrivals[0];
    let last = *arrivals.last().unwrap();
    assert!(last - first > Duration::from_millis(500), "events bunched: {arrivals:?}");
}

#[tokio::test]
async fn chat_completions_stream_through_a_chat_route() {
    let bed = TestBed::new().await;
    let deck = r#"_format_version: "3.0"
services:
- name: chat
  url: http://unused.invalid
  routes:
  - name: chat-route
    paths: [/v1/chat/completions]
plugins:
- name: ai-proxy
  route: chat-route
  config:
    route_type: llm/v1/chat
    auth: {header_name: Authorization, header_value: Bearer ${{ env "DECK_OPENAI_API_KEY" }}}
    model: {provider: openai, name: gpt-4o-mini, options: {max_tokens: 64}}
"#;
    let gw = bed.start(GatewaySpec::new(&[("chat.yaml", deck)]));
    let resp = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&serde_json::json!({"messages": [{"role": "user", "content": "hi"}], "stream": true, "stream_options": {"include_usage": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(text.contains("\"usage\":{"), "{text}");
    let sent = bed.mock.state.last().unwrap();
    assert_eq!(sent.target, "/v1/chat/completions");
    assert_eq!(sent.json()["max_tokens"], 64);
    assert_eq!(sent.json()["model"], "gpt-4o-mini");
}

#[tokio::test]
async fn a_client_hanging_up_mid_stream_is_logged_not_an_error() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    let resp = client()
        .post(gw.url("/anything"))
        .header("apikey", "hello_world")
        .header("x-mock-hold-after", "2")
        .header("x-mock-pad", "200000")
        .json(&serde_json::json!({"input": "stream please", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.unwrap().unwrap().unwrap();
    assert!(!first.is_empty());
    // The client goes away; the upstream then sends the rest, which has nowhere to go.
    drop(stream);
    tokio::time::sleep(Duration::from_millis(100)).await;
    bed.mock.state.release();
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        if let Some(l) = gw.access_log().into_iter().next() {
            break l;
        }
        assert!(Instant::now() < deadline, "no access log line; logs: {}", gw.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The status line had gone out (nginx logs the same); the access log says who ended it.
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["error"], "client_closed", "{line}");
    assert_eq!(line["consumer"], "alex");
    let logs = gw.logs();
    assert!(!logs.contains("Fail to proxy"), "a client hang-up was logged as a gateway error:\n{logs}");
    assert!(!logs.contains(" ERROR "), "{logs}");
    // The gateway keeps serving.
    let ok = client()
        .post(gw.url("/anything"))
        .header("apikey", "hello_world")
        .json(&serde_json::json!({"input": "still there?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}
