//! OpenAI-format clients of an Anthropic target, through the real gateway: Chat Completions
//! requests become Messages requests (read from the stand-in's record), answers, streams and
//! errors come back in OpenAI's format, the gateway's Anthropic key is the only credential the
//! provider sees, and tokens are counted exactly per provider.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use futures_util::StreamExt;
use serde_json::{json, Value};
use support::gateway::{client, GatewayProcess, GatewaySpec, TestBed, ANTHROPIC_KEY};
use support::mock_openai::MockOpenAi;

struct Bed {
    bed: TestBed,
    anthropic: MockOpenAi,
    gw: GatewayProcess,
}

fn deck(options: &str) -> String {
    format!(
        r#"_format_version: "3.0"
services:
- name: llm
  url: http://unused.invalid
  routes:
  - name: chat
    paths: [/v1/chat/completions]
plugins:
- name: key-auth
- name: ai-proxy
  config:
    route_type: llm/v1/chat
    auth: {{header_name: x-api-key, header_value: '${{{{ env "DECK_ANTHROPIC_API_KEY" }}}}'}}
    model:
      provider: anthropic
      name: claude-x
      options: {{anthropic_version: "2023-06-01"{options}, input_cost: 3, output_cost: 15}}
consumers:
- username: alex
  keyauth_credentials: [{{key: hello_world}}]
"#
    )
}

async fn bed(options: &str) -> Bed {
    let bed = TestBed::new().await;
    let anthropic = bed.extra_upstream(&["api.anthropic.com"]).await;
    *anthropic.state.expected_key.lock().unwrap() = Some(ANTHROPIC_KEY.to_string());
    let gw = bed.start_resolving(
        GatewaySpec::new(&[("kong.yaml", &deck(options))]),
        &[("api.anthropic.com:443", anthropic.addr)],
    );
    Bed { bed, anthropic, gw }
}

fn ask(b: &Bed, body: Value) -> reqwest::RequestBuilder {
    client()
        .post(b.gw.url("/v1/chat/completions"))
        .header("apikey", "hello_world")
        // Provider keys a client may send: none of them reaches the provider.
        .header("authorization", "Bearer sk-client-openai")
        .header("x-api-key", "sk-client-anthropic")
        .header("api-key", "client-azure")
        .json(&body)
}

async fn metrics(b: &Bed) -> String {
    b.gw.metrics().await
}

/// The `data:` payloads of an SSE body.
fn data_events(text: &str) -> Vec<String> {
    text.split("\n\n").filter_map(|e| e.strip_prefix("data: ").map(str::to_string)).collect()
}

#[tokio::test]
async fn a_chat_request_is_a_messages_request_and_the_answer_a_chat_completion() {
    let b = bed("").await;
    let resp = ask(
        &b,
        json!({"model": "claude-x", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": "Hello"},
            {"role": "user", "content": [{"type": "text", "text": "and look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}
        ], "stop": ["END"], "temperature": 0.2, "user": "u-1"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-kong-llm-model"], "anthropic/claude-x");
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "claude-x");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let text = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.starts_with("[2 system block(s)] I see 1 image(s)."), "{text}");
    // What Anthropic received.
    let seen = b.anthropic.state.last().unwrap();
    assert_eq!(seen.target, "/v1/messages");
    assert_eq!(seen.header("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    for h in ["authorization", "api-key", "apikey", "cookie"] {
        assert_eq!(seen.header(h), None, "{h} reached the provider");
    }
    let sent = seen.json();
    assert_eq!(
        sent["system"],
        json!([{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in French."}])
    );
    assert_eq!(sent["max_tokens"], 4096);
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    assert_eq!(sent["metadata"], json!({"user_id": "u-1"}));
    assert_eq!(sent["messages"].as_array().unwrap().len(), 1, "two user messages are one turn");
    assert_eq!(sent["messages"][0]["content"][2]["source"]["type"], "base64");
    // Tokens: exactly what Anthropic reported, per provider.
    let reported = b.anthropic.state.usage_reported.lock().unwrap()[0].clone();
    let (input, output) = (reported["input_tokens"].as_u64().unwrap(), reported["output_tokens"].as_u64().unwrap());
    assert_eq!(body["usage"]["prompt_tokens"], input);
    assert_eq!(body["usage"]["completion_tokens"], output);
    let m = metrics(&b).await;
    let tok =
        |t: &str| support::prom::value(&m, "aigate_llm_tokens_total", &[("provider", "anthropic"), ("token_type", t)]);
    assert_eq!(tok("input"), Some(input as f64));
    assert_eq!(tok("output"), Some(output as f64));
    let cost = support::prom::value(&m, "aigate_llm_cost_total", &[("provider", "anthropic")]).unwrap();
    assert!((cost - (3.0 * input as f64 + 15.0 * output as f64) / 1e6).abs() < 1e-12, "{cost}");
}

#[tokio::test]
async fn configured_options_and_cache_tokens() {
    let b = bed(", max_tokens: 300, top_k: 20").await;
    let resp = ask(&b, json!({"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 9000}))
        .header("x-mock-cache", "100")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let sent = b.anthropic.state.last().unwrap().json();
    assert_eq!((sent["max_tokens"].as_u64(), sent["top_k"].as_u64()), (Some(300), Some(20)));
    assert_eq!(sent["model"], "claude-x");
    let reported = b.anthropic.state.usage_reported.lock().unwrap()[0].clone();
    let input = reported["input_tokens"].as_u64().unwrap() + 100 + 50;
    // OpenAI's meaning: the prompt includes cached tokens, and says how many were cached.
    assert_eq!(body["usage"]["prompt_tokens"], input);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
    let m = metrics(&b).await;
    let tok =
        |t: &str| support::prom::value(&m, "aigate_llm_tokens_total", &[("provider", "anthropic"), ("token_type", t)]);
    assert_eq!((tok("input"), tok("cached"), tok("cache_write")), (Some(input as f64), Some(100.0), Some(50.0)));
}

#[tokio::test]
async fn a_stream_is_translated_event_by_event_with_the_usage_chunk_when_asked() {
    let b = bed("").await;
    for include_usage in [true, false] {
        let mut req = json!({"model": "claude-x", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        if include_usage {
            req["stream_options"] = json!({"include_usage": true});
        }
        let resp = ask(&b, req).header("x-mock-deltas", "3").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let text = resp.text().await.unwrap();
        let events = data_events(&text);
        assert_eq!(events.last().unwrap(), "[DONE]", "{text}");
        let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "claude-x"));
        let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(content, "part0 part1 part2 ");
        let finish: Vec<&Value> =
            chunks.iter().map(|c| &c["choices"][0]["finish_reason"]).filter(|f| !f.is_null()).collect();
        assert_eq!(finish, vec!["stop"]);
        let usage_chunks: Vec<&Value> = chunks.iter().filter(|c| c.get("usage").is_some()).collect();
        assert_eq!(usage_chunks.len(), usize::from(include_usage), "{text}");
        if include_usage {
            let reported = b.anthropic.state.usage_reported.lock().unwrap()[0].clone();
            assert_eq!(usage_chunks[0]["choices"], json!([]));
            assert_eq!(usage_chunks[0]["usage"]["completion_tokens"], reported["output_tokens"]);
        }
        // Anthropic was asked for a stream, never for stream_options.
        let sent = b.anthropic.state.last().unwrap().json();
        assert_eq!(sent["stream"], true);
        assert!(sent.get("stream_options").is_none());
    }
    // Both streams counted exactly, the one without a usage chunk too.
    let reported = b.anthropic.state.usage_reported.lock().unwrap().clone();
    let sum = |k: &str| reported.iter().map(|u| u[k].as_u64().unwrap()).sum::<u64>() as f64;
    let m = metrics(&b).await;
    let tok =
        |t: &str| support::prom::value(&m, "aigate_llm_tokens_total", &[("provider", "anthropic"), ("token_type", t)]);
    assert_eq!(tok("output"), Some(sum("output_tokens")));
    assert_eq!(tok("input"), Some(sum("input_tokens")));
    assert_eq!(
        support::prom::value(&m, "aigate_llm_requests_total", &[("provider", "anthropic"), ("mode", "stream")]),
        Some(2.0)
    );
    assert_eq!(support::prom::value(&m, "aigate_llm_usage_missing_total", &[("provider", "anthropic")]), Some(0.0));
}

#[tokio::test]
async fn the_first_chunk_is_not_held_back() {
    let b = bed("").await;
    let resp = ask(&b, json!({"stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .header("x-mock-hold-after", "4")
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .expect("the role chunk waits for the rest of the stream")
        .unwrap()
        .unwrap();
    assert!(std::str::from_utf8(&first).unwrap().contains("\"role\":\"assistant\""));
    b.anthropic.state.release();
    while stream.next().await.is_some() {}
}

#[tokio::test]
async fn tool_calls_and_their_results_round_trip() {
    let b = bed("").await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let body: Value = ask(
        &b,
        json!({"messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": tools, "tool_choice": "auto"}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let call = body["choices"][0]["message"]["tool_calls"][0].clone();
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["city"], "Paris");
    let sent = b.anthropic.state.last().unwrap().json();
    assert_eq!(sent["tools"][0]["input_schema"]["properties"]["city"]["type"], "string");
    assert_eq!(sent["tool_choice"], json!({"type": "auto"}));
    // The client answers the call: a tool message after the assistant's.
    let assistant = body["choices"][0]["message"].clone();
    let body: Value = ask(
        &b,
        json!({"messages": [
            {"role": "user", "content": "Weather in Paris?"},
            assistant,
            {"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"}
        ], "tools": tools}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "stop", "{body}");
    assert!(body["choices"][0]["message"]["content"].as_str().unwrap().starts_with("Tool said: 18C and sunny."));
    let sent = b.anthropic.state.last().unwrap().json();
    assert_eq!(sent["messages"][1]["content"][1]["type"], "tool_use");
    assert_eq!(sent["messages"][1]["content"][1]["input"], json!({"city": "Paris", "unit": "c"}));
    assert_eq!(sent["messages"][2]["content"][0]["tool_use_id"], call["id"]);
    // Streamed: the call comes as tool_calls deltas.
    let text = ask(&b, json!({"stream": true, "messages": [{"role": "user", "content": "Weather?"}], "tools": tools}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let chunks: Vec<Value> =
        data_events(&text).iter().filter(|e| *e != "[DONE]").map(|e| serde_json::from_str(e).unwrap()).collect();
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({"city": "Paris", "unit": "c"}));
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["delta"]["tool_calls"][0]["id"].as_str().is_some_and(|i| i.starts_with("toolu_"))));
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
}

#[tokio::test]
async fn provider_errors_come_back_in_openais_envelope() {
    let b = bed("").await;
    for (cue, status, kind) in
        [("529", 503, "server_error"), ("429", 429, "rate_limit_error"), ("400", 400, "invalid_request_error")]
    {
        let resp = ask(&b, json!({"messages": [{"role": "user", "content": "hi"}]}))
            .header("x-mock-status", cue)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{cue}");
        if status == 429 {
            assert_eq!(resp.headers()["retry-after"], "1");
        }
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["type"], kind, "{body}");
        assert_eq!(body["error"]["message"], format!("mock status {cue}"));
        assert!(body.get("type").is_none(), "not Anthropic's envelope: {body}");
    }
    // An error event in a stream ends the client's stream with OpenAI's error chunk.
    let text = ask(&b, json!({"stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .header("x-mock-stream-error", "4")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let last: Value = serde_json::from_str(data_events(&text).last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "overloaded", "{text}");
}

#[tokio::test]
async fn what_cannot_be_translated_never_reaches_the_provider() {
    let b = bed("").await;
    for (body, field) in [
        (json!({"messages": [{"role": "user", "content": "hi"}], "n": 2}), "n"),
        (json!({"messages": [{"role": "user", "content": "hi"}], "logprobs": true}), "logprobs"),
        (json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 1.7}), "temperature"),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]}),
            "input_audio",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}}),
            "json_object",
        ),
    ] {
        let resp = ask(&b, body).send().await.unwrap();
        assert_eq!(resp.status(), 400);
        let e: Value = resp.json().await.unwrap();
        assert!(e["error"]["message"].as_str().unwrap().contains(field), "{e}");
    }
    assert_eq!(b.anthropic.state.count(), 0);
    drop(b.bed);
}
