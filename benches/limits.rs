//! The cost of rate limits and budgets on one request, beside the work every answer does
//! anyway, so results read as ratios:
//!
//! - `aigate_rate_limiting_and_budget`: what `rate-limiting` (second + minute) and
//!   `ai-rate-limiting-advanced` (two sliding windows) add to a request of one of 1,000
//!   consumers taken in turn — both admissions, their 11 headers written into the answer's
//!   header, and the budget charged with the answer's usage — on the periodic Redis store
//!   (counted in the process; its background sync is not running here);
//! - `reference_request_id_header`: the one header every answer gets (`X-Request-Id`) written
//!   into the same upstream answer header.
//!
//! Run: `cargo bench --bench limits`
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use aigate::ai::usage::Usage;
use aigate::config::settings::Settings;
use aigate::config::{load_texts, LoadContext};
use aigate::plugins::limits::Who;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use pingora_http::ResponseHeader;

const CONSUMERS: usize = 1000;

fn deck() -> String {
    let mut d = String::from(
        r#"_format_version: "3.0"
services:
- name: bench-service
  url: http://127.0.0.1:9/
routes:
- name: bench-route
  paths: ["/anything"]
  service: {name: bench-service}
plugins:
- name: ai-proxy-advanced
  config:
    targets:
    - route_type: llm/v1/responses
      auth: {header_name: Authorization, header_value: Bearer sk-bench}
      model: {provider: openai, name: gpt-4o}
- name: key-auth
  config: {key_names: [apikey]}
- name: rate-limiting
  config:
    second: 1000000
    minute: 60000000
    policy: redis
    sync_rate: 1
    redis: {host: 127.0.0.1, port: 9, timeout: 1000}
- name: ai-rate-limiting-advanced
  config:
    llm_providers: [{name: openai, limit: [1000000000000, 1000000000000], window_size: [60, 3600]}]
    strategy: redis
    sync_rate: 1
    redis: {host: 127.0.0.1, port: 9, read_timeout: 1000}
consumers:
"#,
    );
    for i in 0..CONSUMERS {
        d.push_str(&format!("- username: c{i}\n  keyauth_credentials: [{{key: key-{i}-0123456789}}]\n"));
    }
    d
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// An upstream answer's header as Pingora parses it (with its header case kept).
fn upstream_header() -> ResponseHeader {
    let mut h = ResponseHeader::build(200, Some(8)).unwrap();
    for (n, v) in [
        ("Content-Type", "application/json"),
        ("Content-Length", "215"),
        ("Date", "Mon, 30 Nov 2026 12:00:00 GMT"),
        ("x-request-id", "req_0123456789abcdef"),
        ("openai-processing-ms", "12"),
    ] {
        h.append_header(n, v).unwrap();
    }
    h
}

fn limits(c: &mut Criterion) {
    let cx = LoadContext::from_settings(&Settings::default());
    let loaded = load_texts(&[(PathBuf::from("bench.yaml"), deck())], &cx, &|_| None).unwrap_or_else(|p| panic!("{p}"));
    let config = loaded.config;
    let route = &config.routes[0];
    let consumers: Vec<_> = (0..CONSUMERS).map(|i| config.consumers.find(&format!("c{i}")).unwrap()).collect();
    let headers = http::HeaderMap::new();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let usage = Usage { input: 40, output: 17, total: 57, ..Usage::default() };
    let mut g = c.benchmark_group("limits_per_request");
    g.bench_function("aigate_rate_limiting_and_budget", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 7) % CONSUMERS;
            let consumer = consumers[i];
            let rl = route.policies.rate_limiting.for_consumer(Some(consumer)).unwrap();
            let ai = route.policies.ai_rate_limiting.for_consumer(Some(consumer)).unwrap();
            let who = Who {
                consumer: Some(config.consumers.get(consumer).id.as_str()),
                consumer_index: Some(consumer),
                credential: None,
                client_ip: None,
                service: "bench-service",
                headers: &headers,
                path: "/anything",
            };
            let now = now_ms();
            let (v1, (v2, ticket)) =
                rt.block_on(async { (rl.admit(&who, now).await.unwrap(), ai.admit(&who, now).await.unwrap()) });
            let mut resp = upstream_header();
            resp.insert_header("x-request-id", "0123456789abcdef").unwrap();
            // As the proxy writes them (`phases::limits::add_headers`).
            let mut parts: http::response::Parts = resp.into();
            parts.headers.reserve(v1.headers.len() + v2.headers.len());
            for (n, v) in v1.headers.into_iter().chain(v2.headers) {
                parts.headers.insert(n, v);
            }
            let resp = ResponseHeader::from(parts);
            let amount = ai.amount(&usage, None, None);
            ai.charge(&ticket, "openai", amount, now);
            black_box(resp)
        })
    });
    g.bench_function("reference_request_id_header", |b| {
        b.iter(|| {
            let mut resp = upstream_header();
            resp.insert_header("x-request-id", "0123456789abcdef").unwrap();
            black_box(resp)
        })
    });
    g.finish();
}

criterion_group!(benches, limits);
criterion_main!(benches);
