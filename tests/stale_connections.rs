//! A pooled upstream connection the provider closes just as the gateway reuses it: the request
//! is sent again on a fresh connection (nginx's `proxy_next_upstream error`), whatever the
//! method, when no byte of an answer had arrived, nothing had gone to the client and the body
//! can be sent again — for write and read failures alike, TLS close without `close_notify`
//! included. The client never sees it; the metrics count it and count the answer once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use support::flaky_upstream::{Behaviour, Close, FlakyUpstream};
use support::gateway::{client, GatewayProcess, GatewaySpec, TestBed, PROVIDER_KEY};
use support::mock_openai::TlsIdentity;

const DECK: &str = r#"_format_version: "3.0"
services:
- name: llm
  url: http://unused.invalid
  routes:
  - name: llm-route
    paths: [/v1/responses]
plugins:
- name: ai-proxy-advanced
  config:
    targets:
    - route_type: llm/v1/responses
      auth: {header_name: Authorization, header_value: Bearer ${{ env "DECK_OPENAI_API_KEY" }}}
      model: {provider: openai, name: gpt-4o, options: {upstream_url: "https://flaky.openai.test/v1/responses"}}
"#;

async fn flaky(bed: &TestBed, behaviour: Behaviour) -> (FlakyUpstream, GatewayProcess) {
    let cert = bed.ca.server_cert(&["flaky.openai.test"]);
    let up = FlakyUpstream::start(TlsIdentity { cert_pem: cert.cert_pem, key_pem: cert.key_pem }, behaviour).await;
    let settings = format!(
        "tls_trusted_ca: {}\nupstream_resolve:\n  \"flaky.openai.test:443\": \"{}\"\n",
        bed.ca_path.display(),
        up.addr
    );
    let spec = GatewaySpec::new(&[("llm.yaml", DECK)]).settings(&settings).env("DECK_OPENAI_API_KEY", PROVIDER_KEY);
    let gw = GatewayProcess::start(bed.dir.path(), spec);
    (up, gw)
}

/// One request; its status and whether the answer was complete (a stream's last event).
async fn ask(c: &reqwest::Client, gw: &GatewayProcess, i: usize, stream: bool) -> (u16, String) {
    let body = json!({"input": format!("request {i}"), "stream": stream});
    let resp = c.post(gw.url("/v1/responses")).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_else(|e| format!("body cut: {e}")))
}

fn complete(stream: bool, text: &str) -> bool {
    if stream {
        text.contains("event: response.completed")
    } else {
        text.contains("\"usage\"")
    }
}

async fn metric(gw: &GatewayProcess, name: &str, labels: &[(&str, &str)]) -> f64 {
    let m = client().get(gw.status_url("/metrics")).send().await.unwrap().text().await.unwrap();
    support::prom::value(&m, name, labels).unwrap_or(0.0)
}

#[tokio::test]
async fn a_reused_connection_closed_under_the_request_is_retried_on_a_fresh_one() {
    for style in [Close::Fin, Close::Reset, Close::Notify] {
        let bed = TestBed::new().await;
        let behaviour = Behaviour { drop_on_reuse_per_mille: 1000, styles: vec![style], ..Behaviour::default() };
        let (up, gw) = flaky(&bed, behaviour).await;
        let c = client();
        for i in 0..6 {
            let stream = i % 2 == 1;
            let (status, text) = ask(&c, &gw, i, stream).await;
            assert_eq!(status, 200, "{style:?}, request {i}: {text}\n{}", gw.logs());
            assert!(complete(stream, &text), "{style:?}, request {i}: {text}");
        }
        let dropped = up.state.dropped.load(Ordering::Relaxed);
        // Every request after the first met a reused connection, except right after a retry
        // (the fresh connection is not kept: it was asked to close).
        assert_eq!(dropped, 3, "{style:?}");
        assert_eq!(up.state.answered.load(Ordering::Relaxed), 6, "{style:?}");
        assert_eq!(
            up.state.connection_close.load(Ordering::Relaxed),
            dropped,
            "{style:?}: retries close their connection"
        );
        let kind = [("kind", "stale_connection")];
        assert_eq!(metric(&gw, "aigate_upstream_errors_total", &kind).await, dropped as f64, "{style:?}");
        assert_eq!(metric(&gw, "aigate_upstream_errors_total", &[("kind", "upstream_closed")]).await, 0.0);
        // Tokens counted once per answer, as delivered.
        let total = metric(&gw, "aigate_llm_tokens_total", &[("token_type", "total")]).await;
        assert_eq!(total, up.state.tokens.load(Ordering::Relaxed) as f64, "{style:?}");
        // The access log is written in the background.
        let mut log = gw.access_log();
        for _ in 0..100 {
            if log.len() >= 6 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            log = gw.access_log();
        }
        assert_eq!(log.iter().filter(|e| e["upstream_attempts"] == 2).count(), dropped, "{style:?}");
    }
}

/// Connections closed while idle (a keep-alive timeout) and at random moments under requests,
/// with many requests in flight: not one fails.
#[tokio::test]
async fn connections_closed_at_random_moments_never_fail_a_request() {
    let bed = TestBed::new().await;
    let behaviour = Behaviour {
        drop_on_reuse_per_mille: 150,
        idle_close_ms: Some((5, 60)),
        event_gap_ms: 2,
        ..Behaviour::default()
    };
    let (up, gw) = flaky(&bed, behaviour).await;
    let c = client();
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let (c, url) = (c.clone(), gw.url("/v1/responses"));
        tasks.push(tokio::spawn(async move {
            let mut seed = 0x5851_f42d_4c95_7f2d_u64 ^ (t + 1);
            let mut failures = Vec::new();
            for i in 0..30 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                tokio::time::sleep(Duration::from_millis(seed % 40)).await;
                let stream = seed.is_multiple_of(3);
                let body = json!({"input": format!("client {t} request {i}"), "stream": stream});
                match c.post(&url).json(&body).send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let text = resp.text().await.unwrap_or_default();
                        if status != 200 || !complete(stream, &text) {
                            failures.push(format!("{status}: {text}"));
                        }
                    }
                    Err(e) => failures.push(format!("client error: {e}")),
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        failures.extend(t.await.unwrap());
    }
    let s = &up.state;
    let (dropped, idle) = (s.dropped.load(Ordering::Relaxed), s.idle_closes.load(Ordering::Relaxed));
    assert!(
        failures.is_empty(),
        "{} of 240 failed (dropped {dropped}, idle closes {idle}): {failures:?}",
        failures.len()
    );
    assert!(dropped >= 5, "the upstream dropped too few to prove anything: {dropped}");
    assert_eq!(s.answered.load(Ordering::Relaxed), 240);
    let stale = metric(&gw, "aigate_upstream_errors_total", &[("kind", "stale_connection")]).await as usize;
    // An idle close racing a request is a stale connection too.
    assert!(stale >= dropped && stale <= dropped + idle, "stale {stale}, dropped {dropped}, idle closes {idle}");
    let total = metric(&gw, "aigate_llm_tokens_total", &[("token_type", "total")]).await;
    assert_eq!(total, s.tokens.load(Ordering::Relaxed) as f64);
}
