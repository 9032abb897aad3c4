//! MCP traffic as ai-mcp-proxy reads it: arbitrary POST bodies parsed and classified (never a
//! panic; whatever is accepted is JSON-RPC 2.0), and arbitrary SSE answers cut into arbitrary
//! chunks split into events — the chunking never changes the events, and every byte is
//! accounted for — with any tool list in them filtered.
#![no_main]

use aigate::mcp::sse::{event_data, EventSplitter, Piece};
use aigate::mcp::{parse_post, tools};
use libfuzzer_sys::fuzz_target;

fn split(data: &[u8], step: usize) -> Vec<Piece> {
    let mut s = EventSplitter::new(1 << 16);
    let mut out = Vec::new();
    for chunk in data.chunks(step) {
        s.feed(chunk, &mut out);
    }
    out.extend(s.finish());
    out
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let step = usize::from(data[0]).max(1);
    let body = &data[1..];
    for batches in [false, true] {
        if let Ok(post) = parse_post(body, batches) {
            assert!(!post.messages.is_empty());
            assert!(batches || !post.batch);
            let v: serde_json::Value = serde_json::from_slice(body).expect("accepted bodies are JSON");
            let all = match &v {
                serde_json::Value::Array(a) => a.clone(),
                one => vec![one.clone()],
            };
            assert!(all.iter().all(|m| m["jsonrpc"] == "2.0"));
        }
    }
    let chunked = split(body, step);
    let whole = split(body, body.len().max(1));
    assert_eq!(chunked, whole, "chunking changed the events");
    let mut joined = Vec::new();
    for p in &chunked {
        if let Piece::Event(e) = p {
            joined.extend_from_slice(e);
            if let Some(d) = event_data(e) {
                if let Ok(mut m) = serde_json::from_str::<serde_json::Value>(&d) {
                    let _ = tools::filter_result(&mut m, &|n| n.len() % 2 == 0);
                }
            }
        }
    }
    if body.len() < (1 << 16) {
        assert_eq!(joined, body, "bytes lost or added");
    }
});
