//! The Chat Completions ↔ Anthropic Messages translator on arbitrary input: requests, JSON
//! answers, errors and streams — never a panic, every output valid JSON (or SSE of JSON), and a
//! stream's translation the same whatever its chunking.
#![no_main]

use aigate::ai::anthropic::request::{chat_to_messages, RequestOptions};
use aigate::ai::anthropic::response::{error_to_openai, message_to_chat};
use aigate::ai::anthropic::stream::StreamTranslator;
use aigate::ai::json_body::RequestDoc;
use libfuzzer_sys::fuzz_target;

fn stream(data: &[u8], step: usize, include_usage: bool) -> (Vec<u8>, Option<(u64, u64)>, bool) {
    let mut t = StreamTranslator::new(include_usage, 1, 1 << 12);
    let mut out = Vec::new();
    for c in data.chunks(step) {
        t.feed(c, &mut out);
    }
    t.finish(&mut out);
    (out, t.usage().map(|u| (u.input, u.output)), t.failed())
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (mode, step, body) = (data[0] % 4, usize::from(data[1]).max(1), &data[2..]);
    match mode {
        0 => {
            let Ok(doc) = RequestDoc::parse(body) else { return };
            for refuses_sampling in [false, true] {
                if let Ok(t) = chat_to_messages(&doc, RequestOptions { refuses_sampling }) {
                    let v: serde_json::Value = serde_json::from_slice(&t.body).expect("a translated request is JSON");
                    assert!(v["max_tokens"].is_u64() && v["messages"].is_array() && v["model"].is_string());
                    assert!(!v["messages"].as_array().is_some_and(|m| m.is_empty()));
                }
            }
        }
        1 => {
            if let Ok(a) = message_to_chat(body, 1) {
                let v: serde_json::Value = serde_json::from_slice(&a.body).expect("a translated answer is JSON");
                assert_eq!(v["object"], "chat.completion");
            }
        }
        2 => {
            let (status, out) = error_to_openai(u16::from(data[1]) + 300, body);
            assert!((300..=555).contains(&status));
            let v: serde_json::Value = serde_json::from_slice(&out).expect("an error is JSON");
            assert!(v["error"]["message"].is_string());
        }
        _ => {
            let include_usage = step % 2 == 0;
            let chunked = stream(body, step, include_usage);
            let whole = stream(body, body.len().max(1), include_usage);
            assert_eq!(chunked, whole, "chunking changed the translation");
            let text = String::from_utf8(chunked.0).expect("the translation is UTF-8");
            for event in text.split("\n\n").filter(|e| !e.is_empty()) {
                let data = event.strip_prefix("data: ").expect("only data events");
                assert!(data == "[DONE]" || serde_json::from_str::<serde_json::Value>(data).is_ok(), "{data}");
            }
        }
    }
});
