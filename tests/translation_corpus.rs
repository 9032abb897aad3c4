//! The Chat Completions ↔ Anthropic Messages translation corpus (`tests/fixtures/translation/`):
//! each file is an exchange — an OpenAI request and the Messages request it must become, an
//! Anthropic answer (JSON, stream or error) and the OpenAI answer it must become — or a list of
//! requests that must be refused, naming the field. Every exchange is run through the
//! translator; streams are fed in every chunk size from 1 byte up, which must not change what
//! comes out.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;

use aigate::ai::anthropic::request::{chat_to_messages, RequestOptions};
use aigate::ai::anthropic::response::{error_to_openai, message_to_chat};
use aigate::ai::anthropic::stream::StreamTranslator;
use aigate::ai::json_body::RequestDoc;
use serde_json::Value;

const CREATED: u64 = 1_700_000_000;

fn cases() -> Vec<(String, Value)> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/translation"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let cases: Vec<(String, Value)> = files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    assert!(cases.len() >= 14, "the corpus is missing");
    cases
}

fn translate_request(req: &Value) -> Result<(Value, bool), String> {
    let text = req.to_string();
    let doc = RequestDoc::parse(text.as_bytes()).map_err(|e| e.to_string())?;
    let t = chat_to_messages(&doc, RequestOptions { refuses_sampling: false }).map_err(|e| e.message)?;
    Ok((serde_json::from_slice(&t.body).unwrap(), t.include_usage))
}

/// The SSE text of `[[event, data], ...]`.
fn sse(events: &Value) -> String {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("event: {}\ndata: {}\n\n", e[0].as_str().unwrap(), e[1]))
        .collect()
}

fn translate_stream(text: &str, include_usage: bool, piece: usize) -> (Vec<u8>, StreamTranslator) {
    let mut t = StreamTranslator::new(include_usage, CREATED, 1 << 20);
    let mut out = Vec::new();
    for c in text.as_bytes().chunks(piece) {
        t.feed(c, &mut out);
    }
    t.finish(&mut out);
    (out, t)
}

#[test]
fn every_exchange_of_the_corpus_translates_as_written() {
    let mut checked = 0;
    for (name, case) in cases() {
        if let Some(req) = case.get("openai_request") {
            let (got, include_usage) = translate_request(req).unwrap_or_else(|e| panic!("{name}: refused: {e}"));
            assert_eq!(got, case["anthropic_request"], "{name}: request");
            assert_eq!(include_usage, case["include_usage"] == true, "{name}: include_usage");
            checked += 1;
        }
        if let Some(answer) = case.get("anthropic_response") {
            let a = message_to_chat(answer.to_string().as_bytes(), CREATED).unwrap();
            let got: Value = serde_json::from_slice(&a.body).unwrap();
            assert_eq!(got, case["openai_response"], "{name}: response");
            // What accounting counts is what the client was told.
            let u = a.usage.unwrap();
            assert_eq!(got["usage"]["prompt_tokens"], u.input, "{name}");
            assert_eq!(got["usage"]["completion_tokens"], u.output, "{name}");
            assert_eq!(a.model.as_deref(), got["model"].as_str(), "{name}");
            checked += 1;
        }
        for e in case.get("errors").and_then(Value::as_array).into_iter().flatten() {
            let body = match e.get("anthropic_text") {
                Some(t) => t.as_str().unwrap().as_bytes().to_vec(),
                None => e["anthropic"].to_string().into_bytes(),
            };
            let (status, out) = error_to_openai(e["status"].as_u64().unwrap() as u16, &body);
            assert_eq!(u64::from(status), e["openai_status"].as_u64().unwrap(), "{name}: {e}");
            assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), e["openai"], "{name}: {e}");
            checked += 1;
        }
        if let Some(events) = case.get("anthropic_stream") {
            let text = sse(events);
            let include_usage = case["include_usage"] == true;
            let (whole, t) = translate_stream(&text, include_usage, text.len());
            let got: Vec<Value> = String::from_utf8(whole.clone())
                .unwrap()
                .split("\n\n")
                .filter(|e| !e.is_empty())
                .map(|e| {
                    let data = e.strip_prefix("data: ").unwrap_or_else(|| panic!("{name}: not a data event: {e}"));
                    serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_string()))
                })
                .collect();
            assert_eq!(Value::Array(got), case["openai_stream"], "{name}: stream");
            match &case["usage"] {
                Value::Null => assert_eq!(t.usage(), None, "{name}"),
                u => {
                    let got = t.usage().unwrap_or_else(|| panic!("{name}: no usage"));
                    assert_eq!(
                        (got.input, got.output, got.cached),
                        (u["input"].as_u64().unwrap(), u["output"].as_u64().unwrap(), u["cached"].as_u64().unwrap()),
                        "{name}"
                    );
                }
            }
            for piece in 1..=97 {
                let (out, tp) = translate_stream(&text, include_usage, piece);
                assert_eq!(out, whole, "{name}: chunks of {piece} bytes");
                assert_eq!(tp.usage(), t.usage(), "{name}: chunks of {piece} bytes");
            }
            checked += 1;
        }
        for r in case.get("refusals").and_then(Value::as_array).into_iter().flatten() {
            let e = translate_request(&r[0]).expect_err(&format!("{name}: {} was translated", r[0]));
            let want = r[1].as_str().unwrap();
            assert!(e.contains(want), "{name}: `{e}` does not name `{want}`");
            checked += 1;
        }
    }
    assert!(checked >= 42, "only {checked} exchanges checked");
}

/// The corpus's streams with bytes flipped, cut and repeated (a fixed seed): whatever arrives,
/// the translation is the same for every chunking, and every event it writes is JSON or
/// `[DONE]` (the fuzz target `anthropic_translation` does this without end).
#[test]
fn damaged_streams_translate_the_same_whatever_the_chunking() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let streams: Vec<String> = cases().iter().filter_map(|(_, c)| c.get("anthropic_stream").map(sse)).collect();
    for round in 0..400 {
        let mut bytes = streams[round % streams.len()].clone().into_bytes();
        for _ in 0..(next() % 4) {
            let at = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[at] = (next() % 256) as u8,
                1 => bytes.truncate(at),
                _ => {
                    let piece = bytes[at..].iter().take(40).copied().collect::<Vec<u8>>();
                    bytes.splice(at..at, piece);
                }
            }
            if bytes.is_empty() {
                break;
            }
        }
        let include_usage = round % 2 == 0;
        let mut t = StreamTranslator::new(include_usage, CREATED, 256);
        let mut whole = Vec::new();
        t.feed(&bytes, &mut whole);
        t.finish(&mut whole);
        let piece = 1 + (next() as usize) % 64;
        let (chunked, tc) = {
            let mut t2 = StreamTranslator::new(include_usage, CREATED, 256);
            let mut out = Vec::new();
            for c in bytes.chunks(piece) {
                t2.feed(c, &mut out);
            }
            t2.finish(&mut out);
            (out, t2)
        };
        assert_eq!(chunked, whole, "round {round}, chunks of {piece}");
        assert_eq!(tc.usage(), t.usage(), "round {round}");
        for event in String::from_utf8(whole).unwrap().split("\n\n").filter(|e| !e.is_empty()) {
            let data = event.strip_prefix("data: ").unwrap();
            assert!(data == "[DONE]" || serde_json::from_str::<Value>(data).is_ok(), "round {round}: {data}");
        }
    }
}
