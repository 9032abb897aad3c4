//! Anthropic's Messages API for the local TLS stand-in ([`super::mock_openai::MockOpenAi`]
//! serves it on `/v1/messages` and `/v1/messages/count_tokens`, so one server can be
//! api.anthropic.com): JSON and SSE answers shaped as the `anthropic` SDKs expect them
//! (`event:` lines, `message_start` first, cumulative usage in `message_delta`), Anthropic's
//! error envelope, and a strict check of what it receives — the `anthropic-version` header, the
//! key, and a body in Anthropic's own shape (a request the real API would refuse gets the 400 it
//! would give), so a translation mistake fails a test.
//!
//! Cues (request headers, as for the OpenAI mock): `x-mock-status`, `x-mock-cache: N` (N cache
//! reads and N/2 cache writes in the usage), `x-mock-stream-error: K` (an `error` event after K
//! events), and the OpenAI mock's stream cues (`x-mock-event-gap-ms`, `x-mock-die-after`,
//! `x-mock-hold-after`, `x-mock-deltas`).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::mock_openai::{full, stream_frames, Body, MockState, Recorded, StreamCues};

/// Anthropic's error envelope.
pub fn error(status: u16, kind: &str, message: &str) -> hyper::Response<Body> {
    let mut r = full(
        status,
        "application/json",
        json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_mock_anthropic"})
            .to_string(),
    );
    r.headers_mut().insert("request-id", "req_mock_anthropic".parse().expect("header"));
    if status == 429 {
        r.headers_mut().insert("retry-after", "1".parse().expect("header"));
    }
    r
}

fn kind_for(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// Answer a request to `/v1/messages[...]`.
pub fn handle(st: &Arc<MockState>, rec: &Recorded, path: &str, cues: StreamCues) -> hyper::Response<Body> {
    let Some(version) = rec.header("anthropic-version").map(str::to_string) else {
        return error(400, "invalid_request_error", "anthropic-version: header is required");
    };
    if let Some(expected) = st.expected_key.lock().unwrap().clone() {
        let bearer = format!("Bearer {expected}");
        if rec.header("x-api-key") != Some(expected.as_str()) && rec.header("authorization") != Some(bearer.as_str()) {
            return error(401, "authentication_error", "invalid x-api-key");
        }
    }
    let forced = *st.fail_status.lock().unwrap();
    if let Some(code) = rec.header("x-mock-status").and_then(|v| v.parse::<u16>().ok()).or(forced) {
        return error(code, kind_for(code), &format!("mock status {code}"));
    }
    if rec.method != "POST" {
        return error(405, "invalid_request_error", "method not allowed");
    }
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(&rec.body) else {
        return error(400, "invalid_request_error", "The request body is not valid JSON.");
    };
    let count = path == "/v1/messages/count_tokens";
    if let Err(problem) = check_request(&req, &version, count) {
        return error(400, "invalid_request_error", &problem);
    }
    let input_tokens = (rec.body.len() as u64).div_ceil(4) + 3;
    if count {
        return full(200, "application/json", json!({"input_tokens": input_tokens}).to_string());
    }
    if path != "/v1/messages" {
        return error(404, "not_found_error", "Not found");
    }
    let cache: u64 = rec.header("x-mock-cache").and_then(|v| v.parse().ok()).unwrap_or(0);
    let model = req["model"].as_str().unwrap_or("").to_string();
    let id = format!("msg_mock{:06}", cues.seq);
    let stream_error = rec.header("x-mock-stream-error").and_then(|v| v.parse::<usize>().ok());
    let answer = answer_for(&req, &cues);
    let output_tokens = answer.text.len() as u64 / 4 + 2 + cues.seq % 5;
    let usage = json!({"input_tokens": input_tokens, "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache / 2, "cache_read_input_tokens": cache,
        "service_tier": "standard"});
    st.usage_reported.lock().unwrap().push(usage.clone());
    if req.get("stream").and_then(Value::as_bool) != Some(true) {
        let mut content = vec![json!({"type": "text", "text": answer.text, "citations": null})];
        if let Some((name, input)) = &answer.tool {
            content.push(
                json!({"type": "tool_use", "id": format!("toolu_mock{:04}", cues.seq), "name": name, "input": input}),
            );
        }
        let body = json!({"id": id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": answer.stop_reason, "stop_sequence": null, "usage": usage});
        return full(200, "application/json", body.to_string());
    }
    let mut events: Vec<(&str, Value)> = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": cache / 2, "cache_read_input_tokens": cache, "output_tokens": 1}}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for part in &answer.parts {
        events.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": part}}),
        ));
    }
    events.push(("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
    if let Some((name, input)) = &answer.tool {
        let args = input.to_string();
        let (a, b) = args.split_at(args.len() / 2);
        events.push(("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": format!("toolu_mock{:04}", cues.seq), "name": name, "input": {}}})));
        for fragment in ["", a, b] {
            events.push(("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": fragment}})));
        }
        events.push(("content_block_stop", json!({"type": "content_block_stop", "index": 1})));
    }
    events.push(("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": answer.stop_reason, "stop_sequence": null}, "usage": {"output_tokens": output_tokens}})));
    events.push(("message_stop", json!({"type": "message_stop"})));
    if let Some(k) = stream_error {
        events.truncate(k);
        events
            .push(("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})));
    }
    let frames =
        events.into_iter().map(|(name, data)| Bytes::from(format!("event: {name}\ndata: {data}\n\n"))).collect();
    stream_frames(Some(st.clone()), frames, cues)
}

struct Answer {
    text: String,
    parts: Vec<String>,
    tool: Option<(String, Value)>,
    stop_reason: &'static str,
}

/// What the model "says": a call of the first tool when the last turn is not a tool result,
/// otherwise text that shows what it was given (images, tool results, the system prompt).
fn answer_for(req: &serde_json::Map<String, Value>, cues: &StreamCues) -> Answer {
    let last = req["messages"].as_array().and_then(|m| m.last()).cloned().unwrap_or(Value::Null);
    let blocks: Vec<Value> = match &last["content"] {
        Value::String(s) => vec![json!({"type": "text", "text": s})],
        Value::Array(a) => a.clone(),
        _ => vec![],
    };
    let has = |t: &str| blocks.iter().any(|b| b["type"] == t);
    let tool = req.get("tools").and_then(Value::as_array).and_then(|t| t.first()).cloned();
    let wants_tool =
        tool.is_some() && !has("tool_result") && req.get("tool_choice").map(|c| c["type"] != "none").unwrap_or(true);
    let mut parts: Vec<String> = (0..cues.deltas.max(1)).map(|i| format!("part{i} ")).collect();
    if has("image") {
        parts.insert(0, format!("I see {} image(s). ", blocks.iter().filter(|b| b["type"] == "image").count()));
    }
    if has("tool_result") {
        let results: Vec<String> = blocks
            .iter()
            .filter(|b| b["type"] == "tool_result")
            .map(|b| match &b["content"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        parts.insert(0, format!("Tool said: {}. ", results.join(", ")));
    }
    if let Some(Value::Array(system)) = req.get("system") {
        parts.insert(0, format!("[{} system block(s)] ", system.len()));
    }
    let text: String = parts.concat();
    match (wants_tool, tool) {
        (true, Some(t)) => Answer {
            text: "Let me check.".into(),
            parts: vec!["Let me ".into(), "check.".into()],
            tool: Some((t["name"].as_str().unwrap_or("tool").to_string(), json!({"city": "Paris", "unit": "c"}))),
            stop_reason: "tool_use",
        },
        _ => Answer { text, parts, tool: None, stop_reason: "end_turn" },
    }
}

const TOP_LEVEL: &[&str] = &[
    "model",
    "max_tokens",
    "messages",
    "system",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "metadata",
    "output_config",
    "thinking",
    "service_tier",
    "mcp_servers",
    "container",
];

/// The checks Anthropic's API makes that a translation could get wrong.
fn check_request(req: &serde_json::Map<String, Value>, version: &str, count: bool) -> Result<(), String> {
    for k in req.keys() {
        if !TOP_LEVEL.contains(&k.as_str())
            || (count
                && ["max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences"].contains(&k.as_str()))
        {
            return Err(format!("{k}: Extra inputs are not permitted"));
        }
    }
    if !req.get("model").is_some_and(Value::is_string) {
        return Err("model: Field required".into());
    }
    if !count && !req.get("max_tokens").is_some_and(Value::is_u64) {
        return Err("max_tokens: Field required".into());
    }
    if version >= "2026-10-21" {
        for k in ["temperature", "top_p", "top_k"] {
            if req.contains_key(k) {
                return Err(format!("{k}: not supported with anthropic-version {version}"));
            }
        }
    }
    if req.get("temperature").and_then(Value::as_f64).is_some_and(|t| !(0.0..=1.0).contains(&t)) {
        return Err("temperature: Input should be less than or equal to 1".into());
    }
    match req.get("system") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(blocks)) => {
            for b in blocks {
                text_block(b, "system")?;
            }
        }
        Some(_) => return Err("system: Input should be a valid string or list".into()),
    }
    let Some(messages) = req.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty()) else {
        return Err("messages: Field required".into());
    };
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        if role != "user" && role != "assistant" {
            return Err(format!("messages.{i}.role: Input should be 'user' or 'assistant'"));
        }
        let blocks = match &m["content"] {
            Value::String(s) if !s.is_empty() => continue,
            Value::Array(a) if !a.is_empty() => a,
            _ => return Err(format!("messages.{i}.content: text content blocks must be non-empty")),
        };
        for (j, b) in blocks.iter().enumerate() {
            let at = format!("messages.{i}.content.{j}");
            match (b["type"].as_str(), role) {
                (Some("text"), _) => text_block(b, &at)?,
                (Some("image"), "user") => match b["source"]["type"].as_str() {
                    Some("base64")
                        if ["image/jpeg", "image/png", "image/gif", "image/webp"]
                            .contains(&b["source"]["media_type"].as_str().unwrap_or(""))
                            && b["source"]["data"].is_string() => {}
                    Some("url") if b["source"]["url"].is_string() => {}
                    _ => return Err(format!("{at}.source: invalid image source")),
                },
                (Some("document"), "user") if b["source"]["media_type"] == "application/pdf" => {}
                (Some("tool_use"), "assistant")
                    if b["id"].is_string() && b["name"].is_string() && b["input"].is_object() => {}
                (Some("tool_result"), "user") if b["tool_use_id"].is_string() => {}
                (t, _) => return Err(format!("{at}.type: unexpected block {t:?} for role {role}")),
            }
        }
    }
    if let Some(tools) = req.get("tools") {
        for (i, t) in tools.as_array().into_iter().flatten().enumerate() {
            if !t["name"].is_string()
                || !t["input_schema"].is_object()
                || t.get("parameters").is_some()
                || t.get("function").is_some()
            {
                return Err(format!("tools.{i}: a tool needs name and input_schema"));
            }
        }
    }
    if let Some(c) = req.get("tool_choice") {
        if !["auto", "any", "tool", "none"].contains(&c["type"].as_str().unwrap_or("")) {
            return Err("tool_choice.type: invalid".into());
        }
    }
    Ok(())
}

fn text_block(b: &Value, at: &str) -> Result<(), String> {
    match b["text"].as_str() {
        Some(t) if b["type"] == "text" && !t.is_empty() => Ok(()),
        _ => Err(format!("{at}: text content blocks must be non-empty")),
    }
}
