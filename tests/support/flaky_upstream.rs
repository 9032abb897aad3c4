//! A TLS stand-in for a provider that closes keep-alive connections the way real servers do
//! when their idle timer strikes: while a connection sits idle, and — at random moments — just
//! as the gateway reuses it for a new request (right after the first bytes of that request
//! arrived, before any byte of an answer), with or without TLS `close_notify`, or with a reset.
//! The gateway then sees every failure a stale pooled connection can produce: a write that
//! fails (`Broken pipe`, `Connection reset`), a read that finds the end of the stream with or
//! without `close_notify`, or a reset.
//!
//! It speaks just enough HTTP/1.1: a request with a `Content-Length` or chunked body; a body
//! with `"stream":true` gets a short Responses-API SSE stream (chunked), any other a JSON
//! answer; both carry usage, and the tokens of every answer sent are added up, so a test can
//! compare the gateway's token counters with what was really delivered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use super::mock_openai::{server_config, TlsIdentity};

/// How a connection is closed under a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// TCP FIN without TLS `close_notify` (what many servers and load balancers do); the
    /// request's unread bytes make the kernel send a reset instead.
    Fin,
    /// `close_notify`, then FIN.
    Notify,
    /// A reset (`SO_LINGER` 0).
    Reset,
}

#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Per mille of the requests arriving on a reused connection that find it closing.
    pub drop_on_reuse_per_mille: u64,
    /// How such connections are closed, taken in turn.
    pub styles: Vec<Close>,
    /// Close a connection idle for a random time in this range (ms), like a keep-alive timeout.
    pub idle_close_ms: Option<(u64, u64)>,
    /// Spacing of the SSE events (ms).
    pub event_gap_ms: u64,
    pub seed: u64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            drop_on_reuse_per_mille: 0,
            styles: vec![Close::Fin, Close::Reset, Close::Notify],
            idle_close_ms: None,
            event_gap_ms: 0,
            seed: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

#[derive(Default)]
pub struct FlakyState {
    pub connections: AtomicUsize,
    /// Requests answered in full.
    pub answered: AtomicUsize,
    /// Requests that arrived on a reused connection that was then closed under them.
    pub dropped: AtomicUsize,
    /// Connections closed while idle.
    pub idle_closes: AtomicUsize,
    /// Requests that asked for the connection to be closed after them.
    pub connection_close: AtomicUsize,
    /// Total tokens in the usage of every answer sent in full.
    pub tokens: AtomicU64,
    drops: AtomicUsize,
    seq: AtomicU64,
}

pub struct FlakyUpstream {
    pub addr: SocketAddr,
    pub state: Arc<FlakyState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FlakyUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// xorshift64: reproducible randomness from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

impl FlakyUpstream {
    pub async fn start(tls: TlsIdentity, behaviour: Behaviour) -> FlakyUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind flaky upstream");
        let addr = listener.local_addr().expect("local addr");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(&tls)));
        let state = Arc::new(FlakyState::default());
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let n = st.connections.fetch_add(1, Ordering::Relaxed) as u64;
                let (st, acceptor, b) = (st.clone(), acceptor.clone(), behaviour.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let rng = Rng(b.seed ^ (n + 1).wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
                        serve(tls, st, b, rng).await;
                    }
                });
            }
        });
        FlakyUpstream { addr, state, task }
    }
}

async fn serve(mut s: TlsStream<TcpStream>, st: Arc<FlakyState>, b: Behaviour, mut rng: Rng) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut served = 0u64;
    loop {
        // The first bytes of the next request, within the idle timeout.
        if buf.is_empty() {
            let first = read_some(&mut s, &mut buf);
            let got = match b.idle_close_ms.filter(|_| served > 0) {
                Some((lo, hi)) => {
                    let idle = Duration::from_millis(lo + rng.next(hi.saturating_sub(lo) + 1));
                    match tokio::time::timeout(idle, first).await {
                        Ok(r) => r,
                        Err(_) => {
                            st.idle_closes.fetch_add(1, Ordering::Relaxed);
                            return; // dropped: FIN without close_notify
                        }
                    }
                }
                None => first.await,
            };
            if !got {
                return;
            }
            if served > 0 && rng.next(1000) < b.drop_on_reuse_per_mille {
                st.dropped.fetch_add(1, Ordering::Relaxed);
                let i = st.drops.fetch_add(1, Ordering::Relaxed);
                close(s, b.styles[i % b.styles.len()]).await;
                return;
            }
        }
        let Some((head_len, body_end)) = read_request(&mut s, &mut buf).await else { return };
        let head = String::from_utf8_lossy(&buf[..head_len]).to_ascii_lowercase();
        let body = &buf[head_len..body_end];
        let stream = memchr::memmem::find(body, b"\"stream\":true").is_some();
        if head.contains("\r\nconnection: close") {
            st.connection_close.fetch_add(1, Ordering::Relaxed);
        }
        let n = st.seq.fetch_add(1, Ordering::Relaxed);
        let (input, output) = (10 + n % 5, 20 + n % 7);
        let usage =
            format!("{{\"input_tokens\":{input},\"output_tokens\":{output},\"total_tokens\":{}}}", input + output);
        let ok = if stream {
            answer_stream(&mut s, &usage, b.event_gap_ms).await
        } else {
            let body = format!(
                "{{\"id\":\"resp_flaky{n}\",\"object\":\"response\",\"status\":\"completed\",\"output\":[],\"usage\":{usage}}}"
            );
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(resp.as_bytes()).await.is_ok() && s.flush().await.is_ok()
        };
        if !ok {
            return;
        }
        st.answered.fetch_add(1, Ordering::Relaxed);
        st.tokens.fetch_add(input + output, Ordering::Relaxed);
        served += 1;
        buf.drain(..body_end);
        if head.contains("\r\nconnection: close") {
            let _ = s.shutdown().await;
            return;
        }
    }
}

async fn answer_stream(s: &mut TlsStream<TcpStream>, usage: &str, gap_ms: u64) -> bool {
    let events = [
        "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_flaky\",\"status\":\"in_progress\"}}\n\n".to_string(),
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hello\"}\n\n".to_string(),
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\" world\"}\n\n".to_string(),
        format!("event: response.completed\ndata: {{\"type\":\"response.completed\",\"response\":{{\"id\":\"resp_flaky\",\"status\":\"completed\",\"usage\":{usage}}}}}\n\n"),
    ];
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    if s.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    for e in &events {
        if gap_ms > 0 {
            tokio::time::sleep(Duration::from_millis(gap_ms)).await;
        }
        let chunk = format!("{:x}\r\n{e}\r\n", e.len());
        if s.write_all(chunk.as_bytes()).await.is_err() || s.flush().await.is_err() {
            return false;
        }
    }
    s.write_all(b"0\r\n\r\n").await.is_ok() && s.flush().await.is_ok()
}

async fn close(mut s: TlsStream<TcpStream>, how: Close) {
    match how {
        Close::Fin => drop(s),
        Close::Notify => {
            let _ = s.shutdown().await;
        }
        Close::Reset => {
            // A zero linger never blocks: the close sends a reset at once.
            #[allow(deprecated)]
            let _ = s.get_ref().0.set_linger(Some(Duration::ZERO));
            drop(s);
        }
    }
}

/// Append what the next read brings; false at the end of the stream or on an error.
async fn read_some<R: AsyncRead + Unpin>(s: &mut R, buf: &mut Vec<u8>) -> bool {
    let mut tmp = [0u8; 4096];
    match s.read(&mut tmp).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&tmp[..n]);
            true
        }
    }
}

/// Read until `buf` holds a whole request; its head length and the end of its body.
async fn read_request<R: AsyncRead + Unpin>(s: &mut R, buf: &mut Vec<u8>) -> Option<(usize, usize)> {
    loop {
        if let Some(h) = memchr::memmem::find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..h]).to_ascii_lowercase();
            let cl = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()));
            match cl {
                Some(n) if buf.len() >= h + 4 + n => return Some((h + 4, h + 4 + n)),
                Some(_) => {}
                None if head.contains("transfer-encoding: chunked") => {
                    if let Some(end) = memchr::memmem::find(&buf[h + 4..], b"0\r\n\r\n") {
                        return Some((h + 4, h + 4 + end + 5));
                    }
                }
                None => return Some((h + 4, h + 4)),
            }
        }
        if !read_some(s, buf).await {
            return None;
        }
    }
}
