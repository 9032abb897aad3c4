//! rate-limiting and ai-rate-limiting-advanced through the real gateway, on one node (local
//! counters) and on two nodes sharing a real redis-server: requests per minute, token and cost
//! budgets, the overage of requests in flight, chat streams' usage, and what the test upstream
//! received (a refused request never reaches it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::gateway::{clear_of_window_end, client, walkthrough_deck, GatewayProcess, GatewaySpec, TestBed};
use support::prom;
use support::redis::RedisServer;

const BO: &str = "_format_version: \"3.0\"\nconsumers:\n- username: bo\n  keyauth_credentials: [{key: bo_key}]\n";

/// The walkthrough (alex, key hello_world) plus bo and `fragment`.
fn spec(fragment: &str) -> GatewaySpec {
    let mut deck = walkthrough_deck();
    deck.push(("05-bo.yaml".into(), BO.into()));
    deck.push(("06-limits.yaml".into(), format!("_format_version: \"3.0\"\n{fragment}")));
    let refs: Vec<(&str, &str)> = deck.iter().map(|(n, c)| (n.as_str(), c.as_str())).collect();
    GatewaySpec::new(&refs)
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn post(gw: &GatewayProcess, key: &str, body: &Value) -> Answer {
    let r = client().post(gw.url("/anything")).header("apikey", key).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    Answer { status, headers, body: r.json().await.unwrap_or(Value::Null) }
}

fn input() -> Value {
    json!({"input": "How many requests may I send?"})
}

fn h<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn requests_per_minute_on_one_node_with_kongs_answer_and_headers() {
    clear_of_window_end(60, 8).await;
    let bed = TestBed::new().await;
    let gw = bed.start(spec("plugins:\n- name: rate-limiting\n  config: {minute: 3, policy: local}\n"));
    for i in 0..3 {
        let a = post(&gw, "hello_world", &input()).await;
        assert_eq!(a.status, 200, "request {i}: {}", a.body);
        assert_eq!(h(&a, "x-ratelimit-limit-minute"), Some("3"));
        assert_eq!(h(&a, "x-ratelimit-limit-requests"), None, "the provider's account quota stays in the gateway");
        assert_eq!(h(&a, "x-ratelimit-remaining-minute"), Some((2 - i).to_string().as_str()));
        assert_eq!(h(&a, "ratelimit-limit"), Some("3"));
        assert!(h(&a, "ratelimit-reset").is_some());
    }
    let refused = post(&gw, "hello_world", &input()).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["message"], "API rate limit exceeded");
    assert_eq!(refused.body["request_id"].as_str(), h(&refused, "x-request-id"));
    assert_eq!(h(&refused, "x-ratelimit-remaining-minute"), Some("0"));
    let retry: u64 = h(&refused, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // The refused request never reached the provider.
    assert_eq!(bed.mock.state.count(), 3);
    // bo has a counter of its own.
    assert_eq!(post(&gw, "bo_key", &input()).await.status, 200);
    let m = gw.metrics().await;
    let decisions = |c: &str, d: &str| {
        prom::value(
            &m,
            "aigate_ratelimit_decisions_total",
            &[("consumer", c), ("plugin", "rate-limiting"), ("decision", d)],
        )
    };
    assert_eq!((decisions("alex", "allowed"), decisions("alex", "limited")), (Some(3.0), Some(1.0)));
    assert_eq!(
        prom::value(
            &m,
            "aigate_ratelimit_remaining",
            &[("consumer", "alex"), ("plugin", "rate-limiting"), ("window", "minute")]
        ),
        Some(0.0)
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let log = gw.access_log();
    let limited: Vec<&Value> = log.iter().filter(|l| l["status"] == 429).collect();
    assert_eq!(limited.len(), 1, "{log:?}");
    assert_eq!(limited[0]["rate_limit"], json!({"plugin": "rate-limiting", "window": "minute"}));
    assert_eq!(limited[0]["error"], "rate_limited");
}

/// Two gateways sharing `redis`, with `fragment` (`{redis}` replaced by its record).
fn two_nodes(bed: &TestBed, redis: &RedisServer, fragment: &str) -> (GatewayProcess, GatewayProcess) {
    let fragment = fragment.replace("{redis}", &redis.record());
    (bed.start_node("a", spec(&fragment)), bed.start_node("b", spec(&fragment)))
}

/// Send `n` requests, alternating between the nodes, `parallel` at a time; the statuses.
async fn burst(nodes: &[&GatewayProcess], key: &str, n: usize, parallel: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..(i + parallel).min(n))
            .map(|j| {
                let gw = nodes[j % nodes.len()];
                let url = gw.url("/anything");
                let key = key.to_string();
                async move {
                    client().post(url).header("apikey", key).json(&input()).send().await.unwrap().status().as_u16()
                }
            })
            .collect();
        statuses.extend(futures_util::future::join_all(batch).await);
        i += parallel;
    }
    statuses
}

#[tokio::test]
async fn a_limit_of_n_per_minute_admits_n_across_two_nodes_synchronously() {
    clear_of_window_end(60, 8).await;
    let bed = TestBed::new().await;
    let redis = RedisServer::start();
    let (a, b) = two_nodes(
        &bed,
        &redis,
        "plugins:\n- name: rate-limiting\n  config: {minute: 7, policy: redis, redis: {redis}}\n",
    );
    let statuses = burst(&[&a, &b], "hello_world", 20, 4).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 7, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 13, "{statuses:?}");
    assert_eq!(bed.mock.state.count(), 7, "refused requests never reach the provider");
    // Keys are namespaced, hold no consumer name, and expire with their window.
    let keys = redis.keys("*");
    assert!(!keys.is_empty() && keys.iter().all(|k| k.starts_with("aigate:rl:")), "{keys:?}");
    assert!(keys.iter().all(|k| !k.contains("alex")));
    for key in &keys {
        let ttl: i64 = redis.cmd(&["PTTL", key]);
        assert!(ttl > 0 && ttl <= 61_000, "{key}: {ttl}");
    }
}

#[tokio::test]
async fn periodic_sync_counts_locally_and_stays_within_its_tolerance() {
    clear_of_window_end(60, 12).await;
    let bed = TestBed::new().await;
    let redis = RedisServer::start();
    let (a, b) = two_nodes(
        &bed,
        &redis,
        "plugins:\n- name: rate-limiting\n  config: {minute: 6, policy: redis, sync_rate: 0.05, redis: {redis}}\n",
    );
    // Paced slower than the sync: each node knows the other's count, so exactly 6 pass.
    let mut ok = 0;
    for i in 0..10 {
        let gw = if i % 2 == 0 { &a } else { &b };
        if post(gw, "hello_world", &input()).await.status == 200 {
            ok += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(ok, 6);
    // A burst faster than the sync: each node may admit what it believes is left, so the total
    // is between the limit and the limit times the nodes (README: the tolerance).
    let statuses = burst(&[&a, &b], "bo_key", 24, 8).await;
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    assert!((6..=12).contains(&admitted), "{admitted}: {statuses:?}");
    // Both nodes pushed their counts: Redis holds the total.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let keys = redis.keys("aigate:rl:*");
    let total: i64 = keys.iter().map(|k| redis.cmd::<i64>(&["GET", k])).sum();
    assert_eq!(total as usize, 6 + admitted);
    // Each expires with its window (set when the sync created it).
    for key in &keys {
        let ttl: i64 = redis.cmd(&["PTTL", key]);
        assert!(ttl > 0 && ttl <= 61_000, "{key}: {ttl}");
    }
}

/// A charge reaches Redis a round trip after its answer: a request to another node sooner may
/// not see it yet (README: the overage bound). On the node that charged, it is seen at once.
const CHARGE_IN_FLIGHT: Duration = Duration::from_millis(50);

/// The usage the test upstream reported for the last request, as the client saw it.
fn total_tokens(a: &Answer) -> u64 {
    a.body["usage"]["total_tokens"].as_u64().unwrap()
}

#[tokio::test]
async fn a_token_budget_is_shared_by_both_nodes_and_charged_when_the_answer_completes() {
    clear_of_window_end(3600, 20).await;
    let bed = TestBed::new().await;
    let redis = RedisServer::start();
    let (a, b) = two_nodes(
        &bed,
        &redis,
        "plugins:\n- name: ai-rate-limiting-advanced\n  config: {llm_providers: [{name: openai, limit: [40], window_size: [3600]}], strategy: redis, sync_rate: 0, window_type: fixed, redis: {redis}}\n",
    );
    let first = post(&a, "hello_world", &input()).await;
    assert_eq!(first.status, 200);
    assert_eq!(h(&first, "x-ai-ratelimit-limit-hour-openai"), Some("40"));
    assert_eq!(h(&first, "x-ai-ratelimit-remaining-hour-openai"), Some("40"));
    let used = total_tokens(&first);
    assert!(used < 40, "the test upstream answers ~{used} tokens");
    // Node B sees what node A charged (once the charge reached Redis: a round trip after the
    // answer).
    tokio::time::sleep(CHARGE_IN_FLIGHT).await;
    let second = post(&b, "hello_world", &input()).await;
    assert_eq!(second.status, 200);
    assert_eq!(h(&second, "x-ai-ratelimit-remaining-hour-openai"), Some((40 - used).to_string().as_str()));
    tokio::time::sleep(CHARGE_IN_FLIGHT).await;
    let third = post(&a, "hello_world", &input()).await;
    assert_eq!(third.status, 429, "{} + {} ≥ 40", used, total_tokens(&second));
    assert_eq!(third.body, json!({"message": "AI token rate limit exceeded for provider(s): openai"}));
    assert!(h(&third, "x-ai-ratelimit-retry-after").is_some());
    assert_eq!(bed.mock.state.count(), 2);
    // The charges made the hour's counter: it expires with the window (and its slack).
    let keys = redis.keys("aigate:rl:*");
    assert!(!keys.is_empty());
    for key in &keys {
        let ttl: i64 = redis.cmd(&["PTTL", key]);
        assert!(ttl > 0 && ttl <= 3_601_000, "{key}: {ttl}");
    }
    // bo's budget is bo's.
    assert_eq!(post(&b, "bo_key", &input()).await.status, 200);
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Wait until `offset_ms` into the window of `period_ms` that starts after the current one.
async fn next_window_at(period_ms: u64, offset_ms: u64) {
    let now = epoch_ms();
    let target = (now / period_ms + 1) * period_ms + offset_ms;
    tokio::time::sleep(Duration::from_millis(target - now)).await;
}

#[tokio::test]
async fn a_node_learns_what_another_used_in_the_previous_sliding_window() {
    let bed = TestBed::new().await;
    let redis = RedisServer::start();
    let (a, b) = two_nodes(
        &bed,
        &redis,
        "plugins:\n- name: ai-rate-limiting-advanced\n  config: {llm_providers: [{name: openai, limit: [1000], window_size: [4]}], strategy: redis, sync_rate: 0.05, window_type: sliding, redis: {redis}}\n",
    );
    // Node A uses tokens early in a 4 s window; node B serves nobody meanwhile.
    next_window_at(4000, 200).await;
    let window = epoch_ms() / 4000;
    let mut used_on_a = 0;
    for _ in 0..2 {
        let r = post(&a, "hello_world", &input()).await;
        assert_eq!(r.status, 200);
        used_on_a += total_tokens(&r);
    }
    assert_eq!(epoch_ms() / 4000, window, "the test machine is too slow for this test's timing");
    // 2.5 s into the next window (its previous one ended longer ago than two syncs), node B
    // serves alex for the first time, then again after a few syncs: by then it must weigh what
    // A used in the previous window (weight 1 - 2.7 / 4 ≈ 0.33 at the second request).
    next_window_at(4000, 2500).await;
    let first = post(&b, "hello_world", &input()).await;
    assert_eq!(first.status, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = post(&b, "hello_world", &input()).await;
    let remaining: f64 = h(&second, "x-ai-ratelimit-remaining-4-openai").unwrap().parse().unwrap();
    let at_most = 1000.0 - total_tokens(&first) as f64 - used_on_a as f64 * 0.2;
    assert!(remaining <= at_most, "B shows {remaining} left; A used {used_on_a} in the previous window");
}

#[tokio::test]
async fn a_cost_budget_alex_may_spend_so_much_a_day() {
    clear_of_window_end(86400, 20).await;
    let bed = TestBed::new().await;
    let redis = RedisServer::start();
    // Prices per million tokens; alex may spend 0.0002 (of the prices' unit) a day.
    let deck = "plugins:\n- name: ai-proxy-advanced\n  route: example-route\n  config:\n    targets:\n    - route_type: llm/v1/responses\n      auth: {header_name: Authorization, header_value: 'Bearer ${{ env \"DECK_OPENAI_API_KEY\" }}'}\n      model: {provider: openai, name: gpt-4o, options: {input_cost: 2.5, output_cost: 10}}\n- name: ai-rate-limiting-advanced\n  consumer: alex\n  config: {llm_providers: [{name: openai, limit: [0.0002], window_size: [86400]}], tokens_count_strategy: cost, strategy: redis, sync_rate: 0, redis: {redis}}\n";
    let (a, b) = two_nodes(&bed, &redis, deck);
    let first = post(&a, "hello_world", &input()).await;
    assert_eq!(first.status, 200);
    assert_eq!(h(&first, "x-ai-ratelimit-limit-day-openai"), Some("0.0002"));
    let u = &first.body["usage"];
    let cost_micro = u["input_tokens"].as_f64().unwrap() * 2.5 + u["output_tokens"].as_f64().unwrap() * 10.0;
    tokio::time::sleep(CHARGE_IN_FLIGHT).await;
    let m = a.metrics().await;
    let exported = prom::value(&m, "aigate_llm_cost_total", &[("consumer", "alex")]).unwrap();
    assert!((exported * 1e6 - cost_micro).abs() < 1e-6, "{exported} vs {cost_micro}");
    // On the other node (then on that node right after each answer: no wait needed there),
    // what is left is the budget minus exactly what was spent.
    let mut statuses = Vec::new();
    let mut spent = cost_micro;
    loop {
        let r = post(&b, "hello_world", &input()).await;
        if r.status == 429 {
            break;
        }
        let left: f64 = h(&r, "x-ai-ratelimit-remaining-day-openai").unwrap().parse().unwrap();
        assert!((left - (200.0 - spent) / 1e6).abs() < 1e-9, "{left} vs {}", (200.0 - spent) / 1e6);
        let u = &r.body["usage"];
        spent += u["input_tokens"].as_f64().unwrap() * 2.5 + u["output_tokens"].as_f64().unwrap() * 10.0;
        statuses.push(r.status);
        assert!(statuses.len() < 10, "the budget never ran out");
    }
    // Admitted while under 200 micro-units: the last one admitted took it over.
    assert!(spent >= 200.0 && spent - 200.0 < 200.0, "{spent}");
    // bo has no budget on this route.
    assert_eq!(post(&a, "bo_key", &input()).await.status, 200);
}

#[tokio::test]
async fn requests_in_flight_when_the_budget_runs_out_finish_and_the_overage_is_bounded() {
    clear_of_window_end(3600, 20).await;
    let bed = TestBed::new().await;
    let redis = RedisServer::start();
    let (a, b) = two_nodes(
        &bed,
        &redis,
        "plugins:\n- name: ai-rate-limiting-advanced\n  config: {llm_providers: [{name: openai, limit: [10], window_size: [3600]}], strategy: redis, sync_rate: 0, window_type: fixed, redis: {redis}}\n",
    );
    // Three streams admitted at once (nothing used yet), held by the upstream after 2 events.
    let streams: Vec<_> = [&a, &b, &a]
        .iter()
        .map(|gw| {
            client()
                .post(gw.url("/anything"))
                .header("apikey", "hello_world")
                .header("x-mock-hold-after", "2")
                .json(&json!({"input": "x", "stream": true}))
                .send()
        })
        .collect();
    let responses = futures_util::future::join_all(streams).await;
    let mut bodies = Vec::new();
    for r in responses {
        let r = r.unwrap();
        assert_eq!(r.status(), 200);
        bodies.push(tokio::spawn(async move { r.text().await.unwrap() }));
    }
    for _ in 0..3 {
        bed.mock.state.release();
    }
    let mut used = 0;
    for b in bodies {
        let text = b.await.unwrap();
        assert!(text.contains("response.completed"), "every admitted stream finishes");
        let line = text.lines().find(|l| l.contains("\"type\":\"response.completed\"")).unwrap();
        let ev: Value = serde_json::from_str(line.trim_start_matches("data: ")).unwrap();
        used += ev["response"]["usage"]["total_tokens"].as_u64().unwrap();
    }
    // Admitted while under the limit, they finished although together they used more: the
    // overage is what the requests in flight used (README).
    assert!(used > 10, "{used}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let next = post(&b, "hello_world", &input()).await;
    assert_eq!(next.status, 429);
    let key = redis.keys("aigate:rl:*");
    let charged: i64 = key.iter().map(|k| redis.cmd::<i64>(&["GET", k])).sum();
    assert_eq!(charged as u64, used, "every stream was charged exactly once, with its reported usage");
}

const CHAT: &str = "services:\n- name: chat-service\n  url: https://api.openai.com\n  routes:\n  - name: chat-route\n    paths: [/v1/chat/completions]\n    plugins:\n    - name: key-auth\n    - name: ai-proxy\n      config: {route_type: llm/v1/chat, auth: {header_name: Authorization, header_value: 'Bearer ${{ env \"DECK_OPENAI_API_KEY\" }}'}, model: {provider: openai, name: gpt-4o}}\n";

#[tokio::test]
async fn every_chat_stream_is_counted_and_the_client_gets_the_stream_it_asked_for() {
    clear_of_window_end(60, 8).await;
    let bed = TestBed::new().await;
    let gw = bed.start(spec(&format!(
        "{CHAT}plugins:\n- name: ai-rate-limiting-advanced\n  route: chat-route\n  config: {{llm_providers: [{{name: openai, limit: [1000000], window_size: [60]}}]}}\n"
    )));
    let stream = |body: Value| {
        let url = gw.url("/v1/chat/completions");
        async move {
            let r = client().post(url).header("apikey", "hello_world").json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert!(r.headers().get("content-length").is_none());
            r.text().await.unwrap()
        }
    };
    let messages = json!([{"role": "user", "content": "hi"}]);
    // Not asked: sent upstream with include_usage, and the usage is taken out again.
    let text = stream(json!({"messages": messages, "stream": true})).await;
    let sent = bed.mock.state.last().unwrap().json();
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    assert!(!text.contains("usage"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let chunks = |text: &str| -> Vec<Value> {
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    };
    let got = chunks(&text);
    assert!(got.len() >= 3 && got.iter().all(|c| !c["choices"].as_array().unwrap().is_empty()));
    // Asked: the client gets the usage as the provider sent it.
    let asked = stream(json!({"messages": messages, "stream": true, "stream_options": {"include_usage": true}})).await;
    let usage_chunk = chunks(&asked).into_iter().find(|c| c["choices"] == json!([])).expect("the usage chunk");
    assert!(usage_chunk["usage"]["total_tokens"].as_u64().unwrap() > 0, "{asked}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let m = gw.metrics().await;
    assert_eq!(prom::value(&m, "aigate_llm_usage_missing_total", &[("consumer", "alex")]).unwrap_or(0.0), 0.0);
    let total = prom::value(&m, "aigate_llm_tokens_total", &[("consumer", "alex"), ("token_type", "total")]).unwrap();
    assert!(total > 0.0);
    // Both streams were charged to alex's budget.
    let left = post_to(&gw, "/v1/chat/completions", json!({"messages": messages})).await;
    let remaining: f64 = h(&left, "x-ai-ratelimit-remaining-minute-openai").unwrap().parse().unwrap();
    assert_eq!(1_000_000.0 - remaining, total);
}

async fn post_to(gw: &GatewayProcess, path: &str, body: Value) -> Answer {
    let r = client().post(gw.url(path)).header("apikey", "hello_world").json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    Answer { status, headers, body: r.json().await.unwrap_or(Value::Null) }
}

async fn wait_for_log(gw: &GatewayProcess, needle: &str) {
    for _ in 0..100 {
        if gw.logs().contains(needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("`{needle}` never logged:\n{}", gw.logs());
}

#[tokio::test]
async fn redis_down_fault_tolerant_falls_back_to_local_counts_then_recovers_or_answers_500() {
    clear_of_window_end(60, 12).await;
    let bed = TestBed::new().await;
    let mut redis = RedisServer::start();
    let limit = |ft: bool| {
        format!("plugins:\n- name: rate-limiting\n  config: {{minute: 5, fault_tolerant: {ft}, policy: redis, redis: {}}}\n", redis.record())
    };
    let a = bed.start_node("a", spec(&limit(true)));
    let b = bed.start_node("b", spec(&limit(false)));
    for gw in [&a, &b, &a] {
        assert_eq!(post(gw, "hello_world", &input()).await.status, 200);
    }
    redis.kill();
    // Node A counts on from what Redis said last (3): two more, then 429 — not a fresh limit.
    let body = input();
    let statuses: Vec<u16> = futures_util::future::join_all((0..2).map(|_| post(&a, "hello_world", &body)))
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![200, 200]);
    assert_eq!(post(&a, "hello_world", &input()).await.status, 429);
    assert_eq!(post(&a, "bo_key", &input()).await.status, 200, "bo is counted locally meanwhile");
    // Node B is not fault tolerant: 500 in the route's envelope (an LLM route: OpenAI's).
    let r = post(&b, "hello_world", &input()).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.body["error"]["message"], "An unexpected error occurred");
    let m = a.metrics().await;
    assert!(prom::value(&m, "aigate_ratelimit_backend_errors_total", &[("plugin", "rate-limiting")]).unwrap() >= 4.0);
    assert_eq!(gw_count(&a, "is unreachable"), 1, "logged once per outage");
    assert!(!a.logs().contains("secret"));
    // Redis comes back (empty: no persistence); node A pushes what it counted meanwhile.
    redis.restart();
    wait_for_log(&a, "answers again").await;
    wait_for_log(&b, "answers again").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let counted: i64 = redis.keys("aigate:rl:*").iter().map(|k| redis.cmd::<i64>(&["GET", k])).sum();
    assert_eq!(counted, 3, "alex's 2 and bo's 1 from the outage");
    // Both nodes decide on Redis again.
    assert_eq!(post(&b, "hello_world", &input()).await.status, 200);
    assert_eq!(post(&b, "hello_world", &input()).await.status, 200);
    assert_eq!(post(&a, "hello_world", &input()).await.status, 200);
    assert_eq!(post(&b, "hello_world", &input()).await.status, 429);
}

fn gw_count(gw: &GatewayProcess, needle: &str) -> usize {
    gw.logs().matches(needle).count()
}

#[tokio::test]
async fn redis_with_a_password_and_an_acl_user() {
    clear_of_window_end(60, 8).await;
    let bed = TestBed::new().await;
    let redis = RedisServer::start_with(Some("s3cret-redis-pass"), &[]);
    let _: String = redis.cmd(&["ACL", "SETUSER", "gw", "on", ">gw-pass-123", "~aigate:*", "+@all"]);
    let rl = |record: &str| {
        format!("plugins:\n- name: rate-limiting\n  config: {{minute: 2, fault_tolerant: false, policy: redis, redis: {record}}}\n")
    };
    let port = redis.port;
    let acl = bed.start_node(
        "acl",
        spec(&rl(&format!("{{host: 127.0.0.1, port: {port}, username: gw, password: gw-pass-123}}"))),
    );
    let default = bed.start_node("default", spec(&rl(&redis.record())));
    let wrong = bed
        .start_node("wrong", spec(&rl(&format!("{{host: 127.0.0.1, port: {port}, password: not-it, timeout: 300}}"))));
    // The ACL user and the default user (requirepass) count in the same Redis.
    assert_eq!(post(&acl, "hello_world", &input()).await.status, 200);
    assert_eq!(post(&default, "hello_world", &input()).await.status, 200);
    assert_eq!(post(&acl, "hello_world", &input()).await.status, 429);
    // A wrong password is an unavailable Redis: 500 (not fault tolerant), never the password.
    let r = post(&wrong, "hello_world", &input()).await;
    assert_eq!(r.status, 500);
    let logs = wrong.logs();
    assert!(logs.contains("is unreachable"), "{logs}");
    assert!(!logs.contains("not-it") && !acl.logs().contains("gw-pass-123"));
}

#[tokio::test]
async fn redis_over_tls_with_the_gateways_trusted_ca() {
    clear_of_window_end(60, 8).await;
    let bed = TestBed::new().await;
    let redis = RedisServer::start_tls(&bed.ca, Some("tls-pass"));
    let gw = bed.start(spec(&format!(
        "plugins:\n- name: rate-limiting\n  config: {{minute: 1, fault_tolerant: false, policy: redis, redis: {}}}\n",
        redis.record()
    )));
    assert_eq!(post(&gw, "hello_world", &input()).await.status, 200);
    assert_eq!(post(&gw, "hello_world", &input()).await.status, 429);
}

const SDK_SCRIPT: &str = r#"
import json, os
import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["BASE"], api_key="sk-client", default_headers={"apikey": "hello_world"}, max_retries=0)
messages = [{"role": "user", "content": "hi"}]
out = {}
chunks = list(client.chat.completions.create(model="gpt-4o", messages=messages, stream=True))
out["chunks"] = len(chunks)
out["usage_seen"] = any(c.usage is not None for c in chunks)
out["text"] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
try:
    for i in range(5):
        client.chat.completions.create(model="gpt-4o", messages=messages)
except openai.RateLimitError as e:
    out["limited"] = [e.status_code, e.response.headers.get("retry-after"), e.body]
print(json.dumps(out))
"#;

#[tokio::test]
async fn the_openai_python_sdk_reads_the_filtered_stream_and_gets_429_as_its_rate_limit_error() {
    clear_of_window_end(60, 12).await;
    let bed = TestBed::new().await;
    let gw = bed
        .start(spec(&format!("{CHAT}plugins:\n- name: rate-limiting\n  route: chat-route\n  config: {{minute: 3}}\n")));
    let base = gw.url("/v1");
    let out =
        tokio::task::spawn_blocking(move || support::python::run(SDK_SCRIPT, &["openai"], &[("BASE", base.as_str())]))
            .await
            .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}\n{}", String::from_utf8_lossy(&out.stderr), gw.logs());
    let got: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(got["usage_seen"], false, "{got}");
    assert!(got["text"].as_str().unwrap().starts_with("part0"), "{got}");
    assert_eq!(got["limited"][0], 429, "{got}");
    assert!(got["limited"][1].as_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(got["limited"][2]["message"], "API rate limit exceeded");
    assert_eq!(bed.mock.state.count(), 3);
}

/// An Anthropic target, spoken to natively (`/claude`) and by translation (`/v1/chat/completions`).
const ANTHROPIC_DECK: &str = r#"_format_version: "3.0"
services:
- name: llm
  url: http://unused.invalid
  routes:
  - name: claude
    paths: [/claude]
    plugins:
    - name: ai-proxy
      config:
        route_type: llm/v1/chat
        llm_format: anthropic
        auth: {header_name: x-api-key, header_value: '${{ env "DECK_ANTHROPIC_API_KEY" }}'}
        model: {provider: anthropic, name: claude-x, options: {anthropic_version: "2023-06-01", max_tokens: 200}}
  - name: chat
    paths: [/v1/chat/completions]
    plugins:
    - name: ai-proxy
      config:
        route_type: llm/v1/chat
        auth: {header_name: x-api-key, header_value: '${{ env "DECK_ANTHROPIC_API_KEY" }}'}
        model: {provider: anthropic, name: claude-x, options: {anthropic_version: "2023-06-01"}}
plugins:
- name: key-auth
  config: {key_names: [apikey]}
- name: ai-rate-limiting-advanced
  config: {llm_providers: [{name: anthropic, limit: [100000], window_size: [3600]}], window_type: fixed, llm_format: anthropic}
consumers:
- username: alex
  keyauth_credentials: [{key: hello_world}]
"#;

#[tokio::test]
async fn anthropic_usage_native_or_translated_is_charged_with_its_cache_tokens() {
    clear_of_window_end(3600, 20).await;
    let bed = TestBed::new().await;
    let anthropic = bed.extra_upstream(&["api.anthropic.com"]).await;
    let gw = bed.start_resolving(
        GatewaySpec::new(&[("kong.yaml", ANTHROPIC_DECK)]),
        &[("api.anthropic.com:443", anthropic.addr)],
    );
    let remaining = |a: &reqwest::Response| -> u64 {
        a.headers()["x-ai-ratelimit-remaining-hour-anthropic"].to_str().unwrap().parse().unwrap()
    };
    let reported_total = |i: usize| -> u64 {
        let u = anthropic.state.usage_reported.lock().unwrap()[i].clone();
        ["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"]
            .iter()
            .map(|k| u[k].as_u64().unwrap())
            .sum()
    };
    // An Anthropic-native stream, with cache reads and writes.
    let native = client()
        .post(gw.url("/claude/v1/messages"))
        .header("apikey", "hello_world")
        .header("x-mock-cache", "40")
        .json(&json!({"model": "claude-x", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(native.status(), 200);
    assert_eq!(remaining(&native), 100_000);
    native.text().await.unwrap();
    let first = reported_total(0);
    assert!(first > 60, "cache tokens are part of it: {first}");
    // An OpenAI-format chat stream translated to Anthropic, the client not asking for usage: it
    // gets none, and is charged all the same.
    let chat = |stream: bool| {
        client()
            .post(gw.url("/v1/chat/completions"))
            .header("apikey", "hello_world")
            .json(&json!({"model": "claude-x", "stream": stream, "messages": [{"role": "user", "content": "Hi"}]}))
    };
    let translated = chat(true).send().await.unwrap();
    assert_eq!(translated.status(), 200);
    assert_eq!(remaining(&translated), 100_000 - first, "the native stream was charged its usage");
    let text = translated.text().await.unwrap();
    assert!(text.contains("chat.completion.chunk") && !text.contains("\"usage\""), "{text}");
    let second = reported_total(1);
    let after = chat(false).send().await.unwrap();
    assert_eq!(after.status(), 200);
    assert_eq!(remaining(&after), 100_000 - first - second, "the translated stream was charged its usage");
    // The upstream never got OpenAI's stream_options (translated requests are Anthropic's).
    assert!(anthropic.state.last().unwrap().json().get("stream_options").is_none());
}

#[tokio::test]
async fn the_most_specific_instance_applies_as_in_kong() {
    clear_of_window_end(60, 8).await;
    let bed = TestBed::new().await;
    let gw = bed.start(spec(
        "plugins:\n- name: rate-limiting\n  config: {minute: 2}\n- name: rate-limiting\n  consumer: bo\n  config: {minute: 4}\n- name: rate-limiting\n  route: example-route\n  consumer: alex\n  config: {minute: 3}\n",
    ));
    for (key, limit) in [("hello_world", 3), ("bo_key", 4)] {
        for i in 0..limit {
            let a = post(&gw, key, &input()).await;
            assert_eq!(a.status, 200, "{key} {i}");
            assert_eq!(h(&a, "x-ratelimit-limit-minute"), Some(limit.to_string().as_str()), "{key}");
        }
        assert_eq!(post(&gw, key, &input()).await.status, 429, "{key}");
    }
    assert_eq!(bed.mock.state.count(), 7);
}
