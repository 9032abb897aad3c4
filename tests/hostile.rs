//! Hostile and malformed input: each gets a clear 4xx, nothing ambiguous reaches the
//! provider, no secret shows up anywhere, and the gateway keeps serving. Requests are written
//! raw on a socket.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use support::gateway::{client, walkthrough_deck, GatewayProcess, GatewaySpec, TestBed, PROVIDER_KEY};
use support::raw::{self, RawResponse};

fn spec() -> GatewaySpec {
    let deck = walkthrough_deck();
    let refs: Vec<(&str, &str)> = deck.iter().map(|(n, c)| (n.as_str(), c.as_str())).collect();
    GatewaySpec::new(&refs)
}

async fn send(gw: &GatewayProcess, req: Vec<u8>) -> RawResponse {
    raw::send_async(gw.proxy, req).await.unwrap_or_else(|e| panic!("{e}"))
}

async fn still_serving(gw: &GatewayProcess) {
    let r = client()
        .post(gw.url("/anything"))
        .header("apikey", "hello_world")
        .json(&json!({"input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the gateway stopped serving");
}

const BODY: &str = "{\"input\":\"x\"}";

fn post(extra_headers: &str, body: &str) -> Vec<u8> {
    format!("POST /anything HTTP/1.1\r\nHost: x\r\napikey: hello_world\r\n{extra_headers}\r\n{body}").into_bytes()
}

#[tokio::test]
async fn http_1_0_and_pipelining_work() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    let r = send(
        &gw,
        format!(
            "POST /anything HTTP/1.0\r\nHost: x\r\napikey: hello_world\r\nContent-Length: {}\r\n\r\n{BODY}",
            BODY.len()
        )
        .into_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["object"], "response");
    // Two requests in one write: two answers, in order.
    let one = post(&format!("Content-Length: {}\r\n", BODY.len()), BODY);
    let two = format!(
        "POST /anything HTTP/1.1\r\nHost: x\r\napikey: nope\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let addr = gw.proxy;
    let both = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut both = one;
        both.extend_from_slice(two.as_bytes());
        s.write_all(&both).unwrap();
        raw::read_responses(&mut s, 2).unwrap()
    })
    .await
    .unwrap();
    let (a, b) = (&both[0], &both[1]);
    assert_eq!((a.status, b.status), (200, 401));
    assert_eq!(a.json()["object"], "response");
    assert_eq!(b.json()["message"], "Unauthorized");
}

#[tokio::test]
async fn smuggling_attempts_are_refused_and_never_forwarded() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "length and chunked",
            post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", "d\r\n{\"input\":\"x\"}\r\n0\r\n\r\n"),
            400,
        ),
        ("two lengths", post("Content-Length: 13\r\nContent-Length: 5\r\n", BODY), 400),
        ("the same length twice", post("Content-Length: 13\r\nContent-Length: 13\r\n", BODY), 400),
        ("gzip then chunked", post("Transfer-Encoding: gzip, chunked\r\n", "d\r\n{\"input\":\"x\"}\r\n0\r\n\r\n"), 501),
        ("an obfuscated coding", post("Transfer-Encoding: xchunked\r\nContent-Length: 13\r\n", BODY), 400),
        (
            "a hex-prefixed chunk size",
            post("Transfer-Encoding: chunked\r\n", "0xd\r\n{\"input\":\"x\"}\r\n0\r\n\r\n"),
            400,
        ),
        (
            "a chunk size with a space",
            post("Transfer-Encoding: chunked\r\n", " d\r\n{\"input\":\"x\"}\r\n0\r\n\r\n"),
            400,
        ),
        ("a negative length", post("Content-Length: -13\r\n", BODY), 400),
    ];
    for (what, req, status) in cases {
        let r = send(&gw, req).await;
        assert_eq!(r.status, status, "{what}: {r:?}");
        assert_eq!(r.header("connection").as_deref(), Some("close"), "{what}: the connection is not reused");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(bed.mock.state.count(), 0, "something reached the provider");
    still_serving(&gw).await;
}

#[tokio::test]
async fn malformed_heads_get_400_and_the_gateway_stays_up() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    let many: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
    let huge = format!("X-Big: {}\r\n", "a".repeat(2 * 1024 * 1024));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a control byte in a header", b"GET /anything HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n".to_vec()),
        ("a space before the colon", b"GET /anything HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\n\r\nabc".to_vec()),
        ("300 headers", format!("GET /anything HTTP/1.1\r\nHost: x\r\n{many}\r\n").into_bytes()),
        ("a 2 MiB header", format!("GET /anything HTTP/1.1\r\nHost: x\r\n{huge}\r\n").into_bytes()),
        ("not HTTP", b"HELLO THERE\r\n\r\n".to_vec()),
    ];
    for (what, req) in cases {
        let r = send(&gw, req).await;
        // Pingora's parser refuses these before aigate sees them: 400, connection closed.
        assert_eq!(r.status, 400, "{what}: {r:?}");
    }
    still_serving(&gw).await;
}

#[tokio::test]
async fn heads_over_the_configured_limits_get_431_with_a_json_body() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec().settings("max_request_header_size: 16k\nmax_request_headers: 50\n"));
    let fields = |n: usize| -> String { (0..n).map(|i| format!("X-H{i}: v\r\n")).collect() };
    let cookie = |n: usize| format!("Cookie: {}\r\n", "c".repeat(n));
    let cases = [
        ("60 fields", fields(60), "Too many request header fields"),
        ("a 20 KiB cookie", cookie(20 * 1024), "Request header fields too large"),
        // Under the count limit, over the size limit in total.
        (
            "40 fields of 500 bytes",
            (0..40).map(|i| format!("X-H{i}: {}\r\n", "v".repeat(500))).collect(),
            "Request header fields too large",
        ),
    ];
    for (what, extra, message) in cases {
        let r = send(&gw, post(&format!("{extra}Content-Length: {}\r\n", BODY.len()), BODY)).await;
        assert_eq!(r.status, 431, "{what}: {r:?}");
        assert_eq!(r.header("content-type").as_deref(), Some("application/json; charset=utf-8"), "{what}");
        assert_eq!(r.json()["message"], message, "{what}");
        assert!(r.json()["request_id"].is_string(), "{what}");
    }
    // Just under both limits: served.
    let r =
        send(&gw, post(&format!("{}{}Content-Length: {}\r\n", fields(40), cookie(8 * 1024), BODY.len()), BODY)).await;
    assert_eq!(r.status, 200, "{r:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(bed.mock.state.count(), 1, "only the request within the limits reached the provider");
    let metrics = client().get(gw.status_url("/metrics")).send().await.unwrap().text().await.unwrap();
    let refused = metrics.lines().find(|l| l.starts_with("aigate_http_requests_total{") && l.contains("code=\"431\""));
    assert!(refused.is_some_and(|l| l.ends_with(" 3")), "the three 431s are counted: {refused:?}");
}

#[tokio::test]
async fn a_trickled_body_is_cut_by_the_body_timeout() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec().settings("client_body_timeout: 500\n"));
    for framing in ["Content-Length: 100\r\n", "Transfer-Encoding: chunked\r\n"] {
        let addr = gw.proxy;
        let head = post(framing, if framing.starts_with("Content") { "{\"input\":" } else { "9\r\n{\"input\":" });
        let (r, took) = tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(&head).unwrap();
            let start = Instant::now();
            // Then nothing: the gateway must give up on its own.
            (raw::read_response(&mut s), start.elapsed())
        })
        .await
        .unwrap();
        assert!(took < Duration::from_secs(3), "{framing}: held for {took:?}");
        if let Ok(r) = r {
            assert_eq!(r.status, 408, "{framing}: {r:?}");
        }
    }
    assert_eq!(bed.mock.state.count(), 0);
    still_serving(&gw).await;
}

/// A client that stops sending mid-head (slowloris) is dropped after `client_header_timeout`;
/// one that keeps sending within it is served, however slowly the head arrives in total.
#[tokio::test]
async fn a_stalled_request_head_is_cut_by_the_header_timeout() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec().settings("client_header_timeout: 1000\n"));
    let addr = gw.proxy;
    let (took, got) = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"POST /anything HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 1024];
        let got = std::io::Read::read(&mut s, &mut buf);
        (start.elapsed(), got.map_err(|e| e.kind()))
    })
    .await
    .unwrap();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "cut after {took:?}");
    assert!(matches!(got, Ok(0) | Err(std::io::ErrorKind::ConnectionReset)), "the connection is closed: {got:?}");

    // Pieces 600 ms apart: each read is within the timeout, so the request is served.
    let req = post(&format!("Content-Length: {}\r\n", BODY.len()), BODY);
    let r = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for piece in req.chunks(req.len() / 3 + 1) {
            s.write_all(piece).unwrap();
            std::thread::sleep(Duration::from_millis(600));
        }
        raw::read_response(&mut s)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(r.status, 200, "{r:?}");

    // An idle keep-alive connection is closed after the same time.
    let req = post(&format!("Content-Length: {}\r\n", BODY.len()), BODY);
    let (status, idle) = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(&req).unwrap();
        let status = raw::read_response(&mut s).unwrap().status;
        let start = Instant::now();
        let mut buf = [0u8; 64];
        let n = std::io::Read::read(&mut s, &mut buf).unwrap_or(0);
        assert_eq!(n, 0, "nothing but a close follows");
        (status, start.elapsed())
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert!(idle >= Duration::from_millis(900) && idle < Duration::from_secs(5), "idle for {idle:?}");
    still_serving(&gw).await;
}

#[tokio::test]
async fn no_secret_appears_in_any_log_metric_or_error_body() {
    let bed = TestBed::new().await;
    // Debug logging makes the check stronger: more is printed.
    let gw = bed.start(spec().settings("log_level: debug\nmax_request_body_size: 64k\nupstream_read_timeout: 300\n"));
    let mcp_token = "github_pat_11ABCDEF_very_secret";
    let consumer_key = "hello_world";
    let with_token = json!({"input": "x", "tools": [{"type": "mcp", "server_label": "gitmcp", "server_url": "https://api.githubcopilot.com/mcp/", "headers": {"Authorization": format!("Bearer {mcp_token}")}, "authorization": mcp_token}]});
    let c = client();
    let mut bodies = Vec::new();
    let push = |r: reqwest::Response| async move { r.text().await.unwrap_or_default() };
    // Every kind of answer: success, stream, wrong key, duplicate key, bad JSON, wrong model,
    // too large, upstream timeout, upstream error status, mid-stream death, no route.
    let reqs = vec![
        c.post(gw.url("/anything"))
            .header("apikey", consumer_key)
            .header("authorization", "Bearer sk-client-key-secret")
            .json(&with_token),
        c.post(gw.url("/anything"))
            .header("apikey", consumer_key)
            .json(&json!({"input": "x", "stream": true, "tools": with_token["tools"]})),
        c.post(gw.url("/anything")).header("apikey", "sk-wrong-consumer-key-zzz").json(&with_token),
        c.post(gw.url("/anything")).header("apikey", consumer_key).header("apikey", consumer_key).json(&with_token),
        c.post(gw.url(&format!("/anything?apikey={consumer_key}"))).header("apikey", consumer_key).json(&with_token),
        c.post(gw.url("/anything"))
            .header("apikey", consumer_key)
            .header("content-type", "application/json")
            .body(format!("{{\"input\": \"{mcp_token}\"")),
        c.post(gw.url("/anything"))
            .header("apikey", consumer_key)
            .json(&json!({"model": "gpt-3.5", "tools": with_token["tools"]})),
        c.post(gw.url("/anything"))
            .header("apikey", consumer_key)
            .json(&json!({"input": "y".repeat(100_000), "tools": with_token["tools"]})),
        c.post(gw.url("/anything")).header("apikey", consumer_key).header("x-mock-delay-ms", "1000").json(&with_token),
        c.post(gw.url("/anything")).header("apikey", consumer_key).header("x-mock-status", "500").json(&with_token),
        c.post(gw.url("/anything"))
            .header("apikey", consumer_key)
            .header("x-mock-die-after", "3")
            .json(&json!({"input": "x", "stream": true, "tools": with_token["tools"]})),
        c.post(gw.url("/nowhere")).header("apikey", consumer_key).json(&with_token),
    ];
    let mut statuses = Vec::new();
    for r in reqs {
        match r.send().await {
            Ok(resp) => {
                statuses.push(resp.status().as_u16());
                bodies.push(push(resp).await);
            }
            Err(e) => bodies.push(e.to_string()),
        }
    }
    for expected in [200, 401, 400, 413, 504, 500, 404] {
        assert!(statuses.contains(&expected), "no {expected} among {statuses:?}: {bodies:#?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics = c.get(gw.status_url("/metrics")).send().await.unwrap().text().await.unwrap();
    let status = c.get(gw.status_url("/status")).send().await.unwrap().text().await.unwrap();
    let logs = gw.logs();
    for (what, text) in [("logs", logs.as_str()), ("metrics", metrics.as_str()), ("status", status.as_str())] {
        for secret in [consumer_key, PROVIDER_KEY, mcp_token, "sk-client-key-secret", "sk-wrong-consumer-key-zzz"] {
            let line = text.lines().find(|l| l.contains(secret)).unwrap_or("");
            assert!(!text.contains(secret), "{secret} appears in the {what}: {}", &line[..line.len().min(600)]);
        }
    }
    // Error bodies are the gateway's or the provider's; neither repeats a credential. (The
    // walkthrough passes MCP tool headers through, so successful answers may echo the tools
    // the provider was given; the gateway's own errors never do.)
    for (i, b) in bodies.iter().enumerate().filter(|(i, _)| statuses.get(*i) != Some(&200)) {
        for secret in [consumer_key, PROVIDER_KEY, mcp_token, "sk-wrong-consumer-key-zzz"] {
            assert!(!b.contains(secret), "{secret} in error body #{i}: {b}");
        }
    }
    assert!(logs.contains("DEBUG"), "debug logging was on");
}

#[tokio::test]
async fn path_tricks_on_the_llm_route() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    let get = |path: &str, key: bool| {
        let k = if key { "apikey: hello_world\r\n" } else { "" };
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{k}Content-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
            BODY.len()
        )
        .into_bytes()
    };
    assert_eq!(send(&gw, get("/x/../anything", false)).await.status, 401);
    assert_eq!(send(&gw, get("/%61nything", false)).await.status, 401);
    assert_eq!(send(&gw, get("//anything", false)).await.status, 401);
    assert_eq!(send(&gw, get("/anything/./", true)).await.status, 200);
    assert_eq!(bed.mock.state.last().unwrap().target, "/v1/responses");
}
