//! A side view of a Server-Sent Events stream: it finds the few events that carry accounting
//! facts (usage, MCP items, the response id, failures) while the bytes flow to the client
//! untouched. It keeps only `Bytes` slices of the chunks it is shown (no copies), up to a byte
//! limit; everything else is skipped in place.

use bytes::Bytes;

/// One complete event that matters for accounting: its `event:` name (if any) and its data,
/// as slices of the original chunks (joined with `\n` when the event had several data lines).
#[derive(Debug, Default, Clone)]
pub struct KeptEvent {
    pub name: Option<EventName>,
    pub data: Vec<Bytes>,
}

impl KeptEvent {
    /// The data as one contiguous buffer (a copy only when it spans several pieces).
    pub fn data_bytes(&self) -> Bytes {
        match self.data.len() {
            0 => Bytes::new(),
            1 => self.data[0].clone(),
            _ => {
                let mut v = Vec::with_capacity(self.data.iter().map(Bytes::len).sum());
                for piece in &self.data {
                    v.extend_from_slice(piece);
                }
                Bytes::from(v)
            }
        }
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
    /// Bytes kept of final events (completed, failed, usage chunks) and of the others: each
    /// category has `limit` bytes, so many MCP items cannot crowd out the usage.
    kept_final: usize,
    kept_other: usize,
    /// Pieces of a line cut by a chunk boundary.
    partial_line: Vec<Bytes>,
    partial_len: usize,
    partial_truncated: bool,
    interest: Interest,
    data: Vec<Bytes>,
    /// Events kept, in order.
    pub events: Vec<KeptEvent>,
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
            partial_line: Vec::new(),
            partial_len: 0,
            partial_truncated: false,
            interest: Interest::Undecided,
            data: Vec::new(),
            events: Vec::new(),
            overflowed: false,
            done_marker: false,
            first_data_id: None,
            first_data_seen: false,
            bytes_seen: 0,
        }
    }

    /// Look at the next chunk of the stream.
    pub fn feed(&mut self, chunk: &Bytes) {
        self.bytes_seen += chunk.len() as u64;
        let mut start = 0;
        let bytes = chunk.as_ref();
        while start < bytes.len() {
            match memchr::memchr(b'\n', &bytes[start..]) {
                Some(off) => {
                    let end = start + off;
                    if self.partial_line.is_empty() && !self.partial_truncated {
                        self.line(chunk.slice(start..end));
                    } else {
                        self.push_partial(chunk.slice(start..end));
                        self.complete_partial();
                    }
                    start = end + 1;
                }
                None => {
                    self.push_partial(chunk.slice(start..));
                    break;
                }
            }
        }
    }

    /// The stream ended: an event not closed by a blank line still counts.
    pub fn finish(&mut self) {
        if !self.partial_line.is_empty() || self.partial_truncated {
            self.complete_partial();
        }
        self.end_event();
    }

    /// Hold a piece of a line cut by a chunk boundary. A skipped event's line needs only its
    /// first bytes (to tell a blank line from another); any line is held up to the limit.
    fn push_partial(&mut self, piece: Bytes) {
        let cap = if self.interest == Interest::Skip { 16 } else { self.limit };
        let room = cap.saturating_sub(self.partial_len);
        if piece.len() > room {
            self.partial_truncated = true;
            if room == 0 {
                return;
            }
            let piece = piece.slice(..room);
            self.partial_len += piece.len();
            self.partial_line.push(piece);
            return;
        }
        self.partial_len += piece.len();
        self.partial_line.push(piece);
    }

    fn complete_partial(&mut self) {
        let pieces = std::mem::take(&mut self.partial_line);
        self.partial_len = 0;
        let truncated = std::mem::take(&mut self.partial_truncated);
        if truncated {
            // A line longer than the limit: a kept event cannot be read whole any more.
            if let Interest::Keep(_) = self.interest {
                self.drop_current_event();
            }
            return;
        }
        let line = if pieces.len() == 1 {
            pieces.into_iter().next().unwrap_or_default()
        } else {
            let mut v = Vec::with_capacity(pieces.iter().map(Bytes::len).sum());
            for p in &pieces {
                v.extend_from_slice(p);
            }
            Bytes::from(v)
        };
        self.line(line);
    }

    fn line(&mut self, mut line: Bytes) {
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        if line.is_empty() {
            self.end_event();
            return;
        }
        let (field, value) = split_field(&line);
        match field {
            b"event" => {
                self.interest = match EventName::parse(&line[value.clone()]) {
                    Some(name) => Interest::Keep(Some(name)),
                    None => Interest::Skip,
                };
            }
            b"data" => {
                let data = line.slice(value);
                match self.interest {
                    Interest::Skip => {}
                    Interest::Keep(_) => self.keep_data(data),
                    Interest::Undecided => {
                        if !self.first_data_seen {
                            self.first_data_seen = true;
                            self.first_data_id = top_level_id(&data);
                        }
                        if data.as_ref() == b"[DONE]" {
                            self.done_marker = true;
                        } else if has_usage_object(&data) || has_type_worth_keeping(&data) {
                            self.interest = Interest::Keep(None);
                            self.keep_data(data);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn keep_data(&mut self, data: Bytes) {
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
        if !self.data.is_empty() {
            self.data.push(Bytes::from_static(b"\n"));
        }
        self.data.push(data);
    }

    /// Reports that replace earlier ones are not all kept: usage chunks of a chat stream (some
    /// servers put usage in every chunk: the last two are kept, in case the last is all zeros)
    /// and Anthropic's cumulative `message_delta` (the last one).
    fn forget_older(&mut self, name: Option<EventName>) {
        let keep = match name {
            None => 1,
            Some(EventName::MessageDelta) => 0,
            _ => return,
        };
        let same: Vec<usize> = self.events.iter().enumerate().filter(|(_, e)| e.name == name).map(|(i, _)| i).collect();
        if same.len() > keep {
            let old = self.events.remove(same[0]);
            let size: usize = old.data.iter().map(Bytes::len).sum::<usize>() + 1;
            self.kept_final = self.kept_final.saturating_sub(size);
        }
    }

    fn drop_current_event(&mut self) {
        self.overflowed = true;
        self.interest = Interest::Skip;
        self.data.clear();
    }

    fn end_event(&mut self) {
        if let Interest::Keep(name) = self.interest {
            if !self.data.is_empty() {
                self.forget_older(name);
                self.events.push(KeptEvent { name, data: std::mem::take(&mut self.data) });
            }
        }
        self.data.clear();
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
fn split_field(line: &[u8]) -> (&[u8], std::ops::Range<usize>) {
    match memchr::memchr(b':', line) {
        Some(i) => {
            let mut v = i + 1;
            if line.get(v) == Some(&b' ') {
                v += 1;
            }
            (&line[..i], v..line.len())
        }
        None => (line, line.len()..line.len()),
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

    fn scan_in_pieces(stream: &[u8], piece: usize, limit: usize) -> SseScanner {
        let all = Bytes::copy_from_slice(stream);
        let mut s = SseScanner::new(limit);
        let mut i = 0;
        while i < all.len() {
            let end = (i + piece).min(all.len());
            s.feed(&all.slice(i..end));
            i = end;
        }
        s.finish();
        s
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
            let s = scan_in_pieces(RESPONSES.as_bytes(), piece, 1 << 20);
            let names: Vec<_> = s.events.iter().map(|e| e.name).collect();
            assert_eq!(
                names,
                vec![Some(EventName::Created), Some(EventName::OutputItemDone), Some(EventName::Completed)],
                "piece size {piece}"
            );
            let completed = s.events[2].data_bytes();
            assert_eq!(
                completed.as_ref(),
                b"{\"type\":\"response.completed\",\"response\":{\"usage\":{\"total_tokens\":3}}}",
                "piece size {piece}"
            );
            assert!(!s.overflowed);
            assert_eq!(s.bytes_seen, RESPONSES.len() as u64);
        }
    }

    #[test]
    fn chat_streams_keep_the_usage_chunk() {
        let stream = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n",
            "data: {\"choices\":[],\"usage\": {\"prompt_tokens\":5}}\n\n",
            "data: [DONE]\n\n",
        );
        for piece in [1, 5, 1000] {
            let s = scan_in_pieces(stream.as_bytes(), piece, 1 << 20);
            assert_eq!(s.events.len(), 1, "piece {piece}");
            assert!(s.events[0].data_bytes().starts_with(b"{\"choices\":[],\"usage\""));
            assert!(s.done_marker);
            assert_eq!(s.first_data_id, None);
        }
    }

    #[test]
    fn a_chat_streams_id_is_read_from_its_first_chunk() {
        let stream = "data: {\"choices\":[],\"id\":\"chatcmpl-9x\"}\n\ndata: {\"id\":\"other\"}\n\ndata: [DONE]\n\n";
        for piece in [1, 7, 1000] {
            let s = scan_in_pieces(stream.as_bytes(), piece, 1 << 20);
            assert_eq!(s.first_data_id.as_deref(), Some("chatcmpl-9x"), "piece {piece}");
        }
    }

    #[test]
    fn multi_line_data_is_joined() {
        let s = scan_in_pieces(b"event: response.completed\ndata: {\"a\":\ndata: 1}\n\n", 3, 1 << 20);
        assert_eq!(s.events[0].data_bytes().as_ref(), b"{\"a\":\n1}");
    }

    #[test]
    fn the_limit_drops_and_says_so() {
        let big = format!("event: response.completed\ndata: {{\"pad\":\"{}\"}}\n\n", "x".repeat(1000));
        let s = scan_in_pieces(big.as_bytes(), 100, 500);
        assert!(s.events.is_empty());
        assert!(s.overflowed);
    }

    #[test]
    fn an_unterminated_last_event_counts() {
        let s = scan_in_pieces(b"event: response.completed\ndata: {}", 4, 1 << 20);
        assert_eq!(s.events.len(), 1);
    }

    #[test]
    fn events_without_names_are_kept_by_type() {
        let s = scan_in_pieces(b"data: {\"type\":\"response.completed\",\"response\":{}}\n\ndata: {\"type\":\"response.output_text.delta\"}\n\n", 5, 1 << 20);
        assert_eq!(s.events.len(), 1);
        assert_eq!(s.events[0].name, None);
    }
}
