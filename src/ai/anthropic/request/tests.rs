use super::*;
use serde_json::{json, Value};

const OPEN: RequestOptions = RequestOptions { refuses_sampling: false };

fn translate(body: Value) -> Result<(Value, bool), AiRefusal> {
    translate_with(body, OPEN)
}

fn translate_with(body: Value, o: RequestOptions) -> Result<(Value, bool), AiRefusal> {
    let text = body.to_string();
    let doc = RequestDoc::parse(text.as_bytes()).unwrap();
    let t = chat_to_messages(&doc, o)?;
    Ok((serde_json::from_slice(&t.body).unwrap(), t.include_usage))
}

fn refused(body: Value) -> String {
    let e = translate(body).unwrap_err();
    assert_eq!(e.status, 400);
    e.message
}

#[test]
fn every_system_prompt_is_kept_in_order_and_turns_are_merged() {
    let (out, _) = translate(json!({
        "model": "claude-x",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": [{"type": "text", "text": "How are you?"}]},
            {"role": "assistant", "content": "Bien."},
            {"role": "assistant", "content": "Et vous ?"},
            {"role": "user", "content": "Good"}
        ]
    }))
    .unwrap();
    assert_eq!(
        out,
        json!({
            "model": "claude-x",
            "max_tokens": DEFAULT_MAX_TOKENS,
            "system": [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer in French."}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "How are you?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Bien."}, {"type": "text", "text": "Et vous ?"}]},
                {"role": "user", "content": [{"type": "text", "text": "Good"}]}
            ]
        })
    );
}

#[test]
fn tool_calls_and_results() {
    let (out, _) = translate(json!({
        "model": "claude-x",
        "max_completion_tokens": 300,
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
            {"type": "function", "function": {"name": "now"}}
        ],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}}
            ], "refusal": null, "annotations": []},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
            {"role": "user", "content": "Thanks"}
        ]
    }))
    .unwrap();
    assert_eq!(out["max_tokens"], 300);
    assert_eq!(
        out["tools"],
        json!([
            {"name": "get_weather", "description": "Weather in a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
            {"name": "now", "input_schema": {"type": "object", "properties": {}}}
        ])
    );
    assert_eq!(out["tool_choice"], json!({"type": "any", "disable_parallel_tool_use": true}));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "now", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
                {"type": "text", "text": "Thanks"}
            ]}
        ])
    );
}

#[test]
fn tool_arguments_keep_their_text() {
    // The object's member order (which a model may follow) is kept as the client wrote it.
    let body = r#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"z\":1,\"a\":2}"}}]}]}"#;
    let doc = RequestDoc::parse(body.as_bytes()).unwrap();
    let out = String::from_utf8(chat_to_messages(&doc, OPEN).unwrap().body).unwrap();
    assert!(out.contains(r#""input":{"z":1,"a":2}"#), "{out}");
}

#[test]
fn tool_choice_forms() {
    let base = |choice: Value| {
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice})
    };
    assert_eq!(translate(base(json!("auto"))).unwrap().0["tool_choice"], json!({"type": "auto"}));
    assert_eq!(translate(base(json!("none"))).unwrap().0["tool_choice"], json!({"type": "none"}));
    assert_eq!(
        translate(base(json!({"type": "function", "function": {"name": "f"}}))).unwrap().0["tool_choice"],
        json!({"type": "tool", "name": "f"})
    );
    assert!(refused(base(json!({"type": "allowed_tools", "allowed_tools": {}}))).contains("tool_choice"));
}

#[test]
fn images_and_documents() {
    let (out, _) = translate(json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}
    ]}]}))
    .unwrap();
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}
        ])
    );
    let bad = |part: Value| refused(json!({"model": "m", "messages": [{"role": "user", "content": [part]}]}));
    assert!(
        bad(json!({"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}})).contains("image/tiff")
    );
    assert!(bad(json!({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}})).contains("url"));
    assert!(bad(json!({"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}})).contains("input_audio"));
    assert!(bad(json!({"type": "file", "file": {"file_id": "file-1"}})).contains("file_id"));
}

#[test]
fn options_that_translate() {
    let (out, include_usage) = translate(json!({
        "model": "m", "messages": [{"role": "user", "content": "x"}],
        "stop": "END", "temperature": 0.5, "top_p": 0.9, "top_k": 40, "user": "user-42",
        "stream": true, "stream_options": {"include_usage": true},
        "n": 1, "logprobs": false, "presence_penalty": 0, "store": false,
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "strict": true, "schema": {"type": "object"}}}
    }))
    .unwrap();
    assert!(include_usage);
    assert_eq!(out["stop_sequences"], json!(["END"]));
    assert_eq!(
        (out["temperature"].as_f64(), out["top_p"].as_f64(), out["top_k"].as_u64()),
        (Some(0.5), Some(0.9), Some(40))
    );
    assert_eq!(out["metadata"], json!({"user_id": "user-42"}));
    assert_eq!(out["stream"], true);
    assert!(out.get("stream_options").is_none());
    assert_eq!(out["output_config"], json!({"format": {"type": "json_schema", "schema": {"type": "object"}}}));
    let (out, _) =
        translate(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b"]})).unwrap();
    assert_eq!(out["stop_sequences"], json!(["a", "b"]));
    assert!(out.get("stream").is_none());
}

#[test]
fn what_cannot_be_translated_is_refused_by_name() {
    let with = |k: &str, v: Value| {
        let mut b = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        b[k] = v;
        refused(b)
    };
    assert!(with("n", json!(2)).starts_with("n:"));
    assert!(with("logprobs", json!(true)).starts_with("logprobs:"));
    assert!(with("seed", json!(1)).starts_with("seed:"));
    assert!(with("audio", json!({"voice": "alloy"})).starts_with("audio:"));
    assert!(with("reasoning_effort", json!("high")).starts_with("reasoning_effort:"));
    assert!(with("frequency_penalty", json!(0.5)).starts_with("frequency_penalty:"));
    assert!(with("something_new", json!(1)).starts_with("something_new:"));
    assert!(with("response_format", json!({"type": "json_object"})).contains("json_object"));
    assert!(with("temperature", json!(1.5)).contains("0 to 1"));
    assert!(with("max_tokens", json!(-1)).contains("max_tokens"));
    assert!(with("stream_options", json!({"chunk_size": 1})).contains("stream_options.chunk_size"));
    let msg = |m: Value| refused(json!({"model": "m", "messages": [m]}));
    assert!(msg(json!({"role": "user", "content": "x", "name": "bob"})).contains("messages[0].name"));
    assert!(msg(json!({"role": "function", "name": "f", "content": "x"})).contains("function messages"));
    assert!(msg(json!({"role": "user", "content": ""})).contains("messages[0].content"));
    assert!(msg(json!({"role": "assistant", "content": "", "function_call": {"name": "f"}})).contains("function_call"));
    let args = refused(json!({"model": "m", "messages": [{"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]}));
    assert!(args.contains("arguments"), "{args}");
    assert!(
        refused(json!({"model": "m", "messages": [{"role": "system", "content": "only rules"}]})).contains("messages")
    );
    assert!(refused(json!({"model": "m"})).contains("messages"));
    let dup = r#"{"model":"m","messages":[{"role":"user","content":"x","content":"y"}]}"#;
    // A key twice at any depth is refused as the body is read, before any translation.
    let e = RequestDoc::parse(dup.as_bytes()).err();
    assert_eq!(e, Some(crate::ai::body_scan::BodyError::DuplicateField("content".into())));
    assert!(refused(json!({"model": "m", "max_tokens": 5, "max_completion_tokens": 6, "messages": [{"role": "user", "content": "x"}]}))
        .contains("differ"));
}

#[test]
fn nulls_are_absent() {
    let (out, _) = translate(json!({"model": "m", "messages": [{"role": "user", "content": "x", "name": null}],
        "temperature": null, "tools": null, "seed": null, "stream_options": null}))
    .unwrap();
    assert!(out.get("temperature").is_none() && out.get("tools").is_none());
}

#[test]
fn sampling_refused_by_the_api_version() {
    let o = RequestOptions { refuses_sampling: true };
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 1});
    let e = translate_with(body, o).unwrap_err();
    assert!(e.message.starts_with("temperature:") && e.message.contains("2026-10-21"), "{}", e.message);
    assert!(translate_with(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}), o).is_ok());
}

#[test]
fn escapes_survive() {
    let (out, _) = translate(json!({"model": "m", "messages": [
        {"role": "system", "content": "quote \" and \\ and \n"},
        {"role": "user", "content": "emoji 🎉 \u{2028}"}
    ]}))
    .unwrap();
    assert_eq!(out["system"][0]["text"], "quote \" and \\ and \n");
    assert_eq!(out["messages"][0]["content"][0]["text"], "emoji 🎉 \u{2028}");
}
