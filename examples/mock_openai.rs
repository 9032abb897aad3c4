//! A local stand-in for api.openai.com, to try aigate without an OpenAI key (the same server
//! the integration tests use). It makes a test CA, serves the Responses and Chat Completions
//! APIs over TLS (and Anthropic's Messages API, under the name api.anthropic.com too), and
//! prints the settings that point aigate at it.
//!
//!     cargo run --example mock_openai -- [--listen 127.0.0.1:9443] [--dir /tmp/aigate-mock]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

#[allow(dead_code)]
#[path = "../tests/support/certs.rs"]
mod certs;
#[allow(dead_code)]
#[path = "../tests/support/mock_anthropic.rs"]
mod mock_anthropic;
#[allow(dead_code)]
#[path = "../tests/support/mock_openai.rs"]
mod mock_openai;

use std::path::PathBuf;

#[tokio::main]
async fn main() {
    let mut listen = "127.0.0.1:9443".to_string();
    let mut dir = std::env::temp_dir().join("aigate-mock");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or(listen),
            "--dir" => dir = args.next().map(PathBuf::from).unwrap_or(dir),
            other => {
                eprintln!("unknown argument {other}; usage: mock_openai [--listen ip:port] [--dir path]");
                std::process::exit(2);
            }
        }
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        std::process::exit(1);
    }
    let ca = certs::TestCa::new("aigate mock CA");
    let cert = ca.server_cert(&["api.openai.com", "api.anthropic.com", "localhost", "127.0.0.1"]);
    let ca_path = dir.join("mock-ca.pem");
    if let Err(e) = std::fs::write(&ca_path, &ca.cert_pem) {
        eprintln!("cannot write {}: {e}", ca_path.display());
        std::process::exit(1);
    }
    let mock = mock_openai::MockOpenAi::start(
        &listen,
        Some(mock_openai::TlsIdentity { cert_pem: cert.cert_pem, key_pem: cert.key_pem }),
    )
    .await;
    println!("mock OpenAI listening on https://{} (certificate for api.openai.com and api.anthropic.com)", mock.addr);
    println!("start aigate pointed at it with:");
    println!();
    println!("  DECK_OPENAI_API_KEY=sk-mock \\");
    println!("  AIGATE_TLS_TRUSTED_CA={} \\", ca_path.display());
    println!("  AIGATE_UPSTREAM_RESOLVE='{{\"api.openai.com:443\": \"{}\"}}' \\", mock.addr);
    println!("  cargo run --release -- run --config conf/aigate.yaml");
    println!();
    let mut last = 0;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let records = mock.state.records();
        for r in records.iter().skip(last) {
            println!(
                "<- {} {} ({} bytes, authorization: {})",
                r.method,
                r.target,
                r.body.len(),
                if r.header("authorization").is_some() { "present" } else { "absent" }
            );
        }
        last = records.len();
    }
}
