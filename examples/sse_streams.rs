//! The two ends of the long-stream benchmark (`benches/load.sh --streams`), cheap enough to
//! hold thousands of concurrent streams on one machine:
//!
//! - `upstream`: a TLS stand-in for api.openai.com that answers every POST with a Responses-API
//!   SSE stream (`response.created` … text deltas … `response.completed` with usage), its events
//!   trickled over `--seconds` (nginx cannot trickle). HTTP/1.1, and HTTP/2 when the client
//!   offers it (ALPN). The usage differs from stream to stream; the completed event also says
//!   how many bytes the whole stream has, so a client can check it got every byte.
//! - `client`: opens `--streams` connections (plain HTTP/1.1, one request each, spread over
//!   `--ramp` seconds), reads each stream to its end and checks it: status 200, chunked framing
//!   complete, the completed event present, every byte there. It prints one summary line and
//!   writes the tokens each key's streams carried (`--tokens FILE`), to compare with the
//!   gateway's per-consumer counters.
//!
//! ```sh
//! cargo build --release --example sse_streams
//! target/release/examples/sse_streams upstream --listen 127.0.0.1:24444 --cert server.pem --key server.key
//! target/release/examples/sse_streams client --url http://127.0.0.1:24000/anything --keys keys.txt --streams 4000
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench tool: a failed unwrap is a failed run

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn usage() -> ! {
    eprintln!(
        "usage:\n  sse_streams upstream --listen ADDR --cert PEM --key PEM [--seconds S] [--events N] [--threads N]\n  \
         sse_streams client --url http://HOST:PORT/PATH --keys FILE --streams N [--ramp S] [--timeout S] [--seconds S] [--tokens FILE] [--threads N]"
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| usage());
    let mut opts: HashMap<String, String> = HashMap::new();
    while let Some(k) = args.next() {
        let Some(k) = k.strip_prefix("--") else { usage() };
        opts.insert(k.to_string(), args.next().unwrap_or_else(|| usage()));
    }
    let get = |k: &str| opts.get(k).cloned();
    let num = |k: &str, d: f64| get(k).map_or(d, |v| v.parse().unwrap_or_else(|_| usage()));
    let threads = num("threads", 1.0) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).enable_all().build().unwrap();
    match mode.as_str() {
        "upstream" => {
            let cfg = UpstreamConfig {
                listen: get("listen").unwrap_or_else(|| usage()).parse().unwrap_or_else(|_| usage()),
                cert: get("cert").unwrap_or_else(|| usage()),
                key: get("key").unwrap_or_else(|| usage()),
                seconds: num("seconds", 20.0),
                events: num("events", 34.0) as usize,
            };
            rt.block_on(upstream(cfg));
        }
        "client" => {
            let cfg = ClientConfig {
                url: get("url").unwrap_or_else(|| usage()),
                keys: std::fs::read_to_string(get("keys").unwrap_or_else(|| usage()))
                    .expect("read the keys file")
                    .lines()
                    .map(str::to_string)
                    .filter(|l| !l.is_empty())
                    .collect(),
                streams: num("streams", 100.0) as usize,
                ramp: num("ramp", 2.0),
                timeout: num("timeout", 120.0),
                tokens: get("tokens"),
                seconds: get("seconds"),
            };
            let ok = rt.block_on(client(cfg));
            std::process::exit(if ok { 0 } else { 1 });
        }
        _ => usage(),
    }
}

// --- upstream -------------------------------------------------------------------------------

struct UpstreamConfig {
    listen: SocketAddr,
    cert: String,
    key: String,
    seconds: f64,
    events: usize,
}

fn tls_config(cert: &str, key: &str) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(cert).expect("read the certificate").map(|c| c.expect("certificate")).collect();
    let key = PrivateKeyDer::from_pem_file(key).expect("read the key");
    let mut c = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    c
}

/// The events of one stream, `seq` making its id and usage its own.
fn stream_events(seq: u64, deltas: usize) -> (Vec<Bytes>, u64) {
    let id = format!("resp_bench{seq:012}");
    let msg = format!("msg_bench{seq:012}");
    let (input, output) = (20 + seq % 50, 40 + seq % 30);
    let words: Vec<String> = (0..deltas).map(|i| format!("word{i} ")).collect();
    let text: String = words.concat();
    let response = |status: &str, output_items: &str, usage: &str| {
        format!(
            r#"{{"id":"{id}","object":"response","created_at":1795000000,"status":"{status}","model":"gpt-4o-2024-08-06","output":[{output_items}],"usage":{usage}}}"#
        )
    };
    let item = format!(
        r#"{{"type":"message","id":"{msg}","status":"completed","role":"assistant","content":[{{"type":"output_text","text":"{text}","annotations":[]}}]}}"#
    );
    let mut events: Vec<(String, String)> = Vec::new();
    events.push(("response.created".into(), format!(r#""response":{}"#, response("in_progress", "", "null"))));
    events.push(("response.in_progress".into(), format!(r#""response":{}"#, response("in_progress", "", "null"))));
    events.push((
        "response.output_item.added".into(),
        format!(r#""output_index":0,"item":{{"type":"message","id":"{msg}","status":"in_progress","role":"assistant","content":[]}}"#),
    ));
    events.push((
        "response.content_part.added".into(),
        format!(r#""item_id":"{msg}","output_index":0,"content_index":0,"part":{{"type":"output_text","text":"","annotations":[]}}"#),
    ));
    for w in &words {
        events.push((
            "response.output_text.delta".into(),
            format!(r#""item_id":"{msg}","output_index":0,"content_index":0,"delta":"{w}""#),
        ));
    }
    events.push((
        "response.output_text.done".into(),
        format!(r#""item_id":"{msg}","output_index":0,"content_index":0,"text":"{text}""#),
    ));
    events.push(("response.output_item.done".into(), format!(r#""output_index":0,"item":{item}"#)));
    let usage = format!(r#"{{"input_tokens":{input},"output_tokens":{output},"total_tokens":{}}}"#, input + output);
    let mut frames: Vec<Bytes> = events
        .iter()
        .enumerate()
        .map(|(n, (name, body))| {
            Bytes::from(format!("event: {name}\ndata: {{\"type\":\"{name}\",\"sequence_number\":{n},{body}}}\n\n"))
        })
        .collect();
    // The completed event names the stream's total length (its own included), padded to a
    // fixed width so that the number does not change the length.
    let n = frames.len();
    let partial: usize = frames.iter().map(Bytes::len).sum();
    let completed = |total: usize| {
        format!(
            "event: response.completed\ndata: {{\"type\":\"response.completed\",\"sequence_number\":{n},\"bench_bytes\":{total:>10},\"response\":{}}}\n\n",
            response("completed", &item, &usage)
        )
    };
    let total = partial + completed(0).len();
    frames.push(Bytes::from(completed(total)));
    (frames, input + output)
}

async fn upstream(cfg: UpstreamConfig) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(&cfg.cert, &cfg.key)));
    let listener = TcpListener::bind(cfg.listen).await.expect("bind the upstream");
    let seq = Arc::new(AtomicU64::new(0));
    // Events spread evenly over the stream's duration (the first at once: deltas + 6 gaps).
    let events = cfg.events.max(1);
    let gap = Duration::from_secs_f64(cfg.seconds / (events as f64 + 6.0));
    eprintln!("sse_streams upstream on {} ({} deltas, {:?} apart)", cfg.listen, events, gap);
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let _ = tcp.set_nodelay(true);
        let (acceptor, seq) = (acceptor.clone(), seq.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let seq = seq.clone();
                async move {
                    // A client may ask for another duration (the harness's warm-up does).
                    let gap = req
                        .headers()
                        .get("x-bench-seconds")
                        .and_then(|v| v.to_str().ok()?.parse::<f64>().ok())
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map_or(gap, |s| Duration::from_secs_f64(s / (events as f64 + 6.0)));
                    // Read (and drop) the request body first, as a provider does.
                    let _ = req.into_body().collect().await;
                    let (frames, _) = stream_events(seq.fetch_add(1, Ordering::Relaxed), events);
                    let body =
                        futures_util::stream::unfold((frames.into_iter(), true), move |(mut it, first)| async move {
                            let f = it.next()?;
                            if !first {
                                tokio::time::sleep(gap).await;
                            }
                            Some((Ok::<_, std::convert::Infallible>(Frame::data(f)), (it, false)))
                        });
                    let resp = hyper::Response::builder()
                        .status(200)
                        .header("content-type", "text/event-stream; charset=utf-8")
                        .header("cache-control", "no-cache")
                        .header("x-request-id", "req_bench")
                        .body(StreamBody::new(body))
                        .expect("response");
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let io = hyper_util::rt::TokioIo::new(tls);
            let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let _ = builder.serve_connection(io, svc).await;
        });
    }
}

// --- client ---------------------------------------------------------------------------------

struct ClientConfig {
    url: String,
    keys: Vec<String>,
    streams: usize,
    ramp: f64,
    timeout: f64,
    tokens: Option<String>,
    /// Asks the upstream for streams of this length (`x-bench-seconds`).
    seconds: Option<String>,
}

enum Outcome {
    Ok { key: usize, tokens: (u64, u64, u64), bytes: usize, first_byte: Duration, total: Duration },
    Status(u16),
    Socket(String),
    Truncated(String),
}

impl Outcome {
    fn describe(&self) -> String {
        match self {
            Outcome::Ok { .. } => "ok".into(),
            Outcome::Status(code) => format!("status {code}"),
            Outcome::Socket(e) => format!("socket: {e}"),
            Outcome::Truncated(e) => format!("truncated: {e}"),
        }
    }
}

/// One stream: connect, ask, read the chunked answer to its end, check it.
async fn one_stream(
    addr: SocketAddr,
    host: String,
    path: String,
    key: usize,
    apikey: String,
    extra: String,
) -> Outcome {
    let started = Instant::now();
    let mut s = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return Outcome::Socket(format!("connect: {e}")),
    };
    let _ = s.set_nodelay(true);
    let body = format!(
        r#"{{"model":"gpt-4o","input":"stream {key} of the benchmark: tell a long story.","stream":true,"max_output_tokens":256}}"#
    );
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\napikey: {apikey}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
        body.len()
    );
    if let Err(e) = s.write_all(req.as_bytes()).await {
        return Outcome::Socket(format!("write: {e}"));
    }
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut tmp = [0u8; 4096];
    let mut first_byte = None;
    // The head.
    let head_end = loop {
        if let Some(i) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut tmp).await {
            Ok(0) => return Outcome::Truncated("closed before the response head".into()),
            Ok(n) => {
                first_byte.get_or_insert_with(|| started.elapsed());
                buf.extend_from_slice(&tmp[..n]);
            }
            Err(e) => return Outcome::Socket(format!("read: {e}")),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    if status != 200 {
        return Outcome::Status(status);
    }
    let chunked = head.contains("\r\ntransfer-encoding: chunked");
    let mut raw: Vec<u8> = buf.split_off(head_end);
    // Read to the end (the connection closes after this one request).
    loop {
        match s.read(&mut tmp).await {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&tmp[..n]),
            Err(e) => return Outcome::Socket(format!("read mid-stream: {e}")),
        }
        if chunked && raw.ends_with(b"0\r\n\r\n") && dechunk(&raw).is_some_and(|(_, done)| done) {
            break;
        }
    }
    let body = if chunked {
        match dechunk(&raw) {
            Some((b, true)) => b,
            _ => return Outcome::Truncated("chunked body not complete".into()),
        }
    } else {
        raw
    };
    let Some(at) = memchr::memmem::rfind(&body, b"event: response.completed\ndata: ") else {
        return Outcome::Truncated("no response.completed".into());
    };
    let data_start = at + "event: response.completed\ndata: ".len();
    let data_end = memchr::memmem::find(&body[data_start..], b"\n").map_or(body.len(), |e| data_start + e);
    let v: serde_json::Value = match serde_json::from_slice(&body[data_start..data_end]) {
        Ok(v) => v,
        Err(e) => return Outcome::Truncated(format!("completed event unreadable: {e}")),
    };
    let want = v["bench_bytes"].as_u64().unwrap_or(0) as usize;
    if want != body.len() {
        return Outcome::Truncated(format!("{} bytes, the stream had {want}", body.len()));
    }
    let u = &v["response"]["usage"];
    let tokens = (
        u["input_tokens"].as_u64().unwrap_or(0),
        u["output_tokens"].as_u64().unwrap_or(0),
        u["total_tokens"].as_u64().unwrap_or(0),
    );
    Outcome::Ok { key, tokens, bytes: body.len(), first_byte: first_byte.unwrap_or_default(), total: started.elapsed() }
}

/// The payload of a chunked body, and whether its last chunk arrived.
fn dechunk(raw: &[u8]) -> Option<(Vec<u8>, bool)> {
    let mut out = Vec::with_capacity(raw.len());
    let mut at = 0;
    loop {
        let line_end = at + memchr::memmem::find(&raw[at..], b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[at..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        let data = line_end + 2;
        if size == 0 {
            return Some((out, raw.len() >= data + 2));
        }
        if raw.len() < data + size + 2 {
            return Some((out, false));
        }
        out.extend_from_slice(&raw[data..data + size]);
        at = data + size + 2;
    }
}

async fn client(cfg: ClientConfig) -> bool {
    let rest = cfg.url.strip_prefix("http://").unwrap_or_else(|| usage());
    let (hostport, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let addr: SocketAddr = hostport.parse().expect("--url needs an ip:port");
    assert!(!cfg.keys.is_empty(), "no keys");
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(cfg.streams);
    for i in 0..cfg.streams {
        let at = started + Duration::from_secs_f64(cfg.ramp * i as f64 / cfg.streams.max(1) as f64);
        let key = i % cfg.keys.len();
        let (apikey, host, path) = (cfg.keys[key].clone(), hostport.to_string(), path.clone());
        let timeout = Duration::from_secs_f64(cfg.timeout);
        let extra = cfg.seconds.as_ref().map_or(String::new(), |s| format!("x-bench-seconds: {s}\r\n"));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            match tokio::time::timeout(timeout, one_stream(addr, host, path, key, apikey, extra)).await {
                Ok(o) => o,
                Err(_) => Outcome::Socket("timed out".into()),
            }
        }));
    }
    let (mut ok, mut non200, mut socket, mut truncated, mut bytes) = (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut per_key: HashMap<usize, (u64, u64, u64, u64)> = HashMap::new();
    let mut first: Vec<Duration> = Vec::new();
    let mut longest = Duration::ZERO;
    let mut samples: Vec<String> = Vec::new();
    for t in tasks {
        match t.await.unwrap_or_else(|e| Outcome::Socket(format!("task: {e}"))) {
            Outcome::Ok { key, tokens, bytes: b, first_byte, total } => {
                ok += 1;
                bytes += b;
                first.push(first_byte);
                longest = longest.max(total);
                let e = per_key.entry(key).or_default();
                e.0 += 1;
                e.1 += tokens.0;
                e.2 += tokens.1;
                e.3 += tokens.2;
            }
            o => {
                match &o {
                    Outcome::Status(_) => non200 += 1,
                    Outcome::Socket(_) => socket += 1,
                    _ => truncated += 1,
                }
                if samples.len() < 5 {
                    samples.push(o.describe());
                }
            }
        }
    }
    first.sort();
    let p = |q: f64| first.get(((first.len() as f64 - 1.0) * q) as usize).map_or(0.0, |d| d.as_secs_f64() * 1e3);
    println!(
        "STREAMS streams={} ok={ok} non200={non200} socket_errors={socket} truncated={truncated} bytes={bytes} first_byte_p50_ms={:.1} first_byte_p99_ms={:.1} longest_s={:.1} wall_s={:.1}",
        cfg.streams,
        p(0.5),
        p(0.99),
        longest.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    for s in &samples {
        eprintln!("failed stream: {s}");
    }
    if let Some(path) = &cfg.tokens {
        let mut lines: Vec<String> =
            per_key.iter().map(|(k, v)| format!("{}\t{}\t{}\t{}\t{}", cfg.keys[*k], v.0, v.1, v.2, v.3)).collect();
        lines.sort();
        std::fs::write(path, lines.join("\n") + "\n").expect("write the tokens file");
    }
    ok == cfg.streams
}
