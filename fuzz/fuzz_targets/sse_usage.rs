//! The response side view: arbitrary SSE bytes cut into arbitrary chunks, and arbitrary JSON
//! bodies, read for usage and MCP items — never a panic, and the chunking never changes the
//! result.
#![no_main]

use aigate::ai::response::{self, StreamFacts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    // The first byte picks the chunk size.
    let step = usize::from(data[0]).max(1);
    let body = &data[1..];
    let mut chunked = StreamFacts::new(1 << 16);
    for piece in body.chunks(step) {
        chunked.feed(piece);
    }
    chunked.finish();
    let a = chunked.take_facts();
    let b = response::from_stream(body, 1 << 16);
    assert_eq!(a, b, "chunking changed what was read");
    let _ = response::from_json(&body);
});
