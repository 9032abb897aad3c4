//! What a provider's answer says about cost and MCP activity: exact token usage (never
//! estimated), the response id, and the MCP items the provider produced on the consumer's behalf.
//! A JSON answer is read once whole, from the bounded side view the gateway kept; a stream is
//! read event by event as it passes ([`StreamFacts`]), keeping nothing of it.

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::anthropic::AnthropicUsage;
use super::provider::Dialect;
use super::sse::{EventName, KeptEvent, SseScanner};

pub use super::usage::Usage;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpItem {
    /// An `mcp_call`: a tool the provider called; `ok` is false when it reported an error.
    Call {
        server_label: String,
        tool: String,
        ok: bool,
    },
    ListTools {
        server_label: String,
        tools: Vec<String>,
        /// Digest of the tool definitions listed (see `store::pins`).
        digest: String,
        /// Each tool's name and the digest of its definition, so a narrowed list can be checked
        /// tool by tool against the pinned full one.
        tool_digests: Vec<(String, String)>,
    },
    ApprovalRequest {
        id: String,
        server_label: String,
        tool: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseFacts {
    pub usage: Option<Usage>,
    pub response_id: Option<String>,
    pub model: Option<String>,
    pub mcp: Vec<McpItem>,
    /// The ids of the response's output items (at most [`MAX_ITEM_IDS`]), which the consumer
    /// may name later (`item_reference`).
    pub item_ids: Vec<String>,
    /// The provider reported a failure inside a 200 stream (`response.failed`, `error`).
    pub failed: bool,
}

/// Output item ids remembered per response or list: enough for any real answer, bounded.
pub const MAX_ITEM_IDS: usize = 256;

#[derive(Deserialize, Default)]
struct UsageWire {
    // Responses API names, then Chat Completions names.
    #[serde(alias = "prompt_tokens")]
    input_tokens: Option<u64>,
    #[serde(alias = "completion_tokens")]
    output_tokens: Option<u64>,
    total_tokens: Option<u64>,
    #[serde(alias = "prompt_tokens_details")]
    input_tokens_details: Option<InputDetails>,
    #[serde(alias = "completion_tokens_details")]
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Deserialize, Default)]
struct InputDetails {
    cached_tokens: Option<u64>,
    cache_write_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
struct OutputDetails {
    reasoning_tokens: Option<u64>,
}

impl UsageWire {
    fn exact(self) -> Option<Usage> {
        let input = self.input_tokens?;
        let output = self.output_tokens?;
        let details = self.input_tokens_details.unwrap_or_default();
        Some(Usage {
            input,
            output,
            total: self.total_tokens.unwrap_or(input + output),
            cached: details.cached_tokens.unwrap_or(0),
            cache_write: details.cache_write_tokens.unwrap_or(0),
            reasoning: self.output_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0),
        })
    }
}

/// A response object (Responses API) or a chat completion / chunk: only what we need.
#[derive(Deserialize, Default)]
struct ResponseWire {
    id: Option<String>,
    model: Option<String>,
    usage: Option<UsageWire>,
    #[serde(default)]
    output: Option<Vec<ItemWire>>,
}

#[derive(Deserialize)]
struct ItemWire {
    #[serde(rename = "type")]
    kind: String,
    server_label: Option<String>,
    name: Option<String>,
    error: Option<serde_json::Value>,
    status: Option<String>,
    tools: Option<Vec<serde_json::Value>>,
    id: Option<String>,
}

impl ItemWire {
    fn into_mcp(self) -> Option<McpItem> {
        let server_label = self.server_label.unwrap_or_default();
        match self.kind.as_str() {
            "mcp_call" => {
                let failed =
                    self.error.as_ref().is_some_and(|e| !e.is_null()) || self.status.as_deref() == Some("failed");
                Some(McpItem::Call { server_label, tool: self.name.unwrap_or_default(), ok: !failed })
            }
            "mcp_list_tools" => {
                let tools = self.tools.unwrap_or_default();
                let name =
                    |t: &serde_json::Value| t.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_string();
                Some(McpItem::ListTools {
                    server_label,
                    digest: tools_digest(&tools),
                    tool_digests: tools.iter().map(|t| (name(t), tool_digest(t))).collect(),
                    tools: tools
                        .iter()
                        .filter_map(|t| t.get("name").and_then(|n| n.as_str()).map(String::from))
                        .collect(),
                })
            }
            "mcp_approval_request" => Some(McpItem::ApprovalRequest {
                id: self.id.unwrap_or_default(),
                server_label,
                tool: self.name.unwrap_or_default(),
            }),
            _ => None,
        }
    }
}

/// An Anthropic Message: only what accounting needs.
#[derive(Deserialize)]
struct AnthropicWire {
    id: Option<String>,
    model: Option<String>,
    usage: Option<AnthropicUsage>,
}

/// Facts from a complete JSON response body in the target's dialect.
pub fn from_json_in(body: &[u8], dialect: Dialect) -> ResponseFacts {
    match dialect {
        Dialect::OpenAi => from_json(body),
        Dialect::Anthropic => match serde_json::from_slice::<AnthropicWire>(body) {
            Ok(w) => ResponseFacts {
                usage: w.usage.as_ref().and_then(AnthropicUsage::exact),
                response_id: w.id,
                model: w.model,
                mcp: Vec::new(),
                item_ids: Vec::new(),
                failed: false,
            },
            Err(_) => ResponseFacts::default(),
        },
    }
}

/// Facts from a complete JSON (non-streamed) response body of an OpenAI-dialect API.
pub fn from_json(body: &[u8]) -> ResponseFacts {
    let Ok(wire) = serde_json::from_slice::<ResponseWire>(body) else {
        return ResponseFacts::default();
    };
    let output = wire.output.unwrap_or_default();
    ResponseFacts {
        usage: wire.usage.and_then(UsageWire::exact),
        response_id: wire.id,
        model: wire.model,
        item_ids: output.iter().filter_map(|i| i.id.clone()).take(MAX_ITEM_IDS).collect(),
        mcp: output.into_iter().filter_map(ItemWire::into_mcp).collect(),
        failed: false,
    }
}

/// The item ids of a list answer (`{"object":"list","data":[{"id":…},…]}`): conversation items,
/// a response's input items.
pub fn list_item_ids(body: &[u8]) -> Vec<String> {
    #[derive(Deserialize)]
    struct List {
        data: Vec<IdOnly>,
    }
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<String>,
    }
    match serde_json::from_slice::<List>(body) {
        Ok(l) => l.data.into_iter().filter_map(|i| i.id).take(MAX_ITEM_IDS).collect(),
        Err(_) => Vec::new(),
    }
}

/// What a kept stream event adds to the consumer's objects: the response it announces, or the
/// id of an output item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventObject {
    Response(String),
    Item(String),
}

/// The object a kept Responses stream event names, read before the event reaches the client.
pub fn object_in_event(event: &KeptEvent) -> Option<EventObject> {
    #[derive(Deserialize)]
    struct Wire {
        #[serde(rename = "type")]
        kind: Option<String>,
        response: Option<IdOnly>,
        item: Option<IdOnly>,
    }
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<String>,
    }
    if matches!(event.name, Some(n) if n != EventName::Created && n != EventName::OutputItemDone) {
        // Named, and not one that creates an object: no need to read it (a completed event
        // repeats the whole answer).
        return None;
    }
    let wire: Wire = serde_json::from_slice(event.data_bytes()).ok()?;
    let name = event.name.or(match wire.kind.as_deref() {
        Some("response.created") => Some(EventName::Created),
        Some("response.output_item.done") => Some(EventName::OutputItemDone),
        _ => None,
    });
    match name? {
        EventName::Created => wire.response?.id.map(EventObject::Response),
        EventName::OutputItemDone => wire.item?.id.map(EventObject::Item),
        _ => None,
    }
}

#[derive(Deserialize)]
struct EventWire {
    #[serde(rename = "type")]
    kind: Option<String>,
    response: Option<ResponseInEvent>,
    item: Option<ItemWire>,
    // Chat chunks carry these at the top level.
    id: Option<String>,
    model: Option<String>,
    usage: Option<UsageWire>,
}

/// Anthropic's `message_start` (`message`) and `message_delta` (`usage`).
#[derive(Deserialize)]
struct AnthropicEventWire {
    message: Option<AnthropicWire>,
    usage: Option<AnthropicUsage>,
}

/// Anthropic's counts as a stream reports them: input and cache at the start, the output
/// (cumulative) in the last `message_delta`.
#[derive(Debug, Default)]
struct AnthropicTally {
    usage: AnthropicUsage,
    reported: bool,
}

/// The response object inside an event; its `output` repeats the whole answer and is skipped
/// (MCP items are counted from `response.output_item.done` events instead).
#[derive(Deserialize)]
struct ResponseInEvent {
    id: Option<String>,
    model: Option<String>,
    usage: Option<UsageWire>,
    #[serde(default)]
    #[allow(dead_code)]
    output: Option<IgnoredAny>,
}

/// What a stream says, read as it passes: the scanner hands over each event that matters as
/// soon as it is complete, its facts are added here and the event is dropped. What stays for
/// the stream's life is the facts (ids, usage, MCP items) and the scanner's bounded buffers.
#[derive(Debug)]
pub struct StreamFacts {
    scanner: SseScanner,
    facts: ResponseFacts,
    /// Anthropic's counts so far (input at the start, output in each `message_delta`).
    anthropic: AnthropicTally,
    /// Objects the events name (a response, its output items), when asked for
    /// ([`StreamFacts::with_objects`]), until taken: ownership is recorded before the bytes
    /// naming them reach the client.
    objects: Option<Vec<EventObject>>,
}

impl StreamFacts {
    /// `limit`: bytes of events read, per category (see [`SseScanner`]).
    pub fn new(limit: usize) -> StreamFacts {
        StreamFacts {
            scanner: SseScanner::new(limit),
            facts: ResponseFacts::default(),
            anthropic: AnthropicTally::default(),
            objects: None,
        }
    }

    /// Also note the objects the events name, for [`StreamFacts::take_objects`].
    pub fn with_objects(mut self) -> StreamFacts {
        self.objects = Some(Vec::new());
        self
    }

    /// The next chunk of the stream, as it goes to the client.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.scanner.feed(chunk);
        self.read_events();
    }

    /// The stream ended (an event not closed by a blank line still counts).
    pub fn finish(&mut self) {
        self.scanner.finish();
        self.read_events();
    }

    fn read_events(&mut self) {
        let (facts, anthropic, objects) = (&mut self.facts, &mut self.anthropic, &mut self.objects);
        for event in self.scanner.take_events() {
            if let Some(objects) = objects.as_mut() {
                objects.extend(object_in_event(&event));
            }
            apply_event(facts, anthropic, &event);
        }
        if anthropic.reported {
            facts.usage = anthropic.usage.exact();
        }
    }

    /// What was read so far (the response id as soon as `response.created` has passed).
    pub fn facts(&self) -> &ResponseFacts {
        &self.facts
    }

    /// The facts, leaving empty ones behind.
    pub fn take_facts(&mut self) -> ResponseFacts {
        std::mem::take(&mut self.facts)
    }

    /// The objects named since the last call (none unless [`StreamFacts::with_objects`]).
    pub fn take_objects(&mut self) -> Vec<EventObject> {
        self.objects.as_mut().map(std::mem::take).unwrap_or_default()
    }

    pub fn scanner(&self) -> &SseScanner {
        &self.scanner
    }
}

/// Facts from a whole stream (tests, benchmarks, fuzzing).
pub fn from_stream(stream: &[u8], limit: usize) -> ResponseFacts {
    let mut s = StreamFacts::new(limit);
    s.feed(stream);
    s.finish();
    s.take_facts()
}

fn apply_event(facts: &mut ResponseFacts, anthropic: &mut AnthropicTally, event: &KeptEvent) {
    let data = event.data_bytes();
    let Ok(wire) = serde_json::from_slice::<EventWire>(data) else {
        return;
    };
    let name = event.name.or(match wire.kind.as_deref() {
        Some("response.created") => Some(EventName::Created),
        Some("response.completed") => Some(EventName::Completed),
        Some("response.incomplete") => Some(EventName::Incomplete),
        Some("response.failed") => Some(EventName::Failed),
        Some("error") => Some(EventName::Error),
        Some("response.output_item.done") => Some(EventName::OutputItemDone),
        Some("message_start") => Some(EventName::MessageStart),
        Some("message_delta") => Some(EventName::MessageDelta),
        _ => None,
    });
    match name {
        Some(EventName::MessageStart | EventName::MessageDelta) => {
            let Ok(a) = serde_json::from_slice::<AnthropicEventWire>(data) else { return };
            if let Some(m) = a.message {
                facts.response_id = facts.response_id.take().or(m.id);
                if m.model.is_some() {
                    facts.model = m.model;
                }
                if let Some(u) = &m.usage {
                    anthropic.usage.update(u);
                }
            }
            if let (Some(EventName::MessageDelta), Some(u)) = (name, &a.usage) {
                anthropic.usage.update(u);
                anthropic.reported = true;
            }
        }
        Some(EventName::OutputItemDone) => {
            if let Some(item) = wire.item.and_then(ItemWire::into_mcp) {
                facts.mcp.push(item);
            }
        }
        Some(EventName::Error) => facts.failed = true,
        Some(n @ (EventName::Created | EventName::Completed | EventName::Incomplete | EventName::Failed)) => {
            if n == EventName::Failed {
                facts.failed = true;
            }
            if let Some(r) = wire.response {
                if facts.response_id.is_none() {
                    facts.response_id = r.id;
                }
                if r.model.is_some() {
                    facts.model = r.model;
                }
                if let Some(u) = r.usage.and_then(UsageWire::exact) {
                    facts.usage = Some(u);
                }
            }
        }
        None => {
            // A chat chunk with usage (the last one; some servers report zeros before it).
            if let Some(u) = wire.usage.and_then(UsageWire::exact) {
                if facts.usage.is_none() || u.total > 0 || u.input > 0 || u.output > 0 {
                    facts.usage = Some(u);
                }
            }
            if facts.response_id.is_none() {
                facts.response_id = wire.id;
            }
            if wire.model.is_some() {
                facts.model = wire.model;
            }
        }
    }
}

pub use crate::mcp::tools::{tool_digest, tools_digest};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_json_with_mcp_items() {
        let body = br#"{"id":"resp_1","object":"response","model":"gpt-4o-2024-08-06","output":[
            {"type":"mcp_list_tools","server_label":"gitmcp","tools":[{"name":"search_code","input_schema":{}},{"name":"get_issue"}]},
            {"type":"mcp_call","server_label":"gitmcp","name":"search_code","arguments":"{}","output":"...","error":null},
            {"type":"mcp_call","server_label":"gitmcp","name":"get_issue","arguments":"{}","output":null,"error":"boom"},
            {"type":"mcp_approval_request","server_label":"gitmcp","name":"create_pr","arguments":"{}"},
            {"type":"message","content":[{"type":"output_text","text":"hi"}]}],
            "usage":{"input_tokens":11,"input_tokens_details":{"cached_tokens":4},"output_tokens":7,"output_tokens_details":{"reasoning_tokens":2},"total_tokens":18}}"#;
        let f = from_json(body);
        assert_eq!(f.usage, Some(Usage { input: 11, output: 7, total: 18, cached: 4, cache_write: 0, reasoning: 2 }));
        assert_eq!(f.response_id.as_deref(), Some("resp_1"));
        assert_eq!(f.mcp.len(), 4);
        // Output items without an id are simply not remembered.
        assert!(f.item_ids.is_empty());
        assert_eq!(
            f.mcp[0],
            McpItem::ListTools {
                server_label: "gitmcp".into(),
                tools: vec!["search_code".into(), "get_issue".into()],
                digest: tools_digest(&[
                    serde_json::json!({"name":"search_code","input_schema":{}}),
                    serde_json::json!({"name":"get_issue"})
                ]),
                tool_digests: vec![
                    ("search_code".into(), tool_digest(&serde_json::json!({"name":"search_code","input_schema":{}}))),
                    ("get_issue".into(), tool_digest(&serde_json::json!({"name":"get_issue"}))),
                ],
            }
        );
        assert_eq!(f.mcp[1], McpItem::Call { server_label: "gitmcp".into(), tool: "search_code".into(), ok: true });
        assert_eq!(f.mcp[2], McpItem::Call { server_label: "gitmcp".into(), tool: "get_issue".into(), ok: false });
    }

    #[test]
    fn chat_json() {
        let f = from_json(br#"{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8,"prompt_tokens_details":{"cached_tokens":1}}}"#);
        assert_eq!(f.usage, Some(Usage { input: 5, output: 3, total: 8, cached: 1, cache_write: 0, reasoning: 0 }));
    }

    #[test]
    fn missing_or_partial_usage_is_none_not_a_guess() {
        assert_eq!(from_json(br#"{"id":"x","output":[]}"#).usage, None);
        assert_eq!(from_json(br#"{"usage":{"input_tokens":3}}"#).usage, None);
        assert_eq!(from_json(b"not json").usage, None);
        assert_eq!(from_json(br#"{"usage":null}"#).usage, None);
    }

    fn scan(stream: &str) -> ResponseFacts {
        // Whole, and a byte at a time: the same facts.
        let whole = from_stream(stream.as_bytes(), 1 << 20);
        let mut s = StreamFacts::new(1 << 20);
        for b in stream.as_bytes().chunks(1) {
            s.feed(b);
        }
        s.finish();
        assert_eq!(s.take_facts(), whole);
        whole
    }

    #[test]
    fn responses_stream() {
        let f = scan(concat!(
            "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_9\",\"model\":\"gpt-4o\",\"usage\":null}}\n\n",
            "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"item\":{\"type\":\"mcp_call\",\"server_label\":\"gitmcp\",\"name\":\"search\",\"error\":null}}\n\n",
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"x\"}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_9\",\"output\":[{\"type\":\"mcp_call\"}],\"usage\":{\"input_tokens\":20,\"output_tokens\":30,\"total_tokens\":50}}}\n\n",
        ));
        assert_eq!(f.response_id.as_deref(), Some("resp_9"));
        assert_eq!(f.usage.map(|u| u.total), Some(50));
        // Counted once, from the item event, not again from response.completed's output.
        assert_eq!(f.mcp.len(), 1);
        assert!(!f.failed);
    }

    #[test]
    fn chat_stream_usage_chunk() {
        let f = scan("data: {\"id\":\"c1\",\"choices\":[{}],\"usage\":null}\n\ndata: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":4,\"total_tokens\":6}}\n\ndata: [DONE]\n\n");
        assert_eq!(f.usage.map(|u| (u.input, u.output, u.total)), Some((2, 4, 6)));
        let f = scan("data: {\"id\":\"c1\",\"choices\":[{}]}\n\ndata: [DONE]\n\n");
        assert_eq!(f.usage, None);
    }

    #[test]
    fn anthropic_json_and_stream() {
        let body = br#"{"id":"msg_1","type":"message","model":"claude-x","content":[],"usage":{"input_tokens":10,"output_tokens":4,"cache_creation_input_tokens":20,"cache_read_input_tokens":30}}"#;
        let f = from_json_in(body, Dialect::Anthropic);
        assert_eq!(f.usage, Some(Usage { input: 60, output: 4, total: 64, cached: 30, cache_write: 20, reasoning: 0 }));
        assert_eq!(f.model.as_deref(), Some("claude-x"));
        // Read as OpenAI's, the same body would under-count the input: the dialect matters.
        assert_eq!(from_json(body).usage.map(|u| u.input), Some(10));
        let f = scan(concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":null},\"usage\":{\"output_tokens\":7}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ));
        assert_eq!(f.usage.map(|u| (u.input, u.output, u.total, u.cached)), Some((30, 15, 45, 5)));
        assert_eq!(f.response_id.as_deref(), Some("msg_2"));
        // Started but never reported: no usage, not message_start's placeholder output.
        let f = scan("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n");
        assert_eq!(f.usage, None);
    }

    #[test]
    fn usage_in_every_chunk_keeps_the_last_real_one() {
        let mut stream = String::new();
        for i in 0..500 {
            stream.push_str(&format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"x\"}}}}],\"usage\":{{\"prompt_tokens\":0,\"completion_tokens\":0,\"total_tokens\":0,\"n\":{i}}}}}\n\n"));
        }
        stream.push_str(
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":500,\"total_tokens\":509}}\n\n",
        );
        stream.push_str("data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":0,\"completion_tokens\":0,\"total_tokens\":0}}\n\n");
        let mut s = StreamFacts::new(4096);
        s.feed(stream.as_bytes());
        s.finish();
        // Each report is read and dropped: 500 of them never exhaust the limit.
        assert!(!s.scanner().overflowed && s.scanner().held_bytes() < 4096);
        assert_eq!(s.take_facts().usage.map(|u| u.total), Some(509));
    }

    #[test]
    fn failures_in_streams() {
        let f = scan("event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"id\":\"r\",\"usage\":null}}\n\n");
        assert!(f.failed);
        assert_eq!(f.usage, None);
        assert!(scan("event: error\ndata: {\"type\":\"error\",\"message\":\"x\"}\n\n").failed);
    }

    #[test]
    fn ids_an_answer_creates() {
        let f = from_json(br#"{"id":"resp_1","output":[{"type":"message","id":"msg_1"},{"type":"reasoning","id":"rs_1"},{"type":"x"}]}"#);
        assert_eq!(f.item_ids, vec!["msg_1".to_string(), "rs_1".to_string()]);
        let many: Vec<String> = (0..300).map(|i| format!("{{\"type\":\"message\",\"id\":\"msg_{i}\"}}")).collect();
        let f = from_json(format!("{{\"output\":[{}]}}", many.join(",")).as_bytes());
        assert_eq!(f.item_ids.len(), MAX_ITEM_IDS);
        assert_eq!(
            list_item_ids(
                br#"{"object":"list","data":[{"id":"msg_a","type":"message"},{"id":"msg_b"}],"has_more":false}"#
            ),
            vec!["msg_a".to_string(), "msg_b".to_string()]
        );
        assert!(list_item_ids(b"not json").is_empty());
        let events: Vec<KeptEvent> = {
            let mut s = SseScanner::new(1 << 20);
            s.feed(concat!(
                "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_9\"}}\n\n",
                "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"item\":{\"id\":\"msg_9\",\"type\":\"message\"}}\n\n",
                "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_9\"}}\n\n",
                "data: {\"type\":\"response.output_item.done\",\"item\":{\"id\":\"fc_9\"}}\n\n",
            ).as_bytes());
            s.finish();
            s.take_events().collect()
        };
        let objects: Vec<Option<EventObject>> = events.iter().map(object_in_event).collect();
        assert_eq!(
            objects,
            vec![
                Some(EventObject::Response("resp_9".into())),
                Some(EventObject::Item("msg_9".into())),
                None,
                Some(EventObject::Item("fc_9".into())),
            ]
        );
    }
}
