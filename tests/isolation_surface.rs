//! Tenant isolation through the real binary, tried as an attacker would: with one consumer's key
//! against the API surface an LLM route does not offer and against another consumer's objects.
//! "Nothing reached the provider" is read from the test upstream's record, never from the
//! gateway's word.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::gateway::{client, GatewayProcess, GatewaySpec, TestBed, PROVIDER_KEY};
use support::raw;

const DECK: &str = r#"_format_version: "3.0"
services:
- name: llm
  url: http://unused.invalid
  routes:
  - name: responses
    paths: [/anything]
  - name: chat
    paths: [/chat]
- name: plain
  url: http://127.0.0.1:PLAIN_PORT
  routes:
  - name: plain
    paths: [/plain]
plugins:
- name: key-auth
  service: llm
  config: {key_names: [apikey], run_on_preflight: false}
- name: ai-proxy
  route: responses
  config:
    route_type: llm/v1/responses
    auth: {header_name: Authorization, header_value: 'Bearer ${{ env "DECK_OPENAI_API_KEY" }}'}
    model: {provider: openai, name: gpt-4o, options: {max_tokens: 512, temperature: 1.0}}
- name: ai-proxy
  route: chat
  config:
    route_type: llm/v1/chat
    auth: {header_name: Authorization, header_value: 'Bearer ${{ env "DECK_OPENAI_API_KEY" }}'}
    model: {provider: openai, name: gpt-4o}
consumers:
- username: alex
  keyauth_credentials: [{key: hello_world}]
- username: bo
  keyauth_credentials: [{key: bo_key}]
"#;

const ALEX: &str = "hello_world";
const BO: &str = "bo_key";

fn start(bed: &TestBed, plain_port: u16) -> GatewayProcess {
    bed.start(GatewaySpec::new(&[("kong.yaml", &DECK.replace("PLAIN_PORT", &plain_port.to_string()))]))
}

struct Answer {
    status: u16,
    allow: Option<String>,
    body: Value,
}

async fn call(gw: &GatewayProcess, method: &str, path: &str, key: &str, body: Option<&Value>) -> Answer {
    let mut r = client().request(Method::from_bytes(method.as_bytes()).unwrap(), gw.url(path)).header("apikey", key);
    if let Some(b) = body {
        r = r.json(b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let allow = resp.headers().get("allow").map(|v| v.to_str().unwrap().to_string());
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer { status, allow, body }
}

async fn create(gw: &GatewayProcess, path: &str, key: &str, body: Value) -> Value {
    let a = call(gw, "POST", path, key, Some(&body)).await;
    assert_eq!(a.status, 200, "{path}: {}", a.body);
    a.body
}

/// The requests the test upstream received, as "METHOD target".
/// Alex's streamed request: the whole event stream as text.
async fn stream(gw: &GatewayProcess, path: &str, body: Value) -> String {
    let r = client().post(gw.url(path)).header("apikey", ALEX).json(&body).send().await.unwrap();
    r.text().await.unwrap()
}

fn seen(bed: &TestBed) -> Vec<String> {
    bed.mock.state.records().iter().map(|r| format!("{} {}", r.method, r.target)).collect()
}

/// A raw request on a socket (for what a well-behaved client would not send).
async fn raw_request(gw: &GatewayProcess, head: &str, body: &str) -> raw::RawResponse {
    let req = format!("{head}\r\nHost: gw\r\napikey: {ALEX}\r\nConnection: close\r\n\r\n{body}");
    raw::send_async(gw.proxy, req.into_bytes()).await.unwrap()
}

#[tokio::test]
async fn only_the_operations_of_the_route_type_reach_the_provider() {
    let bed = TestBed::new().await;
    let gw = start(&bed, 9);
    let own = create(&gw, "/anything", ALEX, json!({"input": "hi"})).await["id"].as_str().unwrap().to_string();
    let chat =
        create(&gw, "/chat", ALEX, json!({"messages": [{"role": "user", "content": "hi"}], "store": true})).await;
    let chat_id = chat["id"].as_str().unwrap().to_string();
    let other = create(&gw, "/anything", BO, json!({"input": "bo's"})).await["id"].as_str().unwrap().to_string();
    let before = seen(&bed);

    let upper = own.to_uppercase();
    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        // The collection takes POST only; nothing else reaches the provider's create endpoint.
        ("GET", "/anything".into(), 405, Some("POST")),
        ("PUT", "/anything".into(), 405, Some("POST")),
        ("PATCH", "/anything".into(), 405, Some("POST")),
        ("DELETE", "/anything/responses".into(), 405, Some("POST")),
        ("OPTIONS", "/anything".into(), 405, Some("POST")),
        ("TRACE", "/anything/v1/responses".into(), 405, Some("POST")),
        ("HEAD", format!("/anything/{own}"), 405, Some("GET, DELETE")),
        ("PUT", format!("/anything/{own}"), 405, Some("GET, DELETE")),
        ("POST", format!("/anything/{own}"), 405, Some("GET, DELETE")),
        ("GET", format!("/anything/{own}/cancel"), 405, Some("POST")),
        // Paths the API does not have.
        ("GET", "/anything/v1/models".into(), 404, None),
        ("POST", "/anything/chat/completions".into(), 404, None),
        ("GET", "/anything/files/file_1/content".into(), 404, None),
        ("POST", "/anything/responses/".into(), 404, None),
        ("GET", "/anything/v1/responses/".into(), 404, None),
        // After an owned id, exactly one of the known forms.
        ("GET", format!("/anything/{own}/..%2F{other}"), 404, None),
        ("GET", format!("/anything/{own}/%2E%2E%2F{other}"), 404, None),
        ("GET", format!("/anything/{own}%2F..%2F{other}"), 404, None),
        ("POST", format!("/anything/{own}%2Fcancel"), 404, None),
        ("GET", format!("/anything/{own};x=1"), 404, None),
        ("POST", format!("/anything/{own}/cancel/"), 404, None),
        ("GET", format!("/anything/{own}/input_items/extra"), 404, None),
        ("GET", format!("/anything/{own}/input_items/..%2F..%2F{other}"), 404, None),
        // Dot segments are resolved before anything else: this is bo's id, not alex's.
        ("GET", format!("/anything/{own}/../{other}"), 404, None),
        // Ids are matched exactly.
        ("GET", format!("/anything/responses/{upper}"), 404, None),
        // Chat: the list of stored completions is every tenant's.
        ("GET", "/chat".into(), 405, Some("POST")),
        ("GET", "/chat/v1/chat/completions?limit=100".into(), 405, Some("POST")),
        ("GET", "/chat/chat/completions?metadata%5Btenant%5D=bo".into(), 405, Some("POST")),
        ("PUT", format!("/chat/{chat_id}"), 405, Some("GET, POST, DELETE")),
        ("GET", "/chat/responses".into(), 404, None),
        ("POST", "/chat/v1/conversations".into(), 404, None),
        ("GET", format!("/chat/{chat_id}/messages/x"), 404, None),
    ];
    for (method, path, status, allow) in &cases {
        let a = call(&gw, method, path, ALEX, None).await;
        assert_eq!(a.status, *status, "{method} {path}: {}", a.body);
        if *method != "HEAD" {
            assert!(a.body["error"]["message"].is_string(), "{method} {path}: OpenAI's envelope: {}", a.body);
        }
        assert_eq!(a.allow.as_deref(), *allow, "{method} {path}");
    }
    // Method overrides, bodies on body-less methods, upgrades.
    let overrides = [
        ("POST /anything HTTP/1.1\r\nContent-Type: application/json\r\nX-HTTP-Method-Override: GET\r\nContent-Length: 13", "{\"input\":\"x\"}"),
        (&*format!("POST /anything/{own}/cancel HTTP/1.1\r\nX-Method-Override: DELETE\r\nContent-Length: 0"), ""),
        (&*format!("GET /anything/{own} HTTP/1.1\r\nX-HTTP-Method: DELETE"), ""),
        (&*format!("GET /anything/{own} HTTP/1.1\r\nContent-Length: 2"), "{}"),
        (&*format!("DELETE /anything/{own} HTTP/1.1\r\nTransfer-Encoding: chunked"), "2\r\n{}\r\n0\r\n\r\n"),
        (&*format!("POST /anything/{own}/cancel HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2"), "{}"),
        (&*format!("GET /chat/{chat_id} HTTP/1.1\r\nContent-Length: 10"), "{\"a\":\"b\"}\n"),
        ("GET /anything/responses HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13", ""),
        ("POST /anything HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 13", "{\"input\":\"x\"}"),
    ];
    for (head, body) in overrides {
        let r = raw_request(&gw, head, body).await;
        assert_eq!(r.status, 400, "{head}: {r:?}");
        assert!(r.json()["error"]["message"].is_string(), "{head}: {r:?}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen(&bed), before, "a refused request reached the provider");
    // The same consumer's own objects are still served (the refusals were the surface's).
    assert_eq!(call(&gw, "GET", &format!("/anything/{own}"), ALEX, None).await.status, 200);
    assert_eq!(call(&gw, "GET", &format!("/chat/{chat_id}"), ALEX, None).await.status, 200);
    let last = bed.mock.state.last().unwrap();
    assert_eq!((last.method.as_str(), last.target.as_str()), ("GET", &*format!("/v1/chat/completions/{chat_id}")));
    assert_eq!(last.header("authorization"), Some(&*format!("Bearer {PROVIDER_KEY}")));
    // An override spelled with `_` is a header with an underscore: dropped before any check
    // (nginx's and Kong's default), so the request is the GET it says it is.
    let r = raw_request(&gw, &format!("GET /anything/{own} HTTP/1.1\r\nX_HTTP_Method_Override: DELETE"), "").await;
    assert_eq!(r.status, 200, "{r:?}");
    let last = bed.mock.state.last().unwrap();
    assert_eq!((last.method.as_str(), last.target.as_str()), ("GET", &*format!("/v1/responses/{own}")));
    assert_eq!(last.header("x_http_method_override"), None);
    assert_eq!(last.header("x-http-method-override"), None);
}

#[tokio::test]
async fn the_sdk_path_forms_are_the_create_call() {
    let bed = TestBed::new().await;
    let gw = start(&bed, 9);
    for path in ["/anything", "/anything/", "/anything/responses", "/anything/v1/responses"] {
        let r = create(&gw, path, ALEX, json!({"input": "hi"})).await;
        assert_eq!(r["object"], "response", "{path}");
        let last = bed.mock.state.last().unwrap();
        assert_eq!((last.method.as_str(), last.target.as_str()), ("POST", "/v1/responses"), "{path}");
        assert_eq!(last.json()["model"], "gpt-4o");
    }
    for path in ["/chat", "/chat/chat/completions", "/chat/v1/chat/completions"] {
        let r = create(&gw, path, ALEX, json!({"messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!(r["object"], "chat.completion", "{path}");
        assert_eq!(bed.mock.state.last().unwrap().target, "/v1/chat/completions", "{path}");
    }
}

#[tokio::test]
async fn a_cors_preflight_is_answered_by_the_gateway_and_never_forwarded() {
    let bed = TestBed::new().await;
    let gw = start(&bed, 9);
    for path in ["/anything", "/anything/responses", "/chat/v1/chat/completions"] {
        let resp = client()
            .request(Method::OPTIONS, gw.url(path))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "{path}");
        assert!(resp.headers().get("access-control-allow-origin").is_none(), "{path}: no CORS policy grants it");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(bed.mock.state.count(), 0, "a preflight reached the provider with its key: {:?}", seen(&bed));
}

/// A plain-HTTP upstream that accepts one WebSocket upgrade and echoes what follows.
fn upgrade_echo_server() -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut b).unwrap() == 0 {
                return;
            }
            head.push(b[0]);
        }
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n").unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        let _ = s.write_all(&buf[..n]);
    });
    (port, t)
}

#[tokio::test]
async fn upgrades_are_refused_on_llm_routes_and_passed_on_plain_services() {
    let bed = TestBed::new().await;
    let (port, echo) = upgrade_echo_server();
    let gw = start(&bed, port);
    let ws = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13";
    for path in ["/anything/responses", "/anything/v1/responses", "/anything", "/chat"] {
        let r = raw_request(&gw, &format!("GET {path} HTTP/1.1\r\n{ws}"), "").await;
        assert_eq!(r.status, 400, "{path}: {r:?}");
        assert_eq!(r.json()["error"]["code"], "upgrade_not_supported", "{path}");
    }
    assert_eq!(bed.mock.state.count(), 0, "an upgrade reached the provider: {:?}", seen(&bed));
    // A plain service keeps passing upgrades through.
    let addr = gw.proxy;
    let (head, echoed) = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET /plain/socket HTTP/1.1\r\nHost: gw\r\n{ws}\r\n\r\n").unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        s.write_all(b"ping-frame").unwrap();
        let mut buf = [0u8; 10];
        s.read_exact(&mut buf).unwrap();
        (String::from_utf8_lossy(&head).into_owned(), String::from_utf8_lossy(&buf).into_owned())
    })
    .await
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(echoed, "ping-frame");
    echo.join().unwrap();
}

#[tokio::test]
async fn conversations_belong_to_the_consumer_that_created_them() {
    let bed = TestBed::new().await;
    let gw = start(&bed, 9);
    let conv = create(
        &gw,
        "/anything/conversations",
        ALEX,
        json!({"items": [{"type": "message", "role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(conv["object"], "conversation");
    let id = conv["id"].as_str().unwrap().to_string();
    assert_eq!(bed.mock.state.last().unwrap().target, "/v1/conversations");
    let before = bed.mock.state.count();
    // Nothing of it exists for bo: path operations, and the body fields that name it.
    for (method, path) in [
        ("GET", format!("/anything/conversations/{id}")),
        ("POST", format!("/anything/v1/conversations/{id}")),
        ("DELETE", format!("/anything/conversations/{id}")),
        ("GET", format!("/anything/conversations/{id}/items")),
        ("GET", format!("/anything/conversations/{id}/items/msg_1")),
        ("DELETE", format!("/anything/conversations/{id}/items/msg_1")),
    ] {
        let a = call(&gw, method, &path, BO, (method == "POST").then_some(&json!({"metadata": {"x": "y"}}))).await;
        assert_eq!(a.status, 404, "{method} {path}: {}", a.body);
        assert_eq!(a.body["error"]["message"], format!("Conversation with id '{id}' not found."));
    }
    let items = json!({"items": [{"type": "message", "role": "user", "content": "injected"}]});
    assert_eq!(call(&gw, "POST", &format!("/anything/conversations/{id}/items"), BO, Some(&items)).await.status, 404);
    for body in [json!({"input": "x", "conversation": id}), json!({"input": "x", "conversation": {"id": id}})] {
        for path in ["/anything", "/anything/responses/input_tokens"] {
            let a = call(&gw, "POST", path, BO, Some(&body)).await;
            assert_eq!(a.status, 404, "{path} {body}: {}", a.body);
        }
    }
    // A conversation field of another type never skips the check.
    let a = call(&gw, "POST", "/anything", BO, Some(&json!({"input": "x", "conversation": [id]}))).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(bed.mock.state.count(), before, "bo reached alex's conversation: {:?}", seen(&bed));

    // Alex uses it.
    assert_eq!(call(&gw, "GET", &format!("/anything/conversations/{id}"), ALEX, None).await.status, 200);
    let md = json!({"metadata": {"topic": "t"}});
    assert_eq!(call(&gw, "POST", &format!("/anything/v1/conversations/{id}"), ALEX, Some(&md)).await.status, 200);
    create(&gw, "/anything", ALEX, json!({"input": "more", "conversation": {"id": id}})).await;
    let added = create(&gw, &format!("/anything/conversations/{id}/items"), ALEX, items.clone()).await;
    let added_item = added["data"][0]["id"].as_str().unwrap().to_string();
    let list = call(&gw, "GET", &format!("/anything/conversations/{id}/items"), ALEX, None).await;
    assert_eq!(list.status, 200);
    let first_item = list.body["data"][0]["id"].as_str().unwrap().to_string();
    // Its items are alex's to name: item references from the list and from the items answer.
    for item in [&first_item, &added_item] {
        let r = json!({"input": [{"type": "item_reference", "id": item}]});
        assert_eq!(call(&gw, "POST", "/anything", ALEX, Some(&r)).await.status, 200, "{item}");
        assert_eq!(call(&gw, "POST", "/anything", BO, Some(&r)).await.status, 404, "{item}");
    }
    let item_path = format!("/anything/conversations/{id}/items/{first_item}");
    assert_eq!(call(&gw, "GET", &item_path, ALEX, None).await.status, 200);
    assert_eq!(call(&gw, "DELETE", &item_path, ALEX, None).await.status, 200);
    assert_eq!(
        bed.mock.state.last().unwrap().target,
        format!("/v1/conversations/{id}/items/{first_item}"),
        "the upstream path is derived from the target's"
    );
    assert_eq!(call(&gw, "DELETE", &format!("/anything/conversations/{id}"), ALEX, None).await.status, 200);
    // Deleted: gone for its owner too, without asking the provider.
    let before = bed.mock.state.count();
    assert_eq!(call(&gw, "GET", &format!("/anything/conversations/{id}"), ALEX, None).await.status, 404);
    assert_eq!(bed.mock.state.count(), before);
}

#[tokio::test]
async fn stored_chat_completions_belong_to_the_consumer_that_created_them() {
    let bed = TestBed::new().await;
    let gw = start(&bed, 9);
    let msg = json!([{"role": "user", "content": "hi"}]);
    let id =
        create(&gw, "/chat", ALEX, json!({"messages": msg, "store": true})).await["id"].as_str().unwrap().to_string();
    // A streamed one is recorded from its first chunk.
    let streamed =
        stream(&gw, "/chat/v1/chat/completions", json!({"messages": msg, "store": true, "stream": true})).await;
    let streamed_id = streamed
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap()["id"].as_str().unwrap().to_string())
        .unwrap();
    let before = bed.mock.state.count();
    for c in [&id, &streamed_id] {
        for (method, path) in [
            ("GET", format!("/chat/{c}")),
            ("GET", format!("/chat/chat/completions/{c}")),
            ("POST", format!("/chat/v1/chat/completions/{c}")),
            ("DELETE", format!("/chat/{c}")),
            ("GET", format!("/chat/{c}/messages")),
        ] {
            let body = json!({"metadata": {"owner": "bo"}});
            let a = call(&gw, method, &path, BO, (method == "POST").then_some(&body)).await;
            assert_eq!(a.status, 404, "{method} {path}: {}", a.body);
        }
    }
    assert_eq!(call(&gw, "GET", "/chat/v1/chat/completions", BO, None).await.status, 405);
    assert_eq!(bed.mock.state.count(), before, "bo reached alex's completions: {:?}", seen(&bed));
    for c in [&id, &streamed_id] {
        let a = call(&gw, "GET", &format!("/chat/{c}"), ALEX, None).await;
        assert_eq!(a.status, 200, "{c}: {}", a.body);
    }
    let msgs = call(&gw, "GET", &format!("/chat/chat/completions/{id}/messages"), ALEX, None).await;
    assert_eq!((msgs.status, msgs.body["object"].as_str()), (200, Some("list")));
    let md = json!({"metadata": {"k": "v"}});
    assert_eq!(call(&gw, "POST", &format!("/chat/{id}"), ALEX, Some(&md)).await.body["metadata"]["k"], "v");
    assert_eq!(call(&gw, "DELETE", &format!("/chat/{id}"), ALEX, None).await.status, 200);
    assert_eq!(call(&gw, "GET", &format!("/chat/{id}"), ALEX, None).await.status, 404);
}

#[tokio::test]
async fn every_id_in_a_body_is_the_consumers_own() {
    let bed = TestBed::new().await;
    let gw = start(&bed, 9);
    let alexs = create(&gw, "/anything", ALEX, json!({"input": "hi"})).await;
    let resp = alexs["id"].as_str().unwrap().to_string();
    let item = alexs["output"][0]["id"].as_str().unwrap().to_string();
    // Output items of a streamed response are recorded as they stream.
    let stream = stream(&gw, "/anything", json!({"input": "s", "stream": true})).await;
    let stream_item = stream
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .find(|e| e["type"] == "response.output_item.done")
        .map(|e| e["item"]["id"].as_str().unwrap().to_string())
        .unwrap();
    let before = bed.mock.state.count();
    let refused: Vec<(Value, u16, &str)> = vec![
        (json!({"input": "x", "previous_response_id": resp}), 404, "Previous response with id"),
        (json!({"input": "x", "previous_response_id": [resp]}), 400, "previous_response_id"),
        (json!({"input": "x", "previous_response_id": {"id": resp}}), 400, "previous_response_id"),
        (json!({"input": "x", "prompt_cache_options": {"comparison_response_id": resp}}), 404, "not found"),
        (json!({"input": [{"type": "item_reference", "id": item}]}), 404, "Item with id"),
        (json!({"input": [{"id": stream_item}]}), 404, "Item with id"),
        (
            json!({"input": [{"type": "message", "id": item, "role": "assistant", "content": [{"type": "output_text", "text": "x"}]}]}),
            404,
            "Item with id",
        ),
        (json!({"input": [{"type": "reasoning", "id": "rs_someone_elses", "summary": []}]}), 404, "Item with id"),
    ];
    for (body, status, says) in &refused {
        let a = call(&gw, "POST", "/anything", BO, Some(body)).await;
        assert_eq!(a.status, *status, "{body}: {}", a.body);
        assert!(a.body["error"]["message"].as_str().unwrap().contains(says), "{body}: {}", a.body);
    }
    // compact and input_tokens are held to the same rules.
    for path in ["/anything/responses/compact", "/anything/v1/responses/input_tokens", "/anything/compact"] {
        let a = call(&gw, "POST", path, BO, Some(&json!({"input": "x", "previous_response_id": resp}))).await;
        assert_eq!(a.status, 404, "{path}: {}", a.body);
        let a = call(&gw, "POST", path, BO, Some(&json!({"input": [{"type": "item_reference", "id": item}]}))).await;
        assert_eq!(a.status, 404, "{path}: {}", a.body);
        let a = call(&gw, "POST", path, BO, Some(&json!({"model": "o3", "input": "x"}))).await;
        assert_eq!(a.status, 400, "{path}: model rules: {}", a.body);
    }
    // Objects the gateway offers no API for, which no consumer can own.
    let unownable = [
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-abc"}]}]}),
            "input[0].content[0].file_id",
        ),
        (
            json!({"input": "x", "tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}),
            "tools[0].vector_store_ids[0]",
        ),
        (json!({"input": "x", "tools": [{"type": "code_interpreter", "container": "cntr_1"}]}), "tools[0].container"),
        (
            json!({"input": "x", "prompt": {"id": "pmpt_1", "variables": {"d": {"type": "input_file", "file_id": "f"}}}}),
            "prompt.variables.d.file_id",
        ),
    ];
    for (body, field) in &unownable {
        let a = call(&gw, "POST", "/anything", ALEX, Some(body)).await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert!(a.body["error"]["message"].as_str().unwrap().contains(field), "{body}: {}", a.body);
    }
    let a = call(&gw, "POST", "/anything", ALEX, Some(&json!({"input": "x", "prompt": {"id": "pmpt_1"}}))).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (400, Some("prompt_not_allowed")), "{}", a.body);
    let a = call(
        &gw,
        "POST",
        "/chat",
        ALEX,
        Some(&json!({"messages": [{"role": "assistant", "audio": {"id": "audio_1"}}]})),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(bed.mock.state.count(), before, "a refused body reached the provider: {:?}", seen(&bed));

    // The owner may name all of them; compact and input_tokens go to their own provider paths
    // with the model rules only, and compact's usage is counted.
    for body in [
        json!({"input": "x", "previous_response_id": resp}),
        json!({"input": [{"type": "item_reference", "id": item}, {"type": "item_reference", "id": stream_item}]}),
        json!({"input": "x", "prompt_cache_options": {"comparison_response_id": resp}}),
    ] {
        assert_eq!(call(&gw, "POST", "/anything", ALEX, Some(&body)).await.status, 200, "{body}");
    }
    let compacted =
        create(&gw, "/anything/responses/compact", ALEX, json!({"input": "x", "previous_response_id": resp})).await;
    assert_eq!(compacted["object"], "response.compaction");
    let sent = bed.mock.state.last().unwrap();
    assert_eq!(sent.target, "/v1/responses/compact");
    assert_eq!(sent.json(), json!({"input": "x", "previous_response_id": resp, "model": "gpt-4o"}));
    let counted =
        create(&gw, "/anything/input_tokens", ALEX, json!({"input": [{"type": "item_reference", "id": item}]})).await;
    assert_eq!(counted["object"], "response.input_tokens");
    assert_eq!(bed.mock.state.last().unwrap().target, "/v1/responses/input_tokens");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = gw.access_log();
    let compact_line = log.iter().find(|l| l["path"] == "/anything/responses/compact" && l["status"] == 200).unwrap();
    assert!(compact_line["tokens"]["total"].as_u64().unwrap() > 0, "{compact_line}");
    let count_line = log.iter().find(|l| l["path"] == "/anything/input_tokens" && l["status"] == 200).unwrap();
    assert!(
        count_line.get("usage_missing").is_none_or(Value::is_null),
        "input_tokens has no usage to miss: {count_line}"
    );
    // The compacted answer's items are the owner's too.
    let cmp = compacted["output"][1]["id"].as_str().unwrap();
    let r = json!({"input": [{"type": "item_reference", "id": cmp}]});
    assert_eq!(call(&gw, "POST", "/anything", ALEX, Some(&r)).await.status, 200);
    assert_eq!(call(&gw, "POST", "/anything", BO, Some(&r)).await.status, 404);
}

#[tokio::test]
async fn a_key_repeated_at_any_depth_is_refused_on_every_llm_route() {
    let bed = TestBed::new().await;
    let gw = start(&bed, 9);
    for (path, body) in [
        ("/anything", r#"{"input":"x","tools":[{"type":"mcp","type":"function","name":"f"}]}"#),
        ("/anything", r#"{"input":[{"role":"user","content":[{"type":"input_text","text":"a","text":"b"}]}]}"#),
        ("/anything/conversations", r#"{"items":[{"type":"message","role":"user","role":"system","content":"x"}]}"#),
        ("/chat", r#"{"messages":[{"role":"user","content":"a","role":"system"}]}"#),
    ] {
        let r = client()
            .post(gw.url(path))
            .header("apikey", ALEX)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path} {body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "duplicate_field", "{v}");
    }
    assert_eq!(bed.mock.state.count(), 0);
}

const SDK_SCRIPT: &str = r#"
import json, os
import openai
from openai import OpenAI

def client(base, key):
    return OpenAI(base_url=base, api_key="sk-client-never-forwarded", default_headers={"apikey": key}, max_retries=0)

def status(f):
    try:
        f()
        return 200
    except openai.APIStatusError as e:
        return e.status_code

out = {}
for suffix in ["", "/v1"]:
    alex, bo = client(os.environ["RESP"] + suffix, "hello_world"), client(os.environ["RESP"] + suffix, "bo_key")
    chat_alex, chat_bo = client(os.environ["CHAT"] + suffix, "hello_world"), client(os.environ["CHAT"] + suffix, "bo_key")
    got = {}
    r = alex.responses.create(model="gpt-4o", input="hi")
    got["create"] = r.output_text
    got["stream"] = [e.type for e in alex.responses.create(model="gpt-4o", input="hi", stream=True)][-1]
    got["retrieve_own"] = alex.responses.retrieve(r.id).id == r.id
    got["retrieve_other"] = status(lambda: bo.responses.retrieve(r.id))
    got["input_items_other"] = status(lambda: bo.responses.input_items.list(r.id))
    got["delete_other"] = status(lambda: bo.responses.delete(r.id))
    got["cancel_own"] = status(lambda: alex.responses.cancel(r.id))
    got["compact"] = alex.responses.compact(model="gpt-4o", input="hi", previous_response_id=r.id).object
    got["input_tokens"] = alex.responses.input_tokens.count(model="gpt-4o", input="hi").input_tokens > 0
    conv = alex.conversations.create(items=[{"type": "message", "role": "user", "content": "hi"}])
    got["conversation_own"] = alex.conversations.retrieve(conv.id).id == conv.id
    got["conversation_other"] = status(lambda: bo.conversations.retrieve(conv.id))
    got["conversation_items_other"] = status(lambda: bo.conversations.items.list(conv.id))
    got["delete_own"] = status(lambda: alex.responses.delete(r.id))
    c = chat_alex.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], store=True)
    got["chat"] = c.choices[0].message.content
    got["chat_retrieve_own"] = chat_alex.chat.completions.retrieve(c.id).id == c.id
    got["chat_retrieve_other"] = status(lambda: chat_bo.chat.completions.retrieve(c.id))
    got["chat_list"] = status(lambda: chat_bo.chat.completions.list())
    try:
        with alex.responses.connect() as connection:
            connection.response.create(model="gpt-4o", input="hi")
            got["connect"] = "connected"
    except Exception as e:
        got["connect"] = type(e).__name__ + ": " + str(e)
    out[suffix or "route"] = got
print(json.dumps(out))
"#;

#[tokio::test]
async fn the_official_sdk_with_base_url_at_the_route() {
    let bed = TestBed::new().await;
    let gw = start(&bed, 9);
    let (resp, chat) = (gw.url("/anything"), gw.url("/chat"));
    let out = tokio::task::spawn_blocking(move || {
        support::python::run(SDK_SCRIPT, &["openai", "websockets"], &[("RESP", resp.as_str()), ("CHAT", chat.as_str())])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}\n{}", String::from_utf8_lossy(&out.stderr), gw.logs());
    let got: Value = serde_json::from_str(stdout.trim()).unwrap();
    for form in ["route", "/v1"] {
        let g = &got[form];
        assert!(!g["create"].as_str().unwrap().is_empty(), "{form}: {g}");
        assert_eq!(g["stream"], "response.completed", "{form}: {g}");
        assert_eq!(g["retrieve_own"], true, "{form}: {g}");
        for k in [
            "retrieve_other",
            "input_items_other",
            "delete_other",
            "conversation_other",
            "conversation_items_other",
            "chat_retrieve_other",
        ] {
            assert_eq!(g[k], 404, "{form} {k}: {g}");
        }
        assert_eq!((g["cancel_own"].as_u64(), g["delete_own"].as_u64()), (Some(200), Some(200)), "{form}: {g}");
        assert_eq!(g["compact"], "response.compaction", "{form}: {g}");
        assert_eq!(g["input_tokens"], true, "{form}: {g}");
        assert_eq!(g["conversation_own"], true, "{form}: {g}");
        assert!(!g["chat"].as_str().unwrap().is_empty(), "{form}: {g}");
        assert_eq!(g["chat_retrieve_own"], true, "{form}: {g}");
        assert_eq!(g["chat_list"], 405, "{form}: {g}");
        let connect = g["connect"].as_str().unwrap();
        assert!(connect.contains("400"), "{form}: the WebSocket mode gets a clear refusal: {connect}");
    }
    // Nothing but HTTP requests of the surface reached the provider; never an upgrade.
    for r in bed.mock.state.records() {
        assert!(r.header("upgrade").is_none(), "{} {}", r.method, r.target);
        assert_ne!((r.method.as_str(), r.target.split('?').next().unwrap()), ("GET", "/v1/chat/completions"));
        assert_eq!(r.header("authorization"), Some(&*format!("Bearer {PROVIDER_KEY}")));
    }
}
