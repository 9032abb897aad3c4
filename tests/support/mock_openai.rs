//! A local stand-in for api.openai.com: TLS (or plain HTTP), the Responses and Chat Completions
//! APIs with JSON and SSE answers shaped like the real ones (full event sequence, sequence
//! numbers, usage in `response.completed`, MCP items for `type: "mcp"` tools), the endpoints
//! around them a gateway may forward — responses by id, `compact`, `input_tokens`, the
//! Conversations API, stored chat completions (list included, to show what must never be
//! reached) — with the shapes of openai 3.57.0's types, and a record of every request it received
//! complete.
//!
//! Tests steer it per request with `x-mock-*` headers (the gateway forwards them):
//! `x-mock-status: 503` answers that status with OpenAI's error envelope, `x-mock-delay-ms`
//! waits before answering, `x-mock-event-gap-ms` spaces SSE events, `x-mock-hold-after: K`
//! holds the stream after K events until [`MockState::release`], `x-mock-die-after: K` drops the
//! connection after K events, `x-mock-no-usage: 1` leaves usage out, `x-mock-deltas: N` sets
//! the number of text deltas, `x-mock-pad: N` adds N bytes of text, `x-mock-echo-headers: 1`
//! puts the request's headers into the answer (JSON and stream events) as an OpenAI-compatible
//! server that echoes its input might, `x-mock-split-at: 5,40` sends the answer's bytes in
//! pieces cut at those offsets (pausing between them), `x-mock-split-in-token: K` cuts them K
//! bytes into every token after `Bearer `, `x-mock-gzip: 1` labels the answer
//! `Content-Encoding: gzip`. Answers carry the account headers a provider sends
//! (`openai-organization`, `openai-project`, `x-ratelimit-*`). `x-mock-usage-every-chunk: 1`
//! puts usage in every chat chunk (zeros, then the real counts in the last one, as LocalAI
//! does) instead of a final usage chunk.
//!
//! The same server speaks Anthropic's Messages API on `/v1/messages` ([`super::mock_anthropic`])
//! and Azure OpenAI's paths (`/openai/deployments/{deployment}/chat/completions` and
//! `/openai/responses` with an `api-version` query and the key in `api-key`), so a test bed's
//! extra upstream can stand in for api.anthropic.com or `<resource>.openai.azure.com`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A request the mock received in full.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query as received.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

pub struct MockState {
    records: Mutex<Vec<Recorded>>,
    /// Requests whose body never arrived complete (never processed).
    pub incomplete: AtomicUsize,
    /// TCP connections accepted.
    pub connections: AtomicUsize,
    /// Streams cut because the client went away.
    pub client_gone: AtomicUsize,
    release: tokio::sync::Semaphore,
    seq: AtomicU64,
    responses: Mutex<HashMap<String, Value>>,
    /// The provider key the mock accepts (`Bearer <key>`); None accepts anything.
    pub expected_key: Mutex<Option<String>>,
    /// Close the next N connections right after their first response (to test stale pools).
    pub close_after_response: AtomicUsize,
    /// Answer every request with this status (a failing target).
    pub fail_status: Mutex<Option<u16>>,
    /// Wait this long before every answer (a slow target).
    pub delay_ms: AtomicU64,
    /// The usage each Anthropic answer reported (its final counts), in order.
    pub usage_reported: Mutex<Vec<Value>>,
    /// Conversations: the object and its items.
    conversations: Mutex<HashMap<String, (Value, Vec<Value>)>>,
    /// Stored chat completions (`store: true`).
    chat_completions: Mutex<HashMap<String, Value>>,
    /// Appended to the descriptions of the MCP tools the mock lists: changing it is an MCP
    /// server changing its tools behind the client's back.
    pub mcp_tool_note: Mutex<String>,
}

impl Default for MockState {
    fn default() -> Self {
        MockState {
            records: Mutex::new(Vec::new()),
            incomplete: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            client_gone: AtomicUsize::new(0),
            release: tokio::sync::Semaphore::new(0),
            seq: AtomicU64::new(0),
            responses: Mutex::new(HashMap::new()),
            expected_key: Mutex::new(None),
            close_after_response: AtomicUsize::new(0),
            fail_status: Mutex::new(None),
            delay_ms: AtomicU64::new(0),
            usage_reported: Mutex::new(Vec::new()),
            conversations: Mutex::new(HashMap::new()),
            chat_completions: Mutex::new(HashMap::new()),
            mcp_tool_note: Mutex::new(String::new()),
        }
    }
}

impl MockState {
    pub fn records(&self) -> Vec<Recorded> {
        self.records.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.records.lock().unwrap().len()
    }

    pub fn last(&self) -> Option<Recorded> {
        self.records.lock().unwrap().last().cloned()
    }

    pub fn clear(&self) {
        self.records.lock().unwrap().clear();
    }

    /// Let one held stream continue.
    pub fn release(&self) {
        self.release.add_permits(1);
    }
}

pub struct MockOpenAi {
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct TlsIdentity {
    pub cert_pem: String,
    pub key_pem: String,
}

impl MockOpenAi {
    /// Serve on `bind` (port 0 picks one), over TLS when an identity is given.
    pub async fn start(bind: &str, tls: Option<TlsIdentity>) -> MockOpenAi {
        let listener = TcpListener::bind(bind).await.expect("bind mock upstream");
        Self::serve(listener, tls)
    }

    pub fn serve(listener: TcpListener, tls: Option<TlsIdentity>) -> MockOpenAi {
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(MockState::default());
        let acceptor = tls.map(|id| tokio_rustls::TlsAcceptor::from(Arc::new(server_config(&id))));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                st.connections.fetch_add(1, Ordering::Relaxed);
                let st = st.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let close_after_one = st
                        .close_after_response
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                        .is_ok();
                    let svc = service_fn(move |req| handle(st.clone(), req));
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder.keep_alive(!close_after_one);
                    match acceptor {
                        Some(a) => {
                            if let Ok(tls) = a.accept(tcp).await {
                                let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                    }
                });
            }
        });
        MockOpenAi { addr, state, task }
    }
}

pub fn server_config(id: &TlsIdentity) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(id.cert_pem.as_bytes()).map(|c| c.expect("cert pem")).collect();
    let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).expect("key pem");
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config")
}

pub type Body = BoxBody<Bytes, std::io::Error>;

pub fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-request-id", "req_mock")
        .body(Full::new(body.into()).map_err(|e: Infallible| match e {}).boxed())
        .expect("response");
    account_headers(r.headers_mut());
    r
}

fn error(status: u16, message: &str, kind: &str, code: &str) -> Response<Body> {
    let mut r = full(
        status,
        "application/json",
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}}).to_string(),
    );
    if status == 429 {
        r.headers_mut().insert("retry-after", "1".parse().expect("header"));
        r.headers_mut().insert("x-ratelimit-remaining-requests", "0".parse().expect("header"));
    }
    r
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn num(req: &Request<Incoming>, name: &str) -> Option<u64> {
    header(req, name).and_then(|v| v.parse().ok())
}

async fn handle(st: Arc<MockState>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let method = req.method().to_string();
    let target = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let status_cue = num(&req, "x-mock-status");
    let delay = num(&req, "x-mock-delay-ms");
    let gap = num(&req, "x-mock-event-gap-ms").unwrap_or(0);
    let hold_after = num(&req, "x-mock-hold-after");
    let die_after = num(&req, "x-mock-die-after");
    let no_usage = header(&req, "x-mock-no-usage").is_some();
    let deltas = num(&req, "x-mock-deltas").unwrap_or(5);
    let pad = num(&req, "x-mock-pad").unwrap_or(0) as usize;
    let echo_headers = header(&req, "x-mock-echo-headers").is_some();
    let split = match (header(&req, "x-mock-split-at"), num(&req, "x-mock-split-in-token")) {
        (Some(v), _) => Some(Split::At(v.split(',').filter_map(|n| n.trim().parse().ok()).collect())),
        (None, Some(k)) => Some(Split::InToken(k as usize)),
        (None, None) => None,
    };
    let gzip = header(&req, "x-mock-gzip").is_some();
    let usage_every_chunk = header(&req, "x-mock-usage-every-chunk").is_some();
    let auth = header(&req, "authorization").map(str::to_string);
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            // The sender never finished the body: nothing is processed.
            st.incomplete.fetch_add(1, Ordering::Relaxed);
            return Ok(full(400, "text/plain", "incomplete body"));
        }
    };
    let rec = Recorded { method: method.clone(), target: target.clone(), headers, body: body.clone() };
    st.records.lock().unwrap().push(rec.clone());
    let _ = parts;

    let delay = delay.unwrap_or(0) + st.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let path = target.split('?').next().unwrap_or("").to_string();
    let seq = st.seq.fetch_add(1, Ordering::Relaxed);
    let echoed = echo_headers
        .then(|| Value::Object(rec.headers.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect()));
    let cues = StreamCues { gap, hold_after, die_after, no_usage, deltas, pad, seq, echo: echoed, usage_every_chunk };
    if path.starts_with("/v1/messages") {
        return Ok(super::mock_anthropic::handle(&st, &rec, &path, cues));
    }
    if path.starts_with("/openai/") {
        return Ok(azure(&st, &rec, &path, &body, cues).await);
    }
    let forced = *st.fail_status.lock().unwrap();
    if let Some(expected) = st.expected_key.lock().unwrap().clone() {
        if auth.as_deref() != Some(&format!("Bearer {expected}")) {
            return Ok(error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"));
        }
    }
    if let Some(code) = status_cue.or(forced.map(u64::from)) {
        let kind = if code >= 500 { "server_error" } else { "invalid_request_error" };
        return Ok(error(code as u16, &format!("mock status {code}"), kind, "mock"));
    }
    let resp = match (method.as_str(), path.as_str()) {
        ("POST", "/v1/responses") => responses_create(&st, &body, cues).await,
        ("POST", "/v1/responses/compact") => compact(&body, cues),
        ("POST", "/v1/responses/input_tokens") => input_tokens(&body),
        ("POST", "/v1/chat/completions") => chat(&st, &body, cues).await,
        (m, p) if p.starts_with("/v1/responses/") => responses_item(&st, m, &p["/v1/responses/".len()..]),
        (m, p) if p == "/v1/conversations" || p.starts_with("/v1/conversations/") => {
            conversations(&st, m, p.trim_start_matches("/v1/conversations").trim_start_matches('/'), &body, cues)
        }
        (m, p) if p == "/v1/chat/completions" || p.starts_with("/v1/chat/completions/") => {
            stored_chat(&st, m, p.trim_start_matches("/v1/chat/completions").trim_start_matches('/'), &body)
        }
        (_, p) if !p.starts_with("/v1/") => echo(&rec_last(&st)),
        _ => error(404, &format!("Invalid URL ({method} {path})"), "invalid_request_error", "unknown_url"),
    };
    let mut resp = match split {
        Some(how) => split_answer(resp, how).await,
        None => resp,
    };
    if gzip {
        resp.headers_mut().insert("content-encoding", "gzip".parse().expect("header"));
    }
    Ok(resp)
}

/// Where to cut an answer.
enum Split {
    At(Vec<usize>),
    /// `K` bytes into every credential after `Bearer ` in the answer.
    InToken(usize),
}

/// The same answer, its bytes sent in pieces with a pause between them (a JSON answer keeps
/// its Content-Length).
async fn split_answer(resp: Response<Body>, how: Split) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let offsets = match how {
        Split::At(v) => v,
        Split::InToken(k) => {
            bytes.windows(7).enumerate().filter(|(_, w)| *w == b"Bearer ").map(|(i, _)| i + 7 + k).collect()
        }
    };
    let streamed = parts.headers.get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !streamed {
        parts.headers.insert("content-length", bytes.len().to_string().parse().expect("header"));
    }
    let mut pieces = Vec::new();
    let mut from = 0;
    for at in offsets.into_iter().filter(|&o| o > 0 && o < bytes.len()) {
        if at > from {
            pieces.push(bytes.slice(from..at));
            from = at;
        }
    }
    pieces.push(bytes.slice(from..));
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
    tokio::spawn(async move {
        // The head goes first, then each piece on its own.
        for p in pieces {
            tokio::time::sleep(Duration::from_millis(30)).await;
            if tx.send(Ok(Frame::data(p))).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Response::from_parts(parts, BodyExt::boxed(StreamBody::new(stream)))
}

/// The headers a provider sends about the operator's account.
fn account_headers(h: &mut hyper::HeaderMap) {
    for (k, v) in [
        ("openai-organization", "org-operator-0001"),
        ("openai-project", "proj_operator_0001"),
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-remaining-tokens", "149000"),
        ("openai-processing-ms", "12"),
    ] {
        h.insert(k, v.parse().expect("header"));
    }
}

fn rec_last(st: &MockState) -> Recorded {
    st.records.lock().unwrap().last().cloned().expect("just recorded")
}

/// httpbin-like: describe the request.
fn echo(r: &Recorded) -> Response<Body> {
    let headers: serde_json::Map<String, Value> =
        r.headers.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect();
    full(
        200,
        "application/json",
        json!({"method": r.method, "url": r.target, "headers": headers, "data": String::from_utf8_lossy(&r.body)})
            .to_string(),
    )
}

#[derive(Clone)]
pub struct StreamCues {
    gap: u64,
    hold_after: Option<u64>,
    die_after: Option<u64>,
    no_usage: bool,
    pub deltas: u64,
    pad: usize,
    pub seq: u64,
    /// The request's headers, to put into the answer.
    echo: Option<Value>,
    usage_every_chunk: bool,
}

/// Azure OpenAI's paths: an `api-version` query (except on the v1 API), the key in `api-key`
/// (or a bearer), Azure's error shapes; then the same answers as OpenAI's.
async fn azure(st: &Arc<MockState>, rec: &Recorded, path: &str, body: &Bytes, cues: StreamCues) -> Response<Body> {
    let azure_error = |status: u16, code: &str, message: &str| {
        full(status, "application/json", json!({"error": {"code": code, "message": message}}).to_string())
    };
    let has_version =
        rec.target.split_once('?').is_some_and(|(_, q)| q.split('&').any(|p| p.starts_with("api-version=")));
    if !path.starts_with("/openai/v1/") && !has_version {
        return azure_error(404, "404", "Resource not found");
    }
    if let Some(expected) = st.expected_key.lock().unwrap().clone() {
        let bearer = format!("Bearer {expected}");
        if rec.header("api-key") != Some(expected.as_str()) && rec.header("authorization") != Some(bearer.as_str()) {
            return azure_error(401, "401", "Access denied due to invalid subscription key or wrong API endpoint.");
        }
    }
    let forced = *st.fail_status.lock().unwrap();
    if let Some(code) = rec.header("x-mock-status").and_then(|v| v.parse::<u16>().ok()).or(forced) {
        return azure_error(code, &code.to_string(), &format!("mock status {code}"));
    }
    let chat_path = path.strip_prefix("/openai/deployments/").and_then(|r| r.strip_suffix("/chat/completions"));
    match (rec.method.as_str(), path) {
        ("POST", "/openai/responses" | "/openai/v1/responses") => responses_create(st, body, cues).await,
        ("POST", "/openai/v1/chat/completions") => chat(st, body, cues).await,
        ("POST", _) if chat_path.is_some_and(|d| !d.contains('/')) => chat(st, body, cues).await,
        _ => azure_error(404, "404", "Resource not found"),
    }
}

/// Token counts the way a provider would report them: they depend on the request.
fn usage_for(input: &[u8], output_text: &str, seq: u64, cached_hint: bool) -> (u64, u64, u64, u64) {
    let input_tokens = (input.len() as u64).div_ceil(4) + 3;
    let output_tokens = (output_text.len() as u64).div_ceil(4) + seq % 7;
    let cached = if cached_hint { input_tokens / 2 } else { 0 };
    let reasoning = seq % 3;
    (input_tokens, output_tokens, cached, reasoning)
}

fn responses_usage(u: (u64, u64, u64, u64)) -> Value {
    json!({
        "input_tokens": u.0,
        "input_tokens_details": {"cached_tokens": u.2, "cache_write_tokens": 0},
        "output_tokens": u.1,
        "output_tokens_details": {"reasoning_tokens": u.3},
        "total_tokens": u.0 + u.1,
    })
}

fn answer_text(cues: &StreamCues) -> Vec<String> {
    let mut parts: Vec<String> = (0..cues.deltas).map(|i| format!("part{i} ")).collect();
    if cues.pad > 0 {
        parts.push("x".repeat(cues.pad));
    }
    parts
}

/// MCP items a provider would produce for the request's `type: "mcp"` tools.
fn mcp_items(req: &Value, seq: u64, note: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let Some(tools) = req.get("tools").and_then(Value::as_array) else {
        return items;
    };
    for (i, t) in tools.iter().enumerate() {
        if t.get("type").and_then(Value::as_str) != Some("mcp") {
            continue;
        }
        let label = t.get("server_label").and_then(Value::as_str).unwrap_or("mcp");
        let allowed: Vec<String> = match t.get("allowed_tools") {
            Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
            Some(Value::Object(o)) => o
                .get("tool_names")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                .unwrap_or_default(),
            _ => vec!["search_code".into(), "get_issue".into(), "create_pull_request".into()],
        };
        items.push(json!({
            "id": format!("mcpl_{seq}_{i}"), "type": "mcp_list_tools", "server_label": label,
            "tools": allowed.iter().map(|n| json!({"name": n, "description": format!("{n} tool{note}"), "input_schema": {"type": "object"}})).collect::<Vec<_>>(),
        }));
        let approval_always = t.get("require_approval").and_then(Value::as_str) == Some("always");
        if let Some(first) = allowed.first() {
            if approval_always {
                items.push(json!({"id": format!("mcpr_{seq}_{i}"), "type": "mcp_approval_request", "server_label": label, "name": first, "arguments": "{}"}));
            } else {
                items.push(json!({"id": format!("mcp_{seq}_{i}"), "type": "mcp_call", "server_label": label, "name": first, "arguments": "{\"q\":\"x\"}", "output": "result", "error": null, "status": "completed"}));
            }
        }
        if let Some(second) = allowed.get(1).filter(|_| !approval_always) {
            items.push(json!({"id": format!("mcp_{seq}_{i}_e"), "type": "mcp_call", "server_label": label, "name": second, "arguments": "{}", "output": null, "error": "tool failed", "status": "failed"}));
        }
    }
    items
}

/// The request body when it is a JSON object.
fn json_object(body: &Bytes) -> Option<Value> {
    serde_json::from_slice(body).ok().filter(Value::is_object)
}

/// OpenAI's answer to a body that is not a JSON object.
fn invalid_json() -> Response<Body> {
    error(400, "We could not parse the JSON body of your request.", "invalid_request_error", "invalid_json")
}

async fn responses_create(st: &Arc<MockState>, body: &Bytes, cues: StreamCues) -> Response<Body> {
    let Some(req) = json_object(body) else {
        return invalid_json();
    };
    let Some(model) = req.get("model").and_then(Value::as_str).map(str::to_string) else {
        return error(
            400,
            "Missing required parameter: 'model'.",
            "invalid_request_error",
            "missing_required_parameter",
        );
    };
    let id = format!("resp_{:08x}{:024x}", cues.seq, cues.seq.wrapping_mul(0x9E3779B97F4A7C15));
    let msg_id = format!("msg_{:08x}", cues.seq);
    let parts = answer_text(&cues);
    let text: String = parts.concat();
    let u = usage_for(body, &text, cues.seq, req.get("previous_response_id").is_some());
    let note = st.mcp_tool_note.lock().unwrap().clone();
    let mut output: Vec<Value> = mcp_items(&req, cues.seq, &note);
    let message = json!({"type": "message", "id": msg_id, "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}]});
    output.push(message.clone());
    let created = 1_795_000_000 + cues.seq;
    let base = |status: &str, output: Vec<Value>, usage: Value| {
        json!({"id": id, "object": "response", "created_at": created, "status": status, "model": format!("{model}-2024-08-06"),
            "output": output, "usage": usage, "max_output_tokens": req.get("max_output_tokens").cloned().unwrap_or(Value::Null),
            "temperature": req.get("temperature").cloned().unwrap_or(json!(1.0)), "previous_response_id": req.get("previous_response_id").cloned().unwrap_or(Value::Null),
            "tools": req.get("tools").cloned().unwrap_or(json!([])), "error": null, "incomplete_details": null,
            "echo_headers": cues.echo.clone().unwrap_or(Value::Null)})
    };
    let usage = if cues.no_usage { Value::Null } else { responses_usage(u) };
    let final_response = base("completed", output.clone(), usage.clone());
    st.responses.lock().unwrap().insert(id.clone(), final_response.clone());
    // Input and output items join the conversation the response continues.
    let conv_id = match req.get("conversation") {
        Some(Value::String(c)) => Some(c.clone()),
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_str).map(String::from),
        _ => None,
    };
    if let Some(c) = conv_id {
        if let Some((_, items)) = st.conversations.lock().unwrap().get_mut(&c) {
            items.push(message.clone());
        }
    }
    if req.get("stream").and_then(Value::as_bool) != Some(true) {
        let mut v = final_response;
        if cues.no_usage {
            v.as_object_mut().expect("object").remove("usage");
        }
        return full(200, "application/json", v.to_string());
    }
    // The full event sequence of a streamed response.
    let mut events: Vec<(String, Value)> = Vec::new();
    events.push(("response.created".into(), json!({"response": base("in_progress", vec![], Value::Null)})));
    events.push(("response.in_progress".into(), json!({"response": base("in_progress", vec![], Value::Null)})));
    let mcp = mcp_items(&req, cues.seq, &note);
    for (i, item) in mcp.iter().enumerate() {
        let mut added = item.clone();
        added["status"] = json!("in_progress");
        events.push(("response.output_item.added".into(), json!({"output_index": i, "item": added})));
        match item["type"].as_str() {
            Some("mcp_list_tools") => {
                events.push((
                    "response.mcp_list_tools.in_progress".into(),
                    json!({"output_index": i, "item_id": item["id"]}),
                ));
                events.push((
                    "response.mcp_list_tools.completed".into(),
                    json!({"output_index": i, "item_id": item["id"]}),
                ));
            }
            Some("mcp_call") => {
                events
                    .push(("response.mcp_call.in_progress".into(), json!({"output_index": i, "item_id": item["id"]})));
                events.push((
                    "response.mcp_call_arguments.done".into(),
                    json!({"output_index": i, "item_id": item["id"], "arguments": item["arguments"]}),
                ));
                let done =
                    if item["error"].is_null() { "response.mcp_call.completed" } else { "response.mcp_call.failed" };
                events.push((done.into(), json!({"output_index": i, "item_id": item["id"]})));
            }
            _ => {}
        }
        events.push(("response.output_item.done".into(), json!({"output_index": i, "item": item})));
    }
    let oi = mcp.len();
    events.push(("response.output_item.added".into(), json!({"output_index": oi, "item": {"type": "message", "id": msg_id, "status": "in_progress", "role": "assistant", "content": []}})));
    events.push(("response.content_part.added".into(), json!({"item_id": msg_id, "output_index": oi, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}})));
    for p in &parts {
        events.push((
            "response.output_text.delta".into(),
            json!({"item_id": msg_id, "output_index": oi, "content_index": 0, "delta": p}),
        ));
    }
    events.push((
        "response.output_text.done".into(),
        json!({"item_id": msg_id, "output_index": oi, "content_index": 0, "text": text}),
    ));
    events.push(("response.content_part.done".into(), json!({"item_id": msg_id, "output_index": oi, "content_index": 0, "part": {"type": "output_text", "text": text, "annotations": []}})));
    events.push(("response.output_item.done".into(), json!({"output_index": oi, "item": message})));
    events.push(("response.completed".into(), json!({"response": base("completed", output, usage)})));
    let frames: Vec<Bytes> = events
        .into_iter()
        .enumerate()
        .map(|(n, (name, mut data))| {
            data["type"] = json!(name);
            data["sequence_number"] = json!(n);
            Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
        })
        .collect();
    stream_frames(Some(st.clone()), frames, cues)
}

async fn chat(st: &MockState, body: &Bytes, cues: StreamCues) -> Response<Body> {
    let Some(req) = json_object(body) else {
        return invalid_json();
    };
    let Some(model) = req.get("model").and_then(Value::as_str).map(str::to_string) else {
        return error(400, "you must provide a model parameter", "invalid_request_error", "missing_required_parameter");
    };
    let id = format!("chatcmpl-{:x}", cues.seq);
    let parts = answer_text(&cues);
    let text: String = parts.concat();
    let u = usage_for(body, &text, cues.seq, false);
    let usage = json!({"prompt_tokens": u.0, "completion_tokens": u.1, "total_tokens": u.0 + u.1,
        "prompt_tokens_details": {"cached_tokens": u.2}, "completion_tokens_details": {"reasoning_tokens": u.3}});
    let completion = json!({"id": id, "object": "chat.completion", "created": 1_795_000_000u64, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}], "usage": usage,
        "metadata": req.get("metadata").cloned().unwrap_or(json!({})), "messages": req.get("messages").cloned().unwrap_or(json!([]))});
    if req.get("store").and_then(Value::as_bool) == Some(true) {
        st.chat_completions.lock().unwrap().insert(id.clone(), completion);
    }
    if req.get("stream").and_then(Value::as_bool) != Some(true) {
        let mut v = json!({"id": id, "object": "chat.completion", "created": 1_795_000_000u64, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}], "usage": usage,
            "echo_headers": cues.echo.clone().unwrap_or(Value::Null), "echo_tools": req.get("tools").cloned().unwrap_or(Value::Null)});
        if cues.no_usage {
            v.as_object_mut().expect("object").remove("usage");
        }
        return full(200, "application/json", v.to_string());
    }
    let include_usage = req.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
    let every = cues.usage_every_chunk;
    let zeros = json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0});
    let chunk = |delta: Value, finish: Value, usage: Value| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": 1_795_000_000u64, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        if include_usage || every {
            c["usage"] = usage;
        }
        if let Some(echo) = &cues.echo {
            c["echo_headers"] = echo.clone();
        }
        Bytes::from(format!("data: {c}\n\n"))
    };
    let filler = if every { zeros.clone() } else { Value::Null };
    let mut frames = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null, filler.clone())];
    for p in &parts {
        frames.push(chunk(json!({"content": p}), Value::Null, filler.clone()));
    }
    frames.push(chunk(json!({}), json!("stop"), if every { usage.clone() } else { Value::Null }));
    if include_usage && !cues.no_usage && !every {
        let c = json!({"id": id, "object": "chat.completion.chunk", "created": 1_795_000_000u64, "model": model, "choices": [], "usage": usage});
        frames.push(Bytes::from(format!("data: {c}\n\n")));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    stream_frames(None, frames, cues)
}

pub fn stream_frames(st: Option<Arc<MockState>>, frames: Vec<Bytes>, cues: StreamCues) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(2);
    tokio::spawn(async move {
        for (i, f) in frames.into_iter().enumerate() {
            let i = i as u64;
            if cues.die_after == Some(i) {
                let _ = tx.send(Err(std::io::Error::other("mock upstream died mid-stream"))).await;
                return;
            }
            if cues.hold_after == Some(i) {
                if let Some(st) = &st {
                    if let Ok(p) = st.release.acquire().await {
                        p.forget();
                    }
                }
            }
            if i > 0 && cues.gap > 0 {
                tokio::time::sleep(Duration::from_millis(cues.gap)).await;
            }
            if tx.send(Ok(Frame::data(f))).await.is_err() {
                if let Some(st) = &st {
                    st.client_gone.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let mut r = Response::builder()
        .status(200)
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("cache-control", "no-cache")
        .header("x-request-id", "req_mock")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("response");
    account_headers(r.headers_mut());
    r
}

fn responses_item(st: &MockState, method: &str, rest: &str) -> Response<Body> {
    let (id, action) = match rest.split_once('/') {
        Some((id, action)) => (id, Some(action)),
        None => (rest, None),
    };
    let stored = st.responses.lock().unwrap().get(id).cloned();
    let Some(resp) = stored else {
        return error(404, &format!("Response with id '{id}' not found."), "invalid_request_error", "not_found");
    };
    match (method, action) {
        ("GET", None) => full(200, "application/json", resp.to_string()),
        ("DELETE", None) => {
            st.responses.lock().unwrap().remove(id);
            full(200, "application/json", json!({"id": id, "object": "response", "deleted": true}).to_string())
        }
        ("POST", Some("cancel")) => {
            let mut r = resp;
            r["status"] = json!("cancelled");
            full(200, "application/json", r.to_string())
        }
        ("GET", Some("input_items")) => full(
            200,
            "application/json",
            json!({"object": "list", "data": [], "first_id": null, "last_id": null, "has_more": false}).to_string(),
        ),
        _ => error(405, "method not allowed", "invalid_request_error", "method_not_allowed"),
    }
}

fn not_found(what: &str, id: &str) -> Response<Body> {
    error(404, &format!("{what} with id '{id}' not found."), "invalid_request_error", "not_found")
}

fn list(data: Vec<Value>) -> Response<Body> {
    let first = data.first().and_then(|d| d.get("id")).cloned().unwrap_or(Value::Null);
    let last = data.last().and_then(|d| d.get("id")).cloned().unwrap_or(Value::Null);
    full(
        200,
        "application/json",
        json!({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": false}).to_string(),
    )
}

/// `POST /v1/responses/compact`: a `response.compaction` with the user's messages and one
/// compaction item, and usage.
fn compact(body: &Bytes, cues: StreamCues) -> Response<Body> {
    let Some(req) = json_object(body) else {
        return invalid_json();
    };
    if req.get("model").and_then(Value::as_str).is_none() {
        return error(
            400,
            "Missing required parameter: 'model'.",
            "invalid_request_error",
            "missing_required_parameter",
        );
    }
    let u = usage_for(body, "compacted", cues.seq, false);
    let output = json!([
        {"type": "message", "id": format!("msg_c{:08x}", cues.seq), "role": "user", "status": "completed", "content": [{"type": "input_text", "text": "kept"}]},
        {"type": "compaction", "id": format!("cmp_{:08x}", cues.seq), "encrypted_content": "gAAAA-opaque"}
    ]);
    full(
        200,
        "application/json",
        json!({"id": format!("resp_c{:08x}", cues.seq), "object": "response.compaction", "created_at": 1_795_000_000u64 + cues.seq,
            "output": output, "usage": responses_usage(u)})
        .to_string(),
    )
}

/// `POST /v1/responses/input_tokens`: a count, no usage.
fn input_tokens(body: &Bytes) -> Response<Body> {
    if json_object(body).is_none() {
        return invalid_json();
    }
    full(
        200,
        "application/json",
        json!({"object": "response.input_tokens", "input_tokens": (body.len() as u64).div_ceil(4)}).to_string(),
    )
}

/// The Conversations API: `rest` is the path after `/v1/conversations/`.
fn conversations(st: &MockState, method: &str, rest: &str, body: &Bytes, cues: StreamCues) -> Response<Body> {
    let parts: Vec<&str> = if rest.is_empty() { Vec::new() } else { rest.split('/').collect() };
    let req = json_object(body).unwrap_or_else(|| json!({}));
    let with_ids = |items: &[Value]| -> Vec<Value> {
        items
            .iter()
            .enumerate()
            .map(|(i, it)| {
                let mut it = it.clone();
                if it.get("id").is_none() {
                    it["id"] = json!(format!("msg_{:08x}{i:04x}", cues.seq));
                }
                it
            })
            .collect()
    };
    let mut convs = st.conversations.lock().unwrap();
    match (method, parts.as_slice()) {
        ("POST", []) => {
            let id = format!("conv_{:08x}{:024x}", cues.seq, cues.seq.wrapping_mul(0x9E3779B97F4A7C15));
            let conv = json!({"id": id, "object": "conversation", "created_at": 1_795_000_000u64 + cues.seq,
                "metadata": req.get("metadata").cloned().unwrap_or(json!({}))});
            let items = with_ids(req.get("items").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]));
            convs.insert(id, (conv.clone(), items));
            full(200, "application/json", conv.to_string())
        }
        (m, [id, tail @ ..]) => {
            let Some((conv, items)) = convs.get_mut(*id) else {
                return not_found("Conversation", id);
            };
            match (m, tail) {
                ("GET", []) => full(200, "application/json", conv.to_string()),
                ("POST", []) => {
                    conv["metadata"] = req.get("metadata").cloned().unwrap_or(json!({}));
                    full(200, "application/json", conv.to_string())
                }
                ("DELETE", []) => {
                    let id = id.to_string();
                    convs.remove(&id);
                    full(
                        200,
                        "application/json",
                        json!({"id": id, "object": "conversation.deleted", "deleted": true}).to_string(),
                    )
                }
                ("GET", ["items"]) => list(items.clone()),
                ("POST", ["items"]) => {
                    let added = with_ids(req.get("items").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]));
                    items.extend(added.iter().cloned());
                    list(added)
                }
                ("GET", ["items", item]) => match items.iter().find(|i| i["id"] == *item) {
                    Some(i) => full(200, "application/json", i.to_string()),
                    None => not_found("Item", item),
                },
                ("DELETE", ["items", item]) => {
                    let before = items.len();
                    items.retain(|i| i["id"] != *item);
                    if items.len() == before {
                        return not_found("Item", item);
                    }
                    full(200, "application/json", conv.to_string())
                }
                _ => error(405, "method not allowed", "invalid_request_error", "method_not_allowed"),
            }
        }
        _ => error(405, "method not allowed", "invalid_request_error", "method_not_allowed"),
    }
}

/// Stored chat completions: `rest` is the path after `/v1/chat/completions/`. The list (no
/// `rest`) returns every stored completion, whoever made it — what a gateway must not forward.
fn stored_chat(st: &MockState, method: &str, rest: &str, body: &Bytes) -> Response<Body> {
    let parts: Vec<&str> = if rest.is_empty() { Vec::new() } else { rest.split('/').collect() };
    let mut stored = st.chat_completions.lock().unwrap();
    match (method, parts.as_slice()) {
        ("GET", []) => {
            let mut all: Vec<Value> = stored.values().cloned().collect();
            all.sort_by_key(|v| v["id"].as_str().unwrap_or_default().to_string());
            list(all)
        }
        (m, [id, tail @ ..]) => {
            let Some(c) = stored.get_mut(*id) else {
                return not_found("Chat completion", id);
            };
            match (m, tail) {
                ("GET", []) => full(200, "application/json", c.to_string()),
                ("POST", []) => {
                    let req = json_object(body).unwrap_or_else(|| json!({}));
                    c["metadata"] = req.get("metadata").cloned().unwrap_or(json!({}));
                    full(200, "application/json", c.to_string())
                }
                ("DELETE", []) => {
                    let id = id.to_string();
                    stored.remove(&id);
                    full(
                        200,
                        "application/json",
                        json!({"id": id, "object": "chat.completion.deleted", "deleted": true}).to_string(),
                    )
                }
                ("GET", ["messages"]) => {
                    let msgs: Vec<Value> = c["messages"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .enumerate()
                        .map(|(i, mut m)| {
                            m["id"] = json!(format!("{id}-{i}"));
                            m
                        })
                        .collect();
                    list(msgs)
                }
                _ => error(405, "method not allowed", "invalid_request_error", "method_not_allowed"),
            }
        }
        _ => error(405, "method not allowed", "invalid_request_error", "method_not_allowed"),
    }
}
