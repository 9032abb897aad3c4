//! The official MCP Python SDK on both sides of aigate: a FastMCP server (Streamable HTTP, TLS)
//! standing in for GitHub's remote MCP server at https://api.githubcopilot.com/mcp/, and the
//! SDK's Streamable HTTP client (2.x, and 1.x from target/pyenv-mcp1) with a consumer's key.
//! Each consumer sees its own tool list, is refused the others' tools, and never holds — or
//! sends — the GitHub credential: the server's record shows the gateway's PAT only.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use serde_json::Value;
use support::mcp_bed::{McpBed, GITHUB_PAT};
use support::mcp_server::McpServerOptions;

const CLIENT: &str = include_str!("python/mcp_client.py");

fn run_client(python_env: &str, bed: &McpBed, key: &str, calls: Value, auto: bool) -> Value {
    let python = support::python::require(support::python::python_of(python_env), &["mcp"]);
    let url = bed.url();
    let calls = calls.to_string();
    let mut env =
        vec![("URL", url.as_str()), ("KEY", key), ("TOKEN", "client-own-github-token"), ("CALLS", calls.as_str())];
    if auto {
        env.push(("AUTO", "1"));
    }
    let out = support::python::run_with(python, CLIENT, &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed: Value = serde_json::from_str(stdout.trim().lines().last().unwrap_or("")).unwrap_or_else(|_| {
        panic!("client output: {stdout}\n{}\n{}", String::from_utf8_lossy(&out.stderr), bed.gateway.logs())
    });
    parsed
}

fn calls() -> Value {
    serde_json::json!([
        ["add", {"a": 2, "b": 3}],
        ["echo", {"text": "hello"}],
        ["progress", {"steps": 3}],
        ["create_pull_request", {"title": "x"}],
        ["delete_repository", {"name": "prod"}],
        ["add", {"a": 1, "b": 1}],
        ["whoami", {}]
    ])
}

fn tool_call(out: &Value, i: usize) -> &Value {
    &out["calls"][i]
}

/// What the server must never have received: the client's own credential or gateway key.
fn assert_credentials(bed: &McpBed) {
    let received = bed.server.received();
    assert!(!received.is_empty());
    for r in &received {
        assert_eq!(r["headers"]["authorization"], format!("Bearer {GITHUB_PAT}"), "{r}");
        assert!(r["headers"].get("apikey").is_none(), "the consumer's key reached the MCP server: {r}");
        assert!(!r.to_string().contains("client-own-github-token"), "{r}");
    }
}

#[test]
fn the_2x_client_through_the_gateway_with_kongs_403() {
    let bed = McpBed::start(McpServerOptions::default(), "", "");
    let alice = run_client("", &bed, "alice-key", calls(), false);
    assert!(alice.get("crashed").is_none(), "{alice}\n{}", bed.gateway.logs());
    assert_eq!(alice["major"], 2);
    assert_eq!(alice["protocol"], "2025-11-25");
    let all = ["add", "create_pull_request", "echo", "get_issue", "hold", "progress", "search_code", "whoami"];
    assert_eq!(alice["tools"], serde_json::json!(all), "{alice}");
    assert_eq!(tool_call(&alice, 0)["text"], serde_json::json!(["5"]));
    assert_eq!(tool_call(&alice, 1)["text"], serde_json::json!(["hello"]));
    // The log notification and the progress notifications came through the SSE answers.
    assert!(alice["logs"].to_string().contains("echoing 5 chars"), "{alice}");
    assert_eq!(alice["progress"], serde_json::json!([1.0, 2.0, 3.0]), "{alice}");
    assert_eq!(tool_call(&alice, 3)["text"], serde_json::json!(["opened x"]));
    // Refused by the gateway with HTTP 403: the 2.x client surfaces it and its session goes on.
    assert_eq!(tool_call(&alice, 4)["error"]["code"], -32602, "{alice}");
    assert!(tool_call(&alice, 4)["error"]["message"].as_str().unwrap().contains("not allowed"), "{alice}");
    assert_eq!(tool_call(&alice, 5)["text"], serde_json::json!(["2"]));
    assert_eq!(alice["ping"], true);
    assert_eq!(alice["closed"], true);
    // A server echoing the credential it got: the client gets it masked, never the PAT.
    let echoed = tool_call(&alice, 6)["text"][0].as_str().unwrap();
    assert!(echoed.starts_with("authorization: Bearer ***"), "{alice}");
    assert!(!alice.to_string().contains(GITHUB_PAT), "the client saw the gateway's PAT");

    let bob = run_client("", &bed, "bob-key", calls(), false);
    assert!(bob.get("crashed").is_none(), "{bob}");
    let bobs: Vec<&str> = all.iter().copied().filter(|t| *t != "create_pull_request").collect();
    assert_eq!(bob["tools"], serde_json::json!(bobs), "{bob}");
    assert_eq!(tool_call(&bob, 3)["error"]["code"], -32602, "{bob}");
    assert_eq!(tool_call(&bob, 0)["text"], serde_json::json!(["5"]));

    // What the server received: refused calls never; the end of each session (DELETE) and the
    // client's notifications did; every request carried the gateway's PAT.
    let methods = bed.server.methods();
    assert!(!methods.iter().any(|m| m == "tools/call:delete_repository"), "{methods:?}");
    assert_eq!(methods.iter().filter(|m| *m == "tools/call:create_pull_request").count(), 1, "{methods:?}");
    assert!(methods.iter().any(|m| m == "notifications/roots/list_changed"), "{methods:?}");
    assert!(methods.iter().any(|m| m == "notifications/initialized"), "{methods:?}");
    let deletes = bed.server.received().iter().filter(|r| r["method"] == "DELETE").count();
    assert_eq!(deletes, 2, "each client ended its session");
    assert_credentials(&bed);

    // Metrics: proxied calls by outcome, denied ones, the latency histogram, decisions.
    let metrics = support::gateway::http_get_blocking(bed.gateway.status, "/metrics").unwrap();
    assert!(metrics.contains(r#"aigate_mcp_calls_total{consumer="alice",outcome="success",server_label="github-mcp",source="proxied",tool="add"} 2"#), "{metrics}");
    assert!(metrics.contains(r#"aigate_mcp_calls_total{consumer="alice",outcome="denied",server_label="github-mcp",source="proxied",tool="delete_repository"} 1"#), "{metrics}");
    assert!(
        metrics.contains(r#"aigate_mcp_call_duration_seconds_count{server_label="github-mcp",tool="echo"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"aigate_mcp_guard_decisions_total{consumer="bob",decision="narrowed",server_label="github-mcp"}"#
        ),
        "{metrics}"
    );
    // The access log: methods, tools and decisions; never arguments or credentials.
    let log = bed.gateway.access_log();
    let refused = log
        .iter()
        .flat_map(|l| l["mcp"].as_array().cloned().unwrap_or_default())
        .find(|m| m["event"] == "refused")
        .unwrap();
    assert_eq!(refused["method"], "tools/call");
    assert_eq!(refused["tool"], "delete_repository");
    let text = std::fs::read_to_string(bed.gateway.dir.join("access.log")).unwrap();
    for secret in [GITHUB_PAT, "alice-key", "client-own-github-token", "prod\"", "hello"] {
        assert!(!text.contains(secret), "{secret} in the access log");
    }
}

#[test]
fn the_2x_client_falls_back_from_server_discover_to_initialize() {
    let bed = McpBed::start(McpServerOptions::default(), "", "");
    let out = run_client("", &bed, "bob-key", serde_json::json!([["add", {"a": 20, "b": 22}]]), true);
    assert!(out.get("crashed").is_none(), "{out}");
    assert_eq!(out["protocol"], "2025-11-25", "{out}");
    assert_eq!(tool_call(&out, 0)["text"], serde_json::json!(["42"]), "{out}");
    // The 2026-07-28 probe was answered by the gateway; it never reached the server.
    let methods = bed.server.methods();
    assert!(!methods.iter().any(|m| m == "server/discover"), "{methods:?}");
    assert!(methods.iter().any(|m| m == "initialize"), "{methods:?}");
    let log = bed.gateway.access_log();
    assert!(
        log.iter().any(
            |l| l["mcp"].to_string().contains("server/discover") && l["mcp"].to_string().contains("unknown_method")
        ),
        "{log:?}"
    );
}

#[test]
fn the_1x_client_keeps_its_session_when_refusals_are_200() {
    let bed = McpBed::start(McpServerOptions::default(), "        denied_status: 200\n", "");
    let alice = run_client("-mcp1", &bed, "alice-key", calls(), false);
    assert!(alice.get("crashed").is_none(), "{alice}");
    assert_eq!(alice["major"], 1);
    assert!(alice["tools"].as_array().unwrap().iter().any(|t| t == "create_pull_request"));
    assert_eq!(tool_call(&alice, 4)["error"]["code"], -32602, "{alice}");
    assert_eq!(tool_call(&alice, 5)["text"], serde_json::json!(["2"]), "{alice}");
    assert!(alice["session_id"].as_str().unwrap().contains('.'), "the gateway's bound id: {alice}");
    let eve = run_client("-mcp1", &bed, "eve-key", serde_json::json!([["add", {"a": 1, "b": 2}]]), false);
    assert_eq!(eve["tools"], serde_json::json!([]), "{eve}");
    assert_eq!(tool_call(&eve, 0)["error"]["code"], -32602, "{eve}");
    assert_credentials(&bed);
}

#[test]
fn the_1x_client_loses_its_session_on_kongs_403_as_documented() {
    let bed = McpBed::start(McpServerOptions::default(), "", "");
    let out = run_client(
        "-mcp1",
        &bed,
        "bob-key",
        serde_json::json!([["create_pull_request", {"title": "t"}], ["add", {"a": 1, "b": 1}]]),
        false,
    );
    // The documented trade-off of `denied_status: 403` (Kong 3.14's answer) with 1.x clients:
    // the refused call tears the client's session down; the next call never happens.
    assert!(out["crashed"].as_str().is_some_and(|c| c.contains("HTTPStatusError") && c.contains("403")), "{out}");
    assert_eq!(out["calls"], serde_json::json!([]), "{out}");
}

#[test]
fn a_suspended_consumer_cannot_even_initialize() {
    let bed = McpBed::start(McpServerOptions { json: true, ..Default::default() }, "", "");
    let out = run_client("", &bed, "carol-key", serde_json::json!([]), false);
    assert!(out.get("crashed").is_some() || out.get("protocol").is_none(), "{out}");
    assert!(bed.server.received().is_empty(), "nothing of carol's reached the server");
}
