//! The request body is checked before the provider gets a complete request, for small bodies
//! and for bodies far beyond Pingora's 64 KiB retry buffer, sent with Content-Length or chunked.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use serde_json::{json, Value};
use support::gateway::{client, walkthrough_deck, GatewaySpec, TestBed};

fn spec() -> GatewaySpec {
    let deck = walkthrough_deck();
    let refs: Vec<(&str, &str)> = deck.iter().map(|(n, c)| (n.as_str(), c.as_str())).collect();
    GatewaySpec::new(&refs)
}

const MIB: usize = 1024 * 1024;

fn big_body(model: Option<&str>) -> String {
    // The deciding field comes last, after a megabyte of input.
    let input = "a".repeat(MIB);
    match model {
        Some(m) => format!("{{\"input\":\"{input}\",\"model\":\"{m}\"}}"),
        None => format!("{{\"input\":\"{input}\"}}"),
    }
}

fn chunked(body: String) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.into_bytes().chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

async fn post(gw: &support::gateway::GatewayProcess, body: reqwest::Body) -> (u16, Value) {
    let resp = client()
        .post(gw.url("/anything"))
        .header("apikey", "hello_world")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_one_mib_body_arrives_whole_and_rewritten() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    for (how, body) in [("content-length", reqwest::Body::from(big_body(None))), ("chunked", chunked(big_body(None)))] {
        bed.mock.state.clear();
        let (status, answer) = post(&gw, body).await;
        assert_eq!(status, 200, "{how}: {answer}");
        let rec = bed.mock.state.last().expect("arrived");
        let sent = rec.json();
        assert_eq!(sent["input"].as_str().map(str::len), Some(MIB), "{how}");
        assert_eq!(sent["model"], "gpt-4o");
        assert_eq!(sent["max_output_tokens"], 512);
        // Framing is consistent with the rewritten body.
        if let Some(cl) = rec.header("content-length") {
            assert_eq!(cl.parse::<usize>().unwrap(), rec.body.len());
        }
    }
}

#[tokio::test]
async fn a_refused_one_mib_body_never_reaches_the_provider() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    for (how, body) in [
        ("content-length", reqwest::Body::from(big_body(Some("gpt-3.5-turbo")))),
        ("chunked", chunked(big_body(Some("gpt-3.5-turbo")))),
    ] {
        let (status, answer) = post(&gw, body).await;
        assert_eq!(status, 400, "{how}");
        assert_eq!(answer["error"]["message"], "cannot use own model - must be: gpt-4o", "{how}");
    }
    // The provider processed nothing: no complete request was ever received.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        bed.mock.state.count(),
        0,
        "{:?}",
        bed.mock.state.records().iter().map(|r| r.target.clone()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn small_bodies_are_checked_before_any_upstream_is_contacted() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    let c = client();
    let cases: Vec<(Option<&str>, &str, u16, &str)> = vec![
        (
            Some("application/json"),
            "{\"input\":",
            400,
            "content-type header does not match request body, or bad JSON formatting",
        ),
        (Some("application/json"), "[1,2,3]", 400, "must be a JSON object"),
        (Some("application/json"), "", 400, "bad JSON formatting"),
        (
            Some("application/json"),
            "{\"model\":\"gpt-4o-mini\",\"input\":\"x\"}",
            400,
            "cannot use own model - must be: gpt-4o",
        ),
        // Kong's bypass (#14536): no Content-Type must not skip the model rule.
        (None, "{\"model\":\"gpt-4o-mini\",\"input\":\"x\"}", 400, "cannot use own model"),
        (Some("text/plain"), "{\"input\":\"x\"}", 400, "content type must be application/json"),
        (Some("application/json"), "{\"model\":\"a\",\"model\":\"gpt-4o\",\"input\":\"x\"}", 400, "more than once"),
    ];
    for (ct, body, status, msg) in cases {
        let mut req = c.post(gw.url("/anything")).header("apikey", "hello_world").body(body.to_string());
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert!(v["error"]["message"].as_str().unwrap().contains(msg), "{body}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    assert_eq!(bed.mock.state.count(), 0);
    assert_eq!(
        bed.mock.state.connections.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "no upstream connection for refused small bodies"
    );
    // Without Content-Type a valid body is read as JSON (as Kong does).
    let resp =
        c.post(gw.url("/anything")).header("apikey", "hello_world").body("{\"input\":\"x\"}").send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_without_being_forwarded() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec().settings("max_request_body_size: 256k"));
    for (how, body) in [("content-length", reqwest::Body::from(big_body(None))), ("chunked", chunked(big_body(None)))] {
        let (status, answer) = post(&gw, body).await;
        assert_eq!(status, 413, "{how}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains("262144"), "{answer}");
    }
    assert_eq!(bed.mock.state.count(), 0);
}

#[tokio::test]
async fn the_stream_flag_and_deny() {
    let bed = TestBed::new().await;
    let deck = walkthrough_deck();
    let mut refs: Vec<(String, String)> = deck.clone();
    refs[1].1 = refs[1].1.replace("  config:\n", "  config:\n    response_streaming: deny\n");
    let refs: Vec<(&str, &str)> = refs.iter().map(|(n, c)| (n.as_str(), c.as_str())).collect();
    let gw = bed.start(GatewaySpec::new(&refs));
    let resp = client()
        .post(gw.url("/anything"))
        .header("apikey", "hello_world")
        .json(&json!({"input": "x", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["message"], "response streaming is not enabled for this LLM");
    assert_eq!(bed.mock.state.count(), 0);
}
