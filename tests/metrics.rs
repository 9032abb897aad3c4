//! Per-consumer observability: exact token counts (taken from the provider's usage, streamed
//! or not), MCP activity, bounded label values, status endpoints, and an access log that never
//! holds a secret.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use support::gateway::{client, walkthrough_deck, GatewayProcess, GatewaySpec, TestBed, PROVIDER_KEY};
use support::prom;

const SECOND_CONSUMER: &str =
    "_format_version: \"3.0\"\nconsumers:\n- username: bo\n  keyauth_credentials:\n  - key: bo_secret_key\n";

fn spec() -> GatewaySpec {
    let mut deck = walkthrough_deck();
    deck.push(("05-bo.yaml".into(), SECOND_CONSUMER.into()));
    let refs: Vec<(&str, &str)> = deck.iter().map(|(n, c)| (n.as_str(), c.as_str())).collect();
    GatewaySpec::new(&refs)
}

#[derive(Default, Debug, Clone, Copy, PartialEq)]
struct Tokens {
    input: u64,
    output: u64,
    total: u64,
    cached: u64,
    reasoning: u64,
}

impl Tokens {
    fn add(&mut self, usage: &Value) {
        self.input += usage["input_tokens"].as_u64().unwrap();
        self.output += usage["output_tokens"].as_u64().unwrap();
        self.total += usage["total_tokens"].as_u64().unwrap();
        self.cached += usage["input_tokens_details"]["cached_tokens"].as_u64().unwrap();
        self.reasoning += usage["output_tokens_details"]["reasoning_tokens"].as_u64().unwrap();
    }
}

/// Send one Responses request and return the usage the client saw in the answer.
async fn call(gw: &GatewayProcess, key: &str, body: Value, headers: &[(&str, &str)]) -> Value {
    let stream = body["stream"] == true;
    let mut req = client().post(gw.url("/anything")).header("apikey", key).json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    if !stream {
        let v: Value = resp.json().await.unwrap();
        let mut usage = v["usage"].clone();
        usage["response_id"] = v["id"].clone();
        return usage;
    }
    let mut text = String::new();
    let mut s = resp.bytes_stream();
    while let Some(c) = s.next().await {
        text.push_str(std::str::from_utf8(&c.unwrap()).unwrap());
    }
    let completed = text
        .split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .find(|v| v["type"] == "response.completed")
        .expect("response.completed");
    completed["response"]["usage"].clone()
}

async fn metrics(gw: &GatewayProcess) -> String {
    client().get(gw.status_url("/metrics")).send().await.unwrap().text().await.unwrap()
}

/// Metrics are recorded when a request is logged, just after its response: poll briefly.
async fn metrics_when(gw: &GatewayProcess, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = metrics(gw).await;
        if ok(&m) || Instant::now() > deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn tokens_of(m: &str, consumer: &str) -> Tokens {
    let t = |ty: &str| {
        prom::value(m, "aigate_llm_tokens_total", &[("consumer", consumer), ("token_type", ty)]).unwrap_or(0.0) as u64
    };
    Tokens { input: t("input"), output: t("output"), total: t("total"), cached: t("cached"), reasoning: t("reasoning") }
}

#[tokio::test]
async fn exact_token_counts_per_consumer_for_json_and_streams() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    let mut expected = [Tokens::default(), Tokens::default()];
    let consumers = [("alex", "hello_world"), ("bo", "bo_secret_key")];
    let mut last_id = [String::new(), String::new()];
    for round in 0..4 {
        for (i, (_, key)) in consumers.iter().enumerate() {
            let input = "x".repeat(50 + 97 * round + 13 * i);
            let mut body = json!({"input": input, "previous_response_id": null});
            if round % 2 == 1 {
                // Continuing the consumer's own conversation (the upstream reports cached tokens).
                body["previous_response_id"] = json!(last_id[i]);
            }
            let u = call(&gw, key, body.clone(), &[]).await;
            last_id[i] = u["response_id"].as_str().unwrap().to_string();
            expected[i].add(&u);
            body["stream"] = json!(true);
            let u = call(&gw, key, body, &[("x-mock-deltas", &(3 + round).to_string())]).await;
            expected[i].add(&u);
        }
    }
    let m = metrics_when(&gw, |m| tokens_of(m, "alex") == expected[0] && tokens_of(m, "bo") == expected[1]).await;
    assert_eq!(tokens_of(&m, "alex"), expected[0], "alex");
    assert_eq!(tokens_of(&m, "bo"), expected[1], "bo");
    assert!(
        expected[0].cached > 0 && expected[0].reasoning > 0,
        "the test upstream varies every kind: {:?}",
        expected[0]
    );
    for (consumer, _) in consumers {
        let reqs = |mode: &str| {
            prom::value(
                &m,
                "aigate_llm_requests_total",
                &[
                    ("consumer", consumer),
                    ("mode", mode),
                    ("status", "200"),
                    ("model", "gpt-4o"),
                    ("provider", "openai"),
                    ("route_type", "llm/v1/responses"),
                ],
            )
        };
        assert_eq!(reqs("oneshot"), Some(4.0), "{consumer}");
        assert_eq!(reqs("stream"), Some(4.0), "{consumer}");
        assert_eq!(
            prom::value(
                &m,
                "aigate_http_requests_total",
                &[
                    ("consumer", consumer),
                    ("code", "200"),
                    ("route", "example-route"),
                    ("service", "example-clean-service")
                ]
            ),
            Some(8.0)
        );
        assert_eq!(prom::value(&m, "aigate_http_request_duration_seconds_count", &[("consumer", consumer)]), Some(8.0));
        assert_eq!(prom::value(&m, "aigate_upstream_ttfb_seconds_count", &[("consumer", consumer)]), Some(8.0));
        assert!(
            prom::value(&m, "aigate_http_bandwidth_bytes_total", &[("consumer", consumer), ("direction", "egress")])
                .unwrap()
                > 0.0
        );
        assert!(
            prom::value(&m, "aigate_http_bandwidth_bytes_total", &[("consumer", consumer), ("direction", "ingress")])
                .unwrap()
                > 0.0
        );
    }
    assert_eq!(prom::value(&m, "aigate_llm_usage_missing_total", &[]).unwrap_or(0.0), 0.0);
}

#[tokio::test]
async fn missing_or_unreadable_usage_is_counted_not_guessed() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec().settings("usage_scan_limit: 64k"));
    call(&gw, "hello_world", json!({"input": "a"}), &[]).await;
    let before = tokens_of(&metrics_when(&gw, |m| tokens_of(m, "alex").total > 0).await, "alex");
    // No usage in the answer, JSON and stream.
    let resp = client()
        .post(gw.url("/anything"))
        .header("apikey", "hello_world")
        .header("x-mock-no-usage", "1")
        .json(&json!({"input": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    let resp = client()
        .post(gw.url("/anything"))
        .header("apikey", "hello_world")
        .header("x-mock-no-usage", "1")
        .json(&json!({"input": "b", "stream": true}))
        .send()
        .await
        .unwrap();
    resp.bytes().await.unwrap();
    // An answer larger than the side view's limit: usage cannot be read whole.
    let resp = client()
        .post(gw.url("/anything"))
        .header("apikey", "hello_world")
        .header("x-mock-pad", "200000")
        .json(&json!({"input": "c"}))
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0, "the client still gets the whole answer");
    let m =
        metrics_when(&gw, |m| prom::value(m, "aigate_llm_usage_missing_total", &[("consumer", "alex")]) == Some(3.0))
            .await;
    assert_eq!(
        prom::value(&m, "aigate_llm_usage_missing_total", &[("consumer", "alex"), ("mode", "oneshot")]),
        Some(2.0)
    );
    assert_eq!(
        prom::value(&m, "aigate_llm_usage_missing_total", &[("consumer", "alex"), ("mode", "stream")]),
        Some(1.0)
    );
    assert_eq!(tokens_of(&m, "alex"), before, "nothing estimated");
}

#[tokio::test]
async fn mcp_activity_is_counted_per_consumer() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    let tools = json!([{"type": "mcp", "server_label": "gitmcp", "server_url": "https://api.githubcopilot.com/mcp/", "require_approval": "never"},
                       {"type": "mcp", "server_label": "docs", "server_url": "https://docs.example/mcp", "require_approval": "always", "allowed_tools": ["read_doc"]}]);
    call(&gw, "hello_world", json!({"input": "x", "tools": tools}), &[]).await;
    call(&gw, "bo_secret_key", json!({"input": "x", "tools": tools, "stream": true}), &[]).await;
    let m = metrics_when(&gw, |m| prom::value(m, "aigate_mcp_calls_total", &[("consumer", "bo")]).is_some()).await;
    for consumer in ["alex", "bo"] {
        let calls = |tool: &str, outcome: &str| {
            prom::value(
                &m,
                "aigate_mcp_calls_total",
                &[("consumer", consumer), ("server_label", "gitmcp"), ("tool", tool), ("outcome", outcome)],
            )
        };
        assert_eq!(calls("search_code", "success"), Some(1.0), "{consumer}");
        assert_eq!(calls("get_issue", "error"), Some(1.0), "{consumer}");
        assert_eq!(
            prom::value(&m, "aigate_mcp_list_tools_total", &[("consumer", consumer), ("server_label", "gitmcp")]),
            Some(1.0)
        );
        assert_eq!(
            prom::value(&m, "aigate_mcp_list_tools_total", &[("consumer", consumer), ("server_label", "docs")]),
            Some(1.0)
        );
        assert_eq!(
            prom::value(
                &m,
                "aigate_mcp_approval_requests_total",
                &[("consumer", consumer), ("server_label", "docs"), ("tool", "read_doc")]
            ),
            Some(1.0)
        );
    }
}

#[tokio::test]
async fn floods_of_random_keys_paths_and_tools_create_no_new_series() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    let c = client();
    let flood = |seed: u64, n: u64| {
        let c = c.clone();
        let url = gw.url("");
        async move {
            for i in 0..n {
                let n = seed * 1000 + i;
                let _ = c
                    .post(format!("{url}/anything"))
                    .header("apikey", format!("random-key-{n}"))
                    .json(&json!({"input": "x"}))
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await;
                let _ = c.get(format!("{url}/random/path/{n}")).send().await.unwrap().bytes().await;
                let tools = json!([{"type": "mcp", "server_label": format!("srv-{n}"), "server_url": "https://x.example/mcp", "allowed_tools": [format!("tool-{n}"), format!("t2-{n}")]}]);
                let _ = c
                    .post(format!("{url}/anything"))
                    .header("apikey", "hello_world")
                    .json(&json!({"input": "x", "tools": tools}))
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await;
            }
        }
    };
    // A first flood reaches every cap (more MCP servers than the 64 kept), a second one of
    // new random values must not add a single series.
    flood(1, 80).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m1 = metrics(&gw).await;
    flood(2, 60).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m2 = metrics(&gw).await;
    assert_eq!(prom::series(&m1), prom::series(&m2), "series grew with random input");
    for name in ["aigate_http_requests_total", "aigate_auth_failures_total"] {
        assert!(prom::label_values(&m2, name, "consumer").len() <= 2, "{name}");
    }
    assert!(prom::label_values(&m2, "aigate_mcp_list_tools_total", "server_label").len() <= 65);
    assert!(prom::label_values(&m2, "aigate_mcp_calls_total", "server_label").contains(&"other".to_string()));
    assert!(!m2.contains("random-key"), "a presented key never becomes a label");
    assert!(!m2.contains("/random/path"), "a path never becomes a label");
}

#[tokio::test]
async fn promtool_accepts_the_exposition() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    call(&gw, "hello_world", json!({"input": "x", "tools": [{"type": "mcp", "server_label": "gitmcp", "server_url": "https://api.githubcopilot.com/mcp/"}]}), &[]).await;
    call(&gw, "bo_secret_key", json!({"input": "x", "stream": true}), &[]).await;
    let _ = client().post(gw.url("/anything")).header("apikey", "wrong").json(&json!({})).send().await.unwrap();
    let m = metrics_when(&gw, |m| prom::value(m, "aigate_llm_requests_total", &[("consumer", "bo")]).is_some()).await;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is needed (Debian package prometheus; .ci/run installs it)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(m.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every family has HELP and TYPE, and names carry their unit.
    for family in [
        "aigate_http_request_duration_seconds",
        "aigate_upstream_ttfb_seconds",
        "aigate_gateway_latency_seconds",
        "aigate_http_bandwidth_bytes_total",
        "aigate_llm_tokens_total",
        "aigate_http_requests_in_flight",
        "aigate_http_connections_active",
        "aigate_build_info",
        "aigate_config_reloads_total",
    ] {
        assert!(m.contains(&format!("# HELP {family} ")), "{family}");
        assert!(m.contains(&format!("# TYPE {family} ")), "{family}");
    }
    assert!(prom::value(&m, "aigate_build_info", &[("version", env!("CARGO_PKG_VERSION"))]) == Some(1.0));
}

#[tokio::test]
async fn status_endpoints_and_their_separation_from_the_proxy() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    let c = client();
    let s: Value = c.get(gw.status_url("/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["routes"], 1);
    assert_eq!(s["consumers"], 2);
    assert_eq!(s["config_digest"].as_str().unwrap().len(), 64);
    assert!(s["uptime_seconds"].is_u64());
    assert_eq!(c.get(gw.status_url("/status/ready")).send().await.unwrap().status(), 200);
    let text = serde_json::to_string(&s).unwrap();
    assert!(!text.contains("hello_world") && !text.contains(PROVIDER_KEY));
    // The proxy port does not serve them.
    for p in ["/metrics", "/status", "/status/ready"] {
        assert_eq!(c.get(gw.url(p)).send().await.unwrap().status(), 404, "{p}");
    }
}

#[tokio::test]
async fn the_access_log_has_one_line_per_request_and_no_secret() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    let c = client();
    let pat = "github_pat_SECRET_in_mcp_headers";
    let body = json!({"input": "body text that must not be logged", "tools": [{"type": "mcp", "server_label": "gitmcp", "server_url": "https://api.githubcopilot.com/mcp/", "headers": {"Authorization": format!("Bearer {pat}")}, "authorization": pat}]});
    c.post(gw.url("/anything"))
        .header("apikey", "hello_world")
        .header("authorization", "Bearer sk-client-secret")
        .json(&body)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    c.post(gw.url("/anything?apikey=bo_secret_key"))
        .json(&json!({"input": "x", "stream": true}))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    c.post(gw.url("/anything"))
        .header("apikey", "wrong_key_value")
        .json(&body)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let lines = loop {
        let l = gw.access_log();
        if l.len() >= 3 || Instant::now() > deadline {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(lines.len(), 3, "{lines:?}");
    let first = &lines[0];
    assert_eq!(first["consumer"], "alex");
    assert_eq!(first["route"], "example-route");
    assert_eq!(first["service"], "example-clean-service");
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/anything");
    assert_eq!(first["status"], 200);
    assert_eq!(first["request_id"].as_str().unwrap().len(), 32);
    assert!(first["tokens"]["total"].as_u64().unwrap() > 0);
    assert!(first["upstream_addr"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(first["duration_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(lines[1]["consumer"], "bo");
    assert_eq!(lines[1]["mode"], "stream");
    assert_eq!(lines[1]["path"], "/anything", "the query (which holds the key) is not logged");
    assert_eq!(lines[2]["status"], 401);
    assert_eq!(lines[2]["error"], "unauthorized");
    let all = gw.logs();
    for secret in [
        "hello_world",
        "bo_secret_key",
        "wrong_key_value",
        "sk-client-secret",
        PROVIDER_KEY,
        pat,
        "body text that must not be logged",
    ] {
        assert!(!all.contains(secret), "{secret} leaked into the logs");
    }
}
