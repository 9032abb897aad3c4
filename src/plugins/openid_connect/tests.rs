//! The schema, and what needs no identity provider; the plugin against a live one is in
//! tests/oidc_plugin.rs.

use super::*;
use crate::consumers::Consumer;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;
use tokio::net::TcpListener;

const NOW: u64 = 1_700_000_000;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn token_with(header: Value, claims: Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

// -----------------------------------------------------------------------------------------
// Plugin helpers

fn consumers() -> Consumers {
    let mut c = Consumers::default();
    for (name, custom) in [("alex", Some("cust-alex")), ("bo", None), ("anon", None)] {
        c.add(Consumer::new(format!("id-{name}"), Some(name.into()), custom.map(Into::into), Vec::new()));
    }
    c
}

/// A registry that lets plain http reach 127.0.0.1 (the hanging IdP below), as the setting
/// `oidc_insecure_http_hosts` does for tests.
fn registry() -> JwksRegistry {
    JwksRegistry::new(None, vec!["127.0.0.1".into()])
}

fn schema(yaml: &str) -> OpenIdConnectSchema {
    serde_yaml::from_str(yaml).unwrap()
}

fn compile(yaml: &str) -> Result<OpenIdConnect, Vec<ConfigIssue>> {
    OpenIdConnect::compile(schema(yaml), &consumers(), &registry())
}

fn issues(yaml: &str) -> Vec<String> {
    compile(yaml).unwrap_err().into_iter().map(|i| i.path).collect()
}

fn req(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
    for (k, v) in headers {
        r.append_header(k.to_string(), *v).unwrap();
    }
    r
}

/// The plugin's check, waiting for key refreshes as the authenticate phase does.
async fn authenticate(
    p: &OpenIdConnect,
    req: &RequestHeader,
    consumers: &Consumers,
    now: u64,
) -> Result<OidcOk, OidcFailure> {
    match p.check_cached(req, consumers, now) {
        Checked::Done(r) => r,
        Checked::AwaitingKeys { token, waits, .. } => p.after_refresh(&token, waits, consumers, now).await,
    }
}

async fn check(p: &OpenIdConnect, token: &str) -> Result<OidcOk, OidcError> {
    let r = req("/", &[("authorization", &format!("Bearer {token}"))]);
    authenticate(p, &r, &consumers(), NOW).await.map_err(|f| f.kind())
}

// -----------------------------------------------------------------------------------------
// Schema

#[test]
fn schema_defaults() {
    let p = compile("issuer: https://idp.example/realms/x").unwrap();
    assert_eq!(p.issuer, "https://idp.example/realms/x");
    assert_eq!(p.token_places, vec![TokenPlace::Header]);
    assert!(p.run_on_preflight && !p.consumer_optional && p.verify_claims);
    assert_eq!(p.anonymous, None);
    assert_eq!(p.consumer_by, vec![ConsumerBy::Username, ConsumerBy::CustomId]);
    assert_eq!(p.scopes_claim, ["scope"]);
    assert_eq!(p.audience_claim, ["aud"]);
    assert_eq!(p.credential_claim, ["sub"]);
    assert_eq!(p.leeway, 0.0);
    assert_eq!(p.caches().len(), 1);
    assert_eq!(
        p.caches()[0].source(),
        &JwksSource::Discovery {
            url: "https://idp.example/realms/x/.well-known/openid-configuration".into(),
            issuer: Some("https://idp.example/realms/x".into())
        }
    );
    assert_eq!(p.caches()[0].on_demand_interval(), Duration::from_secs(30));
    assert_eq!(&*p.www_invalid_token, "Bearer realm=\"idp.example\", error=\"invalid_token\"");
    // The issuer may be given as its discovery URL.
    let p = compile("issuer: https://accounts.example/.well-known/openid-configuration").unwrap();
    assert_eq!(p.issuer, "https://accounts.example");
    assert_eq!(
        p.caches()[0].source(),
        &JwksSource::Discovery {
            url: "https://accounts.example/.well-known/openid-configuration".into(),
            issuer: None
        }
    );
    let p = compile(
        "{issuer: 'https://idp/', extra_jwks_uris: ['https://idp/keys', 'https://idp/keys'], \
             bearer_token_param_type: [query, header, query], scopes_required: ['a b', c], leeway: 5, \
             rediscovery_lifetime: 3, consumer_by: [id], anonymous: anon}",
    )
    .unwrap();
    assert_eq!(p.caches().len(), 2);
    assert_eq!(p.caches()[0].source().url(), "https://idp/.well-known/openid-configuration");
    assert_eq!(p.caches()[1].on_demand_interval(), Duration::from_secs(3));
    assert_eq!(p.token_places, vec![TokenPlace::Query, TokenPlace::Header]);
    assert_eq!(p.scopes_required, vec![vec!["a".to_string(), "b".into()], vec!["c".into()]]);
    assert_eq!(p.consumer_by, vec![ConsumerBy::Id]);
    assert_eq!(p.anonymous, consumers().find("anon"));
}

#[test]
fn registry_shares_caches_between_plugins() {
    let reg = registry();
    let c = consumers();
    let a = OpenIdConnect::compile(schema("{issuer: 'https://idp/', rediscovery_lifetime: 60}"), &c, &reg).unwrap();
    let b = OpenIdConnect::compile(schema("{issuer: 'https://idp/', rediscovery_lifetime: 10}"), &c, &reg).unwrap();
    assert!(Arc::ptr_eq(&a.caches()[0], &b.caches()[0]));
    assert_eq!(reg.all().len(), 1);
    assert_eq!(reg.all()[0].on_demand_interval(), Duration::from_secs(10));
}

#[test]
fn deck_dump_with_kong_defaults_loads() {
    // The shape of a decK dump of a bearer-only plugin: every field written.
    let yaml = r#"
issuer: https://idp.example/.well-known/openid-configuration
auth_methods: [bearer]
bearer_token_param_type: [header, query]
anonymous: null
audience: null
audience_claim: [aud]
audience_required: [api]
authenticated_groups_claim: null
authorization_cookie_name: authorization
authorization_rolling_timeout: 600
by_username_ignore_case: false
cache_ttl: 3600
claims_forbidden: null
client_id: [my-client]
client_secret: [s3cret]
client_auth: null
cluster_cache_redis: {host: 127.0.0.1, port: 6379}
consumer_by: [username, custom_id]
consumer_claim: [preferred_username]
consumer_optional: false
credential_claim: [sub]
discovery_headers_names: null
display_errors: false
downstream_access_token_header: null
enable_hs_signatures: false
expose_error_code: true
extra_jwks_uris: null
forbidden_error_message: Forbidden
groups_claim: [groups]
groups_required: null
hide_credentials: false
http_version: 1.1
ignore_signature: []
introspect_jwt_tokens: false
introspection_hint: access_token
issuers_allowed: null
leeway: 0
login_action: upstream
login_methods: [authorization_code]
logout_methods: [POST, DELETE]
logout_uri_suffix: null
proof_of_possession_dpop: "off"
proof_of_possession_mtls: "off"
rediscovery_lifetime: 30
redis: {host: 127.0.0.1}
resolve_distributed_claims: false
run_on_preflight: true
scopes: [openid]
scopes_claim: [scope]
scopes_required: ["read write"]
search_user_info: false
session_cookie_name: session
session_storage: cookie
ssl_verify: false
timeout: 10000
unauthorized_error_message: Unauthorized
upstream_access_token_header: authorization:bearer
upstream_headers_claims: []
using_pseudo_issuer: false
verify_claims: true
verify_nonce: true
verify_parameters: false
verify_signature: true
"#;
    let p = compile(yaml).unwrap();
    assert_eq!(p.issuer, "https://idp.example");
    assert_eq!(p.audience_required, vec![vec!["api".to_string()]]);
    assert_eq!(p.consumer_claim, ["preferred_username"]);
}

#[test]
fn schema_errors() {
    // Not Kong fields at all.
    assert!(serde_yaml::from_str::<OpenIdConnectSchema>("{issuer: 'https://i', issuer_url: x}").is_err());
    assert!(serde_yaml::from_str::<OpenIdConnectSchema>("{issuer: 'https://i', 5: x}").is_err());
    assert!(serde_yaml::from_str::<OpenIdConnectSchema>("{issuer: 'https://i', leeway: soon}")
        .unwrap_err()
        .to_string()
        .contains("leeway"));
    // issuer is required.
    assert!(serde_yaml::from_str::<OpenIdConnectSchema>("{auth_methods: [bearer]}").is_err());
    // Through parse_config, as the gateway reads it.
    let cfg: serde_yaml::Value = serde_yaml::from_str("{issuer: 'https://i', nope: 1}").unwrap();
    assert!(super::super::parse_config::<OpenIdConnectSchema>(Some(&cfg)).is_err());

    let i = "issuer: https://idp/\n";
    assert_eq!(issues(&format!("{i}auth_methods: [bearer, session]")), ["auth_methods[1]"]);
    assert_eq!(issues(&format!("{i}auth_methods: []")), ["auth_methods"]);
    assert_eq!(issues(&format!("{i}bearer_token_param_type: [header, body]")), ["bearer_token_param_type[1]"]);
    assert_eq!(issues(&format!("{i}bearer_token_param_type: [cookie]")), ["bearer_token_cookie_name"]);
    assert_eq!(
        issues(&format!("{i}bearer_token_param_type: [cookie]\nbearer_token_cookie_name: ''")),
        ["bearer_token_cookie_name"]
    );
    assert_eq!(issues(&format!("{i}bearer_token_param_type: []")), ["bearer_token_param_type"]);
    assert_eq!(issues(&format!("{i}scopes_required: [a, '  ']")), ["scopes_required[1]"]);
    assert_eq!(issues(&format!("{i}audience_required: ['']")), ["audience_required[0]"]);
    assert_eq!(issues(&format!("{i}scopes_claim: []")), ["scopes_claim"]);
    assert_eq!(issues(&format!("{i}audience_claim: [a, '']")), ["audience_claim"]);
    assert_eq!(issues(&format!("{i}consumer_claim: ['']")), ["consumer_claim"]);
    assert_eq!(issues(&format!("{i}consumer_by: [email]")), ["consumer_by[0]"]);
    assert_eq!(issues(&format!("{i}consumer_claim: [sub]\nconsumer_by: []")), ["consumer_by"]);
    assert_eq!(issues(&format!("{i}leeway: -1")), ["leeway"]);
    assert_eq!(issues(&format!("{i}rediscovery_lifetime: -5")), ["rediscovery_lifetime"]);
    assert_eq!(issues(&format!("{i}anonymous: ghost")), ["anonymous"]);
    assert_eq!(issues(&format!("{i}extra_jwks_uris: [not-a-url]")), ["extra_jwks_uris[0]"]);
    assert_eq!(issues("issuer: idp.example"), ["issuer"]);
    assert_eq!(issues("issuer: ftp://idp.example/"), ["issuer"]);
    // Keys over plain http only from a host oidc_insecure_http_hosts names (127.0.0.1 here).
    let plain = compile("issuer: http://idp.example/").unwrap_err();
    assert_eq!(plain[0].path, "issuer");
    assert!(plain[0].what.contains("plain http"), "{plain:?}");
    assert_eq!(issues(&format!("{i}extra_jwks_uris: ['http://idp.example/keys']")), ["extra_jwks_uris[0]"]);
    assert!(compile("{issuer: 'http://127.0.0.1:9/', extra_jwks_uris: ['http://127.0.0.1:9/k']}").is_ok());
    // Kong fields that would change the outcome are refused unless at their defaults.
    for (field, value) in [
        ("verify_signature", "false"),
        ("enable_hs_signatures", "true"),
        ("groups_required", "[admins]"),
        ("claims_forbidden", "[x]"),
        ("upstream_access_token_header", "x-token"),
        ("upstream_headers_claims", "[sub]"),
        ("proof_of_possession_mtls", "strict"),
        ("display_errors", "true"),
        ("unauthorized_redirect_uri", "[https://x]"),
        ("login_action", "response"),
        ("http_proxy", "http://proxy:3128"),
        ("token_exchange_endpoint", "https://x"),
        ("by_username_ignore_case", "true"),
    ] {
        let found = issues(&format!("{i}{field}: {value}"));
        assert_eq!(found, [field], "{field}");
        // ... and accepted at their defaults or null.
        assert!(compile(&format!("{i}{field}: null")).is_ok(), "{field}");
    }
    // Fields a bearer-only plugin never reads are accepted as written.
    assert!(compile(&format!("{i}session_storage: redis\nclient_secret: [x]\nssl_verify: true")).is_ok());
}

// -----------------------------------------------------------------------------------------
// Tokens

#[tokio::test]
async fn a_hanging_idp_delays_requests_a_bounded_time() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let mut p = compile(&format!("issuer: {base}")).unwrap();
    p.unknown_kid_wait = Duration::from_millis(300);
    let t = token_with(json!({"alg": "EdDSA", "kid": "k"}), json!({"iss": base, "exp": NOW + 60}), |_| vec![1; 64]);
    for _ in 0..3 {
        let started = std::time::Instant::now();
        assert_eq!(check(&p, &t).await, Err(OidcError::NoKeys));
        assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    }
}

fn assert_send<T: Send>(_: &T) {}

#[test]
fn authenticate_future_is_send() {
    let p = compile("issuer: https://idp.example").unwrap();
    let (c, r) = (consumers(), req("/", &[]));
    let auth = AuthRequest { head: &r, body: None, consumers: &c, now_unix: NOW };
    match Authenticator::authenticate(&p, &auth) {
        Attempt::Ready(r) => assert!(r.is_err()),
        Attempt::Waiting(f) => assert_send(&f),
    }
    assert_send(&p.after_refresh(b"", Vec::new(), &c, NOW));
    assert_send(&p.caches()[0].refresh());
}

// -----------------------------------------------------------------------------------------
// One token, one consumer rule, and where the token goes

#[tokio::test]
async fn more_than_one_token_is_refused() {
    let p = compile(
        "{issuer: 'https://idp.example', bearer_token_param_type: [header, query, cookie], \
         bearer_token_cookie_name: at}",
    )
    .unwrap();
    let c = consumers();
    let multiple = |r: RequestHeader| {
        let f = match p.check_cached(&r, &c, NOW) {
            Checked::Done(r) => r.unwrap_err(),
            Checked::AwaitingKeys { .. } => panic!("a refusal needs no keys"),
        };
        assert_eq!(f.kind(), OidcError::MultipleTokens);
        assert_eq!((f.status(), f.message(), f.reason()), (400, "Multiple tokens provided", "multiple_tokens"));
        assert_eq!(f.www_authenticate(), "Bearer realm=\"idp.example\", error=\"invalid_request\"");
    };
    // Two Authorization lines (whatever the second holds), two access_token values, two
    // cookies, or the same token in two places.
    multiple(req("/", &[("authorization", "Bearer a.b.c"), ("authorization", "Bearer a.b.c")]));
    multiple(req("/", &[("authorization", "Bearer a.b.c"), ("authorization", "Basic YTpi")]));
    multiple(req("/?access_token=a.b.c&access_token=a.b.c", &[]));
    multiple(req("/?access_token=a.b.c", &[("authorization", "Bearer a.b.c")]));
    multiple(req("/", &[("cookie", "at=a.b.c; AT=x.y.z")]));
    multiple(req("/", &[("cookie", "at=a.b.c"), ("cookie", "other=1; at=a.b.c")]));
    multiple(req("/", &[("cookie", "at=a.b.c"), ("authorization", "Bearer a.b.c")]));
    // One token is read (and found malformed); empty values and other schemes are no token.
    for r in [
        req("/?access_token=a.b.c&access_token=", &[("authorization", "Basic YTpi")]),
        req("/", &[("cookie", "at=; other=a.b.c"), ("authorization", "Bearer a.b.c")]),
    ] {
        match p.check_cached(&r, &c, NOW) {
            Checked::Done(r) => assert_eq!(r.unwrap_err().kind(), OidcError::Malformed),
            Checked::AwaitingKeys { .. } => panic!("a malformed token needs no keys"),
        }
    }
    // With a single place, a token elsewhere is not read at all.
    let header_only = compile("issuer: https://idp.example").unwrap();
    match header_only.check_cached(&req("/?access_token=x.y.z", &[("authorization", "Bearer a.b.c")]), &c, NOW) {
        Checked::Done(r) => assert_eq!(r.unwrap_err().kind(), OidcError::Malformed),
        Checked::AwaitingKeys { .. } => panic!(),
    }
}

fn stripped(p: &OpenIdConnect, found: Option<&CredentialLocation>, to_llm: bool) -> Vec<(CredentialPlace, String)> {
    let mut out = Vec::new();
    p.strip_credentials(found, to_llm, &mut |place| out.push((place.place, place.name.to_string())));
    out
}

#[test]
fn tokens_never_reach_a_provider_and_leave_services_with_hide_credentials() {
    use CredentialPlace::{Cookie, Header, Query};
    let p = compile(
        "{issuer: 'https://idp.example', bearer_token_param_type: [header, query, cookie], \
         bearer_token_cookie_name: Session}",
    )
    .unwrap();
    // Before an LLM provider: every place the plugin reads, found or not.
    let all = vec![(Header, "authorization".to_string()), (Query, "access_token".into()), (Cookie, "session".into())];
    assert_eq!(stripped(&p, None, true), all);
    assert_eq!(stripped(&p, p.location(TokenPlace::Query).as_ref(), true), all);
    // Before a service: nothing unless hide_credentials (Kong's default false).
    assert!(!p.hide_credentials);
    assert!(stripped(&p, p.location(TokenPlace::Header).as_ref(), false).is_empty());
    let hide = compile(
        "{issuer: 'https://idp.example', bearer_token_param_type: [header, query, cookie], \
         bearer_token_cookie_name: session, hide_credentials: true}",
    )
    .unwrap();
    for (place, expected) in [
        (TokenPlace::Header, (Header, "authorization")),
        (TokenPlace::Query, (Query, "access_token")),
        (TokenPlace::Cookie, (Cookie, "session")),
    ] {
        let found = hide.location(place);
        assert_eq!(stripped(&hide, found.as_ref(), false), [(expected.0, expected.1.to_string())]);
    }
    // A failed or skipped plugin found nothing to hide.
    assert!(stripped(&hide, None, false).is_empty());
    // Only the places configured: a header-only plugin leaves the query alone.
    let header_only = compile("issuer: https://idp.example").unwrap();
    assert_eq!(stripped(&header_only, None, true), [(Header, "authorization".to_string())]);
}

#[test]
fn consumers_are_found_by_consumer_by_in_its_order() {
    let mut c = Consumers::default();
    // `shared` is one consumer's custom_id and another's username (the order of the file
    // decides nothing).
    let by_custom = c.add(Consumer::new("id-1".into(), Some("first".into()), Some("shared".into()), Vec::new()));
    let by_name = c.add(Consumer::new("id-2".into(), Some("shared".into()), None, Vec::new()));
    let p =
        |by: &str| compile(&format!("{{issuer: 'https://idp', consumer_claim: [sub], consumer_by: {by}}}")).unwrap();
    assert_eq!(p("[username]").find_consumer(&c, "shared"), Some(by_name));
    assert_eq!(p("[custom_id]").find_consumer(&c, "shared"), Some(by_custom));
    assert_eq!(p("[username, custom_id]").find_consumer(&c, "shared"), Some(by_name));
    assert_eq!(p("[custom_id, username]").find_consumer(&c, "shared"), Some(by_custom));
    assert_eq!(p("[id]").find_consumer(&c, "shared"), None);
    assert_eq!(p("[id]").find_consumer(&c, "id-2"), Some(by_name));
    assert_eq!(p("[username, custom_id]").find_consumer(&c, "id-1"), None);
    // Exact: no case folding, no trimming.
    assert_eq!(p("[username]").find_consumer(&c, "Shared"), None);
    assert_eq!(p("[username]").find_consumer(&c, "shared "), None);
}
