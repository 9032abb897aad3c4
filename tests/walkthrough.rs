//! The walkthrough of issue 2, for real: the four decK fragments from conf/deck unchanged, the
//! real binary, a TLS upstream standing in for api.openai.com.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use serde_json::{json, Value};
use support::gateway::{client, walkthrough_deck, GatewaySpec, TestBed, PROVIDER_KEY};

const MCP_REQUEST: &str = r#"{"tools":[{"type":"mcp","server_label":"gitmcp","server_url":"https://api.githubcopilot.com/mcp/","require_approval":"never","headers":{"Authorization":"Bearer github_pat_TEST"}}],"input":"How do I use GitHub MCP?"}"#;

fn deck_spec() -> GatewaySpec {
    let deck = walkthrough_deck();
    let refs: Vec<(&str, &str)> = deck.iter().map(|(n, c)| (n.as_str(), c.as_str())).collect();
    GatewaySpec::new(&refs)
}

#[tokio::test]
async fn the_walkthrough_reaches_the_provider_with_its_key_and_the_configured_model() {
    let bed = TestBed::new().await;
    let gw = bed.start(deck_spec());
    let c = client();

    let resp = c
        .post(gw.url("/anything"))
        .header("apikey", "hello_world")
        .header("authorization", "Bearer sk-client-own-key")
        .header("content-type", "application/json")
        .body(MCP_REQUEST)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-request-id").is_some());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let rec = bed.mock.state.last().expect("the provider got the request");
    assert_eq!(rec.method, "POST");
    assert_eq!(rec.target, "/v1/responses");
    assert_eq!(rec.header("authorization"), Some(format!("Bearer {PROVIDER_KEY}").as_str()));
    assert_eq!(rec.header("host"), Some("api.openai.com"));
    assert_eq!(rec.header("apikey"), None, "the consumer key must not reach the provider");
    let sent = rec.json();
    assert_eq!(sent["model"], "gpt-4o");
    assert_eq!(sent["max_output_tokens"], 512);
    assert_eq!(sent["temperature"], 1.0);
    assert_eq!(sent["input"], "How do I use GitHub MCP?");
    assert_eq!(sent["tools"][0]["server_url"], "https://api.githubcopilot.com/mcp/");
    assert!(sent.get("max_tokens").is_none());
}

#[tokio::test]
async fn wrong_and_missing_keys_get_kongs_answers_and_never_reach_the_provider() {
    let bed = TestBed::new().await;
    let gw = bed.start(deck_spec());
    let c = client();

    let resp = c.post(gw.url("/anything")).header("apikey", "another_key").body(MCP_REQUEST).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Key");
    assert_eq!(resp.headers()["content-type"], "application/json; charset=utf-8");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["message"], "Unauthorized");

    let resp = c.post(gw.url("/anything")).body(MCP_REQUEST).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["message"], "No API key found in request");
    assert_eq!(body["request_id"].as_str().map(str::len), Some(32));

    assert_eq!(bed.mock.state.count(), 0);
    let _ = json!(null);
}
