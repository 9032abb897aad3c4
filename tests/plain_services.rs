//! Plain decK services (no AI plugin): reverse-proxied to their url with Kong's routing,
//! key-auth, acl and identity headers. The upstream is an echo server describing what it got.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use serde_json::Value;
use support::gateway::{client, GatewayProcess, GatewaySpec};
use support::mock_openai::MockOpenAi;
use support::raw;

struct Bed {
    dir: tempfile::TempDir,
    echo: MockOpenAi,
}

impl Bed {
    async fn new() -> Bed {
        Bed { dir: tempfile::tempdir().unwrap(), echo: MockOpenAi::start("127.0.0.1:0", None).await }
    }

    fn start(&self, deck: &str) -> GatewayProcess {
        let deck = deck.replace("ECHO", &self.echo.addr.to_string());
        GatewayProcess::start(self.dir.path(), GatewaySpec::new(&[("kong.yaml", &deck)]))
    }
}

const DECK: &str = r#"_format_version: "3.0"
services:
- name: echo
  url: http://ECHO/api
  routes:
  - name: open
    paths: [/open]
  - name: keyed
    paths: [/keyed]
    plugins:
    - name: key-auth
  - name: hidden
    paths: [/hidden]
    strip_path: false
    plugins:
    - name: key-auth
      config: {hide_credentials: true, key_names: [apikey, x-api-key]}
  - name: gold
    paths: [/gold]
    plugins:
    - name: key-auth
    - name: acl
      config: {allow: [gold]}
  - name: maybe
    paths: [/maybe]
    plugins:
    - name: key-auth
      config: {anonymous: guest, run_on_preflight: false}
  - name: body
    paths: [/body]
    plugins:
    - name: key-auth
      config: {key_in_body: true, key_in_query: false}
consumers:
- username: alex
  custom_id: alex-42
  keyauth_credentials: [{key: hello_world, id: cred-alex}]
  acls: [{group: gold}, {group: staff}]
- username: bo
  keyauth_credentials: [{key: bo_key}]
- username: guest
"#;

async fn get(gw: &GatewayProcess, path: &str, headers: &[(&str, &str)]) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = client().get(gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), h)
}

#[tokio::test]
async fn routing_paths_and_identity_headers() {
    let bed = Bed::new().await;
    let gw = bed.start(DECK);
    // strip_path (default true) joins the rest to the service path.
    let (status, echo, _) = get(&gw, "/open/x/y?q=1", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(echo["url"], "/api/x/y?q=1");
    // A client cannot claim an identity: the gateway's headers only.
    let (_, echo, _) = get(&gw, "/open", &[("x-consumer-username", "root"), ("x-consumer-groups", "admin")]).await;
    assert!(echo["headers"].get("x-consumer-username").is_none(), "{echo}");
    assert!(echo["headers"].get("x-consumer-groups").is_none());
    assert_eq!(echo["url"], "/api");

    let (status, echo, _) = get(&gw, "/keyed/z", &[("apikey", "hello_world")]).await;
    assert_eq!(status, 200);
    assert_eq!(echo["url"], "/api/z");
    let h = &echo["headers"];
    assert_eq!(h["x-consumer-username"], "alex");
    assert_eq!(h["x-consumer-custom-id"], "alex-42");
    assert_eq!(h["x-credential-identifier"], "cred-alex");
    assert_eq!(h["x-consumer-id"].as_str().map(str::len), Some(36));
    assert_eq!(h["host"], bed.echo.addr.to_string());
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    // Kong forwards the key when hide_credentials is off.
    assert_eq!(h["apikey"], "hello_world");
}

#[tokio::test]
async fn no_route_and_path_tricks() {
    let bed = Bed::new().await;
    let gw = bed.start(DECK);
    let (status, body, h) = get(&gw, "/nowhere", &[]).await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "no Route matched with those values");
    assert!(h.get("x-request-id").is_some());
    // Normalised before routing: what is checked is what is forwarded. Raw requests, since
    // HTTP clients normalise such paths themselves.
    let a = gw.proxy;
    assert_eq!(raw::get(a, "/keyed/../open", "").await.status, 200, "/keyed/../open is /open");
    assert_eq!(raw::get(a, "/open/../keyed", "").await.status, 401, "/open/../keyed is /keyed and needs a key");
    assert_eq!(raw::get(a, "//keyed", "").await.status, 401);
    assert_eq!(raw::get(a, "/%6beyed", "").await.status, 401, "%6b is k");
    assert_eq!(raw::get(a, "/open/%2e%2e/keyed", "").await.status, 401, "encoded dots are dots");
    let r = raw::get(a, "/keyed/%2e%2e/keyed/x", "apikey: hello_world\r\n").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["url"], "/api/x");
    // An encoded slash stays encoded: one segment, still under /open's policies (none).
    let r = raw::get(a, "/open%2F..%2Fkeyed", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["url"], "/api/%2F..%2Fkeyed");
    assert_eq!(raw::get(a, "/..", "").await.status, 400);
    // Absolute-form targets route by their path too, and cannot pick the upstream; one whose
    // authority disagrees with Host is refused outright (by Pingora's parser).
    let before = bed.echo.state.count();
    assert_eq!(raw::get(a, "http://gateway.test/keyed", "").await.status, 401);
    assert_eq!(raw::get(a, "http://evil.example/keyed", "").await.status, 400);
    let r = raw::get(a, "http://gateway.test/open/x", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["host"], bed.echo.addr.to_string());
    assert_eq!(bed.echo.state.count(), before + 1);
}

#[tokio::test]
async fn key_auth_kong_answers() {
    let bed = Bed::new().await;
    let gw = bed.start(DECK);
    let (status, body, h) = get(&gw, "/keyed", &[("apikey", "nope")]).await;
    assert_eq!((status, body["message"].as_str()), (401, Some("Unauthorized")));
    assert_eq!(h["www-authenticate"], "Key");
    let (status, body, _) = get(&gw, "/keyed", &[]).await;
    assert_eq!((status, body["message"].as_str()), (401, Some("No API key found in request")));
    let (status, body, _) = get(&gw, "/keyed?apikey=hello_world", &[("apikey", "hello_world")]).await;
    assert_eq!((status, body["message"].as_str()), (401, Some("Duplicate API key found")));
    let mut req = client().get(gw.url("/keyed"));
    req = req.header("apikey", "hello_world").header("apikey", "bo_key");
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["message"], "Duplicate API key found");
    let (status, echo, _) = get(&gw, "/keyed?apikey=bo_key&x=1", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(echo["headers"]["x-consumer-username"], "bo");
    assert_eq!(echo["url"], "/api?apikey=bo_key&x=1", "not hidden: forwarded as Kong does");
}

#[tokio::test]
async fn hide_credentials_removes_the_key_everywhere() {
    let bed = Bed::new().await;
    let gw = bed.start(DECK);
    let (status, echo, _) = get(&gw, "/hidden/p?a=1&apikey=hello_world&b=2", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(echo["url"], "/api/hidden/p?a=1&b=2");
    let (status, echo, _) = get(&gw, "/hidden", &[("x-api-key", "bo_key")]).await;
    assert_eq!(status, 200);
    assert!(echo["headers"].get("x-api-key").is_none());
    assert_eq!(echo["headers"]["x-consumer-username"], "bo");
}

#[tokio::test]
async fn acl_and_anonymous() {
    let bed = Bed::new().await;
    let gw = bed.start(DECK);
    let (status, echo, _) = get(&gw, "/gold", &[("apikey", "hello_world")]).await;
    assert_eq!(status, 200);
    assert_eq!(echo["headers"]["x-consumer-groups"], "gold, staff");
    let (status, body, _) = get(&gw, "/gold", &[("apikey", "bo_key")]).await;
    assert_eq!((status, body["message"].as_str()), (403, Some("You cannot consume this service")));

    let (status, echo, _) = get(&gw, "/maybe", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(echo["headers"]["x-consumer-username"], "guest");
    assert_eq!(echo["headers"]["x-anonymous-consumer"], "true");
    assert!(echo["headers"].get("x-credential-identifier").is_none());
    let (status, echo, _) = get(&gw, "/maybe", &[("apikey", "hello_world")]).await;
    assert_eq!(status, 200);
    assert_eq!(echo["headers"]["x-consumer-username"], "alex");
    // Preflight skips the plugin when run_on_preflight is false.
    let resp = client().request(reqwest::Method::OPTIONS, gw.url("/maybe")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn keys_in_the_body() {
    let bed = Bed::new().await;
    let gw = bed.start(DECK);
    let c = client();
    let resp =
        c.post(gw.url("/body")).json(&serde_json::json!({"apikey": "hello_world", "x": 1})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(echo["headers"]["x-consumer-username"], "alex");
    assert_eq!(serde_json::from_str::<Value>(echo["data"].as_str().unwrap()).unwrap()["x"], 1);
    let resp = c
        .post(gw.url("/body"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("apikey=bo_key&y=2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = c.post(gw.url("/body?apikey=hello_world")).send().await.unwrap();
    assert_eq!(resp.status(), 401, "key_in_query is off");
}
