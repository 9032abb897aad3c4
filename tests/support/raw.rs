//! Raw HTTP/1 over a TCP socket, for requests a well-behaved client would not send as written
//! (paths with dot segments, duplicate headers, smuggling attempts, slow senders).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Send bytes as written and read one response (the server closes or answers with a length).
pub fn send(addr: SocketAddr, request: &[u8]) -> std::io::Result<RawResponse> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request)?;
    read_response(&mut s)
}

/// Read one HTTP/1 response: head, then a body by Content-Length, chunked, or to the close.
pub fn read_response(s: &mut TcpStream) -> std::io::Result<RawResponse> {
    read_next(s, &mut Vec::new())
}

/// Read `n` responses in a row from one connection (pipelining): bytes read past the end of
/// one response are the start of the next, never dropped.
pub fn read_responses(s: &mut TcpStream, n: usize) -> std::io::Result<Vec<RawResponse>> {
    let mut pending = Vec::new();
    (0..n).map(|_| read_next(s, &mut pending)).collect()
}

/// Read one response, starting with the bytes already in `buf`; leaves in `buf` whatever was
/// read past its end.
fn read_next(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<RawResponse> {
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut tmp)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("closed before a response head: {:?}", String::from_utf8_lossy(buf)),
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut rest = buf.split_off(head_end + 4);
    buf.clear();
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let lower = head.to_ascii_lowercase();
    let content_length =
        lower.lines().find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()));
    let body = if let Some(n) = content_length {
        while rest.len() < n {
            let k = s.read(&mut tmp)?;
            if k == 0 {
                break;
            }
            rest.extend_from_slice(&tmp[..k]);
        }
        if rest.len() > n {
            *buf = rest.split_off(n);
        }
        rest
    } else if lower.contains("transfer-encoding: chunked") {
        let end = loop {
            if let Some(i) = find(&rest, b"0\r\n\r\n") {
                break i + 5;
            }
            let k = s.read(&mut tmp)?;
            if k == 0 {
                break rest.len();
            }
            rest.extend_from_slice(&tmp[..k]);
        };
        *buf = rest.split_off(end);
        dechunk(&rest)
    } else if status == 204 || status == 304 {
        *buf = rest;
        Vec::new()
    } else {
        loop {
            let k = s.read(&mut tmp).unwrap_or(0);
            if k == 0 {
                break;
            }
            rest.extend_from_slice(&tmp[..k]);
        }
        rest
    };
    Ok(RawResponse { status, head, body: String::from_utf8_lossy(&body).into_owned() })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = find(b, b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = i + 2;
        if b.len() < start + size {
            break;
        }
        out.extend_from_slice(&b[start..start + size]);
        b = &b[(start + size + 2).min(b.len())..];
    }
    out
}

/// A GET with extra header lines, as written. Runs off the async runtime (the test's own
/// upstream may live on it).
pub async fn get(addr: SocketAddr, path: &str, headers: &str) -> RawResponse {
    let req = format!("GET {path} HTTP/1.1\r\nHost: gateway.test\r\n{headers}Connection: close\r\n\r\n");
    let path = path.to_string();
    tokio::task::spawn_blocking(move || send(addr, req.as_bytes()).unwrap_or_else(|e| panic!("GET {path}: {e}")))
        .await
        .expect("raw request task")
}

/// Send raw bytes off the async runtime.
pub async fn send_async(addr: SocketAddr, request: Vec<u8>) -> std::io::Result<RawResponse> {
    tokio::task::spawn_blocking(move || send(addr, &request)).await.expect("raw request task")
}
