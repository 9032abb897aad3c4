//! An Anthropic answer on its way to an OpenAI-format client, chunk by chunk as Pingora hands
//! them over: a stream is translated event by event; a JSON answer (a Message, or an error) is
//! held until complete (it must be whole to be rewritten), bounded, then written translated.

use bytes::{Bytes, BytesMut};

use super::response::{error_to_openai, message_to_chat, openai_error_body};
use super::stream::StreamTranslator;
use crate::ai::usage::Usage;

/// What a translated answer tells accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerFacts {
    pub usage: Option<Usage>,
    /// The model that answered.
    pub model: Option<String>,
    /// The provider failed (an error event, a cut stream, an answer that is not a Message).
    pub failed: bool,
}

pub enum AnswerTranslator {
    Json {
        held: BytesMut,
        limit: usize,
        created: u64,
        /// The upstream's status, for an error answer.
        error_status: Option<u16>,
        facts: AnswerFacts,
    },
    Stream(Box<StreamTranslator>),
}

impl AnswerTranslator {
    /// A successful JSON answer (a Message).
    pub fn message(created: u64, limit: usize) -> AnswerTranslator {
        AnswerTranslator::Json {
            held: BytesMut::new(),
            limit,
            created,
            error_status: None,
            facts: AnswerFacts::default(),
        }
    }

    /// An error answer with the upstream's `status` (any content type).
    pub fn error(status: u16, limit: usize) -> AnswerTranslator {
        AnswerTranslator::Json {
            held: BytesMut::new(),
            limit,
            created: 0,
            error_status: Some(status),
            facts: AnswerFacts::default(),
        }
    }

    pub fn stream(include_usage: bool, created: u64, limit: usize) -> AnswerTranslator {
        AnswerTranslator::Stream(Box::new(StreamTranslator::new(include_usage, created, limit)))
    }

    /// The status an OpenAI client gets for an upstream status.
    pub fn client_status(upstream: u16) -> u16 {
        super::openai_error(upstream, "").0
    }

    /// What the client gets of the next chunk (an empty chunk is not written).
    pub fn feed(&mut self, chunk: Option<Bytes>, end_of_stream: bool) -> Option<Bytes> {
        match self {
            AnswerTranslator::Stream(t) => {
                let mut out = Vec::new();
                if let Some(c) = chunk {
                    t.feed(&c, &mut out);
                }
                if end_of_stream {
                    t.finish(&mut out);
                }
                Some(Bytes::from(out))
            }
            AnswerTranslator::Json { held, limit, created, error_status, facts } => {
                if let Some(c) = chunk {
                    // Past the limit nothing more is kept; the answer becomes an error.
                    if held.len() <= *limit {
                        held.extend_from_slice(&c[..c.len().min(*limit + 1 - held.len())]);
                    }
                }
                if !end_of_stream {
                    return Some(Bytes::new());
                }
                let body = std::mem::take(held);
                let out = match error_status {
                    Some(status) => error_to_openai(*status, &body).1,
                    None if body.len() > *limit => {
                        facts.failed = true;
                        openai_error_body(
                            502,
                            "api_error",
                            "the provider's answer is larger than the gateway translates",
                        )
                        .1
                    }
                    None => match message_to_chat(&body, *created) {
                        Ok(a) => {
                            facts.usage = a.usage;
                            facts.model = a.model;
                            a.body
                        }
                        Err(_) => {
                            facts.failed = true;
                            openai_error_body(502, "api_error", "the provider's answer is not an Anthropic message").1
                        }
                    },
                };
                Some(Bytes::from(out))
            }
        }
    }

    /// What accounting needs: exact usage, the model that answered, failure.
    pub fn facts(&self) -> AnswerFacts {
        match self {
            AnswerTranslator::Json { facts, .. } => facts.clone(),
            AnswerTranslator::Stream(t) => {
                AnswerFacts { usage: t.usage(), model: t.model().map(str::to_string), failed: t.failed() }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mut t: AnswerTranslator, body: &[u8], piece: usize) -> (Vec<u8>, AnswerTranslator) {
        let mut out = Vec::new();
        let chunks: Vec<&[u8]> = body.chunks(piece).collect();
        for (i, c) in chunks.iter().enumerate() {
            let end = i + 1 == chunks.len();
            out.extend_from_slice(&t.feed(Some(Bytes::copy_from_slice(c)), end).unwrap());
        }
        (out, t)
    }

    #[test]
    fn a_message_is_held_then_written_whole() {
        let body = br#"{"id":"msg_1","type":"message","model":"claude-x","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":2}}"#;
        let mut t = AnswerTranslator::message(7, 1 << 20);
        assert_eq!(t.feed(Some(Bytes::copy_from_slice(&body[..10])), false).unwrap().len(), 0);
        let out = t.feed(Some(Bytes::copy_from_slice(&body[10..])), true).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "hi");
        assert_eq!(t.facts().usage.map(|u| u.total), Some(5));
        assert_eq!(t.facts().model.as_deref(), Some("claude-x"));
    }

    #[test]
    fn too_large_or_not_a_message_becomes_an_error() {
        let (out, t) = run(AnswerTranslator::message(0, 16), &[b'x'; 100], 7);
        assert!(String::from_utf8(out).unwrap().contains("larger than the gateway translates"));
        assert!(t.facts().failed);
        let (out, t) = run(AnswerTranslator::message(0, 1024), b"<html>", 3);
        assert!(String::from_utf8(out).unwrap().contains("not an Anthropic message"));
        assert!(t.facts().failed);
    }

    #[test]
    fn errors_in_openais_envelope() {
        let (out, _) = run(
            AnswerTranslator::error(429, 1024),
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
            5,
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["message"], "slow down");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert_eq!(AnswerTranslator::client_status(529), 503);
        assert_eq!(AnswerTranslator::client_status(400), 400);
    }
}
