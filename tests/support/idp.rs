//! A local identity provider: an OpenID discovery document and a JWKS, over TLS (for the
//! gateway, which trusts the test CA) or plain HTTP (for the plugin's own tests), with its
//! answers under the test's control; and keys that sign access tokens (RSA, EC P-256/P-384,
//! Ed25519).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::mock_openai::TlsIdentity;

/// The test-only RSA key (ring cannot generate RSA keys; the unit tests read the same file).
pub const RSA_PRIVATE_PEM: &str = include_str!("../fixtures/test-rsa-2048.pem");

pub fn b64(d: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A key that signs test tokens, and its public JWK (`kid` set when it has one).
pub struct SigningKey {
    pub kid: Option<String>,
    signer: Signer,
    pub jwk: Value,
}

fn with_kid(mut jwk: Value, kid: Option<&str>) -> Value {
    if let Some(k) = kid {
        jwk["kid"] = json!(k);
    }
    jwk
}

impl SigningKey {
    /// An EC P-256 key whose JWK names its algorithm (ES256), as identity providers publish.
    pub fn generate(kid: &str) -> SigningKey {
        let mut key = SigningKey::ec(Some(kid), false);
        key.jwk["use"] = json!("sig");
        key.jwk["alg"] = json!("ES256");
        key
    }

    /// The test-only RSA key.
    pub fn rsa(kid: Option<&str>) -> SigningKey {
        let der = pem::parse(RSA_PRIVATE_PEM).unwrap().into_contents();
        let pair = RsaKeyPair::from_pkcs8(&der).unwrap();
        let c: sig::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
        let jwk = with_kid(json!({"kty": "RSA", "use": "sig", "n": b64(&c.n), "e": b64(&c.e)}), kid);
        SigningKey { kid: kid.map(Into::into), signer: Signer::Rsa(pair), jwk }
    }

    pub fn ec(kid: Option<&str>, p384: bool) -> SigningKey {
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
        SigningKey { kid: kid.map(Into::into), signer: Signer::Ec(pair), jwk }
    }

    pub fn ed(kid: Option<&str>) -> SigningKey {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
        let jwk = with_kid(json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())}), kid);
        SigningKey { kid: kid.map(Into::into), signer: Signer::Ed(pair), jwk }
    }

    /// The JWK as published.
    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// Sign `msg` with `alg` (the RSA key serves RS* and PS*; the others their one algorithm).
    pub fn sign_bytes(&self, alg: &str, msg: &[u8]) -> Vec<u8> {
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

    /// A token with header `{"alg": alg, "typ": "JWT", "kid": ...}`.
    pub fn token(&self, alg: &str, claims: Value) -> String {
        let header = with_kid(json!({"alg": alg, "typ": "JWT"}), self.kid.as_deref());
        token_with(header, claims, |m| self.sign_bytes(alg, m))
    }

    /// An ES256 token (keys made by `generate`).
    pub fn sign(&self, claims: &Value) -> String {
        self.token("ES256", claims.clone())
    }
}

/// `<header>.<claims>.<sign(header.claims)>`, for tokens a test shapes itself.
pub fn token_with(header: Value, claims: Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

/// A key set document.
pub fn jwks(keys: &[&SigningKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

struct State {
    jwks: String,
    discovery_status: u16,
    jwks_status: u16,
    jwks_hits: usize,
    /// What the discovery document says instead of the IdP's own issuer and key URL.
    discovery_issuer: Option<String>,
    discovery_jwks_uri: Option<String>,
    /// Paths answered with a 302 to another URL.
    redirects: Vec<(String, String)>,
}

/// Discovery at `/.well-known/openid-configuration`, keys at `/jwks.json`.
pub struct Idp {
    pub addr: SocketAddr,
    /// `https://127.0.0.1:<port>` (or `http://` for a plain one): the issuer and base URL.
    pub issuer: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Idp {
    /// Over TLS with `tls`'s certificate.
    pub async fn start(tls: TlsIdentity, keys: &[&SigningKey]) -> Idp {
        Idp::serve(Some(tls), jwks(keys)).await
    }

    /// Over plain HTTP, publishing `keys` (a key set document).
    pub async fn plain(keys: Value) -> Idp {
        Idp::serve(None, keys).await
    }

    async fn serve(tls: Option<TlsIdentity>, keys: Value) -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let issuer = format!("{scheme}://127.0.0.1:{}", addr.port());
        let state = Arc::new(Mutex::new(State {
            jwks: keys.to_string(),
            discovery_status: 200,
            jwks_status: 200,
            jwks_hits: 0,
            discovery_issuer: None,
            discovery_jwks_uri: None,
            redirects: Vec::new(),
        }));
        let acceptor = tls.map(|tls| {
            use rustls::pki_types::pem::PemObject;
            use rustls::pki_types::{CertificateDer, PrivateKeyDer};
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes()).map(|c| c.unwrap()).collect();
            let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).unwrap();
            let config =
                rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_no_client_auth()
                    .with_single_cert(certs, key)
                    .unwrap();
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let (st, iss) = (state.clone(), issuer.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (st, iss, acceptor) = (st.clone(), iss.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (st, iss) = (st.clone(), iss.clone());
                        async move {
                            let (status, body, location) = {
                                let mut s = st.lock().unwrap();
                                let path = req.uri().path();
                                let redirect = s.redirects.iter().find(|(p, _)| p == path).map(|(_, to)| to.clone());
                                match (path, redirect) {
                                    (_, Some(to)) => (302, String::new(), Some(to)),
                                    ("/.well-known/openid-configuration", None) => {
                                        let issuer = s.discovery_issuer.clone().unwrap_or_else(|| iss.clone());
                                        let jwks_uri =
                                            s.discovery_jwks_uri.clone().unwrap_or_else(|| format!("{iss}/jwks.json"));
                                        let doc = json!({"issuer": issuer, "jwks_uri": jwks_uri});
                                        (s.discovery_status, doc.to_string(), None)
                                    }
                                    ("/jwks.json", None) => {
                                        s.jwks_hits += 1;
                                        (s.jwks_status, s.jwks.clone(), None)
                                    }
                                    _ => (404, json!({"error": "not found"}).to_string(), None),
                                }
                            };
                            let mut resp =
                                Response::builder().status(status).header("content-type", "application/json");
                            if let Some(to) = location {
                                resp = resp.header("location", to);
                            }
                            Ok::<_, Infallible>(resp.body(Full::new(Bytes::from(body))).unwrap())
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(tcp).await else { return };
                            let _ = http.serve_connection(TokioIo::new(tls), svc).await;
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                    }
                });
            }
        });
        Idp { addr, issuer, state, task }
    }

    /// Publish another key set (a key rotation).
    pub fn publish(&self, keys: &[&SigningKey]) {
        self.set_keys(jwks(keys));
    }

    pub fn set_keys(&self, keys: Value) {
        self.state.lock().unwrap().jwks = keys.to_string();
    }

    /// Serve any text as the key set.
    pub fn set_jwks_body(&self, body: String) {
        self.state.lock().unwrap().jwks = body;
    }

    /// The statuses of the discovery document and the key set.
    pub fn set_status(&self, discovery: u16, jwks: u16) {
        let mut s = self.state.lock().unwrap();
        s.discovery_status = discovery;
        s.jwks_status = jwks;
    }

    /// Make the discovery document name another issuer and/or key URL.
    pub fn set_discovery(&self, issuer: Option<&str>, jwks_uri: Option<&str>) {
        let mut s = self.state.lock().unwrap();
        s.discovery_issuer = issuer.map(Into::into);
        s.discovery_jwks_uri = jwks_uri.map(Into::into);
    }

    /// Answer `path` (`/jwks.json`, `/.well-known/openid-configuration`) with a 302 to `to`.
    pub fn redirect(&self, path: &str, to: &str) {
        self.state.lock().unwrap().redirects.push((path.into(), to.into()));
    }

    /// How many times the key set was fetched.
    pub fn jwks_hits(&self) -> usize {
        self.state.lock().unwrap().jwks_hits
    }
}
