//! Upstream faults, each against a local upstream that misbehaves on cue: the client gets a
//! clear JSON error naming the kind of failure (never a key), and the gateway keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use support::certs::TestCa;
use support::gateway::{client, GatewayProcess, GatewaySpec, TestBed, PROVIDER_KEY};
use support::mock_openai::{MockOpenAi, TlsIdentity};

/// One LLM route to `upstream_url`, with balancer settings.
fn llm_deck(upstream_url: &str, balancer: &str) -> String {
    format!(
        r#"_format_version: "3.0"
services:
- name: llm
  url: http://unused.invalid
  routes:
  - name: llm-route
    paths: [/v1/responses]
plugins:
- name: ai-proxy-advanced
  config:
    balancer: {{{balancer}}}
    targets:
    - route_type: llm/v1/responses
      auth: {{header_name: Authorization, header_value: Bearer ${{{{ env "DECK_OPENAI_API_KEY" }}}}}}
      model: {{provider: openai, name: gpt-4o, options: {{upstream_url: "{upstream_url}"}}}}
"#
    )
}

fn start(bed: &TestBed, deck: &str, settings: &str) -> GatewayProcess {
    bed.start(GatewaySpec::new(&[("llm.yaml", deck)]).settings(settings))
}

async fn ask(gw: &GatewayProcess, body: Value, headers: &[(&str, &str)]) -> (u16, Value, Duration) {
    let start = Instant::now();
    let mut req = client().post(gw.url("/v1/responses")).json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), start.elapsed())
}

fn assert_no_secret(v: &Value) {
    let text = v.to_string();
    assert!(!text.contains(PROVIDER_KEY), "{text}");
}

#[tokio::test]
async fn refused_tls_and_dns_failures_are_named() {
    let bed = TestBed::new().await;
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    // A server whose certificate comes from another CA, and one for another name.
    let other_ca = TestCa::new("someone else");
    let wrong_ca_cert = other_ca.server_cert(&["api.openai.com"]);
    let wrong_ca = MockOpenAi::start(
        "127.0.0.1:0",
        Some(TlsIdentity { cert_pem: wrong_ca_cert.cert_pem, key_pem: wrong_ca_cert.key_pem }),
    )
    .await;
    let wrong_name = bed.extra_upstream(&["not-openai.example"]).await;
    let cases = [
        (
            format!("\"refused.openai.test:443\": \"{closed}\""),
            "https://refused.openai.test/v1/responses",
            502,
            "connect_refused",
        ),
        (
            format!("\"wrongca.openai.test:443\": \"{}\"", wrong_ca.addr),
            "https://wrongca.openai.test/v1/responses",
            502,
            "tls_failure",
        ),
        (
            format!("\"wrongname.openai.test:443\": \"{}\"", wrong_name.addr),
            "https://wrongname.openai.test/v1/responses",
            502,
            "tls_failure",
        ),
        (String::new(), "https://no-such-host.invalid/v1/responses", 502, "dns_failure"),
    ];
    for (resolve, url, status, kind) in cases {
        let deck = llm_deck(url, "");
        let dir = tempfile::tempdir().unwrap();
        let mut spec = GatewaySpec::new(&[("llm.yaml", &deck)]).env("DECK_OPENAI_API_KEY", PROVIDER_KEY);
        spec = spec.settings(&format!("tls_trusted_ca: {}\n", bed.ca_path.display()));
        if !resolve.is_empty() {
            spec = spec.settings(&format!("upstream_resolve:\n  {resolve}\n"));
        }
        let gw = GatewayProcess::start(dir.path(), spec);
        let (got, body, _) = ask(&gw, json!({"input": "x"}), &[]).await;
        assert_eq!(got, status, "{url}: {body}");
        assert_eq!(body["error"]["code"], kind, "{url}: {body}");
        assert_no_secret(&body);
        // The gateway keeps serving.
        assert_eq!(client().get(gw.status_url("/status/ready")).send().await.unwrap().status(), 200);
        let (again, _, _) = ask(&gw, json!({"input": "x"}), &[]).await;
        assert_eq!(again, status);
        assert!(!gw.logs().contains(PROVIDER_KEY));
    }
}

#[tokio::test]
async fn timeouts_answer_504_and_idle_gaps_do_not_end_long_streams() {
    let bed = TestBed::new().await;
    let deck = llm_deck("https://api.openai.com/v1/responses", "read_timeout: 400, connect_timeout: 400");
    let gw = start(&bed, &deck, "");
    // The upstream takes longer than the read timeout to answer.
    let (status, body, took) = ask(&gw, json!({"input": "x"}), &[("x-mock-delay-ms", "2000")]).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "read_timeout");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    // A stream much longer than the read timeout, whose gaps are shorter: it survives.
    let resp = client()
        .post(gw.url("/v1/responses"))
        .header("x-mock-event-gap-ms", "150")
        .header("x-mock-deltas", "15")
        .json(&json!({"input": "x", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let start = Instant::now();
    let text = resp.text().await.unwrap();
    assert!(start.elapsed() > Duration::from_secs(2), "the stream really was long");
    assert!(text.contains("event: response.completed"), "the stream ended early");
}

#[tokio::test]
async fn a_tls_handshake_that_never_completes_is_a_connect_timeout() {
    let bed = TestBed::new().await;
    // Accepts TCP and never answers the TLS ClientHello.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    let deck = llm_deck("https://silent.openai.test/v1/responses", "connect_timeout: 300");
    let dir = tempfile::tempdir().unwrap();
    let spec = GatewaySpec::new(&[("llm.yaml", &deck)]).env("DECK_OPENAI_API_KEY", PROVIDER_KEY).settings(&format!(
        "tls_trusted_ca: {}\nupstream_resolve:\n  \"silent.openai.test:443\": \"{addr}\"\n",
        bed.ca_path.display()
    ));
    let gw = GatewayProcess::start(dir.path(), spec);
    let (status, body, took) = ask(&gw, json!({"input": "x"}), &[]).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "connect_timeout");
    // Far below the 60 s default, with room for a loaded machine.
    assert!(took < Duration::from_secs(6), "{took:?}");
}

/// Read one HTTP/1 request (head, then a Content-Length or chunked body); false at EOF.
fn read_request(s: &mut std::net::TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let n = match s.read(&mut tmp) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        buf.extend_from_slice(&tmp[..n]);
        let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        if let Some(h) = text.find("\r\n\r\n") {
            let cl = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)));
            let done = match cl {
                Some(n) => buf.len() >= h + 4 + n,
                None => !text.contains("transfer-encoding: chunked") || text.ends_with("0\r\n\r\n"),
            };
            if done {
                return true;
            }
        }
    }
}

/// A plain-HTTP upstream that answers the first request of each connection as keep-alive and
/// closes the connection, unanswered, when a second request arrives on it — what a server
/// does when its idle timeout strikes just as a pooled connection is reused.
fn closing_upstream() -> (std::net::SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let answered = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let (a, d) = (answered.clone(), dropped.clone());
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let (a, d) = (a.clone(), d.clone());
            std::thread::spawn(move || {
                if !read_request(&mut s) {
                    return;
                }
                let body = r#"{"id":"resp_x","object":"response","status":"completed","output":[],"usage":{"input_tokens":1,"output_tokens":1,"total_tokens":2}}"#;
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                a.fetch_add(1, Ordering::SeqCst);
                if read_request(&mut s) {
                    d.fetch_add(1, Ordering::SeqCst);
                }
                // Dropping the socket closes it without an answer.
            });
        }
    });
    (addr, answered, dropped)
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_upstream_does_not_fail_the_next_post() {
    let bed = TestBed::new().await;
    let (addr, answered, dropped) = closing_upstream();
    let deck = llm_deck(&format!("http://{addr}/v1/responses"), "");
    let gw = start(&bed, &deck, "llm_plain_http_hosts: [127.0.0.1]\n");
    for i in 0..5 {
        let (status, body, _) = ask(&gw, json!({"input": format!("request {i}")}), &[]).await;
        assert_eq!(status, 200, "request {i}: {body}");
        // The gateway pools the connection just after the client has its answer: give it time,
        // so the next request is the one that meets it.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answered.load(Ordering::SeqCst), 5);
    // Requests 2 and 4 met a dead pooled connection and were sent again on a fresh one, which
    // was closed after them (nobody could reuse it); requests 3 and 5 found the pool empty.
    assert_eq!(dropped.load(Ordering::SeqCst), 2, "each POST on a dead pooled connection was retried on a fresh one");
}

#[tokio::test]
async fn an_upstream_dying_mid_stream_ends_the_clients_stream_promptly() {
    let bed = TestBed::new().await;
    let deck = llm_deck("https://api.openai.com/v1/responses", "");
    let gw = start(&bed, &deck, "");
    let resp = client()
        .post(gw.url("/v1/responses"))
        .header("x-mock-die-after", "5")
        .json(&json!({"input": "x", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let start = Instant::now();
    let mut s = resp.bytes_stream();
    let mut text = String::new();
    let mut ended_with_error = false;
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(5), s.next()).await.expect("the stream hung") {
        match chunk {
            Ok(c) => text.push_str(std::str::from_utf8(&c).unwrap()),
            Err(_) => {
                ended_with_error = true;
                break;
            }
        }
    }
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(ended_with_error, "a truncated stream must not look complete");
    assert!(!text.contains("response.completed"));
    let m = client().get(gw.status_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        support::prom::value(&m, "aigate_upstream_errors_total", &[("route", "llm-route")]).unwrap_or(0.0) >= 1.0,
        "{m}"
    );
}

#[tokio::test]
async fn a_client_leaving_mid_stream_closes_the_upstream_connection() {
    let bed = TestBed::new().await;
    let deck = llm_deck("https://api.openai.com/v1/responses", "");
    let gw = start(&bed, &deck, "");
    let resp = client()
        .post(gw.url("/v1/responses"))
        .header("x-mock-event-gap-ms", "100")
        .header("x-mock-deltas", "100")
        .json(&json!({"input": "x", "stream": true}))
        .send()
        .await
        .unwrap();
    let mut s = resp.bytes_stream();
    let _first = s.next().await.unwrap().unwrap();
    drop(s);
    // The provider stops producing (and billing) soon after.
    let deadline = Instant::now() + Duration::from_secs(3);
    while bed.mock.state.client_gone.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the upstream stream kept going after the client left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
