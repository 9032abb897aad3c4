//! request-transformer (Kong OSS) on every route type, read from what the upstream received:
//! a plain service (headers, query, JSON and form bodies, small and held back, uri, method,
//! consumer-scoped instances) and an LLM route, where the body is checked after the transforms
//! (as Kong orders them) so a transformation is never a way around the gateway's checks.
//! (MCP routes: tests/mcp_sdk.rs and tests/mcp_proxy.rs inject the MCP server's PAT with it.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use serde_json::{json, Value};
use support::gateway::{client, GatewayProcess, GatewaySpec, TestBed, PROVIDER_KEY};
use support::mock_openai::MockOpenAi;

const PLAIN: &str = r#"_format_version: "3.0"
services:
- name: echo
  url: http://ECHO/api
  routes:
  - name: rt
    paths: [/rt]
    plugins:
    - name: key-auth
      config: {hide_credentials: true}
    - name: request-transformer
      config:
        remove: {headers: [Authorization, x-drop], querystring: [secret], body: [password]}
        rename: {headers: ["x-old:x-new"], querystring: ["q:query"], body: ["usr:user"]}
        replace: {headers: ["x-consumer-username:forged"], body: ["role:viewer"]}
        add: {headers: ["Authorization:Bearer ${{ env "DECK_SERVICE_TOKEN" }}", "x-tenant:$(headers['x-tenant-in'] or 'none')", "x-forwarded-for:1.2.3.4"], querystring: ["v:2"], body: ["source:gateway"]}
        append: {headers: ["x-trace:a", "x-trace:b"]}
  - name: moved
    paths: [/moved]
    plugins:
    - name: request-transformer
      config:
        http_method: POST
        replace: {uri: "/v2/$(query_params.item)"}
plugins:
- name: request-transformer
  route: rt
  consumer: bo
  config:
    add: {headers: ["x-only-bo:yes"]}
consumers:
- username: alex
  keyauth_credentials: [{key: alex-key}]
- username: bo
  keyauth_credentials: [{key: bo-key}]
"#;

async fn start_plain() -> (tempfile::TempDir, MockOpenAi, GatewayProcess) {
    let dir = tempfile::tempdir().unwrap();
    let echo = MockOpenAi::start("127.0.0.1:0", None).await;
    let deck = PLAIN.replace("ECHO", &echo.addr.to_string());
    let gw = GatewayProcess::start(
        dir.path(),
        GatewaySpec::new(&[("kong.yaml", &deck)]).env("DECK_SERVICE_TOKEN", "service-token-from-deck"),
    );
    (dir, echo, gw)
}

#[tokio::test]
async fn headers_query_and_bodies_on_a_plain_service() {
    let (_dir, echo, gw) = start_plain().await;
    let resp = client()
        .post(gw.url("/rt/x?secret=s&q=hello&keep=1"))
        .header("apikey", "alex-key")
        .header("authorization", "Bearer client-token")
        .header("x-drop", "1")
        .header("x-old", "o")
        .header("x-tenant-in", "acme")
        .json(&json!({"password": "p", "usr": "alex", "role": "admin", "n": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = echo.state.last().unwrap();
    assert_eq!(seen.header("authorization"), Some("Bearer service-token-from-deck"));
    assert_eq!(seen.header("x-drop"), None);
    assert_eq!(seen.header("x-new"), Some("o"));
    assert_eq!(seen.header("x-tenant"), Some("acme"));
    // The gateway's identity and forwarding headers cannot be overwritten by it.
    assert_eq!(seen.header("x-consumer-username"), Some("forged"), "replace acts on the gateway's headers as in Kong");
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-only-bo"), None);
    let traces: Vec<&str> = seen.headers.iter().filter(|(k, _)| k == "x-trace").map(|(_, v)| v.as_str()).collect();
    assert_eq!(traces, vec!["a", "b"]);
    assert_eq!(seen.target, "/api/x?query=hello&keep=1&v=2");
    assert_eq!(seen.json(), json!({"user": "alex", "role": "viewer", "n": 1, "source": "gateway"}));
    assert_eq!(seen.header("content-length"), Some(seen.body.len().to_string().as_str()));

    // A consumer-scoped instance replaces the route's for that consumer (Kong's precedence).
    client().get(gw.url("/rt/y")).header("apikey", "bo-key").send().await.unwrap();
    let seen = echo.state.last().unwrap();
    assert_eq!(seen.header("x-only-bo"), Some("yes"));
    assert_eq!(seen.header("x-trace"), None);

    // A form body; and a large chunked JSON body (held back, transformed when complete).
    client()
        .post(gw.url("/rt/form"))
        .header("apikey", "alex-key")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("password=p&usr=al+ex")
        .send()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&echo.state.last().unwrap().body), "user=al%20ex&source=gateway");
    let big = json!({"password": "p", "blob": "z".repeat(200_000)}).to_string();
    let stream = futures_util::stream::iter(
        big.into_bytes().chunks(16 * 1024).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
    );
    let r = client()
        .post(gw.url("/rt/big"))
        .header("apikey", "alex-key")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: Value = echo.state.last().unwrap().json();
    assert_eq!(seen["source"], "gateway");
    assert!(seen.get("password").is_none());
    assert_eq!(seen["blob"].as_str().unwrap().len(), 200_000);

    // uri and method.
    client().get(gw.url("/moved?item=42")).send().await.unwrap();
    let seen = echo.state.last().unwrap();
    assert_eq!((seen.method.as_str(), seen.target.as_str()), ("POST", "/v2/42?item=42"));
}

#[tokio::test]
async fn on_llm_routes_the_body_is_checked_after_the_transforms() {
    let bed = TestBed::new().await;
    let deck = r#"_format_version: "3.0"
services:
- name: llm
  url: http://unused.invalid
  routes:
  - name: responses
    paths: [/v1/responses]
    plugins:
    - name: request-transformer
      config:
        replace: {body: ["model:$(headers['x-model'] or 'gpt-4o')"], uri: "/v1/chat/completions"}
        http_method: GET
        add: {headers: ["Authorization:Bearer not-the-provider-key"]}
        remove: {headers: [x-secret]}
plugins:
- name: key-auth
- name: ai-proxy
  config:
    route_type: llm/v1/responses
    auth: {header_name: Authorization, header_value: Bearer ${{ env "DECK_OPENAI_API_KEY" }}}
    model: {provider: openai, name: gpt-4o}
consumers:
- username: alex
  keyauth_credentials: [{key: hello_world}]
"#;
    let gw = bed.start(GatewaySpec::new(&[("kong.yaml", deck)]));
    let send = |model_header: Option<&'static str>| {
        let mut r = client()
            .post(gw.url("/v1/responses"))
            .header("apikey", "hello_world")
            .header("x-secret", "s")
            .json(&json!({"model": "gpt-4o", "input": "hi"}));
        if let Some(m) = model_header {
            r = r.header("x-model", m);
        }
        r.send()
    };
    // The transform rewrites the model from a header: the model rule still holds.
    let r = send(Some("gpt-4o-mini")).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("cannot use own model - must be: gpt-4o"), "{v}");
    assert_eq!(bed.mock.state.count(), 0, "a body that fails the check after the transform never reaches the provider");
    // A body that passes: the provider gets its own key (ai-proxy runs after the transformer).
    let r = send(None).await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = bed.mock.state.last().unwrap();
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {PROVIDER_KEY}").as_str()));
    assert_eq!(seen.header("x-secret"), None);
    assert_eq!(seen.json()["model"], "gpt-4o");
    // The method and path are the operation's the surface allowed: a transformed `GET` would
    // have asked the provider for a list of every tenant's objects.
    assert_eq!((seen.method.as_str(), seen.target.as_str()), ("POST", "/v1/responses"));
}

#[test]
fn templates_that_would_need_lua_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let deck = r#"_format_version: "3.0"
services:
- name: s
  url: http://127.0.0.1:1
  routes: [{name: r, paths: [/r]}]
plugins:
- name: request-transformer
  config:
    add: {headers: ["x-a:$(os.getenv('HOME'))"]}
"#;
    std::fs::write(dir.path().join("k.yaml"), deck).unwrap();
    std::fs::write(dir.path().join("a.yaml"), "proxy_listen: 127.0.0.1:1\ndeclarative_config: k.yaml\n").unwrap();
    let out = std::process::Command::new(support::gateway::binary())
        .args(["check", "--config"])
        .arg(dir.path().join("a.yaml"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success());
    assert!(text.contains("add.headers[0]") && text.contains("unsupported $(...) template"), "{text}");
}
