//! SSE answers of an MCP server, split into whole events as they arrive (chunk boundaries are
//! arbitrary), so that an event can be read — and the one carrying a tool list rewritten —
//! and passed on the moment its blank line arrives, never waiting for the next.

use bytes::{Bytes, BytesMut};

/// Splits a byte stream into SSE events (each with its terminating blank line).
#[derive(Default)]
pub struct EventSplitter {
    carry: BytesMut,
    /// A byte limit on one event; an event over it is dropped, never passed on unread.
    limit: usize,
    /// The current event went over the limit: its bytes are discarded until its end.
    oversized: bool,
}

/// A piece of the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// A whole event (its `\n\n` included), to read and pass on.
    Event(Bytes),
    /// An event larger than the limit ended; its bytes were discarded.
    Oversized,
}

impl EventSplitter {
    pub fn new(limit: usize) -> EventSplitter {
        EventSplitter { carry: BytesMut::new(), limit, oversized: false }
    }

    /// Feed a chunk; the pieces complete so far, in order.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Piece>) {
        self.carry.extend_from_slice(chunk);
        loop {
            match event_end(&self.carry) {
                Some(end) => {
                    let event = self.carry.split_to(end).freeze();
                    if std::mem::take(&mut self.oversized) {
                        out.push(Piece::Oversized);
                    } else {
                        out.push(Piece::Event(event));
                    }
                }
                None => {
                    if self.carry.len() > self.limit {
                        // Keep a possible partial terminator for the next chunk.
                        let keep = self.carry.len().min(3);
                        let _ = self.carry.split_to(self.carry.len() - keep);
                        self.oversized = true;
                    }
                    return;
                }
            }
        }
    }

    /// The end of the stream: what is left (an event without its blank line).
    pub fn finish(&mut self) -> Option<Piece> {
        if self.carry.is_empty() {
            return None;
        }
        let rest = self.carry.split().freeze();
        Some(if std::mem::take(&mut self.oversized) { Piece::Oversized } else { Piece::Event(rest) })
    }
}

/// Where the first event of `buf` ends (after its blank line: `\n\n`, `\r\n\r\n`, `\r\r`).
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        match buf[i] {
            b'\n' => {
                if buf.get(i + 1) == Some(&b'\n') {
                    return Some(i + 2);
                }
                if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                    return Some(i + 3);
                }
            }
            b'\r' if buf.get(i + 1) == Some(&b'\r') => return Some(i + 2),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The `data` of an event (its `data:` lines joined with `\n`), if it has any.
pub fn event_data(event: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(event).ok()?;
    let mut data: Option<String> = None;
    for line in text.split(['\n', '\r']) {
        let Some(v) = line.strip_prefix("data") else { continue };
        let v = match v.strip_prefix(':') {
            Some(v) => v.strip_prefix(' ').unwrap_or(v),
            None if v.is_empty() => "",
            None => continue,
        };
        match &mut data {
            Some(d) => {
                d.push('\n');
                d.push_str(v);
            }
            None => data = Some(v.to_string()),
        }
    }
    data
}

/// The event with its data replaced by `data` (one line; its `id:`, `event:` and `retry:`
/// lines kept in place).
pub fn with_data(event: &[u8], data: &str) -> Bytes {
    let text = String::from_utf8_lossy(event);
    let mut out = String::with_capacity(event.len());
    let mut wrote = false;
    for line in text.split('\n').map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()) {
        if line.starts_with("data:") || line == "data" {
            if !wrote {
                out.push_str("data: ");
                out.push_str(data);
                out.push('\n');
                wrote = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !wrote {
        out.push_str("data: ");
        out.push_str(data);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]], limit: usize) -> Vec<Piece> {
        let mut s = EventSplitter::new(limit);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut out);
        }
        out.extend(s.finish());
        out
    }

    #[test]
    fn events_are_whole_whatever_the_chunks() {
        let stream = b"id: 1\nevent: message\ndata: {\"a\":1}\n\ndata: x\r\n\r\ndata: y\n\n";
        for cut in 0..stream.len() {
            let got = split_all(&[&stream[..cut], &stream[cut..]], 1 << 20);
            let events: Vec<Vec<u8>> = got
                .into_iter()
                .map(|p| match p {
                    Piece::Event(b) => b.to_vec(),
                    Piece::Oversized => panic!("oversized"),
                })
                .collect();
            assert_eq!(events.concat(), stream.to_vec(), "cut at {cut}");
            assert_eq!(events.len(), 3, "cut at {cut}");
        }
    }

    #[test]
    fn an_event_is_handed_on_as_soon_as_it_ends() {
        let mut s = EventSplitter::new(1024);
        let mut out = Vec::new();
        s.feed(b"data: one\n\ndata: tw", &mut out);
        assert_eq!(out, vec![Piece::Event(Bytes::from_static(b"data: one\n\n"))]);
    }

    #[test]
    fn oversized_events_are_dropped_never_passed_unread() {
        let big = format!("data: {}\n\ndata: small\n\n", "x".repeat(100));
        let got = split_all(&[big.as_bytes()[..50].as_ref(), &big.as_bytes()[50..]], 20);
        assert_eq!(got, vec![Piece::Oversized, Piece::Event(Bytes::from_static(b"data: small\n\n"))]);
    }

    #[test]
    fn data_and_rewrite() {
        let e = b"id: 7\nevent: message\ndata: {\"a\":\ndata: 1}\n\n";
        assert_eq!(event_data(e).as_deref(), Some("{\"a\":\n1}"));
        assert_eq!(event_data(b"id: 2:3\ndata:\nretry: 1500\n\n").as_deref(), Some(""));
        assert_eq!(event_data(b": comment\n\n"), None);
        assert_eq!(&with_data(e, "{\"b\":2}")[..], b"id: 7\nevent: message\ndata: {\"b\":2}\n\n");
    }
}
