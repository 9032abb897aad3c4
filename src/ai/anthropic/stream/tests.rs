use super::*;
use serde_json::{json, Value};

/// The stream Anthropic's SDKs parse (the research note's capture).
const STREAM: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\n",
    "event: ping\ndata: {\"type\": \"ping\"}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" th\\\"ere\\n\"}}\r\n\r\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Pa\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"ris\\\"}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

fn run(stream: &str, piece: usize, include_usage: bool) -> (Vec<u8>, StreamTranslator) {
    let mut t = StreamTranslator::new(include_usage, 1_700_000_000, 1 << 16);
    let mut out = Vec::new();
    for c in stream.as_bytes().chunks(piece.max(1)) {
        t.feed(c, &mut out);
    }
    t.finish(&mut out);
    (out, t)
}

/// The `data:` payloads of an SSE text.
fn events(out: &[u8]) -> Vec<String> {
    let text = String::from_utf8(out.to_vec()).unwrap();
    assert!(text.ends_with("\n\n"), "{text}");
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data event: {e}")).to_string())
        .collect()
}

#[test]
fn translates_text_tools_finish_and_usage_whatever_the_chunking() {
    let (whole, t) = run(STREAM, usize::MAX, true);
    let ev = events(&whole);
    let head = |delta: Value, finish: Value| {
        json!({"id": "msg_01", "object": "chat.completion.chunk", "created": 1_700_000_000u64, "model": "claude-x",
            "system_fingerprint": null, "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    let parsed: Vec<Value> = ev[..ev.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_eq!(
        parsed,
        vec![
            head(json!({"role": "assistant", "content": ""}), Value::Null),
            head(json!({"content": "Hello"}), Value::Null),
            head(json!({"content": " th\"ere\n"}), Value::Null),
            head(
                json!({"tool_calls": [{"index": 0, "id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
                Value::Null
            ),
            head(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": \"Pa"}}]}), Value::Null),
            head(json!({"tool_calls": [{"index": 0, "function": {"arguments": "ris\"}"}}]}), Value::Null),
            head(json!({}), json!("tool_calls")),
            json!({"id": "msg_01", "object": "chat.completion.chunk", "created": 1_700_000_000u64, "model": "claude-x",
                "system_fingerprint": null, "choices": [],
                "usage": {"prompt_tokens": 30, "completion_tokens": 15, "total_tokens": 45, "prompt_tokens_details": {"cached_tokens": 5}}}),
        ]
    );
    assert_eq!(ev.last().unwrap(), "[DONE]");
    assert_eq!(t.usage().map(|u| (u.input, u.output, u.total, u.cached)), Some((30, 15, 45, 5)));
    assert_eq!(t.model(), Some("claude-x"));
    assert!(!t.failed());
    for piece in [1, 2, 3, 7, 13, 64, 100] {
        let (out, t) = run(STREAM, piece, true);
        assert_eq!(out, whole, "piece {piece}");
        assert_eq!(t.usage(), run(STREAM, usize::MAX, true).1.usage());
    }
}

#[test]
fn the_usage_chunk_only_when_asked_but_usage_always_counted() {
    let (out, t) = run(STREAM, 5, false);
    let ev = events(&out);
    assert!(ev.iter().all(|e| !e.contains("\"usage\"")), "{ev:?}");
    assert_eq!(ev.last().unwrap(), "[DONE]");
    assert_eq!(t.usage().map(|u| u.output), Some(15));
}

#[test]
fn the_first_chunk_goes_out_with_message_start() {
    let mut t = StreamTranslator::new(false, 0, 1 << 16);
    let mut out = Vec::new();
    let first = STREAM.split_inclusive("\n\n").next().unwrap();
    t.feed(first.as_bytes(), &mut out);
    assert!(String::from_utf8(out).unwrap().contains("\"role\":\"assistant\""));
}

#[test]
fn an_error_event_ends_the_stream_in_openais_shape() {
    let stream = format!(
        "{}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}}}\n\n",
        STREAM.split_inclusive("\n\n").take(4).collect::<String>()
    );
    let (out, t) = run(&stream, 9, true);
    let ev = events(&out);
    let last: Value = serde_json::from_str(ev.last().unwrap()).unwrap();
    assert_eq!(
        last,
        json!({"error": {"message": "Overloaded", "type": "server_error", "param": null, "code": "overloaded"}})
    );
    assert!(t.failed());
    assert_eq!(t.usage(), None, "no message_delta: no exact usage");
}

#[test]
fn a_cut_stream_is_an_error_not_a_silent_end() {
    let cut: String = STREAM.split_inclusive("\n\n").take(5).collect();
    let (out, t) = run(&cut, 11, false);
    let ev = events(&out);
    assert!(ev.last().unwrap().contains("ended before the message was complete"), "{ev:?}");
    assert!(!ev.iter().any(|e| e == "[DONE]"));
    assert!(t.failed());
}

#[test]
fn events_over_the_limit_fail_the_stream_without_holding_it() {
    let big = format!(
        "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"m\",\"model\":\"c\",\"usage\":{{\"input_tokens\":1,\"output_tokens\":1}}}}}}\n\nevent: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{}\"}}}}\n\n",
        "x".repeat(5000)
    );
    let mut t = StreamTranslator::new(false, 0, 1024);
    let mut out = Vec::new();
    for c in big.as_bytes().chunks(100) {
        t.feed(c, &mut out);
    }
    assert!(t.failed());
    assert!(t.line.capacity() <= 2048 && t.data.capacity() <= 2048);
    assert!(String::from_utf8(out).unwrap().contains("larger than the gateway reads"));
}

#[test]
fn data_that_is_not_json_fails_the_stream() {
    let (out, t) = run("event: message_start\ndata: {not json\n\n", 3, false);
    assert!(t.failed());
    assert!(String::from_utf8(out).unwrap().contains("not JSON"));
}

#[test]
fn thinking_and_unknown_events_are_left_out() {
    let stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig\"}}\n\n",
        "event: something_new\ndata: {\"type\":\"something_new\"}\n\n",
        ": a comment\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}",
    );
    let (out, t) = run(stream, 4, false);
    let ev = events(&out);
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert!(ev[1].contains("\"finish_reason\":\"stop\""));
    assert_eq!(t.usage().map(|u| (u.input, u.output)), Some((3, 9)));
}

#[test]
fn long_lines_fail_the_same_whatever_the_chunking() {
    for line in
        [format!("event: {}\n\n", "x".repeat(1500)), format!("data: {}\n\n", "y".repeat(1019)), ": ok\n\n".to_string()]
    {
        let run = |piece: usize| {
            let mut t = StreamTranslator::new(false, 0, 1024);
            let mut out = Vec::new();
            for c in line.as_bytes().chunks(piece) {
                t.feed(c, &mut out);
            }
            t.finish(&mut out);
            (out, t.failed())
        };
        let whole = run(line.len());
        for piece in [1, 2, 100, 1023, 1024, 1025] {
            assert_eq!(run(piece), whole, "{piece}");
        }
    }
}
