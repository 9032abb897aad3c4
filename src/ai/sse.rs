//! A side view of a Server-Sent Events stream: it finds the few events that carry accounting
//! facts (usage, MCP items, the response id, failures) while the bytes flow to the client
//! untouched, and hands each such event over as soon as it is complete ([`SseScanner::take_events`]),
//! to be read and dropped. Nothing of the stream is kept on the side: not the chunks (a kept
//! slice would keep its whole read buffer alive for the stream's life), only copies of the
//! lines it needs — the event being read, and a line cut by a chunk boundary — each bounded.
//!
//! It is an incremental framer: other transforms of a stream (rewriting, translating,
//! filtering events) can sit beside it, feeding it the bytes they pass on.

use bytes::Bytes;

/// One complete event that matters for accounting: its `event:` name (if any) and its data
/// (data lines joined with `\n`), a copy of the stream's bytes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeptEvent {
    pub name: Option<EventName>,
    pub data: Bytes,
}

impl KeptEvent {
    /// The data, contiguous.
    pub fn data_bytes(&self) -> &[u8] {
        &self.data
    }
}

/// The event names worth keeping: the Responses API's, and Anthropic's usage reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    Created,
    Completed,
    Incomplete,
    Failed,
    Error,
    OutputItemDone,
    /// Anthropic: input and cache counts.
    MessageStart,
    /// Anthropic: the cumulative output count (only the last one matters).
    MessageDelta,
}

impl EventName {
    fn parse(name: &[u8]) -> Option<EventName> {
        Some(match name {
            b"response.created" => EventName::Created,
            b"response.completed" => EventName::Completed,
            b"response.incomplete" => EventName::Incomplete,
            b"response.failed" => EventName::Failed,
            b"error" => EventName::Error,
            b"response.output_item.done" => EventName::OutputItemDone,
            b"message_start" => EventName::MessageStart,
            b"message_delta" => EventName::MessageDelta,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interest {
    /// No `event:` line seen yet: decide on the data (chat streams have no event names).
    Undecided,
    Keep(Option<EventName>),
    Skip,
}

#[derive(Debug)]
pub struct SseScanner {
    limit: usize,
    /// Bytes read of the final event being read (completed, failed, usage reports: each is read
    /// and dropped, and a later one replaces it, so each has `limit` bytes — a server that puts
    /// usage in every chunk of a long stream never runs out), and of the others over the whole
    /// stream (their facts add up: `limit` bytes, and many MCP items cannot crowd out the usage).
    kept_final: usize,
    kept_other: usize,
    /// A line cut by a chunk boundary, copied (a skipped event's only up to 16 bytes).
    partial: Vec<u8>,
    partial_truncated: bool,
    interest: Interest,
    /// The data of the event being read, when it is kept (copied).
    data: Vec<u8>,
    data_lines: usize,
    /// Complete events not yet taken.
    ready: Vec<KeptEvent>,
    /// An event worth keeping was dropped because of the limit.
    pub overflowed: bool,
    /// `data: [DONE]` was seen (chat streams).
    pub done_marker: bool,
    /// The top-level `id` of the first data line of an unnamed event (a chat stream's
    /// completion id), read as soon as that line is complete.
    pub first_data_id: Option<String>,
    first_data_seen: bool,
    pub bytes_seen: u64,
}

impl SseScanner {
    pub fn new(limit: usize) -> SseScanner {
        SseScanner {
            limit,
            kept_final: 0,
            kept_other: 0,
            partial: Vec::new(),
            partial_truncated: false,
            interest: Interest::Undecided,
            data: Vec::new(),
            data_lines: 0,
            ready: Vec::new(),
            overflowed: false,
            done_marker: false,
            first_data_id: None,
            first_data_seen: false,
            bytes_seen: 0,
        }
    }

    /// Look at the next chunk of the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.bytes_seen += bytes.len() as u64;
        let mut start = 0;
        while start < bytes.len() {
            match memchr::memchr(b'\n', &bytes[start..]) {
                Some(off) => {
                    let end = start + off;
                    if self.partial.is_empty() && !self.partial_truncated {
                        self.line(&bytes[start..end]);
                    } else {
                        self.push_partial(&bytes[start..end]);
                        self.complete_partial();
                    }
                    start = end + 1;
                }
                None => {
                    self.push_partial(&bytes[start..]);
                    break;
                }
            }
        }
    }

    /// Bytes the scanner holds: a cut line and the event being read (for tests and
    /// measurements).
    pub fn held_bytes(&self) -> usize {
        self.partial.capacity() + self.data.capacity() + self.ready.iter().map(|e| e.data.len()).sum::<usize>()
    }

    /// The events completed so far and not yet taken, in order.
    pub fn take_events(&mut self) -> std::vec::Drain<'_, KeptEvent> {
        self.ready.drain(..)
    }

    /// The stream ended: an event not closed by a blank line still counts.
    pub fn finish(&mut self) {
        if !self.partial.is_empty() || self.partial_truncated {
            self.complete_partial();
        }
        self.end_event();
    }

    /// Hold a piece of a line cut by a chunk boundary. A skipped event's line needs only its
    /// first bytes (to tell a blank line from another); any line is held up to the limit.
    fn push_partial(&mut self, piece: &[u8]) {
        let cap = if self.interest == Interest::Skip { 16 } else { self.limit };
        let room = cap.saturating_sub(self.partial.len());
        if piece.len() > room {
            self.partial_truncated = true;
            self.partial.extend_from_slice(&piece[..room]);
            return;
        }
        self.partial.extend_from_slice(piece);
    }

    /// The cut line is complete. Its buffer is let go (lines are cut only at chunk boundaries,
    /// so this allocates once per chunk at most, and holds nothing between chunks).
    fn complete_partial(&mut self) {
        let line = std::mem::take(&mut self.partial);
        let truncated = std::mem::take(&mut self.partial_truncated);
        if truncated {
            // A line longer than the limit: a kept event cannot be read whole any more.
            if let Interest::Keep(_) = self.interest {
                self.drop_current_event();
            }
        } else {
            self.line(&line);
        }
    }

    fn line(&mut self, mut line: &[u8]) {
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if line.is_empty() {
            self.end_event();
            return;
        }
        let (field, value) = split_field(line);
        match field {
            b"event" => {
                self.interest = match EventName::parse(value) {
                    Some(name) => Interest::Keep(Some(name)),
                    None => Interest::Skip,
                };
            }
            b"data" => match self.interest {
                Interest::Skip => {}
                Interest::Keep(_) => self.keep_data(value),
                Interest::Undecided => {
                    if !self.first_data_seen {
                        self.first_data_seen = true;
                        self.first_data_id = top_level_id(value);
                    }
                    if value == b"[DONE]" {
                        self.done_marker = true;
                    } else if has_usage_object(value) || has_type_worth_keeping(value) {
                        self.interest = Interest::Keep(None);
                        self.keep_data(value);
                    }
                }
            },
            _ => {}
        }
    }

    fn keep_data(&mut self, data: &[u8]) {
        let is_final = matches!(
            self.interest,
            Interest::Keep(
                None | Some(
                    EventName::Completed
                        | EventName::Failed
                        | EventName::Incomplete
                        | EventName::Error
                        | EventName::MessageStart
                        | EventName::MessageDelta
                )
            )
        );
        let kept = if is_final { &mut self.kept_final } else { &mut self.kept_other };
        if *kept + data.len() + 1 > self.limit {
            self.drop_current_event();
            return;
        }
        *kept += data.len() + 1;
        if self.data_lines > 0 {
            self.data.push(b'\n');
        }
        self.data_lines += 1;
        self.data.extend_from_slice(data);
    }

    fn drop_current_event(&mut self) {
        self.overflowed = true;
        self.interest = Interest::Skip;
        self.data = Vec::new();
        self.data_lines = 0;
    }

    fn end_event(&mut self) {
        if let Interest::Keep(name) = self.interest {
            if self.data_lines > 0 {
                let data = Bytes::from(std::mem::take(&mut self.data));
                self.ready.push(KeptEvent { name, data });
            }
        }
        self.data.clear();
        self.data_lines = 0;
        self.kept_final = 0;
        self.interest = Interest::Undecided;
    }
}

/// The top-level `"id"` of a JSON object, wherever it is among its fields.
fn top_level_id(data: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<String>,
    }
    serde_json::from_slice::<IdOnly>(data).ok()?.id
}

/// Split `field: value` (one optional space after the colon, as the SSE spec says).
fn split_field(line: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b':', line) {
        Some(i) => {
            let value = &line[i + 1..];
            (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
        }
        None => (line, &[]),
    }
}

/// A chat chunk carrying usage: `"usage":{` (compact) or `"usage": {`.
fn has_usage_object(data: &[u8]) -> bool {
    let finder = memchr::memmem::Finder::new(b"\"usage\"");
    let mut from = 0;
    while let Some(i) = finder.find(&data[from..]) {
        let mut j = from + i + 7;
        while data.get(j).is_some_and(|b| b.is_ascii_whitespace()) {
            j += 1;
        }
        if data.get(j) == Some(&b':') {
            j += 1;
            while data.get(j).is_some_and(|b| b.is_ascii_whitespace()) {
                j += 1;
            }
            if data.get(j) == Some(&b'{') {
                return true;
            }
        }
        from += i + 7;
    }
    false
}

/// A Responses event without an `event:` line (some proxies drop it): keep it by its `type`.
fn has_type_worth_keeping(data: &[u8]) -> bool {
    const TYPES: &[&[u8]] = &[
        b"\"type\":\"response.completed\"",
        b"\"type\":\"response.created\"",
        b"\"type\":\"response.failed\"",
        b"\"type\":\"response.incomplete\"",
        b"\"type\":\"response.output_item.done\"",
        b"\"type\":\"error\"",
        b"\"type\":\"message_start\"",
        b"\"type\":\"message_delta\"",
    ];
    // The type comes first in OpenAI's events; look only at the start to stay cheap.
    let head = &data[..data.len().min(64)];
    TYPES.iter().any(|t| memchr::memmem::find(head, t).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `stream` in pieces of `piece` bytes, taking the events as they complete.
    fn scan_in_pieces(stream: &[u8], piece: usize, limit: usize) -> (SseScanner, Vec<KeptEvent>) {
        let mut s = SseScanner::new(limit);
        let mut events = Vec::new();
        for p in stream.chunks(piece.max(1)) {
            s.feed(p);
            events.extend(s.take_events());
        }
        s.finish();
        events.extend(s.take_events());
        (s, events)
    }

    const RESPONSES: &str = concat!(
        "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\"}}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hel\"}\n\n",
        "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"item\":{\"type\":\"mcp_call\"}}\n\n",
        "event: response.completed\r\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"total_tokens\":3}}}\r\n\r\n",
    );

    #[test]
    fn keeps_only_accounting_events_whatever_the_chunking() {
        for piece in [1, 2, 3, 7, 64, 4096] {
            let (s, events) = scan_in_pieces(RESPONSES.as_bytes(), piece, 1 << 20);
            let names: Vec<_> = events.iter().map(|e| e.name).collect();
            assert_eq!(
                names,
                vec![Some(EventName::Created), Some(EventName::OutputItemDone), Some(EventName::Completed)],
                "piece size {piece}"
            );
            assert_eq!(
                events[2].data_bytes(),
                b"{\"type\":\"response.completed\",\"response\":{\"usage\":{\"total_tokens\":3}}}",
                "piece size {piece}"
            );
            assert!(!s.overflowed);
            assert_eq!(s.bytes_seen, RESPONSES.len() as u64);
        }
    }

    #[test]
    fn events_are_handed_over_as_they_complete_and_nothing_is_held_between_them() {
        let mut s = SseScanner::new(1 << 20);
        let (created, rest) = RESPONSES.split_at(RESPONSES.find("event: response.output_text").unwrap());
        // The created event, its blank line cut off: not complete yet.
        s.feed(&created.as_bytes()[..created.len() - 1]);
        assert_eq!(s.take_events().count(), 0);
        s.feed(b"\n");
        assert_eq!(s.take_events().map(|e| e.name).collect::<Vec<_>>(), vec![Some(EventName::Created)]);
        assert_eq!(s.held_bytes(), 0);
        // A long stream of skipped events, cut anywhere: nothing piles up.
        let delta =
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"word\"}\n\n";
        let many = delta.repeat(2000);
        for p in many.as_bytes().chunks(333) {
            s.feed(p);
            assert_eq!(s.take_events().count(), 0);
            // At most the start of a cut line.
            assert!(s.held_bytes() <= delta.len(), "{}", s.held_bytes());
        }
        s.feed(rest.as_bytes());
        assert_eq!(s.take_events().count(), 2);
        assert_eq!(s.held_bytes(), 0);
    }

    #[test]
    fn chat_streams_keep_the_usage_chunk() {
        let stream = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n",
            "data: {\"choices\":[],\"usage\": {\"prompt_tokens\":5}}\n\n",
            "data: [DONE]\n\n",
        );
        for piece in [1, 5, 1000] {
            let (s, events) = scan_in_pieces(stream.as_bytes(), piece, 1 << 20);
            assert_eq!(events.len(), 1, "piece {piece}");
            assert!(events[0].data_bytes().starts_with(b"{\"choices\":[],\"usage\""));
            assert!(s.done_marker);
            assert_eq!(s.first_data_id, None);
        }
    }

    #[test]
    fn a_chat_streams_id_is_read_from_its_first_chunk() {
        let stream = "data: {\"choices\":[],\"id\":\"chatcmpl-9x\"}\n\ndata: {\"id\":\"other\"}\n\ndata: [DONE]\n\n";
        for piece in [1, 7, 1000] {
            let (s, _) = scan_in_pieces(stream.as_bytes(), piece, 1 << 20);
            assert_eq!(s.first_data_id.as_deref(), Some("chatcmpl-9x"), "piece {piece}");
        }
    }

    #[test]
    fn multi_line_data_is_joined() {
        let (_, events) = scan_in_pieces(b"event: response.completed\ndata: {\"a\":\ndata: 1}\n\n", 3, 1 << 20);
        assert_eq!(events[0].data_bytes(), b"{\"a\":\n1}");
        let (_, events) = scan_in_pieces(b"event: response.completed\ndata:\ndata: x\n\n", 2, 1 << 20);
        assert_eq!(events[0].data_bytes(), b"\nx");
    }

    #[test]
    fn the_limit_drops_and_says_so() {
        let big = format!("event: response.completed\ndata: {{\"pad\":\"{}\"}}\n\n", "x".repeat(1000));
        let (s, events) = scan_in_pieces(big.as_bytes(), 100, 500);
        assert!(events.is_empty());
        assert!(s.overflowed);
    }

    #[test]
    fn usage_in_every_chunk_never_runs_out_of_room() {
        // Each report is read and dropped: the limit bounds one event, not the stream.
        let chunk =
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n\n";
        let (s, events) = scan_in_pieces(chunk.repeat(200).as_bytes(), 64, 256);
        assert_eq!(events.len(), 200);
        assert!(!s.overflowed);
        // MCP items add up over the stream: they have `limit` bytes in all.
        let item = "event: response.output_item.done\ndata: {\"item\":{\"type\":\"mcp_call\",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}}\n\n";
        let (s, events) = scan_in_pieces(item.repeat(20).as_bytes(), 64, 256);
        assert!(events.len() < 20 && s.overflowed);
    }

    #[test]
    fn an_unterminated_last_event_counts() {
        let (_, events) = scan_in_pieces(b"event: response.completed\ndata: {}", 4, 1 << 20);
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn events_without_names_are_kept_by_type() {
        let (_, events) = scan_in_pieces(b"data: {\"type\":\"response.completed\",\"response\":{}}\n\ndata: {\"type\":\"response.output_text.delta\"}\n\n", 5, 1 << 20);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].name, None);
    }
}
