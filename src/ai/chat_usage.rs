//! Exact usage for every chat stream. Chat Completions streams report usage only when the
//! request asks for it (`stream_options.include_usage`); then the provider adds a last chunk
//! with `"choices": []` and the usage, and `"usage": null` to every other chunk. The gateway
//! asks for it on every chat stream ([`ensure_stream_usage`]) and, when the client had not,
//! gives the client the stream it asked for ([`UsageChunkFilter`]): that chunk removed, the
//! nulls taken out — event by event, whatever the chunk boundaries.

use bytes::{Bytes, BytesMut};
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::json_body::RequestDoc;

/// Ask for usage in a streamed chat request. Returns true when the client had not asked (its
/// stream must then be filtered); false when it had, or when `stream_options` is not an object
/// (left for the provider to refuse).
pub fn ensure_stream_usage(doc: &mut RequestDoc<'_>) -> bool {
    let mut options = match doc.raw("stream_options") {
        None | Some("null") => serde_json::Map::new(),
        Some(raw) => match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => return false,
        },
    };
    if options.get("include_usage") == Some(&serde_json::Value::Bool(true)) {
        return false;
    }
    options.insert("include_usage".into(), serde_json::Value::Bool(true));
    doc.set("stream_options", &options);
    true
}

/// Takes the usage the client did not ask for out of a chat stream.
#[derive(Debug, Default)]
pub struct UsageChunkFilter {
    /// The start of an event whose end has not arrived yet.
    held: BytesMut,
}

const NEEDLE: &[u8] = b"\"usage\"";

impl UsageChunkFilter {
    pub fn new() -> UsageChunkFilter {
        UsageChunkFilter::default()
    }

    /// What the client gets of the next chunk: the complete events in it (filtered), the rest
    /// held until its event is complete; at the end of the stream, everything.
    pub fn filter(&mut self, chunk: Option<Bytes>, end_of_stream: bool) -> Option<Bytes> {
        let chunk = chunk.unwrap_or_default();
        let data: Bytes = if self.held.is_empty() {
            chunk
        } else {
            self.held.extend_from_slice(&chunk);
            self.held.split().freeze()
        };
        let cut = if end_of_stream { data.len() } else { last_event_end(&data) };
        if cut < data.len() {
            self.held.extend_from_slice(&data[cut..]);
        }
        let complete = data.slice(..cut);
        if memchr::memmem::find(&complete, NEEDLE).is_none() {
            // Nothing to take out: the bytes go on as they are (no copy).
            return Some(complete);
        }
        let mut out = BytesMut::with_capacity(complete.len());
        let mut start = 0;
        while start < complete.len() {
            let end = next_event_end(&complete[start..]).map_or(complete.len(), |e| start + e);
            filter_event(&complete[start..end], &mut out);
            start = end;
        }
        Some(out.freeze())
    }
}

/// The end (just past the blank line) of the first complete event in `b`.
fn next_event_end(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'\n', &b[i..]) {
        let nl = i + off;
        match b.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if b.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

/// The end of the last complete event in `b` (0 when there is none).
fn last_event_end(b: &[u8]) -> usize {
    let mut end = 0;
    while let Some(e) = next_event_end(&b[end..]) {
        end += e;
    }
    end
}

/// One event, as the client gets it: dropped when it is the usage chunk, else with a top-level
/// `"usage": null` taken out of its data.
fn filter_event(event: &[u8], out: &mut BytesMut) {
    let lines = event.split_inclusive(|&b| b == b'\n');
    let data_lines: Vec<&[u8]> = event.split(|&b| b == b'\n').filter(|l| l.starts_with(b"data:")).collect();
    if data_lines.len() == 1 {
        let data = data_value(data_lines[0]);
        if is_usage_chunk(data) {
            return;
        }
    }
    for line in lines {
        if line.starts_with(b"data:") && data_lines.len() == 1 {
            let (prefix, rest) = line.split_at(line.len() - data_value_with_end(line).len());
            if let Some(edited) = without_top_level_null(rest, b"usage") {
                out.extend_from_slice(prefix);
                out.extend_from_slice(&edited);
                continue;
            }
        }
        out.extend_from_slice(line);
    }
}

/// The value of a `data:` line (after the colon and one optional space, without the line end).
fn data_value(line: &[u8]) -> &[u8] {
    let v = &line[5..];
    let v = v.strip_prefix(b" ").unwrap_or(v);
    let v = v.strip_suffix(b"\n").unwrap_or(v);
    v.strip_suffix(b"\r").unwrap_or(v)
}

/// The value of a `data:` line with its line end.
fn data_value_with_end(line: &[u8]) -> &[u8] {
    let v = &line[5..];
    v.strip_prefix(b" ").unwrap_or(v)
}

/// A chat chunk with `"choices": []` and a usage object: the one the client did not ask for.
fn is_usage_chunk(data: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Chunk {
        choices: Option<Vec<IgnoredAny>>,
        usage: Option<serde_json::Map<String, serde_json::Value>>,
    }
    matches!(serde_json::from_slice::<Chunk>(data), Ok(Chunk { choices: Some(c), usage: Some(_) }) if c.is_empty())
}

/// `json` without its top-level member `key` when that member is `null` (the comma beside it
/// removed too); None when there is no such member. Strings are skipped whole, so a key
/// inside a value or a string is never touched.
fn without_top_level_null(json: &[u8], key: &[u8]) -> Option<Vec<u8>> {
    let mut depth = 0usize;
    let mut i = 0;
    // Where the current top-level member starts (just after `{` or `,`), and that separator.
    let mut member_start = 0usize;
    while i < json.len() {
        match json[i] {
            b'"' => {
                let end = string_end(json, i)?;
                if depth == 1 && &json[i + 1..end] == key && is_member_key(json, member_start, i) {
                    let mut j = skip_ws(json, end + 1);
                    if json.get(j) != Some(&b':') {
                        return None;
                    }
                    j = skip_ws(json, j + 1);
                    if !json[j..].starts_with(b"null") {
                        return None;
                    }
                    let after = skip_ws(json, j + 4);
                    let mut out = Vec::with_capacity(json.len());
                    let sep = member_start - 1; // the `{` or `,` before the member
                    if json[sep] == b',' {
                        // `,"usage":null` — drop the comma before.
                        out.extend_from_slice(&json[..sep]);
                        out.extend_from_slice(&json[after..]);
                    } else if json.get(after) == Some(&b',') {
                        // `{"usage":null,` — drop the comma after.
                        out.extend_from_slice(&json[..member_start]);
                        out.extend_from_slice(&json[skip_ws(json, after + 1)..]);
                    } else {
                        out.extend_from_slice(&json[..member_start]);
                        out.extend_from_slice(&json[after..]);
                    }
                    return Some(out);
                }
                i = end + 1;
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth == 1 {
                    member_start = i + 1;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => member_start = i + 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether the string at `at` is the first thing of the member starting at `start`.
fn is_member_key(json: &[u8], start: usize, at: usize) -> bool {
    start > 0 && skip_ws(json, start) == at
}

/// The index of the quote closing the string opening at `open`.
fn string_end(json: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    while i < json.len() {
        match json[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while json.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stream: &str, piece: usize) -> String {
        let all = Bytes::copy_from_slice(stream.as_bytes());
        let mut f = UsageChunkFilter::new();
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            let end = (i + piece).min(all.len());
            let last = end == all.len();
            if let Some(b) = f.filter(Some(all.slice(i..end)), last) {
                out.extend_from_slice(&b);
            }
            if last {
                break;
            }
            i = end;
        }
        String::from_utf8(out).unwrap()
    }

    const ASKED: &str = concat!(
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\\\"usage\\\":null\"}}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"usage\":null,\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n",
        "data: [DONE]\n\n",
    );
    const WANTED: &str = concat!(
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\\\"usage\\\":null\"}}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn the_client_gets_the_stream_it_asked_for_whatever_the_chunking() {
        for piece in [1, 2, 3, 5, 7, 16, 64, 4096] {
            assert_eq!(run(ASKED, piece), WANTED, "piece {piece}");
        }
        // CRLF line ends too.
        let crlf = ASKED.replace("\n", "\r\n");
        assert_eq!(run(&crlf, 3), WANTED.replace("\n", "\r\n"));
    }

    #[test]
    fn streams_without_usage_pass_through_untouched() {
        let s = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n";
        let mut f = UsageChunkFilter::new();
        let b = Bytes::from_static(s.as_bytes());
        let out = f.filter(Some(b.clone()), false).unwrap();
        assert_eq!(out, b);
        assert_eq!(out.as_ptr(), b.as_ptr(), "no copy");
        // An unfinished last event is held, then given at the end.
        assert_eq!(f.filter(Some(Bytes::from_static(b"data: {\"x\"")), false).unwrap(), Bytes::new());
        assert_eq!(f.filter(None, true).unwrap(), Bytes::from_static(b"data: {\"x\""));
    }

    #[test]
    fn null_members_come_out_cleanly() {
        let t = |s: &str| without_top_level_null(s.as_bytes(), b"usage").map(|v| String::from_utf8(v).unwrap());
        assert_eq!(t(r#"{"a":1,"usage":null}"#).as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(t(r#"{"usage": null, "a":1}"#).as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(t(r#"{ "usage" : null }"#).as_deref(), Some(r#"{}"#));
        assert_eq!(t(r#"{"a":{"usage":null}}"#), None);
        assert_eq!(t(r#"{"a":"usage","b":["usage"]}"#), None);
        assert_eq!(t(r#"{"usage":{"total_tokens":1}}"#), None);
        assert_eq!(t(r#"{"a":"x\"usage\":null"}"#), None);
    }

    #[test]
    fn usage_is_requested_keeping_other_stream_options() {
        let edit = |body: &str| {
            let mut doc = RequestDoc::parse(body.as_bytes()).unwrap();
            let added = ensure_stream_usage(&mut doc);
            (added, serde_json::from_slice::<serde_json::Value>(&doc.to_bytes()).unwrap())
        };
        let (added, v) = edit(r#"{"stream":true}"#);
        assert!(added);
        assert_eq!(v["stream_options"], serde_json::json!({"include_usage": true}));
        let (added, v) =
            edit(r#"{"stream":true,"stream_options":{"include_obfuscation":false,"include_usage":false}}"#);
        assert!(added);
        assert_eq!(v["stream_options"], serde_json::json!({"include_obfuscation": false, "include_usage": true}));
        assert!(!edit(r#"{"stream":true,"stream_options":{"include_usage":true}}"#).0);
        assert!(!edit(r#"{"stream":true,"stream_options":"x"}"#).0);
    }
}
