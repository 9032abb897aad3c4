use super::*;
use crate::consumers::Consumer;
use crate::jose::jws::MAX_TOKEN_LEN;
use crate::jose::pem_keys::pem_decode;
use crate::jose::test_keys::RSA_PRIVATE_PEM;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::json;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const NOW: u64 = 1_700_000_000;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

// -----------------------------------------------------------------------------------------
// Keys that sign test tokens

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

struct TestKey {
    kid: Option<String>,
    signer: Signer,
    jwk: Value,
}

fn with_kid(mut jwk: Value, kid: Option<&str>) -> Value {
    if let Some(k) = kid {
        jwk["kid"] = json!(k);
    }
    jwk
}

/// The test-only RSA key of the jwt tests (ring cannot generate RSA keys).
fn rsa_key(kid: Option<&str>) -> TestKey {
    let (_, der) = pem_decode(RSA_PRIVATE_PEM).unwrap();
    let pair = RsaKeyPair::from_pkcs8(&der).unwrap();
    let c: sig::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
    let jwk = with_kid(json!({"kty": "RSA", "use": "sig", "n": b64(&c.n), "e": b64(&c.e)}), kid);
    TestKey { kid: kid.map(Into::into), signer: Signer::Rsa(pair), jwk }
}

fn ec_key(kid: Option<&str>, p384: bool) -> TestKey {
    let rng = SystemRandom::new();
    let (alg, crv, len) = if p384 {
        (&sig::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)
    } else {
        (&sig::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)
    };
    let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    assert_eq!(point.len(), 1 + 2 * len);
    let jwk =
        with_kid(json!({"kty": "EC", "crv": crv, "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..])}), kid);
    TestKey { kid: kid.map(Into::into), signer: Signer::Ec(pair), jwk }
}

fn ed_key(kid: Option<&str>) -> TestKey {
    let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
    let jwk = with_kid(json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())}), kid);
    TestKey { kid: kid.map(Into::into), signer: Signer::Ed(pair), jwk }
}

impl TestKey {
    fn sign(&self, alg: &str, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Rsa(pair) => {
                let pad: &'static dyn sig::RsaEncoding = match alg {
                    "RS384" => &sig::RSA_PKCS1_SHA384,
                    "RS512" => &sig::RSA_PKCS1_SHA512,
                    "PS256" => &sig::RSA_PSS_SHA256,
                    "PS384" => &sig::RSA_PSS_SHA384,
                    "PS512" => &sig::RSA_PSS_SHA512,
                    _ => &sig::RSA_PKCS1_SHA256,
                };
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(pad, &rng, msg, &mut out).unwrap();
                out
            }
            Signer::Ec(pair) => pair.sign(&rng, msg).unwrap().as_ref().to_vec(),
            Signer::Ed(pair) => pair.sign(msg).as_ref().to_vec(),
        }
    }

    fn header(&self, alg: &str) -> Value {
        with_kid(json!({"alg": alg, "typ": "JWT"}), self.kid.as_deref())
    }

    fn token(&self, alg: &str, claims: Value) -> String {
        token_with(self.header(alg), claims, |m| self.sign(alg, m))
    }
}

fn token_with(header: Value, claims: Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

fn jwks(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

// -----------------------------------------------------------------------------------------
// A local IdP: discovery at /.well-known/openid-configuration, keys at /jwks

struct IdpState {
    jwks: String,
    discovery_status: u16,
    jwks_status: u16,
    discovery_hits: usize,
    jwks_hits: usize,
}

struct Idp {
    base: String,
    state: Arc<Mutex<IdpState>>,
}

impl Idp {
    async fn start(keys: Value) -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(IdpState {
            jwks: keys.to_string(),
            discovery_status: 200,
            jwks_status: 200,
            discovery_hits: 0,
            jwks_hits: 0,
        }));
        let (st, b) = (Arc::clone(&state), base.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (st, b) = (Arc::clone(&st), b.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let (status, body) = {
                        let mut s = st.lock().unwrap();
                        match path.as_str() {
                            "/.well-known/openid-configuration" => {
                                s.discovery_hits += 1;
                                let doc = json!({"issuer": b, "jwks_uri": format!("{b}/jwks")});
                                (s.discovery_status, doc.to_string())
                            }
                            "/jwks" => {
                                s.jwks_hits += 1;
                                (s.jwks_status, s.jwks.clone())
                            }
                            _ => (404, "{}".to_string()),
                        }
                    };
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                             connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Idp { base, state }
    }

    fn set_keys(&self, keys: Value) {
        self.state.lock().unwrap().jwks = keys.to_string();
    }

    fn set_jwks_body(&self, body: String) {
        self.state.lock().unwrap().jwks = body;
    }

    fn set_status(&self, discovery: u16, jwks: u16) {
        let mut s = self.state.lock().unwrap();
        s.discovery_status = discovery;
        s.jwks_status = jwks;
    }

    fn jwks_hits(&self) -> usize {
        self.state.lock().unwrap().jwks_hits
    }

    /// Standard valid claims, with `extra` merged in (null removes a claim).
    fn claims(&self, extra: Value) -> Value {
        let mut c = json!({"iss": self.base, "sub": "user-1", "exp": NOW + 300, "iat": NOW - 10});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }
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

fn registry() -> JwksRegistry {
    JwksRegistry::new(None)
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

/// An IdP serving `keys` and a plugin for it (`BASE` in `extra` is the IdP's URL), with
/// the initial refresh done.
async fn setup(extra: &str, keys: &[&TestKey]) -> (Idp, OpenIdConnect) {
    let idp = Idp::start(jwks(keys)).await;
    let yaml = format!("issuer: {}\n{}", idp.base, extra.replace("BASE", &idp.base));
    let plugin = compile(&yaml).unwrap();
    for cache in plugin.caches() {
        let _ = cache.refresh().await;
    }
    (idp, plugin)
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
        Checked::AwaitingKeys { token, waits } => p.after_refresh(&token, waits, consumers, now).await,
    }
}

async fn check(p: &OpenIdConnect, token: &str) -> Result<OidcOk, OidcError> {
    let r = req("/", &[("authorization", &format!("Bearer {token}"))]);
    authenticate(&p, &r, &consumers(), NOW).await.map_err(|f| f.kind())
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
        &JwksSource::Discovery("https://idp.example/realms/x/.well-known/openid-configuration".into())
    );
    assert_eq!(p.caches()[0].on_demand_interval(), Duration::from_secs(30));
    assert_eq!(&*p.www_invalid_token, "Bearer realm=\"idp.example\", error=\"invalid_token\"");
    // The issuer may be given as its discovery URL.
    let p = compile("issuer: https://accounts.example/.well-known/openid-configuration").unwrap();
    assert_eq!(p.issuer, "https://accounts.example");
    assert_eq!(
        p.caches()[0].source(),
        &JwksSource::Discovery("https://accounts.example/.well-known/openid-configuration".into())
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
    assert_eq!(issues(&format!("{i}bearer_token_param_type: [cookie]")), ["bearer_token_param_type[0]"]);
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
    // Kong fields that would change the outcome are refused unless at their defaults.
    for (field, value) in [
        ("hide_credentials", "true"),
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
async fn valid_tokens_of_every_key_type() {
    let rsa = rsa_key(Some("rsa"));
    let p256 = ec_key(Some("p256"), false);
    let p384 = ec_key(Some("p384"), true);
    let ed = ed_key(Some("ed"));
    let (idp, p) = setup("", &[&rsa, &p256, &p384, &ed]).await;
    let cases: [(&TestKey, &str); 9] = [
        (&rsa, "RS256"),
        (&rsa, "RS384"),
        (&rsa, "RS512"),
        (&rsa, "PS256"),
        (&rsa, "PS384"),
        (&rsa, "PS512"),
        (&p256, "ES256"),
        (&p384, "ES384"),
        (&ed, "EdDSA"),
    ];
    for (key, alg) in cases {
        let ok = check(&p, &key.token(alg, idp.claims(json!({})))).await.unwrap_or_else(|e| panic!("{alg}: {e:?}"));
        assert_eq!(ok.consumer, None);
        assert_eq!(ok.subject.as_deref(), Some("user-1"));
        assert_eq!(ok.credential_id, format!("{}#user-1", idp.base));
        // Any change to the signed parts breaks the signature.
        let t = key.token(alg, idp.claims(json!({})));
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        parts[1] = b64(idp.claims(json!({"sub": "admin"})).to_string().as_bytes());
        assert_eq!(check(&p, &parts.join(".")).await, Err(OidcError::Signature), "{alg}");
    }
    // The token was never fetched again: the keys were found in the cache.
    assert_eq!(idp.jwks_hits(), 1);
}

#[tokio::test]
async fn issuer_and_time_claims() {
    let key = ec_key(Some("k"), false);
    let (idp, p) = setup("", &[&key]).await;
    let t = |extra: Value| key.token("ES256", idp.claims(extra));
    assert!(check(&p, &t(json!({}))).await.is_ok());
    assert_eq!(check(&p, &t(json!({"iss": "https://evil.example"}))).await, Err(OidcError::Issuer));
    assert_eq!(check(&p, &t(json!({"iss": format!("{}/", idp.base)}))).await, Err(OidcError::Issuer));
    assert_eq!(check(&p, &t(json!({"iss": null}))).await, Err(OidcError::Issuer));
    assert_eq!(check(&p, &t(json!({"iss": 5}))).await, Err(OidcError::Issuer));
    // exp is required, and exp == now is expired.
    assert_eq!(check(&p, &t(json!({"exp": NOW}))).await, Err(OidcError::Expired));
    assert_eq!(check(&p, &t(json!({"exp": NOW - 100}))).await, Err(OidcError::Expired));
    assert!(check(&p, &t(json!({"exp": NOW + 1}))).await.is_ok());
    assert_eq!(check(&p, &t(json!({"exp": null}))).await, Err(OidcError::BadClaims));
    assert_eq!(check(&p, &t(json!({"exp": "9999999999"}))).await, Err(OidcError::BadClaims));
    assert_eq!(check(&p, &t(json!({"nbf": NOW + 10}))).await, Err(OidcError::NotYetValid));
    assert!(check(&p, &t(json!({"nbf": NOW}))).await.is_ok());
    assert_eq!(check(&p, &t(json!({"nbf": "soon"}))).await, Err(OidcError::BadClaims));
    assert_eq!(check(&p, &t(json!({"iat": NOW + 10}))).await, Err(OidcError::IssuedInFuture));
    assert!(check(&p, &t(json!({"iat": null}))).await.is_ok());
    assert!(check(&p, &t(json!({"exp": (NOW as f64) + 0.5}))).await.is_ok());

    // Leeway applies to exp, nbf and iat.
    let (idp, p) = setup("leeway: 60", &[&key]).await;
    let t = |extra: Value| key.token("ES256", idp.claims(extra));
    assert!(check(&p, &t(json!({"exp": NOW - 30, "nbf": NOW + 30, "iat": NOW + 30}))).await.is_ok());
    assert_eq!(check(&p, &t(json!({"exp": NOW - 60}))).await, Err(OidcError::Expired));
    assert_eq!(check(&p, &t(json!({"nbf": NOW + 61}))).await, Err(OidcError::NotYetValid));

    // verify_claims: false skips the time claims, not the issuer.
    let (idp, p) = setup("verify_claims: false", &[&key]).await;
    let t = |extra: Value| key.token("ES256", idp.claims(extra));
    assert!(check(&p, &t(json!({"exp": null, "nbf": NOW + 1000}))).await.is_ok());
    assert_eq!(check(&p, &t(json!({"iss": "https://evil.example"}))).await, Err(OidcError::Issuer));

    // issuers_allowed replaces the issuer.
    let (idp, p) = setup("issuers_allowed: [https://a.example, https://b.example]", &[&key]).await;
    let t = |extra: Value| key.token("ES256", idp.claims(extra));
    assert!(check(&p, &t(json!({"iss": "https://b.example"}))).await.is_ok());
    assert_eq!(check(&p, &t(json!({}))).await, Err(OidcError::Issuer));
}

#[tokio::test]
async fn scopes_and_audience() {
    let key = ed_key(Some("k"));
    let (idp, p) = setup("scopes_required: ['read write', admin]\naudience_required: [api, other]", &[&key]).await;
    let t = |extra: Value| key.token("EdDSA", idp.claims(extra));
    let r = |scope: Value, aud: Value| t(json!({"scope": scope, "aud": aud}));
    assert!(check(&p, &r(json!("openid read write"), json!("api"))).await.is_ok());
    assert!(check(&p, &r(json!("admin"), json!(["x", "other"]))).await.is_ok());
    assert!(check(&p, &r(json!(["write", "read"]), json!("api"))).await.is_ok());
    assert_eq!(check(&p, &r(json!("read"), json!("api"))).await, Err(OidcError::Scope));
    assert_eq!(check(&p, &r(json!("readwrite admins"), json!("api"))).await, Err(OidcError::Scope));
    assert_eq!(check(&p, &t(json!({"aud": "api"}))).await, Err(OidcError::NoScopes));
    assert_eq!(check(&p, &r(json!(""), json!("api"))).await, Err(OidcError::Scope));
    assert_eq!(check(&p, &r(json!("admin"), json!("apis"))).await, Err(OidcError::Audience));
    assert_eq!(check(&p, &r(json!("admin"), json!(["x", "y"]))).await, Err(OidcError::Audience));
    assert_eq!(check(&p, &t(json!({"scope": "admin"}))).await, Err(OidcError::NoAudience));
    let f = authenticate(
        &p,
        &req("/", &[("authorization", &format!("Bearer {}", r(json!("read"), json!("api"))))]),
        &consumers(),
        NOW,
    )
    .await
    .unwrap_err();
    assert_eq!((f.status(), f.message(), f.reason()), (403, "Forbidden", "scope"));
    assert_eq!(f.www_authenticate(), format!("Bearer realm=\"127.0.0.1\", error=\"insufficient_scope\""));

    // A nested claim path (Keycloak's realm roles) and an array claim (scp).
    let (idp, p) = setup("scopes_required: [admin]\nscopes_claim: [realm_access, roles]", &[&key]).await;
    let t = |extra: Value| key.token("EdDSA", idp.claims(extra));
    assert!(check(&p, &t(json!({"realm_access": {"roles": ["user", "admin"]}}))).await.is_ok());
    assert_eq!(check(&p, &t(json!({"realm_access": ["admin"]}))).await, Err(OidcError::NoScopes));
    assert_eq!(check(&p, &t(json!({"roles": ["admin"]}))).await, Err(OidcError::NoScopes));
    let (idp, p) = setup("scopes_required: [write]\nscopes_claim: [scp]", &[&key]).await;
    assert!(check(&p, &key.token("EdDSA", idp.claims(json!({"scp": ["read", "write"]})))).await.is_ok());
}

#[tokio::test]
async fn algorithm_attacks_are_refused() {
    let rsa = rsa_key(Some("rsa"));
    let ec = ec_key(Some("ec"), false);
    let (idp, p) = setup("", &[&rsa, &ec]).await;
    let claims = idp.claims(json!({}));
    // alg none, with or without a signature.
    for alg in ["none", "None", "NONE", ""] {
        let unsigned = token_with(json!({"alg": alg, "kid": "rsa"}), claims.clone(), |_| vec![]);
        assert_eq!(check(&p, &unsigned).await, Err(OidcError::Algorithm), "{alg}");
    }
    assert_eq!(
        check(&p, &token_with(json!({"kid": "rsa"}), claims.clone(), |_| vec![1])).await,
        Err(OidcError::Algorithm)
    );
    assert_eq!(
        check(&p, &token_with(json!({"alg": 256, "kid": "rsa"}), claims.clone(), |_| vec![1])).await,
        Err(OidcError::Algorithm)
    );
    // HS256 keyed with the public key (the classic confusion), with and without kid.
    let jwk_text = rsa.jwk.to_string();
    for header in [json!({"alg": "HS256", "kid": "rsa"}), json!({"alg": "HS256"}), json!({"alg": "HS512"})] {
        let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, jwk_text.as_bytes());
        let t = token_with(header.clone(), claims.clone(), |m| ring::hmac::sign(&hmac_key, m).as_ref().to_vec());
        assert_eq!(check(&p, &t).await, Err(OidcError::Algorithm), "{header}");
    }
    // ES512 (not supported) and an alg that does not fit the named key.
    assert_eq!(
        check(&p, &token_with(json!({"alg": "ES512", "kid": "ec"}), claims.clone(), |_| vec![1; 132])).await,
        Err(OidcError::Algorithm)
    );
    let t = token_with(json!({"alg": "ES256", "kid": "rsa"}), claims.clone(), |m| ec.sign("ES256", m));
    assert_eq!(check(&p, &t).await, Err(OidcError::Algorithm));
    let t = token_with(json!({"alg": "RS256", "kid": "ec"}), claims.clone(), |m| rsa.sign("RS256", m));
    assert_eq!(check(&p, &t).await, Err(OidcError::Algorithm));
    // PKCS#1 and PSS are different algorithms for the same key.
    let t = token_with(json!({"alg": "RS256", "kid": "rsa"}), claims.clone(), |m| rsa.sign("PS256", m));
    assert_eq!(check(&p, &t).await, Err(OidcError::Signature));
    // A key restricted to one alg by its JWK refuses others.
    let mut restricted = rsa_key(Some("only-ps"));
    restricted.jwk["alg"] = json!("PS256");
    idp.set_keys(jwks(&[&restricted]));
    for c in p.caches() {
        c.refresh().await.unwrap();
    }
    assert!(check(&p, &restricted.token("PS256", claims.clone())).await.is_ok());
    assert_eq!(check(&p, &restricted.token("RS256", claims.clone())).await, Err(OidcError::Algorithm));
    // Unknown critical header extensions are refused.
    let t = token_with(json!({"alg": "PS256", "kid": "only-ps", "crit": ["exp"]}), claims.clone(), |m| {
        restricted.sign("PS256", m)
    });
    assert_eq!(check(&p, &t).await, Err(OidcError::Malformed));
}

#[tokio::test]
async fn keys_without_kid() {
    let key = ec_key(None, true);
    let (idp, p) = setup("", &[&key]).await;
    // No kid in the token: every key of the right type is tried.
    assert!(check(&p, &key.token("ES384", idp.claims(json!({})))).await.is_ok());
    // A kid in the token that no key has, but a kid-less key signed it.
    let t = token_with(json!({"alg": "ES384", "kid": "whatever"}), idp.claims(json!({})), |m| key.sign("ES384", m));
    assert!(check(&p, &t).await.is_ok());
    // No key of that type at all.
    let other = ed_key(None);
    assert_eq!(check(&p, &other.token("EdDSA", idp.claims(json!({})))).await, Err(OidcError::UnknownKey));
    let stranger = ec_key(None, true);
    assert_eq!(check(&p, &stranger.token("ES384", idp.claims(json!({})))).await, Err(OidcError::Signature));
}

#[tokio::test]
async fn unknown_kid_refreshes_once_and_finds_rotated_keys() {
    let old = rsa_key(Some("2024"));
    let new = ec_key(Some("2025"), false);
    let (idp, p) = setup("", &[&old]).await;
    assert_eq!(idp.jwks_hits(), 1);
    // The IdP rotates; a token signed with the new key triggers a refresh and passes.
    idp.set_keys(jwks(&[&old, &new]));
    let ok = check(&p, &new.token("ES256", idp.claims(json!({})))).await.unwrap();
    assert_eq!(ok.subject.as_deref(), Some("user-1"));
    assert_eq!(idp.jwks_hits(), 2);
    // Both keys now verify without further fetches.
    assert!(check(&p, &old.token("RS256", idp.claims(json!({})))).await.is_ok());
    assert!(check(&p, &new.token("ES256", idp.claims(json!({})))).await.is_ok());
    assert_eq!(idp.jwks_hits(), 2);
}

#[tokio::test]
async fn unknown_kid_flood_is_rate_limited() {
    let key = ed_key(Some("good"));
    let late = ec_key(Some("late"), false);
    let (idp, p) = setup("rediscovery_lifetime: 2", &[&key]).await;
    let hits = idp.jwks_hits();
    // A flood of random kids, concurrent and then sequential: one refresh in all.
    let tokens: Vec<String> = (0..20)
        .map(|i| {
            token_with(json!({"alg": "EdDSA", "kid": format!("random-{i}")}), idp.claims(json!({})), |m| {
                key.sign("EdDSA", m)
            })
        })
        .collect();
    let results = futures_util::future::join_all(tokens.iter().map(|t| check(&p, t))).await;
    assert!(results.iter().all(|r| *r == Err(OidcError::UnknownKey)));
    for t in &tokens {
        assert_eq!(check(&p, t).await, Err(OidcError::UnknownKey));
    }
    assert_eq!(idp.jwks_hits(), hits + 1);
    // Within the limit, even a kid the IdP now has is refused...
    idp.set_keys(jwks(&[&key, &late]));
    let t = late.token("ES256", idp.claims(json!({})));
    assert_eq!(check(&p, &t).await, Err(OidcError::UnknownKey));
    assert_eq!(idp.jwks_hits(), hits + 1);
    // ... and found once the limit has passed.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(check(&p, &t).await.is_ok());
    assert_eq!(idp.jwks_hits(), hits + 2);
    // Known keys never wait or fetch.
    assert!(check(&p, &key.token("EdDSA", idp.claims(json!({})))).await.is_ok());
    assert_eq!(idp.jwks_hits(), hits + 2);
}

#[tokio::test]
async fn failed_refreshes_keep_the_keys() {
    let key = ec_key(Some("k"), false);
    let (idp, p) = setup("", &[&key]).await;
    let cache = Arc::clone(&p.caches()[0]);
    let good = key.token("ES256", idp.claims(json!({})));
    assert!(check(&p, &good).await.is_ok());
    // IdP down (5xx), bad JSON, an empty key set, only junk keys, an oversized document.
    idp.set_status(200, 503);
    assert!(cache.refresh().await.unwrap_err().contains("503"));
    idp.set_status(200, 200);
    for body in [
        "not json".to_string(),
        r#"{"keys": []}"#.to_string(),
        r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#.to_string(),
        r#"{"no": "keys"}"#.to_string(),
        format!(r#"{{"keys": [], "pad": "{}"}}"#, "x".repeat(jwks::MAX_DOCUMENT_BYTES)),
    ] {
        idp.set_jwks_body(body);
        assert!(cache.refresh().await.is_err());
        assert_eq!(cache.keys().keys.len(), 1);
        assert!(check(&p, &good).await.is_ok());
    }
    // Discovery down, keys still served: the known jwks_uri is used.
    let next = ed_key(Some("next"));
    idp.set_keys(jwks(&[&key, &next]));
    idp.set_status(500, 200);
    assert_eq!(cache.refresh().await, Ok(2));
    assert!(check(&p, &next.token("EdDSA", idp.claims(json!({})))).await.is_ok());
    // Junk keys next to good ones are ignored one by one.
    let mut doc = jwks(&[&key]);
    doc["keys"].as_array_mut().unwrap().extend([
        json!({"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}),
        json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
        json!("junk"),
    ]);
    idp.set_keys(doc);
    assert_eq!(cache.refresh().await, Ok(1));
    assert!(check(&p, &good).await.is_ok());
}

#[tokio::test]
async fn no_keys_until_the_idp_answers() {
    let key = ed_key(Some("k"));
    let idp = Idp::start(jwks(&[&key])).await;
    idp.set_status(503, 503);
    let p = compile(&format!("{{issuer: '{}', rediscovery_lifetime: 0}}", idp.base)).unwrap();
    assert!(p.caches()[0].refresh().await.unwrap_err().contains("discovery"));
    let t = key.token("EdDSA", idp.claims(json!({})));
    assert_eq!(check(&p, &t).await, Err(OidcError::NoKeys));
    // The IdP comes back: the next token fetches the keys on demand.
    idp.set_status(200, 200);
    assert!(check(&p, &t).await.is_ok());
}

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
    let key = ed_key(Some("k"));
    let t = key.token("EdDSA", json!({"iss": base, "exp": NOW + 60}));
    for _ in 0..3 {
        let started = std::time::Instant::now();
        assert_eq!(check(&p, &t).await, Err(OidcError::NoKeys));
        assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    }
}

#[tokio::test]
async fn extra_jwks_uris_without_discovery() {
    let key = rsa_key(Some("k"));
    let idp = Idp::start(jwks(&[&key])).await;
    // The issuer has no discovery document: its refresh fails, the extra JWKS serves.
    let yaml = format!("{{issuer: '{0}/no-discovery', extra_jwks_uris: ['{0}/jwks']}}", idp.base);
    let p = compile(&yaml).unwrap();
    assert_eq!(p.caches().len(), 2);
    assert!(p.caches()[0].refresh().await.is_err());
    assert_eq!(p.caches()[1].refresh().await, Ok(1));
    let claims = idp.claims(json!({"iss": format!("{}/no-discovery", idp.base)}));
    assert!(check(&p, &key.token("RS256", claims)).await.is_ok());
}

#[tokio::test]
async fn consumer_mapping() {
    let key = ed_key(Some("k"));
    let (idp, p) = setup("consumer_claim: [preferred_username]", &[&key]).await;
    let t = |name: Value| key.token("EdDSA", idp.claims(json!({"preferred_username": name})));
    let c = consumers();
    assert_eq!(check(&p, &t(json!("alex"))).await.unwrap().consumer, c.find("alex"));
    assert_eq!(check(&p, &t(json!("cust-alex"))).await.unwrap().consumer, c.find("alex"));
    assert_eq!(check(&p, &t(json!("bo"))).await.unwrap().consumer, c.find("bo"));
    // By id only when consumer_by says so.
    assert_eq!(check(&p, &t(json!("id-bo"))).await, Err(OidcError::ConsumerNotFound));
    assert_eq!(check(&p, &t(json!("nobody"))).await, Err(OidcError::ConsumerNotFound));
    assert_eq!(check(&p, &t(json!(null))).await, Err(OidcError::ConsumerNotFound));
    assert_eq!(check(&p, &t(json!({"a": 1}))).await, Err(OidcError::ConsumerNotFound));
    let f = authenticate(&p, &req("/", &[("authorization", &format!("Bearer {}", t(json!("nobody"))))]), &c, NOW)
        .await
        .unwrap_err();
    assert_eq!((f.status(), f.message(), f.reason()), (403, "Forbidden", "consumer_not_found"));

    let (idp, p) = setup("consumer_claim: [sub]\nconsumer_by: [id]\nconsumer_optional: true", &[&key]).await;
    let t = |sub: &str| key.token("EdDSA", idp.claims(json!({"sub": sub})));
    assert_eq!(check(&p, &t("id-alex")).await.unwrap().consumer, c.find("alex"));
    let ok = check(&p, &t("alex")).await.unwrap();
    assert_eq!((ok.consumer, ok.subject.as_deref()), (None, Some("alex")));
    assert_eq!(ok.credential_id, format!("{}#alex", idp.base));

    // A nested claim path.
    let (idp, p) = setup("consumer_claim: [ext, user]\nconsumer_by: [username]", &[&key]).await;
    let ok = check(&p, &key.token("EdDSA", idp.claims(json!({"ext": {"user": "bo"}})))).await.unwrap();
    assert_eq!(ok.consumer, c.find("bo"));
    assert_eq!(
        check(&p, &key.token("EdDSA", idp.claims(json!({"ext": {"user": "cust-alex"}})))).await,
        Err(OidcError::ConsumerNotFound)
    );
    // credential_claim picks the credential id.
    let (idp, p) = setup("credential_claim: [client_id]", &[&key]).await;
    let ok = check(&p, &key.token("EdDSA", idp.claims(json!({"client_id": "svc-7"})))).await.unwrap();
    assert_eq!(ok.credential_id, format!("{}#svc-7", idp.base));
    let ok = check(&p, &key.token("EdDSA", idp.claims(json!({})))).await.unwrap();
    assert_eq!(ok.credential_id, idp.base);
}

#[tokio::test]
async fn token_places() {
    let key = ed_key(Some("k"));
    let (idp, p) = setup("bearer_token_param_type: [query]", &[&key]).await;
    let t = key.token("EdDSA", idp.claims(json!({})));
    let c = consumers();
    assert!(authenticate(&p, &req(&format!("/x?a=1&access_token={t}"), &[]), &c, NOW).await.is_ok());
    // The header is not read unless configured.
    let r = req("/x", &[("authorization", &format!("Bearer {t}"))]);
    assert_eq!(authenticate(&p, &r, &c, NOW).await.unwrap_err().kind(), OidcError::Missing);
    assert_eq!(authenticate(&p, &req("/x?access_token=", &[]), &c, NOW).await.unwrap_err().kind(), OidcError::Missing);
    // In configured order: the header wins when listed first.
    let (idp, p) = setup("bearer_token_param_type: [header, query]", &[&key]).await;
    let t = key.token("EdDSA", idp.claims(json!({})));
    let r = req(&format!("/x?access_token={t}"), &[("authorization", "Bearer garbage")]);
    assert_eq!(authenticate(&p, &r, &c, NOW).await.unwrap_err().kind(), OidcError::Malformed);
    let r = req(&format!("/x?access_token={t}"), &[("authorization", "Basic YTpi")]);
    assert!(authenticate(&p, &r, &c, NOW).await.is_ok());
    // The scheme is case-insensitive.
    for h in [format!("bearer {t}"), format!("BEARER  {t} "), format!("Bearer\t{t}")] {
        assert!(authenticate(&p, &req("/", &[("authorization", &h)]), &c, NOW).await.is_ok(), "{h}");
    }
    for h in ["Bearer", "Bearer ", "Bearerx abc", "Token abc", ""] {
        let f = authenticate(&p, &req("/", &[("authorization", h)]), &c, NOW).await.unwrap_err();
        assert_eq!(f.kind(), OidcError::Missing, "{h}");
        assert_eq!((f.status(), f.message()), (401, "Unauthorized"));
        // RFC 6750: no error code when no credentials were sent.
        assert_eq!(f.www_authenticate(), "Bearer realm=\"127.0.0.1\"");
    }
}

#[tokio::test]
async fn answers_and_messages() {
    let key = ed_key(Some("k"));
    let (idp, p) = setup("", &[&key]).await;
    let expired = key.token("EdDSA", idp.claims(json!({"exp": NOW - 1})));
    let f = authenticate(&p, &req("/", &[("authorization", &format!("Bearer {expired}"))]), &consumers(), NOW)
        .await
        .unwrap_err();
    assert_eq!((f.status(), f.message(), f.reason()), (401, "Unauthorized", "expired"));
    assert_eq!(f.www_authenticate(), "Bearer realm=\"127.0.0.1\", error=\"invalid_token\"");
    let (idp, p) = setup(
        "expose_error_code: false\nunauthorized_error_message: Go away\nforbidden_error_message: Not you\n\
             scopes_required: [x]",
        &[&key],
    )
    .await;
    let f = authenticate(&p, &req("/", &[("authorization", &format!("Bearer {expired}"))]), &consumers(), NOW)
        .await
        .unwrap_err();
    assert_eq!((f.message(), f.www_authenticate()), ("Go away", "Bearer realm=\"127.0.0.1\""));
    let fine = key.token("EdDSA", idp.claims(json!({})));
    let f = authenticate(&p, &req("/", &[("authorization", &format!("Bearer {fine}"))]), &consumers(), NOW)
        .await
        .unwrap_err();
    assert_eq!((f.status(), f.message(), f.www_authenticate()), (403, "Not you", "Bearer realm=\"127.0.0.1\""));
    // Every kind has a status and a label.
    for kind in [
        OidcError::Missing,
        OidcError::Malformed,
        OidcError::Algorithm,
        OidcError::UnknownKey,
        OidcError::NoKeys,
        OidcError::Signature,
        OidcError::Issuer,
        OidcError::Expired,
        OidcError::NotYetValid,
        OidcError::IssuedInFuture,
        OidcError::BadClaims,
    ] {
        assert_eq!(kind.status(), 401);
        assert!(!kind.reason().is_empty());
    }
    for kind in
        [OidcError::NoScopes, OidcError::Scope, OidcError::NoAudience, OidcError::Audience, OidcError::ConsumerNotFound]
    {
        assert_eq!(kind.status(), 403);
    }
}

#[tokio::test]
async fn malformed_tokens_never_panic() {
    let key = rsa_key(Some("k"));
    let (idp, p) = setup("bearer_token_param_type: [header, query]", &[&key]).await;
    let good = key.token("RS256", idp.claims(json!({})));
    assert!(check(&p, &good).await.is_ok());
    let h = b64(br#"{"alg":"RS256","kid":"k"}"#);
    let c = b64(idp.claims(json!({})).to_string().as_bytes());
    let samples = [
        "abc".to_string(),
        format!("{h}.{c}"),
        format!("{good}.extra"),
        "..".to_string(),
        "...".to_string(),
        format!("!!!.{c}.AAAA"),
        format!("{h}.!!!.AAAA"),
        format!("{h}.{c}.!!!"),
        format!("{}.{c}.AAAA", b64(b"[1,2]")),
        format!("{}.{c}.AAAA", b64(b"{not json")),
        format!("{h}.{}.AAAA", b64(b"null")),
        format!("{h}.{}.AAAA", b64(b"\"claims\"")),
        format!("{h}.{}.AAAA", b64(b"[]")),
        format!("{}.{c}.AAAA", b64(br#"{"alg":"RS256","kid":5}"#)),
        format!("{h}.{c}.A"),
        format!("{h}.{c}."),
        format!("{h}.{c}.{}", "A".repeat(MAX_TOKEN_LEN)),
    ];
    for s in &samples {
        let r = check(&p, s).await;
        assert!(matches!(r, Err(OidcError::Malformed | OidcError::Signature)), "{s}: {r:?}");
    }
    // Every single-character change of a valid token is refused.
    let alphabet = b"AZaz09-_.=";
    for i in 0..good.len() {
        for &ch in alphabet {
            let mut t = good.clone().into_bytes();
            if t[i] == ch {
                continue;
            }
            t[i] = ch;
            let t = String::from_utf8(t).unwrap();
            assert!(check(&p, &t).await.is_err(), "{i}");
        }
    }
    // Random token-like text and percent-encoded junk in the query.
    let mut x: u32 = 0x2545_f491;
    let chars = b"eyJhbGciOiJSUzI1NiJ9._-=+/AZaz09";
    for _ in 0..2000 {
        let mut t = String::new();
        for _ in 0..(x % 150) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            t.push(chars[(x as usize) % chars.len()] as char);
        }
        assert!(check(&p, &t).await.is_err());
    }
    for q in ["/?access_token=%ff%fe.%00.x", "/?access_token=a%2eb%2ec", "/?access_token&access_token=..."] {
        assert!(authenticate(&p, &req(q, &[]), &consumers(), NOW).await.is_err(), "{q}");
    }
}

#[tokio::test]
async fn background_refresher_picks_up_rotations_and_stops() {
    let old = ec_key(Some("old"), false);
    let new = ed_key(Some("new"));
    let (idp, p) = setup("", &[&old]).await;
    idp.set_keys(jwks(&[&new]));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_refresher(p.caches().to_vec(), Duration::from_secs(1), stopped));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let kids: Vec<Option<String>> = p.caches()[0].keys().keys.iter().map(|k| k.kid.clone()).collect();
    assert_eq!(kids, [Some("new".to_string())]);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task).await.unwrap().unwrap();
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
