//! ai-proxy-advanced with several targets: balancing algorithms, failover per
//! `failover_criteria`, client errors returned as they are, and passive health.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::gateway::{client, GatewayProcess, GatewaySpec, TestBed};
use support::mock_openai::MockOpenAi;

struct Two {
    bed: TestBed,
    a: MockOpenAi,
    b: MockOpenAi,
    /// Where target A's name resolves (the mock, or a closed port).
    a_addr: std::net::SocketAddr,
}

async fn two() -> Two {
    let bed = TestBed::new().await;
    let a = bed.extra_upstream(&["a.openai.test"]).await;
    let b = bed.extra_upstream(&["b.openai.test"]).await;
    let a_addr = a.addr;
    Two { bed, a, b, a_addr }
}

impl Two {
    fn start(&self, balancer: &str, weights: (u32, u32), extra_settings: &str) -> GatewayProcess {
        let deck = format!(
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
    balancer:
{balancer}
    targets:
    - route_type: llm/v1/responses
      weight: {wa}
      auth: {{header_name: Authorization, header_value: Bearer ${{{{ env "DECK_OPENAI_API_KEY" }}}}}}
      model: {{provider: openai, name: gpt-4o, options: {{upstream_url: "https://a.openai.test/v1/responses"}}}}
    - route_type: llm/v1/responses
      weight: {wb}
      auth: {{header_name: Authorization, header_value: Bearer ${{{{ env "DECK_OPENAI_API_KEY" }}}}}}
      model: {{provider: openai, name: gpt-4o, options: {{upstream_url: "https://b.openai.test/v1/responses"}}}}
"#,
            wa = weights.0,
            wb = weights.1,
        );
        let settings = format!(
            "tls_trusted_ca: {}\nupstream_resolve:\n  \"a.openai.test:443\": \"{}\"\n  \"b.openai.test:443\": \"{}\"\n{extra_settings}",
            self.bed.ca_path.display(),
            self.a_addr,
            self.b.addr
        );
        let spec = GatewaySpec::new(&[("llm.yaml", &deck)])
            .settings(&settings)
            .env("DECK_OPENAI_API_KEY", support::gateway::PROVIDER_KEY);
        GatewayProcess::start(self.bed.dir.path(), spec)
    }
}

async fn ask(gw: &GatewayProcess, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = client().post(gw.url("/v1/responses")).json(&json!({"input": "hi"}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_failing_target_is_skipped_and_the_client_gets_the_healthy_answer() {
    let t = two().await;
    *t.a.state.fail_status.lock().unwrap() = Some(503);
    let gw = t.start(
        "      failover_criteria: [error, timeout, http_503]",
        (1, 1),
        "llm_target_max_fails: 3\nllm_target_fail_timeout: 1500\n",
    );
    for _ in 0..8 {
        let (status, body) = ask(&gw, &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["object"], "response");
    }
    // Passive health: after 3 failures A is out; it got at most 3 requests.
    let a_seen = t.a.state.count();
    assert!((1..=3).contains(&a_seen), "A saw {a_seen}");
    assert_eq!(t.b.state.count(), 8);
    for _ in 0..4 {
        assert_eq!(ask(&gw, &[]).await.0, 200);
    }
    assert_eq!(t.a.state.count(), a_seen, "A is out for a while");
    // ... and put back after fail_timeout: it is tried again.
    *t.a.state.fail_status.lock().unwrap() = None;
    tokio::time::sleep(Duration::from_millis(1700)).await;
    for _ in 0..6 {
        assert_eq!(ask(&gw, &[]).await.0, 200);
    }
    assert!(t.a.state.count() > a_seen, "A is back in rotation");
    let m = client().get(gw.status_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(support::prom::value(&m, "aigate_upstream_errors_total", &[("kind", "http_503")]).unwrap() >= 1.0);
    assert!(support::prom::value(&m, "aigate_llm_target_health_changes_total", &[("state", "down")]).unwrap() >= 1.0);
}

#[tokio::test]
async fn a_target_taken_out_stays_out_across_a_reload() {
    let t = two().await;
    *t.a.state.fail_status.lock().unwrap() = Some(503);
    let gw = t.start(
        "      failover_criteria: [error, timeout, http_503]",
        (1, 1),
        "llm_target_max_fails: 2\nllm_target_fail_timeout: 60000\n",
    );
    for _ in 0..6 {
        assert_eq!(ask(&gw, &[]).await.0, 200);
    }
    let a_seen = t.a.state.count();
    assert!((1..=2).contains(&a_seen), "A saw {a_seen}");
    // SIGHUP reloads the same files: target health is process state, not configuration, so
    // A stays out for the rest of its fail_timeout instead of being tried again at once.
    gw.reload().await;
    for _ in 0..6 {
        assert_eq!(ask(&gw, &[]).await.0, 200);
    }
    assert_eq!(t.a.state.count(), a_seen, "A was tried again after the reload");
    let m = client().get(gw.status_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(support::prom::value(&m, "aigate_llm_target_health_changes_total", &[("state", "down")]), Some(1.0));
}

#[tokio::test]
async fn client_errors_are_returned_as_they_are_never_retried() {
    let t = two().await;
    *t.a.state.fail_status.lock().unwrap() = Some(400);
    let gw = t.start("      failover_criteria: [error, timeout, http_429, http_503]", (1, 1), "");
    let mut seen = std::collections::HashMap::new();
    for _ in 0..6 {
        let (status, _) = ask(&gw, &[]).await;
        *seen.entry(status).or_insert(0) += 1;
    }
    assert_eq!(seen.get(&400), Some(&3), "{seen:?}");
    assert_eq!(seen.get(&200), Some(&3), "{seen:?}");
    assert_eq!(t.a.state.count() + t.b.state.count(), 6, "no request was sent twice");
}

#[tokio::test]
async fn http_429_fails_over_only_when_listed() {
    let t = two().await;
    *t.a.state.fail_status.lock().unwrap() = Some(429);
    let gw = t.start("      algorithm: priority", (100, 10), "");
    // Not listed (default criteria are error and timeout): the 429 comes back with its headers.
    let resp = client().post(gw.url("/v1/responses")).json(&json!({"input": "x"})).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    drop(gw);
    let gw = t.start("      algorithm: priority\n      failover_criteria: [error, http_429]", (100, 10), "");
    assert_eq!(ask(&gw, &[]).await.0, 200);
    assert!(t.b.state.count() >= 1);
}

#[tokio::test]
async fn connection_errors_fail_over_and_the_retry_budget_is_kept() {
    let mut t = two().await;
    // A refuses connections: a port nobody listens on.
    t.a_addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let gw = t.start("      algorithm: priority", (100, 1), "");
    let (status, body) = ask(&gw, &[]).await;
    assert_eq!(status, 200, "{body}");
    drop(gw);
    // With no retries, the refusal is the answer.
    let gw = t.start("      algorithm: priority\n      retries: 0", (100, 1), "");
    let (status, body) = ask(&gw, &[]).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "connect_refused");
}

#[tokio::test]
async fn round_robin_follows_weights() {
    let t = two().await;
    let gw = t.start("      algorithm: round-robin", (1, 3), "");
    for _ in 0..40 {
        assert_eq!(ask(&gw, &[]).await.0, 200);
    }
    assert_eq!((t.a.state.count(), t.b.state.count()), (10, 30));
}

#[tokio::test]
async fn consistent_hashing_keeps_a_key_on_one_target() {
    let t = two().await;
    let gw = t.start("      algorithm: consistent-hashing\n      hash_on_header: x-session", (1, 1), "");
    for session in ["s-1", "s-2", "s-3", "s-4", "s-5", "s-6"] {
        let before = (t.a.state.count(), t.b.state.count());
        for _ in 0..4 {
            assert_eq!(ask(&gw, &[("x-session", session)]).await.0, 200);
        }
        let after = (t.a.state.count(), t.b.state.count());
        let moved = (after.0 - before.0, after.1 - before.1);
        assert!(moved == (4, 0) || moved == (0, 4), "{session}: {moved:?}");
    }
    assert!(t.a.state.count() > 0 && t.b.state.count() > 0, "keys spread over both targets");
}

#[tokio::test]
async fn lowest_latency_prefers_the_fast_target() {
    let t = two().await;
    t.a.state.delay_ms.store(150, std::sync::atomic::Ordering::Relaxed);
    let gw = t.start("      algorithm: lowest-latency", (1, 1), "");
    let start = Instant::now();
    for _ in 0..20 {
        assert_eq!(ask(&gw, &[]).await.0, 200);
    }
    // Each target is measured once, then the fast one takes the traffic.
    assert!(t.a.state.count() <= 2, "slow target got {}", t.a.state.count());
    assert!(start.elapsed() < Duration::from_secs(3));
}
