//! A real Prometheus (Debian's `prometheus` package) scrapes aigate on loopback, and a
//! per-consumer token series is queried back through its HTTP API.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::gateway::{client, free_port, walkthrough_deck, GatewaySpec, TestBed};

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn prometheus_scrapes_per_consumer_token_series() {
    let bed = TestBed::new().await;
    let deck = walkthrough_deck();
    let refs: Vec<(&str, &str)> = deck.iter().map(|(n, c)| (n.as_str(), c.as_str())).collect();
    let gw = bed.start(GatewaySpec::new(&refs));

    // Traffic first, and the exact total the provider reported.
    let mut expected = 0;
    for i in 0..3 {
        let v: Value = client()
            .post(gw.url("/anything"))
            .header("apikey", "hello_world")
            .json(&json!({"input": "y".repeat(100 * (i + 1))}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        expected += v["usage"]["total_tokens"].as_u64().unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n- job_name: aigate\n  static_configs:\n  - targets: ['{}']\n", gw.status),
    )
    .unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus is needed (Debian package prometheus; .ci/run installs it)");
    let _prom = Prometheus(child);

    let query = format!("http://127.0.0.1:{port}/api/v1/query");
    let q = "aigate_llm_tokens_total{consumer=\"alex\",token_type=\"total\",model=\"gpt-4o\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    let value = loop {
        if let Ok(resp) = client().get(&query).query(&[("query", q)]).send().await {
            if let Ok(v) = resp.json::<Value>().await {
                if let Some(x) = v["data"]["result"][0]["value"][1].as_str() {
                    break x.parse::<f64>().unwrap();
                }
            }
        }
        assert!(Instant::now() < deadline, "prometheus never returned the series");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(value as u64, expected);
    // The scrape itself is healthy.
    let up: Value =
        client().get(&query).query(&[("query", "up{job=\"aigate\"}")]).send().await.unwrap().json().await.unwrap();
    assert_eq!(up["data"]["result"][0]["value"][1], "1");
}
