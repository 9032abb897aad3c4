//! Identities cannot be forged and the provider account stays the operator's: what a client
//! sends in the gateway's identity headers (in any spelling a backend may fold to the same
//! name), in forwarding headers from an address that is not trusted, and in headers that steer
//! the provider account never reaches an upstream; the provider's account headers never reach
//! the client. "Never reached" is read from the test upstream's record of what it received.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use serde_json::json;
use support::gateway::{client, walkthrough_deck, GatewayProcess, GatewaySpec, TestBed};
use support::mock_openai::{MockOpenAi, Recorded};
use support::raw;

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
    - name: acl
      config: {allow: [gold]}
consumers:
- username: alex
  custom_id: alex-42
  keyauth_credentials: [{key: hello_world, id: cred-alex}]
  acls: [{group: gold}]
"#;

/// Every spelling of the gateway's identity headers a backend could read as the real one.
const FORGED_IDENTITY: &str = "X_Consumer_ID: evil-1\r\nx-consumer-id: evil-2\r\nX-CONSUMER_id: evil-3\r\n\
X_Consumer_Username: root\r\nX-Consumer-Custom_ID: root\r\nX-Credential_Identifier: forged\r\n\
x_anonymous_consumer: true\r\nX-Anonymous-Consumer: true\r\nX_Consumer_Groups: admin\r\n\
X-Authenticated-Groups: admin\r\nx_authenticated_groups: admin\r\nX-Aigate-Request-Id: forged\r\n";

/// Forwarding headers a client may make up.
const FORGED_FORWARDING: &str = "X-Forwarded-For: 6.6.6.6\r\nX_Forwarded_For: 7.7.7.7\r\n\
X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Port: 1\r\n\
X-Forwarded-Path: /evil\r\nX-Forwarded-Prefix: /evil\r\nForwarded: for=6.6.6.6;proto=https\r\n\
X-Real-IP: 6.6.6.6\r\nx_real_ip: 6.6.6.6\r\n";

async fn echo_bed(settings: &str) -> (tempfile::TempDir, MockOpenAi, GatewayProcess) {
    let dir = tempfile::tempdir().unwrap();
    let echo = MockOpenAi::start("127.0.0.1:0", None).await;
    let deck = DECK.replace("ECHO", &echo.addr.to_string());
    let gw = GatewayProcess::start(dir.path(), GatewaySpec::new(&[("kong.yaml", &deck)]).settings(settings));
    (dir, echo, gw)
}

/// Every value the upstream received under `name` (names as the upstream's parser reads them).
fn values<'a>(r: &'a Recorded, name: &str) -> Vec<&'a str> {
    r.headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
}

/// Header names the upstream received that fold to a gateway-set identity name.
fn identity_spellings(r: &Recorded) -> Vec<String> {
    const NAMES: &[&str] = &[
        "x-consumer-id",
        "x-consumer-custom-id",
        "x-consumer-username",
        "x-credential-identifier",
        "x-anonymous-consumer",
        "x-consumer-groups",
        "x-authenticated-groups",
        "x-aigate-request-id",
    ];
    r.headers.iter().map(|(k, _)| k.clone()).filter(|k| NAMES.contains(&k.replace('_', "-").as_str())).collect()
}

#[tokio::test]
async fn identity_headers_in_any_spelling_never_reach_a_service_and_underscores_are_dropped() {
    let (_dir, echo, gw) = echo_bed("").await;
    // A client naming the identity headers in `Connection` cannot make the gateway's own go.
    let extra = format!(
        "apikey: hello_world\r\n{FORGED_IDENTITY}x_custom_thing: 1\r\nConnection: close, x-consumer-username\r\n"
    );
    let req = format!("GET /keyed/x HTTP/1.1\r\nHost: gateway.test\r\n{extra}\r\n");
    let r = raw::send_async(gw.proxy, req.into_bytes()).await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let got = echo.state.last().unwrap();
    assert!(
        got.headers.iter().all(|(k, _)| !k.contains('_')),
        "an underscored header was forwarded: {:?}",
        got.headers
    );
    let id = values(&got, "x-consumer-id");
    assert_eq!(id.len(), 1, "{:?}", got.headers);
    assert_eq!(id[0].len(), 36, "the gateway's consumer id: {id:?}");
    assert_eq!(values(&got, "x-consumer-username"), vec!["alex"]);
    assert_eq!(values(&got, "x-consumer-custom-id"), vec!["alex-42"]);
    assert_eq!(values(&got, "x-credential-identifier"), vec!["cred-alex"]);
    assert_eq!(values(&got, "x-consumer-groups"), vec!["gold"]);
    assert!(values(&got, "x-anonymous-consumer").is_empty());
    assert!(values(&got, "x-authenticated-groups").is_empty());
    assert_eq!(values(&got, "x-aigate-request-id"), vec![r.header("x-aigate-request-id").unwrap().as_str()]);

    // Without a consumer, none at all.
    let req = format!("GET /open HTTP/1.1\r\nHost: gateway.test\r\n{FORGED_IDENTITY}Connection: close\r\n\r\n");
    assert_eq!(raw::send_async(gw.proxy, req.into_bytes()).await.unwrap().status, 200);
    let got = echo.state.last().unwrap();
    assert_eq!(identity_spellings(&got), vec!["x-aigate-request-id"], "{:?}", got.headers);
    assert_ne!(values(&got, "x-aigate-request-id"), vec!["forged"]);
}

#[tokio::test]
async fn allowed_underscores_pass_but_identity_spellings_never_do() {
    let (_dir, echo, gw) = echo_bed("allow_underscores_in_headers: true").await;
    let req = format!(
        "GET /open HTTP/1.1\r\nHost: gateway.test\r\n{FORGED_IDENTITY}{FORGED_FORWARDING}x_custom_thing: 1\r\nX_Request_Id: forged\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw::send_async(gw.proxy, req.into_bytes()).await.unwrap().status, 200);
    let got = echo.state.last().unwrap();
    assert_eq!(values(&got, "x_custom_thing"), vec!["1"]);
    assert_eq!(identity_spellings(&got), vec!["x-aigate-request-id"], "{:?}", got.headers);
    assert!(values(&got, "x_forwarded_for").is_empty() && values(&got, "x_real_ip").is_empty());
    assert_eq!(values(&got, "x-forwarded-for"), vec!["127.0.0.1"]);
    // The request id the gateway sets is its own, in one spelling.
    assert!(values(&got, "x_request_id").is_empty());
    assert_eq!(values(&got, "x-request-id"), values(&got, "x-aigate-request-id"));
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_client_are_replaced_by_the_gateways() {
    let (_dir, echo, gw) = echo_bed("").await;
    let req = format!("GET /open/x?q=1 HTTP/1.1\r\nHost: gateway.test\r\n{FORGED_FORWARDING}Connection: close\r\n\r\n");
    assert_eq!(raw::send_async(gw.proxy, req.into_bytes()).await.unwrap().status, 200);
    let got = echo.state.last().unwrap();
    let port = gw.proxy.port().to_string();
    assert_eq!(values(&got, "x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(values(&got, "x-real-ip"), vec!["127.0.0.1"]);
    assert_eq!(values(&got, "x-forwarded-proto"), vec!["http"]);
    assert_eq!(values(&got, "x-forwarded-host"), vec!["gateway.test"]);
    assert_eq!(values(&got, "x-forwarded-port"), vec![port.as_str()]);
    assert_eq!(values(&got, "x-forwarded-path"), vec!["/open/x"]);
    assert_eq!(values(&got, "x-forwarded-prefix"), vec!["/open"]);
    assert_eq!(values(&got, "forwarded"), vec!["for=127.0.0.1;host=\"gateway.test\";proto=http"]);
}

#[tokio::test]
async fn forwarding_headers_from_a_trusted_proxy_are_kept_and_appended_to() {
    let (_dir, echo, gw) = echo_bed("trusted_ips: [10.0.0.0/8, 127.0.0.1]").await;
    let req = format!("GET /open/x HTTP/1.1\r\nHost: gateway.test\r\n{FORGED_FORWARDING}Connection: close\r\n\r\n");
    assert_eq!(raw::send_async(gw.proxy, req.into_bytes()).await.unwrap().status, 200);
    let got = echo.state.last().unwrap();
    assert_eq!(values(&got, "x-forwarded-for"), vec!["6.6.6.6, 127.0.0.1"]);
    assert_eq!(values(&got, "x-real-ip"), vec!["6.6.6.6"]);
    assert_eq!(values(&got, "x-forwarded-proto"), vec!["https"]);
    assert_eq!(values(&got, "x-forwarded-host"), vec!["evil.example"]);
    assert_eq!(values(&got, "x-forwarded-port"), vec!["1"]);
    assert_eq!(values(&got, "x-forwarded-prefix"), vec!["/evil"]);
    assert_eq!(
        values(&got, "forwarded"),
        vec!["for=6.6.6.6;proto=https, for=127.0.0.1;host=\"gateway.test\";proto=http"]
    );
}

fn llm_spec() -> GatewaySpec {
    let deck = walkthrough_deck();
    let refs: Vec<(&str, &str)> = deck.iter().map(|(n, c)| (n.as_str(), c.as_str())).collect();
    GatewaySpec::new(&refs).settings("allow_underscores_in_headers: true")
}

#[tokio::test]
async fn a_provider_gets_no_identity_forwarding_or_account_headers_and_the_client_none_of_its_account() {
    let bed = TestBed::new().await;
    // Underscores allowed, so only the gateway's own removal stands between them and the provider.
    let gw = bed.start(llm_spec());
    let body = json!({"input": "hi"}).to_string();
    let req = format!(
        "POST /anything HTTP/1.1\r\nHost: gateway.test\r\napikey: hello_world\r\n{FORGED_IDENTITY}{FORGED_FORWARDING}\
OpenAI-Organization: org-evil\r\nOpenAI_Project: proj_evil\r\nOpenAI-Project: proj_evil\r\nX-Goog-User-Project: evil\r\n\
anthropic-version: 2023-06-01\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = raw::send_async(gw.proxy, req.into_bytes()).await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let got = bed.mock.state.last().unwrap();
    let folded: Vec<String> = got.headers.iter().map(|(k, _)| k.replace('_', "-")).collect();
    for name in [
        "x-consumer-id",
        "x-consumer-username",
        "x-consumer-custom-id",
        "x-credential-identifier",
        "x-anonymous-consumer",
        "x-consumer-groups",
        "x-authenticated-groups",
        "x-aigate-request-id",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-path",
        "x-forwarded-prefix",
        "forwarded",
        "x-real-ip",
        "openai-organization",
        "openai-project",
        "x-goog-user-project",
    ] {
        assert!(!folded.iter().any(|k| k == name), "{name} reached the provider: {:?}", got.headers);
    }
    // A version header a provider needs still passes.
    assert_eq!(values(&got, "anthropic-version"), vec!["2023-06-01"]);

    // The provider's account headers stay in the gateway; its request id and retry hints do not.
    for (stream, status) in [(false, 200), (true, 200), (false, 429)] {
        let resp = client()
            .post(gw.url("/anything"))
            .header("apikey", "hello_world")
            .header("x-mock-status", if status == 429 { "429" } else { "" })
            .json(&json!({"input": "hi", "stream": stream}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status);
        let h = resp.headers();
        for name in
            ["openai-organization", "openai-project", "x-ratelimit-limit-requests", "x-ratelimit-remaining-tokens"]
        {
            assert!(h.get(name).is_none(), "{name} reached the client (stream {stream}, {status})");
        }
        assert_eq!(h["x-request-id"], "req_mock");
        assert_eq!(h["openai-processing-ms"], "12");
        if status == 429 {
            assert_eq!(h["retry-after"], "1");
        }
    }
}
