//! ai-mcp-proxy with raw JSON-RPC over HTTP, against the real MCP server (official SDK) that
//! records what reaches it: every malformed, oversized, unknown, batched-where-forbidden or
//! refused message is answered by the gateway and never forwarded; sessions are bound to
//! their consumer across gateway nodes; SSE answers pass event by event; tool lists are
//! filtered in JSON and SSE answers (resumed streams too) and pinned.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use support::gateway::{clear_of_window_end, client, GatewayProcess, GatewaySpec};
use support::mcp_bed::{github_deck, McpBed};
use support::mcp_server::McpServerOptions;
use support::redis::RedisServer;

const ACCEPT: &str = "application/json, text/event-stream";

fn init_body() -> Value {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}})
}

async fn post(url: &str, key: &str, session: Option<&str>, body: String) -> reqwest::Response {
    let mut headers = vec![("mcp-protocol-version", "2025-11-25")];
    headers.extend(session.map(|s| ("mcp-session-id", s)));
    post_with(url, key, &headers, reqwest::Body::from(body)).await
}

/// A POST as MCP clients send it (key, Accept, JSON), with `headers` added.
async fn post_with(url: &str, key: &str, headers: &[(&str, &str)], body: reqwest::Body) -> reqwest::Response {
    let mut r =
        client().post(url).header("apikey", key).header("accept", ACCEPT).header("content-type", "application/json");
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(body).send().await.unwrap()
}

/// The JSON-RPC message(s) of an answer, JSON or SSE.
async fn messages(resp: reqwest::Response) -> Vec<Value> {
    let sse = resp.headers().get("content-type").is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
    let text = resp.text().await.unwrap();
    if !sse {
        return match serde_json::from_str::<Value>(&text).unwrap() {
            Value::Array(a) => a,
            v => vec![v],
        };
    }
    text.split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter(|d| !d.is_empty())
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// Initialize a session for `key`; its (gateway-issued) session id.
async fn session(bed: &McpBed, key: &str) -> String {
    let resp = post(&bed.url(), key, None, init_body().to_string()).await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let _ = resp.text().await;
    let n = json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string();
    assert_eq!(post(&bed.url(), key, Some(&id), n).await.status(), 202);
    id
}

fn rpc(id: u64, method: &str, params: Value) -> String {
    json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string()
}

#[tokio::test]
async fn what_the_gateway_answers_itself_never_reaches_the_server() {
    let bed = McpBed::start(McpServerOptions::default(), "        max_request_body_size: 4096\n", "");
    let url = bed.url();
    let sid = session(&bed, "alice-key").await;
    let before = bed.server.received().len();
    let check = |status: u16, code: i64| {
        move |(s, v): (u16, Value)| {
            assert_eq!(s, status, "{v}");
            assert_eq!(v["error"]["code"], code, "{v}");
        }
    };
    async fn answer(r: reqwest::Response) -> (u16, Value) {
        let s = r.status().as_u16();
        (s, serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null))
    }
    // Not JSON.
    check(400, -32700)(answer(post(&url, "alice-key", Some(&sid), "{not json".into()).await).await);
    // Not JSON-RPC.
    check(400, -32600)(answer(post(&url, "alice-key", Some(&sid), r#"{"id":1,"method":"ping"}"#.into()).await).await);
    // A method no 2025 revision has (2026's server/discover included): answered, with its id.
    let (s, v) = answer(post(&url, "alice-key", Some(&sid), rpc(7, "server/discover", json!({}))).await).await;
    assert_eq!((s, v["error"]["code"].as_i64(), v["id"].as_i64()), (200, Some(-32601), Some(7)), "{v}");
    let (s, _) =
        answer(post(&url, "alice-key", Some(&sid), r#"{"jsonrpc":"2.0","method":"notifications/bogus"}"#.into()).await)
            .await;
    assert_eq!(s, 400);
    // Batches are not in 2025-11-25.
    let batch = format!("[{},{}]", rpc(1, "ping", json!({})), rpc(2, "ping", json!({})));
    check(400, -32600)(answer(post(&url, "alice-key", Some(&sid), batch).await).await);
    // Over the plugin's max_request_body_size: declared, and chunked (held back, then refused).
    let big = rpc(3, "tools/call", json!({"name": "echo", "arguments": {"text": "x".repeat(5000)}}));
    check(413, -32600)(answer(post(&url, "alice-key", Some(&sid), big.clone()).await).await);
    let stream = futures_util::stream::iter(
        big.into_bytes().chunks(1000).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
    );
    let r = post_with(&url, "alice-key", &[("mcp-session-id", &sid)], reqwest::Body::wrap_stream(stream)).await;
    check(413, -32600)(answer(r).await);
    // Held back (not declared small enough to read first): the server had the request head
    // and an unfinished body, which it never processes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while bed.server.incomplete() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(bed.server.incomplete(), 1);
    // A content type that is not JSON; a method the endpoint does not take.
    let r = client()
        .post(&url)
        .header("apikey", "alice-key")
        .header("content-type", "text/plain")
        .body(rpc(4, "ping", json!({})))
        .send()
        .await
        .unwrap();
    check(415, -32600)(answer(r).await);
    let r = client().put(&url).header("apikey", "alice-key").body("{}").send().await.unwrap();
    check(405, -32600)(answer(r).await);
    // A protocol version the gateway does not speak.
    let headers = [("mcp-protocol-version", "1999-01-01"), ("mcp-session-id", &sid)];
    let r = post_with(&url, "alice-key", &headers, rpc(5, "tools/list", json!({})).into()).await;
    check(400, -32600)(answer(r).await);
    // A refused tool: Kong 3.14's 403 with a JSON-RPC error carrying the request's id.
    let (s, v) = answer(
        post(
            &url,
            "bob-key",
            None,
            rpc(6, "tools/call", json!({"name": "create_pull_request", "arguments": {"title": "t"}})),
        )
        .await,
    )
    .await;
    assert_eq!((s, v["id"].as_i64(), v["error"]["code"].as_i64()), (403, Some(6), Some(-32602)), "{v}");
    // A 2025-03-26 batch (no version header): each element checked; one refusal refuses it all.
    let batch = format!(
        "[{},{}]",
        rpc(8, "tools/call", json!({"name": "add", "arguments": {"a": 1, "b": 2}})),
        rpc(9, "tools/call", json!({"name": "delete_repository", "arguments": {"name": "x"}}))
    );
    let r = post_with(&url, "alice-key", &[("mcp-session-id", &sid)], batch.into()).await;
    assert_eq!(r.status(), 403);
    let answers: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(answers[0]["id"], 8);
    assert_eq!(answers[1]["id"], 9);
    assert_eq!(answers[1]["error"]["code"], -32602);
    // None of it reached the server.
    let after = bed.server.received();
    assert_eq!(after.len(), before, "{:?}", &after[before..]);
    // Unauthenticated: key-auth's answer, nothing forwarded either.
    let r = client()
        .post(&url)
        .header("content-type", "application/json")
        .body(rpc(1, "ping", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(bed.server.received().len(), before);
}

#[tokio::test]
async fn sessions_are_bound_to_their_consumer_on_every_node() {
    let secret = "cluster_secret: 0123456789abcdef0123456789abcdef-node-secret\n";
    let bed = McpBed::start(McpServerOptions::default(), "", secret);
    let alice = session(&bed, "alice-key").await;
    let list = rpc(1, "tools/list", json!({}));
    // Alice's session works for alice...
    let r = post(&bed.url(), "alice-key", Some(&alice), list.clone()).await;
    assert_eq!(r.status(), 200);
    assert!(!messages(r).await[0]["result"]["tools"].as_array().unwrap().is_empty());
    // ...not for bob (as if it did not exist), nor forged, nor the server's bare id.
    let before = bed.server.received().len();
    for (key, id) in [
        ("bob-key", alice.clone()),
        ("alice-key", format!("{alice}x")),
        ("alice-key", alice.rsplit_once('.').unwrap().0.to_string()),
    ] {
        let r = post(&bed.url(), key, Some(&id), list.clone()).await;
        assert_eq!(r.status(), 404, "{key} {id}");
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(v["error"]["message"], "Session not found");
    }
    let r =
        client().delete(bed.url()).header("apikey", "bob-key").header("mcp-session-id", &alice).send().await.unwrap();
    assert_eq!(r.status(), 404, "bob cannot end alice's session");
    assert_eq!(bed.server.received().len(), before, "refused session ids never reach the server");

    // A second node with the same secret (no shared memory) accepts alice's id for alice only.
    let dir2 = tempfile::tempdir().unwrap();
    std::fs::write(dir2.path().join("ca.pem"), &bed.ca.cert_pem).unwrap();
    let node2 = |secret: &str| {
        let deck = github_deck("");
        GatewayProcess::start(
            dir2.path(),
            GatewaySpec::new(&[("kong.yaml", deck.as_str())])
                .settings(&format!(
                    "tls_trusted_ca: {}\nupstream_resolve:\n  \"api.githubcopilot.com:443\": \"{}\"\n{secret}",
                    dir2.path().join("ca.pem").display(),
                    bed.server.addr
                ))
                .env("DECK_GITHUB_PAT", support::mcp_bed::GITHUB_PAT),
        )
    };
    let gw2 = node2(secret);
    let url2 = gw2.url("/mcp/github");
    assert_eq!(post(&url2, "alice-key", Some(&alice), list.clone()).await.status(), 200);
    assert_eq!(post(&url2, "bob-key", Some(&alice), list.clone()).await.status(), 404);
    drop(gw2);
    let gw3 = node2("cluster_secret: another-secret-of-at-least-32-bytes!!\n");
    assert_eq!(post(&gw3.url("/mcp/github"), "alice-key", Some(&alice), list.clone()).await.status(), 404);
    // Alice ends her session; the server then forgets it.
    let r =
        client().delete(bed.url()).header("apikey", "alice-key").header("mcp-session-id", &alice).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(post(&bed.url(), "alice-key", Some(&alice), list).await.status(), 404);
}

#[tokio::test]
async fn an_sse_event_arrives_while_the_server_holds_the_next() {
    let bed = McpBed::start(McpServerOptions::default(), "", "");
    let sid = session(&bed, "alice-key").await;
    let resp =
        post(&bed.url(), "alice-key", Some(&sid), rpc(5, "tools/call", json!({"name": "hold", "arguments": {}}))).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("holding") {
        let chunk = tokio::time::timeout_at(deadline.into(), stream.next())
            .await
            .expect("the notification was held back")
            .unwrap()
            .unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(!seen.contains("released"));
    // The server still holds its answer: nothing more comes.
    assert!(tokio::time::timeout(Duration::from_millis(400), stream.next()).await.is_err());
    bed.server.release();
    while let Some(chunk) = stream.next().await {
        seen.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert!(seen.contains("released"), "{seen}");
}

#[tokio::test]
async fn tool_lists_are_filtered_in_json_answers_and_resumed_streams() {
    // JSON answers, and a long list (the answer spans many reads).
    let bed = McpBed::start(McpServerOptions { json: true, extra_tools: 300, ..Default::default() }, "", "");
    let sid = session(&bed, "bob-key").await;
    let r = post(&bed.url(), "bob-key", Some(&sid), rpc(2, "tools/list", json!({}))).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-length").is_none() || r.headers()["content-type"] == "application/json");
    let v = &messages(r).await[0];
    let names: Vec<&str> =
        v["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 307, "300 extra tools + add, echo, progress, hold, search_code, get_issue, whoami");
    assert!(!names.contains(&"create_pull_request") && !names.contains(&"delete_repository"));
    assert_eq!(v["id"], 2);
    drop(bed);

    // SSE with an event store: a stream resumed with Last-Event-ID replays the tool list,
    // filtered too.
    let bed = McpBed::start(McpServerOptions { events: true, ..Default::default() }, "", "");
    let sid = session(&bed, "bob-key").await;
    let r = post(&bed.url(), "bob-key", Some(&sid), rpc(3, "tools/list", json!({}))).await;
    let text = r.text().await.unwrap();
    assert!(!text.contains("create_pull_request"), "{text}");
    let first_id = text.lines().find_map(|l| l.strip_prefix("id: ")).expect("event ids").to_string();
    let r = client()
        .get(bed.url())
        .header("apikey", "bob-key")
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-11-25")
        .header("last-event-id", &first_id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut stream = r.bytes_stream();
    let mut replay = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !replay.contains("\"tools\"") {
        match tokio::time::timeout_at(deadline.into(), stream.next()).await {
            Ok(Some(Ok(c))) => replay.push_str(std::str::from_utf8(&c).unwrap()),
            _ => break,
        }
    }
    assert!(replay.contains("search_code"), "the stream was not replayed: {replay}");
    assert!(!replay.contains("create_pull_request"), "a resumed stream leaked a hidden tool: {replay}");
}

#[tokio::test]
async fn a_changed_tool_list_blocks_the_server_until_accepted() {
    let pinned = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let bed = McpBed::start(
        McpServerOptions::default(),
        &format!("        pin_tools: block\n        tools_digest: \"{pinned}\"\n"),
        "",
    );
    let sid = session(&bed, "alice-key").await;
    // The server's list is not the pinned one: the list is withheld and the server blocked.
    let v = &messages(post(&bed.url(), "alice-key", Some(&sid), rpc(1, "tools/list", json!({}))).await).await[0];
    assert_eq!(v["error"]["code"], -32603, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("blocked"), "{v}");
    let calls_before = bed.server.methods().iter().filter(|m| m.starts_with("tools/call")).count();
    let r = post(
        &bed.url(),
        "alice-key",
        Some(&sid),
        rpc(2, "tools/call", json!({"name": "add", "arguments": {"a": 1, "b": 1}})),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(bed.server.methods().iter().filter(|m| m.starts_with("tools/call")).count(), calls_before);
    let pins: Value = client().get(bed.gateway.status_url("/mcp/pins")).send().await.unwrap().json().await.unwrap();
    assert_eq!(pins["github-mcp"]["blocked"], true, "{pins}");
    // An operator accepts the list: the server is usable again.
    let accept = client().post(bed.gateway.status_url("/mcp/pins/github-mcp/accept"));
    let r = accept.header("X-Aigate-Operator", "1").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v = &messages(post(&bed.url(), "alice-key", Some(&sid), rpc(3, "tools/list", json!({}))).await).await[0];
    assert!(v["result"]["tools"].as_array().unwrap().len() >= 7, "{v}");
    let v = &messages(
        post(
            &bed.url(),
            "alice-key",
            Some(&sid),
            rpc(4, "tools/call", json!({"name": "add", "arguments": {"a": 1, "b": 1}})),
        )
        .await,
    )
    .await[0];
    assert_eq!(v["result"]["content"][0]["text"], "2", "{v}");
    let metrics = client().get(bed.gateway.status_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"aigate_mcp_tool_list_changes_total{action="blocked",server_label="github-mcp"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn rate_limiting_on_an_mcp_route_refuses_before_the_server_with_a_json_rpc_error() {
    clear_of_window_end(60, 8).await;
    let bed = McpBed::start(McpServerOptions::default(), "    - name: rate-limiting\n      config: {minute: 3}", "");
    let sid = session(&bed, "alice-key").await; // two requests: initialize and its notification
    let list = post(&bed.url(), "alice-key", Some(&sid), rpc(1, "tools/list", json!({}))).await;
    assert_eq!(list.status(), 200);
    assert_eq!(list.headers()["x-ratelimit-remaining-minute"], "0");
    let _ = list.text().await;
    let before = bed.server.received().len();
    let refused = post(&bed.url(), "alice-key", Some(&sid), rpc(2, "tools/list", json!({}))).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    // As every refusal on an MCP route but authentication's: a JSON-RPC error MCP clients show.
    assert_eq!(body["error"]["message"], "API rate limit exceeded", "{body}");
    assert_eq!(bed.server.received().len(), before, "a refused message never reaches the server");
    // Another consumer has its own count.
    session(&bed, "bob-key").await;
}

/// Polls `check` for up to 3 s (the cluster's pins are read back every second).
async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_tool_list_blocked_on_one_node_blocks_the_server_on_the_other_through_the_cluster_store() {
    let redis = RedisServer::start();
    let pinned = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let extra = format!("        pin_tools: block\n        tools_digest: \"{pinned}\"\n");
    let settings = format!("cluster_redis: {}\n", redis.record());
    let bed = McpBed::start(McpServerOptions::default(), &extra, &settings);
    let dir2 = tempfile::tempdir().unwrap();
    std::fs::write(dir2.path().join("ca.pem"), &bed.ca.cert_pem).unwrap();
    let deck = github_deck(&extra);
    let node2 = GatewayProcess::start(
        dir2.path(),
        GatewaySpec::new(&[("kong.yaml", deck.as_str())])
            .settings(&format!(
                "tls_trusted_ca: {}\nupstream_resolve:\n  \"api.githubcopilot.com:443\": \"{}\"\n{settings}",
                dir2.path().join("ca.pem").display(),
                bed.server.addr
            ))
            .env("DECK_GITHUB_PAT", support::mcp_bed::GITHUB_PAT),
    );
    let url2 = node2.url("/mcp/github");
    let init = post(&url2, "alice-key", None, init_body().to_string()).await;
    let sid2 = init.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let call = |id: u64| rpc(id, "tools/call", json!({"name": "add", "arguments": {"a": 1, "b": 1}}));
    assert_eq!(post(&url2, "alice-key", Some(&sid2), call(1)).await.status(), 200, "not blocked yet");
    // Node 1 sees a list other than the pinned one: the server is blocked on node 2 too, which
    // never saw a list itself.
    let sid = session(&bed, "alice-key").await;
    let v = &messages(post(&bed.url(), "alice-key", Some(&sid), rpc(1, "tools/list", json!({}))).await).await[0];
    assert_eq!(v["error"]["code"], -32603, "{v}");
    assert!(eventually(async || post(&url2, "alice-key", Some(&sid2), call(2)).await.status() == 403).await);
    let pins: Value = client().get(node2.status_url("/mcp/pins")).send().await.unwrap().json().await.unwrap();
    assert_eq!(pins["github-mcp"]["blocked"], true, "{pins}");
    // An operator accepts it on node 2: node 1 serves the server again.
    let r = client()
        .post(node2.status_url("/mcp/pins/github-mcp/accept"))
        .header("x-aigate-operator", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(eventually(async || post(&bed.url(), "alice-key", Some(&sid), call(3)).await.status() == 200).await);
}
