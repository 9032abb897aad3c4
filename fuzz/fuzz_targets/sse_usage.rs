//! The response side view: arbitrary SSE bytes cut into arbitrary chunks, and arbitrary JSON
//! bodies, read for usage and MCP items — never a panic, and the chunking never changes the
//! result.
#![no_main]

use aigate::ai::response;
use aigate::ai::sse::SseScanner;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    // The first byte picks the chunk size.
    let step = usize::from(data[0]).max(1);
    let body = Bytes::copy_from_slice(&data[1..]);
    let mut chunked = SseScanner::new(1 << 16);
    let mut i = 0;
    while i < body.len() {
        let end = (i + step).min(body.len());
        chunked.feed(&body.slice(i..end));
        i = end;
    }
    chunked.finish();
    let mut whole = SseScanner::new(1 << 16);
    whole.feed(&body);
    whole.finish();
    let a = response::from_stream(&chunked);
    let b = response::from_stream(&whole);
    assert_eq!(a, b, "chunking changed what was read");
    let _ = response::from_json(&body);
});
