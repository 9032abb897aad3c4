//! Lifecycle: SIGTERM drains in-flight streams and refuses new connections; SIGHUP reloads
//! the decK files in place (a bad one is refused and the old one keeps serving); under
//! continuous wrk load neither reloads nor a binary upgrade (SIGQUIT + `run --upgrade`)
//! fail a single request.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use support::gateway::{binary, client, walkthrough_deck, GatewayProcess, GatewaySpec, TestBed};
use support::prom;

fn spec() -> GatewaySpec {
    let deck = walkthrough_deck();
    let refs: Vec<(&str, &str)> = deck.iter().map(|(n, c)| (n.as_str(), c.as_str())).collect();
    GatewaySpec::new(&refs)
}

async fn status_with_key(gw: &GatewayProcess, key: &str) -> u16 {
    client()
        .post(gw.url("/anything"))
        .header("apikey", key)
        .json(&json!({"input": "x"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn sigterm_lets_streams_finish_refuses_new_connections_and_exits_early() {
    let bed = TestBed::new().await;
    let mut gw = bed.start(spec().settings("grace_period: 20\n"));
    let resp = client()
        .post(gw.url("/anything"))
        .header("apikey", "hello_world")
        .header("x-mock-event-gap-ms", "100")
        .header("x-mock-deltas", "15")
        .json(&json!({"input": "x", "stream": true}))
        .send()
        .await
        .unwrap();
    let mut s = resp.bytes_stream();
    let mut text = String::from_utf8(s.next().await.unwrap().unwrap().to_vec()).unwrap();
    let sent = Instant::now();
    gw.signal("TERM");
    // New connections are refused soon after.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if std::net::TcpStream::connect_timeout(&gw.proxy, Duration::from_millis(200)).is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "still accepting connections after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The stream in flight completes.
    while let Some(c) = s.next().await {
        text.push_str(std::str::from_utf8(&c.expect("the stream was cut")).unwrap());
    }
    assert!(text.contains("event: response.completed"), "stream cut short");
    // And the process leaves right after, not at the end of the 20 s grace period.
    let code = gw.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(sent.elapsed() < Duration::from_secs(8), "{:?}", sent.elapsed());
}

#[tokio::test]
async fn sighup_reloads_and_a_bad_config_is_refused_with_its_reasons() {
    let bed = TestBed::new().await;
    let gw = bed.start(spec());
    let digest = |s: Value| s["config_digest"].as_str().unwrap().to_string();
    let before: Value = client().get(gw.status_url("/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status_with_key(&gw, "hello_world").await, 200);
    assert_eq!(status_with_key(&gw, "new_key").await, 401);

    // A new consumer, and alex's key removed.
    std::fs::write(gw.dir.join("04-consumers.yaml"), "_format_version: \"3.0\"\nconsumers:\n- username: alex\n- username: newbie\n  keyauth_credentials: [{key: new_key}]\n").unwrap();
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while status_with_key(&gw, "new_key").await != 200 {
        assert!(Instant::now() < deadline, "reload not applied:\n{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_with_key(&gw, "hello_world").await, 401);
    let after: Value = client().get(gw.status_url("/status")).send().await.unwrap().json().await.unwrap();
    assert_ne!(digest(before), digest(after.clone()));
    assert_eq!(after["consumers"], 2);

    // A broken file: refused, the running configuration stays.
    std::fs::write(gw.dir.join("04-consumers.yaml"), "_format_version: \"3.0\"\nconsumers:\n- usrname: typo\n")
        .unwrap();
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = client().get(gw.status_url("/metrics")).send().await.unwrap().text().await.unwrap();
        if prom::value(&m, "aigate_config_reloads_total", &[("result", "failure")]) == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "failed reload not counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_with_key(&gw, "new_key").await, 200);
    let logs = gw.logs();
    assert!(logs.contains("configuration NOT reloaded") && logs.contains("unknown field `usrname`"), "{logs}");
}

fn wrk_script(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("post.lua");
    std::fs::write(
        &p,
        "wrk.method = \"POST\"\nwrk.body = '{\"input\":\"hello\"}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"apikey\"] = \"hello_world\"\n",
    )
    .unwrap();
    p
}

/// wrk's summary: (requests, non-2xx, socket errors).
fn wrk_counts(out: &str) -> (u64, u64, u64) {
    let requests = out
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ").and_then(|(n, _)| n.trim().parse().ok()))
        .unwrap_or(0);
    let non2xx = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses: ").and_then(|n| n.trim().parse().ok()))
        .unwrap_or(0);
    let errors = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors: "))
        .map(|e| e.split(',').filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    (requests, non2xx, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_across_reloads_and_an_upgrade_under_load() {
    let bed = TestBed::new().await;
    let mut gw = bed.start(spec());
    let script = wrk_script(&gw.dir);
    let wrk = Command::new("wrk")
        .args(["-t1", "-c8", "-d7s", "-s"])
        .arg(&script)
        .arg(gw.url("/anything"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wrk is needed (Debian package wrk; .ci/run installs it)");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Two in-place reloads: a consumer added, then the original file back.
    let consumers = gw.dir.join("04-consumers.yaml");
    let original = std::fs::read_to_string(&consumers).unwrap();
    std::fs::write(&consumers, format!("{original}- username: extra\n  keyauth_credentials: [{{key: extra_key}}]\n"))
        .unwrap();
    gw.signal("HUP");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(status_with_key(&gw, "extra_key").await, 200);
    gw.signal("HUP");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // A binary upgrade: the new process takes the listening sockets over.
    gw.signal("QUIT");
    let mut upgraded = Command::new(binary())
        .args(["run", "--upgrade", "--config"])
        .arg(&gw.settings_path)
        .env("DECK_OPENAI_API_KEY", support::gateway::PROVIDER_KEY)
        .stdout(std::fs::File::create(gw.dir.join("upgraded.out")).unwrap())
        .stderr(std::fs::File::create(gw.dir.join("upgraded.err")).unwrap())
        .spawn()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || wrk.wait_with_output().unwrap()).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (requests, non2xx, errors) = wrk_counts(&text);
    // The old process handed over and left.
    let old_exit = gw.wait_exit(Duration::from_secs(15));
    let new_alive = upgraded.try_wait().unwrap().is_none();
    let served_after = status_with_key(&gw, "extra_key").await;
    let _ = upgraded.kill();
    let _ = upgraded.wait();
    assert!(requests > 200, "wrk did not run: {text}");
    assert_eq!((non2xx, errors), (0, 0), "failed requests across reload/upgrade:\n{text}");
    assert_eq!(old_exit, Some(0));
    assert!(new_alive, "the upgraded process is serving");
    assert_eq!(served_after, 200, "the new process serves the current configuration");
}
