//! jwt and openid-connect without trust leaks, through the real gateway against local identity
//! providers and upstreams that record what they received:
//!
//! 1. keys are fetched only from where the configuration says (no redirects, the discovery
//!    document's issuer checked, https only unless a test setting names the host);
//! 2. tokens and cookies stay at the gateway on LLM routes, and `hide_credentials` takes the
//!    token out wherever openid-connect found it before a service;
//! 3. a token that maps to no consumer continues as the anonymous consumer, marked so;
//! 4. one reading of every token: duplicate members, a second token, `crit`, `aud` split on
//!    spaces, control characters in a claim that goes upstream, weak RSA keys.
//!
//! The tests run on a multi-threaded runtime: starting the gateway blocks the test's thread
//! while the gateway fetches keys from the identity providers these tests serve.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use base64::Engine;
use serde_json::{json, Value};
use support::gateway::{binary, client, GatewayProcess, GatewaySpec, TestBed, PROVIDER_KEY};
use support::idp::{b64, jwks, Idp, SigningKey};
use support::mock_openai::{MockOpenAi, Recorded, TlsIdentity};

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn tls(bed: &TestBed, names: &[&str]) -> TlsIdentity {
    let c = bed.ca.server_cert(names);
    TlsIdentity { cert_pem: c.cert_pem, key_pem: c.key_pem }
}

/// Claims a well-behaved IdP would issue, with `extra` merged in.
fn claims(issuer: &str, extra: Value) -> Value {
    let mut c = json!({"iss": issuer, "sub": "user-1", "aud": "aigate", "exp": now() + 300, "iat": now() - 5});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// A token whose header and claims are written as given (duplicate members included), signed
/// with `key`.
fn raw_token(key: &SigningKey, alg: &str, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    format!("{input}.{}", b64(&key.sign_bytes(alg, input.as_bytes())))
}

/// An HS256 jwt whose header and claims are written as given.
fn hs256(secret: &str, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let sig = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

async fn send(gw: &GatewayProcess, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = client().request(method.parse().unwrap(), gw.url(path));
    if method == "POST" {
        req = req.json(&json!({"input": "hi"}));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The gateway's startup problems, when it refuses to start.
fn refused_start(dir: &std::path::Path, spec: GatewaySpec) -> String {
    match GatewayProcess::try_start(dir, spec) {
        Ok(_) => panic!("the gateway started"),
        Err(e) => e,
    }
}

/// The usual set-up: a test bed (CA, LLM mock), a plain recording service, and an identity
/// provider over TLS publishing one key.
struct IdpBed {
    bed: TestBed,
    echo: MockOpenAi,
    key: SigningKey,
    idp: Idp,
}

impl IdpBed {
    async fn new() -> IdpBed {
        let bed = TestBed::new().await;
        let echo = MockOpenAi::start("127.0.0.1:0", None).await;
        let key = SigningKey::generate("k");
        let idp = Idp::start(tls(&bed, &["127.0.0.1"]), &[&key]).await;
        IdpBed { bed, echo, key, idp }
    }
}

/// Every value of header `name` the upstream received.
fn all<'r>(rec: &'r Recorded, name: &str) -> Vec<&'r str> {
    rec.headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
}

fn oidc(issuer: &str, extra: &str) -> String {
    format!("    - name: openid-connect\n      config: {{issuer: '{issuer}'{extra}}}\n")
}

/// A decK file: one service at `url` with `routes` (name → its plugins' lines; the path is
/// `/<name>`), then `tail` (consumers).
fn deck(url: &str, routes: &[(&str, String)], tail: &str) -> String {
    let mut d = format!("_format_version: \"3.0\"\nservices:\n- name: svc\n  url: {url}\n  routes:\n");
    for (name, plugins) in routes {
        d.push_str(&format!("  - name: {name}\n    paths: [/{name}]\n    plugins:\n{plugins}"));
    }
    d.push_str(tail);
    d
}

// ---------------------------------------------------------------------------------------------
// 1. Key sets are fetched only from where the configuration says

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_come_only_from_where_the_configuration_says() {
    let bed = TestBed::new().await;
    let echo = MockOpenAi::start("127.0.0.1:0", None).await;
    let good = SigningKey::generate("good");
    let evil = SigningKey::generate("evil");
    // The attacker's keys: on plain http, and over https on another host name.
    let evil_http = Idp::plain(jwks(&[&evil])).await;
    let evil_host = Idp::start(tls(&bed, &["localhost"]), &[&evil]).await;
    let evil_host_url = format!("https://localhost:{}", evil_host.addr.port());

    let honest = Idp::start(tls(&bed, &["127.0.0.1"]), &[&good]).await;
    // Keys moved to plain http, or to another host, by a redirect.
    let downgrade = Idp::start(tls(&bed, &["127.0.0.1"]), &[&good]).await;
    downgrade.redirect("/jwks.json", &format!("{}/jwks.json", evil_http.issuer));
    let elsewhere = Idp::start(tls(&bed, &["127.0.0.1"]), &[&good]).await;
    elsewhere.redirect("/jwks.json", &format!("{evil_host_url}/jwks.json"));
    // The discovery document moved to another host that claims to be this issuer.
    let moved = Idp::start(tls(&bed, &["127.0.0.1"]), &[&good]).await;
    moved.redirect("/.well-known/openid-configuration", &format!("{evil_host_url}/.well-known/openid-configuration"));
    evil_host.set_discovery(Some(&moved.issuer), Some(&format!("{evil_host_url}/jwks.json")));
    // A discovery document naming another issuer than the one it was fetched for.
    let impostor = Idp::start(tls(&bed, &["127.0.0.1"]), &[&evil]).await;
    impostor.set_discovery(Some("https://accounts.example"), None);
    // A discovery document naming the issuer but for a trailing slash (exact means exact).
    let slashed = Idp::start(tls(&bed, &["127.0.0.1"]), &[&good]).await;
    slashed.set_discovery(Some(&format!("{}/", slashed.issuer)), None);
    // A discovery document sending the gateway to plain http for its keys.
    let plain_keys = Idp::start(tls(&bed, &["127.0.0.1"]), &[&good]).await;
    plain_keys.set_discovery(None, Some(&format!("{}/jwks.json", evil_http.issuer)));

    let idps = [
        ("honest", &honest),
        ("downgrade", &downgrade),
        ("elsewhere", &elsewhere),
        ("moved", &moved),
        ("impostor", &impostor),
        ("slashed", &slashed),
        ("plain-keys", &plain_keys),
    ];
    let routes: Vec<(&str, String)> = idps.iter().map(|(name, idp)| (*name, oidc(&idp.issuer, ""))).collect();
    let deck = deck(&format!("http://{}/api", echo.addr), &routes, "");
    let gw = bed.start(GatewaySpec::new(&[("kong.yaml", &deck)]));

    // The honest issuer works: the set-up is sound.
    let (status, body) = send(
        &gw,
        "GET",
        "/honest",
        &[("authorization", &format!("Bearer {}", good.sign(&claims(&honest.issuer, json!({})))))],
    )
    .await;
    assert_eq!(status, 200, "{body}\n{}", gw.logs());
    let evil_token = evil.sign(&claims(&honest.issuer, json!({})));
    assert_eq!(send(&gw, "GET", "/honest", &[("authorization", &format!("Bearer {evil_token}"))]).await.0, 401);

    // Elsewhere, the attacker's keys are never trusted, and no key is in hand at all.
    for (name, idp) in &idps[1..] {
        for key in [&evil, &good] {
            let t = key.sign(&claims(&idp.issuer, json!({})));
            let (status, body) =
                send(&gw, "GET", &format!("/{name}"), &[("authorization", &format!("Bearer {t}"))]).await;
            assert_eq!(status, 401, "{name}, key {:?}: {body}\n{}", key.kid, gw.logs());
        }
    }
    // The issuer the impostor's document claims is not accepted either.
    let t = evil.sign(&claims("https://accounts.example", json!({})));
    assert_eq!(send(&gw, "GET", "/impostor", &[("authorization", &format!("Bearer {t}"))]).await.0, 401);
    assert_eq!(echo.state.count(), 1, "only the honest request reached the service");
    // The attacker's key sets were never even fetched.
    assert_eq!(evil_http.jwks_hits(), 0);
    assert_eq!(evil_host.jwks_hits(), 0);
    let logs = gw.logs();
    assert!(logs.contains("redirect to") && logs.contains("not followed"), "{logs}");
    assert!(logs.contains("names issuer \"https://accounts.example\"") && logs.contains("not trusted"), "{logs}");
    assert!(logs.contains("is plain http"), "{logs}");
    // Counted per URL.
    let m = client().get(gw.status_url("/metrics")).send().await.unwrap().text().await.unwrap();
    let refreshes = |idp: &Idp, result: &str| {
        let url = format!("{}/.well-known/openid-configuration", idp.issuer);
        support::prom::value(&m, "aigate_oidc_key_refreshes_total", &[("url", &url), ("result", result)]).unwrap_or(0.0)
    };
    assert!(refreshes(&honest, "success") >= 1.0, "{m}");
    assert_eq!(refreshes(&honest, "failure"), 0.0, "{m}");
    for (name, idp) in &idps[1..] {
        assert!(refreshes(idp, "failure") >= 1.0, "{name}: {m}");
        assert_eq!(refreshes(idp, "success"), 0.0, "{name}: {m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_key_urls_need_the_test_setting() {
    let key = SigningKey::generate("k");
    let idp = Idp::plain(jwks(&[&key])).await;
    let echo = MockOpenAi::start("127.0.0.1:0", None).await;
    let dir = tempfile::tempdir().unwrap();
    let deck =
        |issuer: &str, extra: &str| deck(&format!("http://{}/api", echo.addr), &[("r", oidc(issuer, extra))], "");
    // Refused at load: the issuer over http, and an http extra_jwks_uris.
    let refused = refused_start(dir.path(), GatewaySpec::new(&[("kong.yaml", &deck(&idp.issuer, ""))]));
    assert!(refused.contains("issuer") && refused.contains("is plain http"), "{refused}");
    let extra = format!(", extra_jwks_uris: ['{}/jwks.json']", idp.issuer);
    let with_extra = deck("https://idp.example", &extra);
    let refused = refused_start(dir.path(), GatewaySpec::new(&[("kong.yaml", &with_extra)]));
    assert!(refused.contains("extra_jwks_uris[0]") && refused.contains("is plain http"), "{refused}");
    // Named in oidc_insecure_http_hosts (tests only), the plain IdP serves its keys.
    let spec =
        GatewaySpec::new(&[("kong.yaml", &deck(&idp.issuer, ""))]).settings("oidc_insecure_http_hosts: [127.0.0.1]");
    let gw = GatewayProcess::start(dir.path(), spec);
    let t = key.sign(&claims(&idp.issuer, json!({})));
    let (status, body) = send(&gw, "GET", "/r", &[("authorization", &format!("Bearer {t}"))]).await;
    assert_eq!(status, 200, "{body}\n{}", gw.logs());
}

// ---------------------------------------------------------------------------------------------
// 2. Tokens and cookies stay at the gateway on LLM routes

/// An ai-proxy plugin's lines with this `auth`.
fn ai(auth: &str) -> String {
    format!(
        "    - name: ai-proxy\n      config:\n        route_type: llm/v1/responses\n        auth: {auth}\n        model: {{provider: openai, name: gpt-4o}}\n"
    )
}

/// The provider key as a decK file writes it.
const KEY_VAR: &str = "${{ env \"DECK_OPENAI_API_KEY\" }}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_cookies_never_reach_the_provider() {
    let IdpBed { bed, key, idp, .. } = IdpBed::new().await;
    let places = ", bearer_token_param_type: [header, query]";
    let key_var = KEY_VAR;
    let routes = [
        ("x-api-key", ai(&format!("{{header_name: x-api-key, header_value: '{key_var}'}}"))),
        ("query-key", ai(&format!("{{param_name: key, param_value: '{key_var}', param_location: query}}"))),
        ("body-key", ai(&format!("{{param_name: api_key, param_value: '{key_var}', param_location: body}}"))),
        (
            "override",
            ai(&format!("{{header_name: Authorization, header_value: 'Bearer {key_var}', allow_override: true}}")),
        ),
    ];
    let mut all_routes: Vec<(&str, String)> =
        routes.iter().map(|(name, ai)| (*name, format!("{}{ai}", oidc(&idp.issuer, places)))).collect();
    let jwt = "    - name: jwt\n      config: {cookie_names: [jwt]}\n";
    all_routes.push((
        "jwt-cookie",
        format!("{jwt}{}", ai(&format!("{{header_name: Authorization, header_value: 'Bearer {key_var}'}}"))),
    ));
    let consumers = "consumers:\n- username: alex\n  jwt_secrets: [{key: alex-iss, secret: alex-secret}]\n";
    let deck = deck("http://unused.invalid", &all_routes, consumers);
    let gw = bed.start(GatewaySpec::new(&[("kong.yaml", &deck)]));
    let token = key.sign(&claims(&idp.issuer, json!({})));
    let bearer = format!("Bearer {token}");

    let cookie = "theme=dark; session=abc";
    for (name, _) in &routes {
        let (status, body) =
            send(&gw, "POST", &format!("/{name}"), &[("authorization", &bearer), ("cookie", cookie)]).await;
        assert_eq!(status, 200, "{name}: {body}\n{}", gw.logs());
        let sent = bed.mock.state.last().unwrap();
        let text = format!("{sent:?}");
        assert!(!text.contains(&token), "{name}: the token reached the provider: {text}");
        assert!(all(&sent, "cookie").is_empty(), "{name}: cookies reached the provider: {text}");
        match *name {
            "x-api-key" => {
                assert!(all(&sent, "authorization").is_empty(), "{text}");
                assert_eq!(all(&sent, "x-api-key"), [PROVIDER_KEY]);
            }
            "query-key" => assert_eq!(sent.target, format!("/v1/responses?key={PROVIDER_KEY}")),
            "body-key" => assert_eq!(sent.json()["api_key"], PROVIDER_KEY),
            _ => assert_eq!(all(&sent, "authorization"), [format!("Bearer {PROVIDER_KEY}").as_str()]),
        }
    }
    // The token in the query: taken out too, other parameters kept.
    let (status, _) = send(&gw, "POST", &format!("/x-api-key?access_token={token}&keep=1"), &[]).await;
    assert_eq!(status, 200);
    let sent = bed.mock.state.last().unwrap();
    assert_eq!(sent.target, "/v1/responses?keep=1");
    // A jwt read from a cookie stays at the gateway as well.
    let jwt = hs256("alex-secret", r#"{"alg":"HS256","typ":"JWT"}"#, r#"{"iss":"alex-iss"}"#);
    let (status, body) = send(&gw, "POST", "/jwt-cookie", &[("cookie", &format!("theme=dark; jwt={jwt}"))]).await;
    assert_eq!(status, 200, "{body}");
    let sent = bed.mock.state.last().unwrap();
    assert!(!format!("{sent:?}").contains(&jwt));
    assert!(all(&sent, "cookie").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_a_cookie_stays_at_the_gateway() {
    let IdpBed { bed, key, idp, .. } = IdpBed::new().await;
    let places = ", bearer_token_param_type: [cookie], bearer_token_cookie_name: at";
    let auth = format!("{{header_name: Authorization, header_value: 'Bearer {KEY_VAR}', allow_override: true}}");
    let routes = [("llm", format!("{}{}", oidc(&idp.issuer, places), ai(&auth)))];
    let gw = bed.start(GatewaySpec::new(&[("kong.yaml", &deck("http://unused.invalid", &routes, ""))]));
    let token = key.sign(&claims(&idp.issuer, json!({})));
    let (status, body) = send(&gw, "POST", "/llm", &[("cookie", &format!("theme=dark; at={token}"))]).await;
    assert_eq!(status, 200, "{body}\n{}", gw.logs());
    let sent = bed.mock.state.last().unwrap();
    assert!(!format!("{sent:?}").contains(&token));
    assert!(all(&sent, "cookie").is_empty());
    assert_eq!(all(&sent, "authorization"), [format!("Bearer {PROVIDER_KEY}").as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hide_credentials_takes_the_token_out_wherever_it_was() {
    let IdpBed { bed, echo, key, idp } = IdpBed::new().await;
    let places = ", bearer_token_param_type: [header, query, cookie], bearer_token_cookie_name: at";
    let routes = [
        ("hidden", oidc(&idp.issuer, &format!("{places}, hide_credentials: true"))),
        ("shown", oidc(&idp.issuer, places)),
    ];
    let deck = deck(&format!("http://{}/api", echo.addr), &routes, "");
    let gw = bed.start(GatewaySpec::new(&[("kong.yaml", &deck)]));
    let token = key.sign(&claims(&idp.issuer, json!({})));

    // In the header.
    let (status, body) =
        send(&gw, "GET", "/hidden", &[("authorization", &format!("Bearer {token}")), ("cookie", "theme=dark")]).await;
    assert_eq!(status, 200, "{body}\n{}", gw.logs());
    let got = echo.state.last().unwrap();
    assert!(all(&got, "authorization").is_empty());
    assert_eq!(all(&got, "cookie"), ["theme=dark"]);
    // In the query: the other parameters stay.
    assert_eq!(send(&gw, "GET", &format!("/hidden/x?a=1&access_token={token}&b=2"), &[]).await.0, 200);
    assert_eq!(echo.state.last().unwrap().target, "/api/x?a=1&b=2");
    // In a cookie: just that cookie goes.
    assert_eq!(send(&gw, "GET", "/hidden", &[("cookie", &format!("theme=dark; at={token}; lang=en"))]).await.0, 200);
    let got = echo.state.last().unwrap();
    assert_eq!(all(&got, "cookie"), ["theme=dark; lang=en"]);
    assert!(!format!("{got:?}").contains(&token));
    // Without hide_credentials (Kong's default) the service gets the request as sent.
    assert_eq!(send(&gw, "GET", "/shown", &[("cookie", &format!("at={token}"))]).await.0, 200);
    assert_eq!(all(&echo.state.last().unwrap(), "cookie"), [format!("at={token}").as_str()]);
}

// ---------------------------------------------------------------------------------------------
// 3. Consumers are found by the rule the configuration names

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmapped_token_continues_as_the_anonymous_consumer_marked_so() {
    let IdpBed { bed, echo, key, idp } = IdpBed::new().await;
    let map = ", consumer_claim: [preferred_username], consumer_by: [username], consumer_optional: true";
    let key_auth = "    - name: key-auth\n      config: {anonymous: guest}\n";
    let routes = [
        ("optional", oidc(&idp.issuer, &format!("{map}, anonymous: guest"))),
        ("after-key-auth", format!("{key_auth}{}", oidc(&idp.issuer, map))),
    ];
    let consumers = "consumers:\n- username: alex\n  custom_id: alex-42\n- username: guest\n";
    let deck = deck(&format!("http://{}/api", echo.addr), &routes, consumers);
    let gw = bed.start(GatewaySpec::new(&[("kong.yaml", &deck)]));
    let token =
        |user: &str| key.sign(&claims(&idp.issuer, json!({"preferred_username": user, "sub": format!("sub-{user}")})));

    for route in ["/optional", "/after-key-auth"] {
        // A token that names a consumer: that consumer, with its credential.
        let (status, body) = send(&gw, "GET", route, &[("authorization", &format!("Bearer {}", token("alex")))]).await;
        assert_eq!(status, 200, "{route}: {body}\n{}", gw.logs());
        let got = echo.state.last().unwrap();
        assert_eq!(all(&got, "x-consumer-username"), ["alex"], "{route}");
        assert_eq!(all(&got, "x-credential-identifier"), [format!("{}#sub-alex", idp.issuer).as_str()]);
        assert!(all(&got, "x-anonymous-consumer").is_empty());
        // A valid token that names no consumer: the anonymous consumer, marked as such, and
        // never with a credential that would present it as a named one.
        let (status, _) = send(&gw, "GET", route, &[("authorization", &format!("Bearer {}", token("mallory")))]).await;
        assert_eq!(status, 200);
        let got = echo.state.last().unwrap();
        assert_eq!(all(&got, "x-consumer-username"), ["guest"], "{route}: {got:?}");
        assert_eq!(all(&got, "x-anonymous-consumer"), ["true"], "{route}: {got:?}");
        assert!(all(&got, "x-credential-identifier").is_empty(), "{route}: {got:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. One reading of every token

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_tokens_are_read_once() {
    let IdpBed { bed, echo, .. } = IdpBed::new().await;
    let consumers = "consumers:\n- username: alex\n  jwt_secrets: [{key: alex-iss, secret: alex-secret}]\n\
                     - username: bo\n  jwt_secrets: [{key: bo-iss, secret: bo-secret}]\n";
    let jwt = "    - name: jwt\n      config: {cookie_names: [jwt]}\n".to_string();
    let deck = deck(&format!("http://{}/api", echo.addr), &[("jwt", jwt)], consumers);
    let gw = bed.start(GatewaySpec::new(&[("kong.yaml", &deck)]));
    let h = r#"{"alg":"HS256","typ":"JWT"}"#;
    let alex = hs256("alex-secret", h, r#"{"iss":"alex-iss"}"#);
    let bearer = format!("Bearer {alex}");
    let (status, body) = send(&gw, "GET", "/jwt", &[("authorization", &bearer)]).await;
    assert_eq!(status, 200, "{body}\n{}", gw.logs());
    let served = echo.state.count();

    let refused = |status: u16, body: &Value, message: &str, what: &str| {
        assert_eq!((status, body["message"].as_str()), (401, Some(message)), "{what}: {body}");
    };
    // A member twice: `alg` none then HS256, `iss` naming bo then alex (signed by alex).
    for (what, header, claims) in [
        ("alg twice", r#"{"alg":"none","typ":"JWT","alg":"HS256"}"#, r#"{"iss":"alex-iss"}"#),
        ("iss twice", h, r#"{"iss":"bo-iss","sub":"x","iss":"alex-iss"}"#),
    ] {
        let t = hs256("alex-secret", header, claims);
        let (status, body) = send(&gw, "GET", "/jwt", &[("authorization", &format!("Bearer {t}"))]).await;
        refused(status, &body, "Bad token; invalid JSON", what);
    }
    // A critical extension aigate does not implement (empty crit too).
    for crit in [r#"["exp"]"#, "[]"] {
        let t = hs256("alex-secret", &format!(r#"{{"alg":"HS256","crit":{crit}}}"#), r#"{"iss":"alex-iss","exp":1}"#);
        let (status, body) = send(&gw, "GET", "/jwt", &[("authorization", &format!("Bearer {t}"))]).await;
        refused(status, &body, "Bad token; unsupported crit", crit);
    }
    // A second token anywhere: a second Authorization line, the same token in the query or a
    // cookie, two cookies of the name.
    let cases: [(&str, Vec<(&str, String)>); 5] = [
        ("two headers", vec![("authorization", bearer.clone()), ("authorization", "Bearer x.y.z".into())]),
        ("two identical headers", vec![("authorization", bearer.clone()), ("authorization", bearer.clone())]),
        ("header and cookie", vec![("authorization", bearer.clone()), ("cookie", format!("jwt={alex}"))]),
        ("two cookies", vec![("cookie", format!("jwt={alex}; jwt=x.y.z"))]),
        ("two cookie lines", vec![("cookie", format!("jwt={alex}")), ("cookie", "jwt=x.y.z".into())]),
    ];
    for (what, headers) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = send(&gw, "GET", "/jwt", &headers).await;
        refused(status, &body, "Multiple tokens provided", what);
    }
    let (status, body) = send(&gw, "GET", &format!("/jwt?jwt={alex}"), &[("authorization", &bearer)]).await;
    refused(status, &body, "Multiple tokens provided", "header and query");
    assert_eq!(echo.state.count(), served, "nothing refused reached the service");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_connect_tokens_are_read_once() {
    let IdpBed { bed, echo, key, idp } = IdpBed::new().await;
    let plugin = oidc(
        &idp.issuer,
        ", bearer_token_param_type: [header, query], audience_required: [aigate], \
         consumer_claim: [preferred_username], consumer_by: [username]",
    );
    let deck = deck(&format!("http://{}/api", echo.addr), &[("r", plugin)], "consumers:\n- username: alex\n");
    let gw = bed.start(GatewaySpec::new(&[("kong.yaml", &deck)]));
    let iss = &idp.issuer;
    // alex's claims, with `extra` merged in.
    let alex = |extra: Value| {
        let mut c = claims(iss, json!({"preferred_username": "alex"}));
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let token = key.sign(&alex(json!({})));
    let bearer = format!("Bearer {token}");
    let (status, body) = send(&gw, "GET", "/r", &[("authorization", &bearer)]).await;
    assert_eq!(status, 200, "{body}\n{}", gw.logs());
    let served = echo.state.count();

    // A second token: 400 (RFC 6750 §3.1), whatever the second one is.
    for headers in [
        vec![("authorization", bearer.as_str()), ("authorization", bearer.as_str())],
        vec![("authorization", bearer.as_str()), ("authorization", "Bearer x.y.z")],
    ] {
        let (status, body) = send(&gw, "GET", "/r", &headers).await;
        assert_eq!((status, body["message"].as_str()), (400, Some("Multiple tokens provided")), "{body}");
    }
    let (status, _) = send(&gw, "GET", &format!("/r?access_token={token}"), &[("authorization", &bearer)]).await;
    assert_eq!(status, 400);

    // Claims read one way: a duplicate member, an audience that only contains the required
    // one when split on spaces.
    let exp = now() + 300;
    let header = r#"{"alg":"ES256","typ":"JWT","kid":"k"}"#;
    let dup_claims =
        format!(r#"{{"iss":"{iss}","preferred_username":"alex","aud":"other","exp":{exp},"aud":"aigate"}}"#);
    let dup = raw_token(&key, "ES256", header, &dup_claims);
    let (status, body) = send(&gw, "GET", "/r", &[("authorization", &format!("Bearer {dup}"))]).await;
    assert_eq!((status, body["message"].as_str()), (401, Some("Unauthorized")), "{body}");
    let spaced = key.sign(&alex(json!({"aud": "aigate other"})));
    assert_eq!(send(&gw, "GET", "/r", &[("authorization", &format!("Bearer {spaced}"))]).await.0, 403);
    let listed = key.sign(&alex(json!({"aud": ["other", "aigate"]})));
    assert_eq!(send(&gw, "GET", "/r", &[("authorization", &format!("Bearer {listed}"))]).await.0, 200);
    let got = echo.state.last().unwrap();
    assert_eq!(all(&got, "x-credential-identifier"), [format!("{iss}#user-1").as_str()]);
    let served = served + 1;
    // A claim that goes upstream in X-Credential-Identifier (`<iss>#<sub>`) with a line break
    // or another control character in it: a clean 401, never a 500, never an injected header.
    for sub in ["user\r\nx-injected: 1", "user\nx", "nul\u{0}byte", "esc\u{1b}[31m"] {
        let t = key.sign(&alex(json!({"sub": sub})));
        let (status, body) = send(&gw, "GET", "/r", &[("authorization", &format!("Bearer {t}"))]).await;
        assert_eq!((status, body["message"].as_str()), (401, Some("Unauthorized")), "{sub:?}: {body}");
    }
    // A critical header extension.
    let crit = raw_token(&key, "ES256", r#"{"alg":"ES256","kid":"k","crit":["exp"]}"#, &alex(json!({})).to_string());
    assert_eq!(send(&gw, "GET", "/r", &[("authorization", &format!("Bearer {crit}"))]).await.0, 401);
    assert_eq!(echo.state.count(), served, "nothing refused reached the service");
    assert!(!gw.logs().contains("x-injected"));
}

#[test]
fn weak_rsa_keys_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let pem = include_str!("fixtures/test-rsa-2041-public.pem");
    let indented: String = pem.lines().map(|l| format!("      {l}\n")).collect();
    let deck = format!(
        "_format_version: \"3.0\"\nconsumers:\n- username: alex\n  jwt_secrets:\n  - key: alex-iss\n    algorithm: RS256\n    rsa_public_key: |\n{indented}"
    );
    std::fs::write(dir.path().join("kong.yaml"), deck).unwrap();
    let settings = dir.path().join("aigate.yaml");
    std::fs::write(&settings, "declarative_config: kong.yaml\n").unwrap();
    let out = std::process::Command::new(binary()).arg("check").arg("--config").arg(&settings).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("rsa_public_key holds a 2041-bit RSA key; aigate needs at least 2048 bits"), "{text}");
}
