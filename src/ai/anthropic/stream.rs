//! An Anthropic Messages stream as a Chat Completions stream, event by event as the bytes
//! arrive (any chunk boundaries; nothing is held but the event being read, bounded):
//!
//! | Anthropic event | Chat Completions chunk |
//! |---|---|
//! | `message_start` | the role chunk (`delta: {role: "assistant", content: ""}`) |
//! | `content_block_start` `text` | its text, if any |
//! | `content_block_delta` `text_delta` | `delta.content` |
//! | `content_block_start` `tool_use` | `delta.tool_calls[{index, id, type, function: {name, arguments: ""}}]` (index counts tool calls from 0) |
//! | `content_block_delta` `input_json_delta` | `delta.tool_calls[{index, function: {arguments: fragment}}]` |
//! | `message_delta` | `delta: {}` with `finish_reason` |
//! | `message_stop` | the usage chunk (`choices: []`) when the client asked for it, then `data: [DONE]` |
//! | `error` | `data: {"error": {...}}` (the SDKs raise it) |
//! | `ping`, thinking, unknown events | nothing |
//!
//! Usage is counted whatever the client asked: input and cache counts from `message_start`,
//! the output (cumulative) from the last `message_delta`.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::Text;
use super::response::ChatUsage;
use super::{finish_reason, openai_error, AnthropicUsage};
use crate::ai::usage::Usage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before `message_start`.
    Waiting,
    Streaming,
    /// `message_stop` was translated: `[DONE]` is out.
    Done,
    /// An error event, an unreadable or oversized event, or a cut stream.
    Failed,
}

pub struct StreamTranslator {
    include_usage: bool,
    created: u64,
    limit: usize,
    /// The start of a line whose end has not arrived.
    line: Vec<u8>,
    /// The current event's data (its `data:` lines joined by `\n`).
    data: Vec<u8>,
    has_data: bool,
    state: State,
    /// `{"id":…,"object":"chat.completion.chunk",…,"choices":[{"index":0,"delta":` for this
    /// message, written once at `message_start`.
    prefix: Vec<u8>,
    /// `…,"choices":[]` half of the usage chunk.
    usage_prefix: Vec<u8>,
    model: Option<String>,
    /// Anthropic's content block index of each tool call, in tool-call order.
    tools: Vec<u32>,
    usage: AnthropicUsage,
    saw_message_delta: bool,
}

#[derive(Deserialize)]
struct EventWire<'a> {
    #[serde(rename = "type", borrow)]
    kind: Text<'a>,
    #[serde(borrow)]
    message: Option<MessageWire<'a>>,
    index: Option<u32>,
    #[serde(borrow)]
    content_block: Option<BlockWire<'a>>,
    #[serde(borrow)]
    delta: Option<DeltaWire<'a>>,
    usage: Option<AnthropicUsage>,
    #[serde(borrow)]
    error: Option<ErrorWire<'a>>,
}

#[derive(Deserialize)]
struct MessageWire<'a> {
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    model: Option<Text<'a>>,
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct BlockWire<'a> {
    #[serde(rename = "type", borrow)]
    kind: Text<'a>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    text: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct DeltaWire<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    text: Option<&'a RawValue>,
    #[serde(borrow)]
    partial_json: Option<&'a RawValue>,
    #[serde(borrow)]
    stop_reason: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct ErrorWire<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    message: Option<Text<'a>>,
}

const TOO_LARGE: &str = "the provider sent a stream event larger than the gateway reads";

const CHOICE_END: &[u8] = b",\"logprobs\":null,\"finish_reason\":null}]}\n\n";

/// A raw JSON value that is a string literal (safe to embed as one).
fn json_string(raw: Option<&RawValue>) -> Option<&str> {
    raw.map(RawValue::get).filter(|s| s.starts_with('"'))
}

impl StreamTranslator {
    /// `include_usage`: the client asked for the usage chunk; `created`: the chunks' timestamp;
    /// `limit`: the largest event (bytes) read before the stream is failed.
    pub fn new(include_usage: bool, created: u64, limit: usize) -> StreamTranslator {
        StreamTranslator {
            include_usage,
            created,
            limit,
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            state: State::Waiting,
            prefix: Vec::new(),
            usage_prefix: Vec::new(),
            model: None,
            tools: Vec::new(),
            usage: AnthropicUsage::default(),
            saw_message_delta: false,
        }
    }

    /// Translate the next chunk of the upstream stream, appending what the client gets to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut start = 0;
        while start < chunk.len() && !self.finished() {
            match memchr::memchr(b'\n', &chunk[start..]) {
                Some(off) => {
                    let end = start + off;
                    if self.line.is_empty() {
                        // The same limit as a line held across chunks: chunking never matters.
                        if end - start > self.limit {
                            self.fail(out, "server_error", TOO_LARGE);
                        } else {
                            self.on_line(&chunk[start..end], out);
                        }
                    } else if self.hold(&chunk[start..end], out) {
                        let line = std::mem::take(&mut self.line);
                        self.on_line(&line, out);
                        self.line = line;
                        self.line.clear();
                    }
                    start = end + 1;
                }
                None => {
                    self.hold(&chunk[start..], out);
                    break;
                }
            }
        }
    }

    /// The upstream stream ended: an unterminated last event still counts; a stream that never
    /// reached `message_stop` ends with an error the client's SDK raises.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.on_line(&line, out);
        }
        self.dispatch(out);
        if matches!(self.state, State::Waiting | State::Streaming) {
            self.fail(out, "server_error", "the provider's stream ended before the message was complete");
        }
    }

    /// Exact usage: only once a `message_delta` reported the output.
    pub fn usage(&self) -> Option<Usage> {
        self.saw_message_delta.then(|| self.usage.exact()).flatten()
    }

    /// The model that answered (`message_start`).
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The stream failed (an error event, an event over the limit, or cut short).
    pub fn failed(&self) -> bool {
        self.state == State::Failed
    }

    fn finished(&self) -> bool {
        matches!(self.state, State::Done | State::Failed)
    }

    /// Keep part of a line; false (and the stream failed) when it would pass the limit.
    fn hold(&mut self, piece: &[u8], out: &mut Vec<u8>) -> bool {
        if self.line.len() + piece.len() > self.limit {
            self.fail(out, "server_error", TOO_LARGE);
            return false;
        }
        self.line.extend_from_slice(piece);
        true
    }

    fn on_line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        // `event:` names repeat the data's `type`, which is what is read; comments and other
        // fields carry nothing to translate.
        let Some(value) = line.strip_prefix(b"data:") else { return };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if self.data.len() + value.len() + 1 > self.limit {
            self.fail(out, "server_error", TOO_LARGE);
            return;
        }
        if self.has_data {
            self.data.push(b'\n');
        }
        self.data.extend_from_slice(value);
        self.has_data = true;
    }

    fn dispatch(&mut self, out: &mut Vec<u8>) {
        if !self.has_data || self.finished() {
            self.data.clear();
            self.has_data = false;
            return;
        }
        let data = std::mem::take(&mut self.data);
        self.has_data = false;
        match serde_json::from_slice::<EventWire<'_>>(&data) {
            Ok(ev) => self.event(ev, out),
            Err(_) => self.fail(out, "server_error", "the provider sent a stream event that is not JSON"),
        }
        self.data = data;
        self.data.clear();
    }

    fn event(&mut self, ev: EventWire<'_>, out: &mut Vec<u8>) {
        match (ev.kind.0.as_ref(), self.state) {
            ("message_start", State::Waiting) => {
                let m = ev.message;
                let id = m.as_ref().and_then(|m| m.id.as_ref()).map_or("", |t| t.0.as_ref());
                let model = m.as_ref().and_then(|m| m.model.as_ref()).map_or("", |t| t.0.as_ref());
                if let Some(u) = m.as_ref().and_then(|m| m.usage.as_ref()) {
                    self.usage.update(u);
                }
                self.model = Some(model.to_string());
                let head = format!(
                    "{{\"id\":{},\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{},\"system_fingerprint\":null,\"choices\":",
                    serde_json::to_string(id).unwrap_or_default(),
                    self.created,
                    serde_json::to_string(model).unwrap_or_default(),
                );
                self.usage_prefix = format!("data: {head}[]").into_bytes();
                self.prefix = format!("data: {head}[{{\"index\":0,\"delta\":").into_bytes();
                self.state = State::Streaming;
                self.chunk(out, b"{\"role\":\"assistant\",\"content\":\"\"}");
            }
            ("content_block_start", State::Streaming) => {
                let Some(b) = ev.content_block else { return };
                match b.kind.0.as_ref() {
                    "text" => {
                        if let Some(t) = json_string(b.text).filter(|t| *t != "\"\"") {
                            self.content(out, t);
                        }
                    }
                    "tool_use" => {
                        let k = self.tools.len();
                        self.tools.push(ev.index.unwrap_or(u32::MAX));
                        let id = json_string(b.id).unwrap_or("\"\"");
                        let name = json_string(b.name).unwrap_or("\"\"");
                        let delta = format!(
                            "{{\"tool_calls\":[{{\"index\":{k},\"id\":{id},\"type\":\"function\",\"function\":{{\"name\":{name},\"arguments\":\"\"}}}}]}}"
                        );
                        self.chunk(out, delta.as_bytes());
                    }
                    // Thinking and server-tool blocks have no place in a chat stream.
                    _ => {}
                }
            }
            ("content_block_delta", State::Streaming) => {
                let Some(d) = ev.delta else { return };
                match d.kind.as_ref().map(|k| k.0.as_ref()) {
                    Some("text_delta") => {
                        if let Some(t) = json_string(d.text) {
                            self.content(out, t);
                        }
                    }
                    Some("input_json_delta") => {
                        let Some(fragment) = json_string(d.partial_json).filter(|f| *f != "\"\"") else { return };
                        let Some(k) = ev.index.and_then(|i| self.tools.iter().position(|&b| b == i)) else { return };
                        let delta =
                            format!("{{\"tool_calls\":[{{\"index\":{k},\"function\":{{\"arguments\":{fragment}}}}}]}}");
                        self.chunk(out, delta.as_bytes());
                    }
                    _ => {}
                }
            }
            ("message_delta", State::Streaming) => {
                if let Some(u) = &ev.usage {
                    self.usage.update(u);
                    self.saw_message_delta = true;
                }
                if let Some(reason) = ev.delta.as_ref().and_then(|d| d.stop_reason.as_ref()) {
                    out.extend_from_slice(&self.prefix);
                    out.extend_from_slice(b"{},\"logprobs\":null,\"finish_reason\":\"");
                    out.extend_from_slice(finish_reason(&reason.0).as_bytes());
                    out.extend_from_slice(b"\"}]}\n\n");
                }
            }
            ("message_stop", State::Streaming) => {
                if self.include_usage {
                    if let Some(u) = self.usage() {
                        let chat = ChatUsage::of(&u);
                        out.extend_from_slice(&self.usage_prefix);
                        out.extend_from_slice(b",\"usage\":");
                        let _ = serde_json::to_writer(&mut *out, &chat);
                        out.extend_from_slice(b"}\n\n");
                    }
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.state = State::Done;
            }
            ("error", _) => {
                let e = ev.error;
                let kind = e.as_ref().and_then(|e| e.kind.as_ref()).map_or("api_error", |k| k.0.as_ref()).to_string();
                let message = e
                    .as_ref()
                    .and_then(|e| e.message.as_ref())
                    .map_or("the provider failed while streaming", |m| m.0.as_ref())
                    .to_string();
                self.fail(out, &kind, &message);
            }
            // ping, and events this translator does not know (Anthropic may add some).
            _ => {}
        }
    }

    fn chunk(&self, out: &mut Vec<u8>, delta: &[u8]) {
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(delta);
        out.extend_from_slice(CHOICE_END);
    }

    fn content(&self, out: &mut Vec<u8>, json_text: &str) {
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(b"{\"content\":");
        out.extend_from_slice(json_text.as_bytes());
        out.push(b'}');
        out.extend_from_slice(CHOICE_END);
    }

    /// End the client's stream with an error in OpenAI's shape (the SDKs raise it).
    fn fail(&mut self, out: &mut Vec<u8>, anthropic_type: &str, message: &str) {
        if self.finished() {
            return;
        }
        self.state = State::Failed;
        let (_, kind, code) = openai_error(500, anthropic_type);
        #[derive(serde::Serialize)]
        struct E<'a> {
            error: Inner<'a>,
        }
        #[derive(serde::Serialize)]
        struct Inner<'a> {
            message: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
            param: Option<()>,
            code: Option<&'a str>,
        }
        out.extend_from_slice(b"data: ");
        let _ = serde_json::to_writer(&mut *out, &E { error: Inner { message, kind, param: None, code } });
        out.extend_from_slice(b"\n\n");
    }
}

#[cfg(test)]
mod tests;
