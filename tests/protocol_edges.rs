//! HTTP/1 edges, over raw sockets: `Expect: 100-continue` (refusals at once, `100 Continue`
//! before the body otherwise, `Expect` never forwarded), request ids (the upstream's passes
//! unchanged, the gateway's travels in `X-Aigate-Request-Id` and the access log has both), a
//! stream to an HTTP/1.0 client (raw bytes ended by closing, never chunked), and lingering
//! close (a client that sends a large body after an early refusal reads the answer).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::gateway::{client, GatewayProcess, GatewaySpec, TestBed};
use support::mock_openai::MockOpenAi;
use support::raw::{self, RawResponse};

/// An LLM route (`/anything`, key-auth, a 1 MiB body limit of its own), a plain service
/// (`/plain`) and a plain one with key-auth (`/keyed`).
const DECK: &str = r#"_format_version: "3.0"
services:
- name: llm
  url: http://unused.invalid
  routes:
  - name: llm
    paths: [/anything]
  plugins:
  - name: key-auth
  - name: ai-proxy
    config:
      route_type: llm/v1/responses
      auth: {header_name: Authorization, header_value: Bearer ${{ env "DECK_OPENAI_API_KEY" }}}
      model: {provider: openai, name: gpt-4o}
      max_request_body_size: 1048576
- name: plain
  url: http://ECHO/api
  routes:
  - name: plain
    paths: [/plain]
  - name: keyed
    paths: [/keyed]
    plugins:
    - name: key-auth
consumers:
- username: alex
  keyauth_credentials: [{key: hello_world}]
"#;

/// The test bed with the plain services upstream of an echo server.
async fn start(settings: &str) -> (TestBed, MockOpenAi, GatewayProcess) {
    let bed = TestBed::new().await;
    let echo = MockOpenAi::start("127.0.0.1:0", None).await;
    let deck = DECK.replace("ECHO", &echo.addr.to_string());
    let gw = bed.start(GatewaySpec::new(&[("kong.yaml", &deck)]).settings(settings));
    (bed, echo, gw)
}

/// Read one response head (up to the blank line) from a socket.
fn read_head(s: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                String::from_utf8_lossy(&head).into_owned(),
            ));
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Send a head with `Expect: 100-continue` and no body; what comes back first, and how long it took.
async fn expect_only(addr: SocketAddr, head: String) -> (String, Duration) {
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let start = Instant::now();
        s.write_all(head.as_bytes()).unwrap();
        let first = read_head(&mut s).unwrap_or_else(|e| panic!("no answer without the body: {e}"));
        (first, start.elapsed())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn an_expect_100_continue_refusal_is_answered_at_once() {
    let (_bed, _echo, gw) = start("").await;
    let body_len = 20;
    for (what, head, status) in [
        ("no key", format!("POST /anything HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n"), 401),
        ("no route", format!("POST /nowhere HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {body_len}\r\n\r\n"), 404),
        ("too large", "POST /anything HTTP/1.1\r\nHost: x\r\napikey: hello_world\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n".to_string(), 413),
    ] {
        let (first, took) = expect_only(gw.proxy, head).await;
        assert!(first.starts_with(&format!("HTTP/1.1 {status}")), "{what}: {first}");
        assert!(took < Duration::from_millis(900), "{what}: answered after {took:?}");
        // The body was never read: the connection is not kept for another request.
        assert!(first.to_ascii_lowercase().contains("connection: close"), "{what}: {first}");
    }
}

/// Send a head with `Expect: 100-continue`, wait for `100 Continue`, then send the body and
/// read the final answer; then a second request on the same connection.
async fn expect_then_body(addr: SocketAddr, head: String, body: String) -> (String, RawResponse, RawResponse) {
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        let interim = read_head(&mut s).unwrap_or_else(|e| panic!("no 100 Continue: {e}"));
        s.write_all(body.as_bytes()).unwrap();
        let final_answer = raw::read_response(&mut s).unwrap();
        s.write_all(b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let next = raw::read_response(&mut s).unwrap();
        (interim, final_answer, next)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn an_accepted_expect_100_continue_gets_100_before_the_body_and_expect_is_not_forwarded() {
    let (bed, echo, gw) = start("").await;
    let body = json!({"input": "hello"}).to_string();
    // LLM route (the gateway reads the body itself) and a plain service (Pingora forwards it).
    for (path, upstream) in [("/anything", &bed.mock), ("/plain/x", &echo)] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\napikey: hello_world\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let (interim, answer, next) = expect_then_body(gw.proxy, head, body.clone()).await;
        assert!(interim.starts_with("HTTP/1.1 100 Continue\r\n"), "{path}: {interim}");
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        // The connection stays usable after the interim answer.
        assert_eq!(answer.header("connection").as_deref(), Some("keep-alive"), "{path}");
        assert_eq!(next.status, 404);
        let got = upstream.state.last().unwrap();
        assert!(got.header("expect").is_none(), "{path}: Expect was forwarded");
        assert_eq!(got.json()["input"], "hello", "{path}");
    }
}

#[tokio::test]
async fn curl_does_not_wait_a_second_for_100_continue() {
    if std::process::Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl is not installed: skipped");
        return;
    }
    let (_bed, _echo, gw) = start("").await;
    let url = gw.url("/anything");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-H", "apikey: hello_world"])
            .args(["-H", "Expect: 100-continue", "-H", "Content-Type: application/json", "--data-binary"])
            .arg(json!({"input": "x".repeat(2000)}).to_string())
            .arg(url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, secs) = text.split_once(' ').unwrap();
    assert_eq!(code, "200", "{text}");
    let secs: f64 = secs.parse().unwrap();
    eprintln!("curl with Expect: 100-continue took {secs:.3} s");
    assert!(secs < 0.5, "curl stalled for {secs} s waiting for 100 Continue");
}

#[tokio::test]
async fn a_stream_to_an_http_1_0_client_is_raw_and_ended_by_closing() {
    let (_bed, _echo, gw) = start("").await;
    let body = json!({"input": "stream please", "stream": true}).to_string();
    let req = format!(
        "POST /anything HTTP/1.0\r\nHost: x\r\napikey: hello_world\r\nConnection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let addr = gw.proxy;
    let (head, rest) = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let head = read_head(&mut s).unwrap();
        // Read to the end: the connection must close when the stream is over.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        (head, rest)
    })
    .await
    .unwrap();
    let lower = head.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{head}");
    assert!(!lower.contains("transfer-encoding"), "chunked framing sent to an HTTP/1.0 client: {head}");
    assert!(!lower.contains("content-length"), "{head}");
    assert!(lower.contains("connection: close"), "{head}");
    let text = String::from_utf8_lossy(&rest);
    assert!(text.starts_with("event: response.created\n"), "not raw SSE: {text:.200}");
    assert!(text.trim_end().ends_with("}"), "{text}");
    assert!(text.contains("event: response.completed\n"), "{text}");
    assert!(!text.contains("\r\n"), "chunk framing in the body: {text:.300}");
}

#[tokio::test]
async fn the_upstreams_request_id_passes_and_the_gateways_travels_in_its_own_header() {
    let (_bed, _echo, gw) = start("").await;
    for path in ["/anything", "/plain/x"] {
        let resp = client()
            .post(gw.url(path))
            .header("apikey", "hello_world")
            .json(&json!({"input": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let h = resp.headers();
        assert_eq!(h["x-request-id"], "req_mock", "{path}: the upstream's id is what its support asks for");
        let own = h["x-aigate-request-id"].to_str().unwrap().to_string();
        assert_eq!(own.len(), 32, "{path}: {own}");
        let log = access_log_line(&gw, &own).await;
        assert_eq!(log["upstream_request_id"], "req_mock", "{path}: {log}");
    }
    // The gateway's own answers carry its id under both names, and in the body.
    let resp = client().post(gw.url("/anything")).json(&json!({"input": "x"})).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let own = resp.headers()["x-aigate-request-id"].to_str().unwrap().to_string();
    assert_eq!(resp.headers()["x-request-id"].to_str().unwrap(), own);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["request_id"], own);
    let log = access_log_line(&gw, &own).await;
    assert!(log.get("upstream_request_id").is_none(), "{log}");
}

async fn access_log_line(gw: &GatewayProcess, request_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(l) = gw.access_log().into_iter().find(|l| l["request_id"] == request_id) {
            return l;
        }
        assert!(Instant::now() < deadline, "no access log line for {request_id}:\n{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A naive client: writes the whole request (head and a large body) before reading anything.
/// Every write must succeed, and the answer must be readable after.
async fn naive(addr: SocketAddr, head: String, body: Vec<u8>) -> RawResponse {
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body).unwrap_or_else(|e| panic!("the gateway reset the connection while the body was sent: {e}"));
        raw::read_response(&mut s).unwrap_or_else(|e| panic!("the answer was lost: {e}"))
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_client_sending_a_large_body_after_an_early_refusal_reads_the_answer() {
    const MB: usize = 1 << 20;
    let (bed, echo, gw) = start("lingering_max_size: 64m\nmax_request_body_size: 32m").await;
    let big = vec![b'x'; 24 * MB];
    // 401 before the body (no key; the body is under the limit but too large to drain); 413
    // from the declared length over the LLM route's own limit.
    for (what, path, extra, status) in
        [("no key", "/keyed", "", 401), ("too large", "/anything", "apikey: hello_world\r\n", 413)]
    {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            big.len()
        );
        let r = naive(gw.proxy, head, big.clone()).await;
        assert_eq!(r.status, status, "{what}: {r:?}");
        assert!(r.body.starts_with('{'), "{what}: {r:?}");
    }
    assert_eq!(echo.state.count(), 0);
    // 413 found while a chunked body streams in, after the upstream request began.
    let mut chunked = Vec::with_capacity(25 * MB);
    for piece in big.chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = "POST /anything HTTP/1.1\r\nHost: x\r\napikey: hello_world\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_string();
    let r = naive(gw.proxy, head, chunked).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "request_too_large");
    assert_eq!(bed.mock.state.count(), 0, "a refused body reached the provider");
}
