//! Anthropic answers as Chat Completions answers: a Message as a `chat.completion`, an error as
//! OpenAI's error envelope with the status an OpenAI SDK expects.
//!
//! | Messages | Chat Completions |
//! |---|---|
//! | `id`, `model` | `id`, `model` (the model that answered) |
//! | `text` blocks | `message.content`, joined (null when there is none) |
//! | `tool_use` blocks | `message.tool_calls` (`input` → `arguments` JSON text) |
//! | `thinking`, `redacted_thinking` | left out (OpenAI's format has no place for them) |
//! | `stop_reason` | `finish_reason` ([`super::finish_reason`]) |
//! | `usage` | `prompt_tokens` = input + cache writes + cache reads, `completion_tokens`, `total_tokens`, `prompt_tokens_details.cached_tokens` = cache reads |

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::json::Text;
use super::{finish_reason, openai_error, AnthropicUsage};
use crate::ai::usage::Usage;

/// A translated answer and what accounting needs from it.
#[derive(Debug)]
pub struct ChatAnswer {
    pub body: Vec<u8>,
    pub usage: Option<Usage>,
    pub model: Option<String>,
}

#[derive(Deserialize)]
struct MessageWire<'a> {
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    model: Option<Text<'a>>,
    #[serde(borrow, default)]
    content: Vec<BlockWire<'a>>,
    #[serde(borrow)]
    stop_reason: Option<Text<'a>>,
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct BlockWire<'a> {
    #[serde(rename = "type", borrow)]
    kind: Text<'a>,
    #[serde(borrow)]
    text: Option<Text<'a>>,
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    name: Option<Text<'a>>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<ChatUsage>,
    system_fingerprint: Option<()>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: ChatMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: Option<String>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall<'a>>,
}

#[derive(Serialize)]
pub(super) struct ToolCall<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: Function<'a>,
}

#[derive(Serialize)]
pub(super) struct Function<'a> {
    pub name: &'a str,
    pub arguments: Cow<'a, str>,
}

/// Chat Completions' usage object for Anthropic's counts.
#[derive(Serialize, Debug, Clone, Copy)]
pub(super) struct ChatUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: CachedDetails,
}

#[derive(Serialize, Debug, Clone, Copy)]
pub(super) struct CachedDetails {
    pub cached_tokens: u64,
}

impl ChatUsage {
    pub fn of(u: &Usage) -> ChatUsage {
        ChatUsage {
            prompt_tokens: u.input,
            completion_tokens: u.output,
            total_tokens: u.total,
            prompt_tokens_details: CachedDetails { cached_tokens: u.cached },
        }
    }
}

/// A Messages answer as a `chat.completion` (`created`: the gateway's clock, Anthropic sends
/// none). `Err` when the body is not a Message.
pub fn message_to_chat(body: &[u8], created: u64) -> Result<ChatAnswer, String> {
    let m: MessageWire<'_> = serde_json::from_slice(body).map_err(|e| format!("not an Anthropic message: {e}"))?;
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    for b in &m.content {
        match b.kind.0.as_ref() {
            "text" => {
                let t = b.text.as_ref().map_or("", |t| t.0.as_ref());
                text.get_or_insert_with(String::new).push_str(t);
            }
            "tool_use" => calls.push(ToolCall {
                id: b.id.as_ref().map_or("", |t| t.0.as_ref()),
                kind: "function",
                function: Function {
                    name: b.name.as_ref().map_or("", |t| t.0.as_ref()),
                    arguments: Cow::Borrowed(b.input.map_or("{}", RawValue::get)),
                },
            }),
            // Thinking and other blocks have no place in a chat completion.
            _ => {}
        }
    }
    let usage = m.usage.as_ref().and_then(AnthropicUsage::exact);
    let model = m.model.as_ref().map(|t| t.0.as_ref());
    let out = Completion {
        id: m.id.as_ref().map_or("", |t| t.0.as_ref()),
        object: "chat.completion",
        created,
        model: model.unwrap_or(""),
        choices: [Choice {
            index: 0,
            message: ChatMessage { role: "assistant", content: text, refusal: None, tool_calls: calls },
            logprobs: None,
            finish_reason: finish_reason(m.stop_reason.as_ref().map_or("end_turn", |t| t.0.as_ref())),
        }],
        usage: usage.as_ref().map(ChatUsage::of),
        system_fingerprint: None,
    };
    let body = serde_json::to_vec(&out).map_err(|e| e.to_string())?;
    Ok(ChatAnswer { body, usage, model: model.map(str::to_string) })
}

#[derive(Deserialize)]
struct ErrorWire<'a> {
    #[serde(borrow)]
    error: Option<ErrorDetail<'a>>,
}

#[derive(Deserialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    message: Option<Text<'a>>,
}

#[derive(Serialize)]
struct OpenAiError<'a> {
    error: OpenAiErrorBody<'a>,
}

#[derive(Serialize)]
struct OpenAiErrorBody<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<()>,
    code: Option<&'a str>,
}

/// OpenAI's error body for an error with `message` and Anthropic's `anthropic_type`.
pub fn openai_error_body(status: u16, anthropic_type: &str, message: &str) -> (u16, Vec<u8>) {
    let (status, kind, code) = openai_error(status, anthropic_type);
    let body = OpenAiError { error: OpenAiErrorBody { message, kind, param: None, code } };
    (status, serde_json::to_vec(&body).unwrap_or_default())
}

/// An Anthropic error answer (any body: a proxy in front of Anthropic may answer HTML) as
/// OpenAI's error envelope, with the status the client gets.
pub fn error_to_openai(status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let parsed = serde_json::from_slice::<ErrorWire<'_>>(body).ok().and_then(|w| w.error);
    let kind = parsed.as_ref().and_then(|e| e.kind.as_ref()).map(|k| k.0.as_ref()).unwrap_or("");
    let fallback = format!("the provider answered with status {status}");
    let message = parsed.as_ref().and_then(|e| e.message.as_ref()).map_or(fallback.as_str(), |m| m.0.as_ref());
    openai_error_body(status, kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn text_and_tool_calls() {
        let body = br#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
            "content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"text","text":"Let me check.","citations":null},
            {"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"city":"Paris","units":"c"}}],
            "stop_reason":"tool_use","stop_sequence":null,
            "usage":{"input_tokens":25,"output_tokens":15,"cache_creation_input_tokens":0,"cache_read_input_tokens":10}}"#;
        let a = message_to_chat(body, 1_700_000_000).unwrap();
        let v: Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(
            v,
            json!({"id":"msg_01","object":"chat.completion","created":1_700_000_000u64,"model":"claude-sonnet-4-5-20250929",
                "choices":[{"index":0,"message":{"role":"assistant","content":"Let me check.","refusal":null,
                    "tool_calls":[{"id":"toolu_01","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"units\":\"c\"}"}}]},
                    "logprobs":null,"finish_reason":"tool_calls"}],
                "usage":{"prompt_tokens":35,"completion_tokens":15,"total_tokens":50,"prompt_tokens_details":{"cached_tokens":10}},
                "system_fingerprint":null})
        );
        assert_eq!(a.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
        assert_eq!(a.usage.map(|u| (u.input, u.cached, u.cache_write)), Some((35, 10, 0)));
    }

    #[test]
    fn no_text_is_null_content() {
        let a = message_to_chat(br#"{"id":"m","model":"c","content":[],"stop_reason":"max_tokens","usage":{"input_tokens":1,"output_tokens":0}}"#, 0).unwrap();
        let v: Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());
        assert!(message_to_chat(b"[1]", 0).is_err());
    }

    #[test]
    fn errors() {
        let (s, b) = error_to_openai(
            529,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#,
        );
        assert_eq!(s, 503);
        assert_eq!(
            serde_json::from_slice::<Value>(&b).unwrap(),
            json!({"error":{"message":"Overloaded","type":"server_error","param":null,"code":"overloaded"}})
        );
        let (s, b) = error_to_openai(502, b"<html>bad gateway</html>");
        assert_eq!(s, 502);
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["message"], "the provider answered with status 502");
        assert_eq!(v["error"]["type"], "server_error");
    }
}
