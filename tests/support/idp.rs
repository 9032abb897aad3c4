//! A local identity provider: an OpenID discovery document and a JWKS over TLS, with EC P-256
//! keys made at test time, and a signer for access tokens.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::mock_openai::TlsIdentity;

pub struct SigningKey {
    pub kid: String,
    pair: EcdsaKeyPair,
}

impl SigningKey {
    pub fn generate(kid: &str) -> SigningKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        SigningKey { kid: kid.into(), pair }
    }

    pub fn jwk(&self) -> Value {
        let pk = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid, "x": b64(&pk[1..33]), "y": b64(&pk[33..65])})
    }

    pub fn sign(&self, claims: &Value) -> String {
        let header = b64(json!({"alg": "ES256", "typ": "JWT", "kid": self.kid}).to_string().as_bytes());
        let input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
        let sig = self.pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    }
}

pub fn b64(d: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)
}

pub struct Idp {
    pub addr: SocketAddr,
    pub issuer: String,
    jwks: Arc<Mutex<Value>>,
    pub jwks_hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Idp {
    pub async fn start(tls: TlsIdentity, keys: &[&SigningKey]) -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("https://127.0.0.1:{}", addr.port());
        let jwks = Arc::new(Mutex::new(json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})));
        let hits = Arc::new(AtomicUsize::new(0));
        let config = {
            use rustls::pki_types::pem::PemObject;
            use rustls::pki_types::{CertificateDer, PrivateKeyDer};
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes()).map(|c| c.unwrap()).collect();
            let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).unwrap();
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap()
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (j, h, iss) = (jwks.clone(), hits.clone(), issuer.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (j, h, iss, acceptor) = (j.clone(), h.clone(), iss.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (j, h, iss) = (j.clone(), h.clone(), iss.clone());
                        async move {
                            let body = match req.uri().path() {
                                "/.well-known/openid-configuration" => {
                                    json!({"issuer": iss, "jwks_uri": format!("{iss}/jwks.json")})
                                }
                                "/jwks.json" => {
                                    h.fetch_add(1, Ordering::SeqCst);
                                    j.lock().unwrap().clone()
                                }
                                _ => json!({"error": "not found"}),
                            };
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(body.to_string())))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
                });
            }
        });
        Idp { addr, issuer, jwks, jwks_hits: hits, task }
    }

    /// Publish another key set (a key rotation).
    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.jwks.lock().unwrap() = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
    }
}
