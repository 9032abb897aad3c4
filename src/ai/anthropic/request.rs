//! A Chat Completions request as an Anthropic Messages request.
//!
//! | Chat Completions | Messages |
//! |---|---|
//! | `system` and `developer` messages | `system` text blocks, all of them, in order |
//! | `user` text, `image_url` (data: URL or http(s) URL), `file` (PDF data) | `text`, `image` (base64 or url source), `document` blocks |
//! | `assistant` content and `tool_calls` | `text` then `tool_use` blocks (arguments JSON → `input` object) |
//! | `tool` messages | `tool_result` blocks of a user turn |
//! | consecutive messages of one role | one turn |
//! | `max_completion_tokens` / `max_tokens` | `max_tokens` (a default when neither is set: Anthropic requires it) |
//! | `stop` | `stop_sequences` |
//! | `temperature` (0–1 only), `top_p`, `top_k` | the same (refused when the API version refuses sampling) |
//! | `tools` (function), `tool_choice`, `parallel_tool_calls: false` | `tools` with `input_schema`, `tool_choice` (`required` → `any`), `disable_parallel_tool_use` |
//! | `user` | `metadata.user_id` |
//! | `response_format` `json_schema` | `output_config.format` |
//! | `stream`, `stream_options.include_usage` | `stream`; the usage chunk is the gateway's to write |
//!
//! Anything else with an effect (`n` > 1, `logprobs`, `seed`, `audio`, `json_object`,
//! `reasoning_effort`, unknown fields or content parts, …) is refused with a 400 naming it.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;

use super::json::{members, ObjectError, Text};
use crate::ai::json_body::RequestDoc;
use crate::ai::refusal::AiRefusal;

/// `max_tokens` when neither the request nor `model.options.max_tokens` sets one (LiteLLM's
/// default too; Anthropic refuses a request without it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// How the target wants the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestOptions {
    /// The target's API version refuses `temperature`, `top_p` and `top_k`.
    pub refuses_sampling: bool,
}

/// The translated request.
#[derive(Debug)]
pub struct Translated {
    pub body: Vec<u8>,
    /// The client asked for the final usage chunk of a stream.
    pub include_usage: bool,
}

const UNSUPPORTED: &str = "unsupported_parameter";
const INVALID: &str = "invalid_value";

fn unsupported(at: &str, why: &str) -> AiRefusal {
    AiRefusal::bad_request(format!("{at}: {why}"), UNSUPPORTED)
}

fn cannot(at: &str) -> AiRefusal {
    unsupported(at, "has no equivalent in Anthropic's Messages API, so this request cannot be sent to this model")
}

fn invalid(at: &str, expected: &str) -> AiRefusal {
    AiRefusal::bad_request(format!("{at} must be {expected}"), INVALID)
}

fn string<'a>(raw: &'a RawValue, at: &str) -> Result<Cow<'a, str>, AiRefusal> {
    serde_json::from_str::<Text<'a>>(raw.get()).map(|s| s.0).map_err(|_| invalid(at, "a string"))
}

fn array<'a>(raw: &'a RawValue, at: &str) -> Result<Vec<&'a RawValue>, AiRefusal> {
    serde_json::from_str::<Vec<&'a RawValue>>(raw.get()).map_err(|_| invalid(at, "an array"))
}

fn object<'a>(raw: &'a RawValue, at: &str) -> Result<Vec<(Cow<'a, str>, &'a RawValue)>, AiRefusal> {
    members(raw.get()).map_err(|e| match e {
        ObjectError::Duplicate(k) => {
            AiRefusal::bad_request(format!("{at} has the field \"{k}\" more than once"), "duplicate_field")
        }
        ObjectError::NotAnObject => invalid(at, "an object"),
    })
}

fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

fn number(raw: &RawValue, at: &str) -> Result<f64, AiRefusal> {
    serde_json::from_str::<f64>(raw.get()).map_err(|_| invalid(at, "a number"))
}

fn integer(raw: &RawValue, at: &str) -> Result<u64, AiRefusal> {
    serde_json::from_str::<u64>(raw.get()).map_err(|_| invalid(at, "a non-negative integer"))
}

fn boolean(raw: &RawValue, at: &str) -> Result<bool, AiRefusal> {
    serde_json::from_str::<bool>(raw.get()).map_err(|_| invalid(at, "true or false"))
}

/// A value that means "not set": null, or the parameter's no-op value.
fn is_noop(raw: &RawValue, noops: &[&str]) -> bool {
    is_null(raw) || noops.contains(&raw.get())
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Source<'a> {
    Base64 { media_type: Cow<'a, str>, data: Cow<'a, str> },
    Url { url: Cow<'a, str> },
}

#[derive(Serialize)]
#[serde(untagged)]
enum ResultContent<'a> {
    Text(Cow<'a, str>),
    Blocks(Vec<Block<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: Cow<'a, str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a RawValue>,
    },
    Image {
        source: Source<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a RawValue>,
    },
    Document {
        source: Source<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a RawValue>,
    },
    ToolUse {
        id: Cow<'a, str>,
        name: Cow<'a, str>,
        input: Box<RawValue>,
    },
    ToolResult {
        tool_use_id: Cow<'a, str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<ResultContent<'a>>,
    },
}

#[derive(Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Role {
    User,
    Assistant,
}

#[derive(Serialize)]
struct Message<'a> {
    role: Role,
    content: Vec<Block<'a>>,
}

#[derive(Serialize)]
struct Tool<'a> {
    name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<Cow<'a, str>>,
    input_schema: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct ToolChoice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    user_id: Cow<'a, str>,
}

#[derive(Serialize)]
struct OutputFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    schema: &'a RawValue,
}

#[derive(Serialize)]
struct OutputConfig<'a> {
    format: OutputFormat<'a>,
}

#[derive(Serialize)]
struct Out<'a> {
    model: Cow<'a, str>,
    max_tokens: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<Block<'a>>,
    messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<OutputConfig<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

/// Translate a Chat Completions body (model rules and options already applied) into a
/// Messages body.
pub fn chat_to_messages(doc: &RequestDoc<'_>, o: RequestOptions) -> Result<Translated, AiRefusal> {
    let mut model = None;
    let mut messages_raw = None;
    let mut max_tokens = None;
    let mut max_completion_tokens = None;
    let mut stream = false;
    let mut include_usage = false;
    let mut stop = Vec::new();
    let mut sampling: [Option<&RawValue>; 3] = [None; 3];
    let mut tools_raw = None;
    let mut tool_choice_raw = None;
    let mut parallel = None;
    let mut metadata = None;
    let mut output_config = None;
    for (key, raw) in doc.fields() {
        // Each value is re-read from the document's own text, which lives as long as `doc`.
        let raw: &RawValue = serde_json::from_str(raw).map_err(|_| invalid(key, "valid JSON"))?;
        if is_null(raw) {
            continue;
        }
        match key {
            "model" => model = Some(string(raw, "model")?),
            "messages" => messages_raw = Some(raw),
            "max_tokens" => max_tokens = Some(integer(raw, "max_tokens")?),
            "max_completion_tokens" => max_completion_tokens = Some(integer(raw, "max_completion_tokens")?),
            "stream" => stream = boolean(raw, "stream")?,
            "stream_options" => {
                for (k, v) in object(raw, "stream_options")? {
                    match k.as_ref() {
                        "include_usage" => include_usage = !is_null(v) && boolean(v, "stream_options.include_usage")?,
                        // Obfuscation pads OpenAI's own stream events; there are none to pad.
                        "include_obfuscation" => {}
                        other => return Err(cannot(&format!("stream_options.{other}"))),
                    }
                }
            }
            "stop" => stop = stop_sequences(raw)?,
            "temperature" => sampling[0] = Some(raw),
            "top_p" => sampling[1] = Some(raw),
            "top_k" => sampling[2] = Some(raw),
            "tools" => tools_raw = Some(raw),
            "tool_choice" => tool_choice_raw = Some(raw),
            "parallel_tool_calls" => parallel = Some(boolean(raw, "parallel_tool_calls")?),
            "user" => metadata = Some(Metadata { user_id: string(raw, "user")? }),
            "response_format" => output_config = response_format(raw)?,
            "n" if raw.get() == "1" => {}
            "n" => return Err(unsupported("n", "Anthropic answers with one choice only; use n: 1")),
            "logprobs" if is_noop(raw, &["false"]) => {}
            "presence_penalty" | "frequency_penalty" if is_noop(raw, &["0", "0.0"]) => {}
            "store" if is_noop(raw, &["false"]) => {}
            "metadata" if is_noop(raw, &["{}"]) => {}
            "service_tier" if is_noop(raw, &["\"auto\""]) => {}
            "modalities" if is_noop(raw, &["[\"text\"]"]) => {}
            other => return Err(cannot(other)),
        }
    }
    let model = model.ok_or_else(|| invalid("model", "a model name"))?;
    let max_tokens = match (max_completion_tokens, max_tokens) {
        (Some(a), Some(b)) if a != b => {
            return Err(AiRefusal::bad_request(
                "max_tokens and max_completion_tokens differ: send one of them",
                INVALID,
            ))
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => DEFAULT_MAX_TOKENS,
    };
    let [temperature, top_p, top_k] = sampling;
    check_sampling(temperature, top_p, top_k, o)?;
    let (system, messages) = match messages_raw {
        Some(raw) => messages(raw)?,
        None => return Err(invalid("messages", "an array of messages")),
    };
    let tools = match tools_raw {
        Some(raw) => tools(raw)?,
        None => Vec::new(),
    };
    let tool_choice = tool_choice(tool_choice_raw, parallel)?;
    let out = Out {
        model,
        max_tokens,
        system,
        messages,
        tools,
        tool_choice,
        stop_sequences: stop,
        temperature,
        top_p,
        top_k,
        metadata,
        output_config,
        stream,
    };
    let body = serde_json::to_vec(&out).map_err(|e| AiRefusal::bad_request(format!("messages: {e}"), INVALID))?;
    Ok(Translated { body, include_usage: stream && include_usage })
}

fn check_sampling(
    temperature: Option<&RawValue>,
    top_p: Option<&RawValue>,
    top_k: Option<&RawValue>,
    o: RequestOptions,
) -> Result<(), AiRefusal> {
    for (name, v) in [("temperature", temperature), ("top_p", top_p), ("top_k", top_k)] {
        if v.is_some() && o.refuses_sampling {
            return Err(unsupported(
                name,
                "the Anthropic API version this route uses (2026-10-21 or later) refuses sampling parameters; remove it",
            ));
        }
    }
    if let Some(t) = temperature {
        let t = number(t, "temperature")?;
        if !(0.0..=1.0).contains(&t) {
            return Err(AiRefusal::bad_request(
                format!("temperature {t} is out of Anthropic's range of 0 to 1 (OpenAI's goes to 2)"),
                INVALID,
            ));
        }
    }
    if let Some(p) = top_p {
        let p = number(p, "top_p")?;
        if !(0.0..=1.0).contains(&p) {
            return Err(invalid("top_p", "from 0 to 1"));
        }
    }
    if let Some(k) = top_k {
        integer(k, "top_k")?;
    }
    Ok(())
}

fn stop_sequences(raw: &RawValue) -> Result<Vec<Cow<'_, str>>, AiRefusal> {
    if raw.get().starts_with('"') {
        return Ok(vec![string(raw, "stop")?]);
    }
    array(raw, "stop")?.into_iter().enumerate().map(|(i, s)| string(s, &format!("stop[{i}]"))).collect()
}

fn response_format(raw: &RawValue) -> Result<Option<OutputConfig<'_>>, AiRefusal> {
    let fields = object(raw, "response_format")?;
    let kind = fields.iter().find(|(k, _)| k == "type").map(|(_, v)| string(v, "response_format.type")).transpose()?;
    match kind.as_deref() {
        Some("text") => Ok(None),
        Some("json_schema") => {
            let spec = fields
                .iter()
                .find(|(k, _)| k == "json_schema")
                .map(|(_, v)| *v)
                .ok_or_else(|| invalid("response_format.json_schema", "an object with a schema"))?;
            let mut schema = None;
            for (k, v) in object(spec, "response_format.json_schema")? {
                match k.as_ref() {
                    "schema" => schema = Some(v),
                    // The name and description label the schema; `strict` is what Anthropic's
                    // structured output always does.
                    "name" | "description" | "strict" => {}
                    other => return Err(cannot(&format!("response_format.json_schema.{other}"))),
                }
            }
            let schema = schema.ok_or_else(|| invalid("response_format.json_schema.schema", "a JSON schema"))?;
            Ok(Some(OutputConfig { format: OutputFormat { kind: "json_schema", schema } }))
        }
        Some("json_object") => Err(unsupported(
            "response_format",
            "json_object has no equivalent in Anthropic's Messages API; use json_schema with a schema",
        )),
        _ => Err(invalid("response_format.type", "text or json_schema")),
    }
}

/// The system blocks and the conversation.
#[allow(clippy::type_complexity)]
fn messages(raw: &RawValue) -> Result<(Vec<Block<'_>>, Vec<Message<'_>>), AiRefusal> {
    let mut system = Vec::new();
    let mut out: Vec<Message<'_>> = Vec::new();
    for (i, m) in array(raw, "messages")?.into_iter().enumerate() {
        let at = format!("messages[{i}]");
        let fields = object(m, &at)?;
        let role = match fields.iter().find(|(k, _)| k == "role") {
            Some((_, r)) => string(r, &format!("{at}.role"))?,
            None => return Err(invalid(&format!("{at}.role"), "system, developer, user, assistant or tool")),
        };
        let (role, blocks) = match role.as_ref() {
            "system" | "developer" => {
                system.extend(instructions(&fields, &at)?);
                continue;
            }
            "user" => (Role::User, user(&fields, &at)?),
            "assistant" => (Role::Assistant, assistant(&fields, &at)?),
            "tool" => (Role::User, tool_result(&fields, &at)?),
            "function" => {
                return Err(unsupported(
                    &format!("{at}.role"),
                    "function messages are not supported; use tool messages",
                ))
            }
            other => {
                return Err(invalid(&format!("{at}.role `{other}`"), "system, developer, user, assistant or tool"))
            }
        };
        match out.last_mut() {
            // Anthropic's turns alternate: consecutive messages of one role are one turn.
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => out.push(Message { role, content: blocks }),
        }
    }
    if out.is_empty() {
        return Err(invalid("messages", "at least one user or assistant message"));
    }
    Ok((system, out))
}

/// Refuse fields of a message other than `allowed` (null values are as good as absent).
fn only_fields(fields: &[(Cow<'_, str>, &RawValue)], allowed: &[&str], at: &str) -> Result<(), AiRefusal> {
    match fields.iter().find(|(k, v)| !allowed.contains(&k.as_ref()) && !is_null(v)) {
        Some((k, _)) => Err(cannot(&format!("{at}.{k}"))),
        None => Ok(()),
    }
}

fn field<'a>(fields: &[(Cow<'_, str>, &'a RawValue)], name: &str) -> Option<&'a RawValue> {
    fields.iter().find(|(k, v)| k == name && !is_null(v)).map(|(_, v)| *v)
}

/// A system or developer message: text only.
fn instructions<'a>(fields: &[(Cow<'a, str>, &'a RawValue)], at: &str) -> Result<Vec<Block<'a>>, AiRefusal> {
    only_fields(fields, &["role", "content"], at)?;
    let content = field(fields, "content").ok_or_else(|| invalid(&format!("{at}.content"), "text"))?;
    let mut blocks = text_parts(content, &format!("{at}.content"))?;
    // Anthropic refuses empty text blocks; an empty instruction says nothing.
    blocks.retain(|b| !matches!(b, Block::Text { text, .. } if text.is_empty()));
    Ok(blocks)
}

/// A string, or an array of `text` parts.
fn text_parts<'a>(content: &'a RawValue, at: &str) -> Result<Vec<Block<'a>>, AiRefusal> {
    if content.get().starts_with('"') {
        return Ok(vec![Block::Text { text: string(content, at)?, cache_control: None }]);
    }
    let mut out = Vec::new();
    for (j, part) in array(content, at)?.into_iter().enumerate() {
        let at = format!("{at}[{j}]");
        let f = object(part, &at)?;
        let kind = field(&f, "type").map(|t| string(t, &format!("{at}.type"))).transpose()?;
        if kind.as_deref() != Some("text") {
            return Err(unsupported(&at, "only text parts can be sent here"));
        }
        out.push(text_block(&f, &at)?);
    }
    Ok(out)
}

fn text_block<'a>(f: &[(Cow<'a, str>, &'a RawValue)], at: &str) -> Result<Block<'a>, AiRefusal> {
    only_fields(f, &["type", "text", "cache_control"], at)?;
    let text = field(f, "text").ok_or_else(|| invalid(&format!("{at}.text"), "a string"))?;
    Ok(Block::Text { text: string(text, &format!("{at}.text"))?, cache_control: field(f, "cache_control") })
}

fn user<'a>(fields: &[(Cow<'a, str>, &'a RawValue)], at: &str) -> Result<Vec<Block<'a>>, AiRefusal> {
    only_fields(fields, &["role", "content"], at)?;
    let at_c = format!("{at}.content");
    let content = field(fields, "content").ok_or_else(|| invalid(&at_c, "text or content parts"))?;
    let blocks = if content.get().starts_with('"') {
        vec![Block::Text { text: string(content, &at_c)?, cache_control: None }]
    } else {
        let mut blocks = Vec::new();
        for (j, part) in array(content, &at_c)?.into_iter().enumerate() {
            let at = format!("{at_c}[{j}]");
            let f = object(part, &at)?;
            let kind = field(&f, "type").map(|t| string(t, &format!("{at}.type"))).transpose()?;
            blocks.push(match kind.as_deref() {
                Some("text") => text_block(&f, &at)?,
                Some("image_url") => image(&f, &at)?,
                Some("file") => file(&f, &at)?,
                Some(other) => {
                    return Err(unsupported(
                        &at,
                        &format!("content parts of type `{other}` cannot be sent to Anthropic"),
                    ))
                }
                None => return Err(invalid(&format!("{at}.type"), "a content part type")),
            });
        }
        blocks
    };
    if blocks.iter().any(|b| matches!(b, Block::Text { text, .. } if text.is_empty())) || blocks.is_empty() {
        return Err(invalid(&at_c, "non-empty (Anthropic refuses empty text)"));
    }
    Ok(blocks)
}

const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

/// `data:<media type>;base64,<data>` → (media type, data), borrowing when the URL is borrowed.
fn data_url<'a>(url: Cow<'a, str>, at: &str) -> Result<(Cow<'a, str>, Cow<'a, str>), AiRefusal> {
    let parse = |u: &str| -> Option<(usize, usize, usize)> {
        let rest = u.strip_prefix("data:")?;
        let comma = rest.find(',')?;
        let media_end = rest[..comma].strip_suffix(";base64")?.len();
        Some((5, 5 + media_end, 5 + comma + 1))
    };
    let (ms, me, ds) = parse(&url).ok_or_else(|| invalid(at, "a base64 data: URL or an http(s) URL"))?;
    Ok(match url {
        Cow::Borrowed(u) => (Cow::Borrowed(&u[ms..me]), Cow::Borrowed(&u[ds..])),
        Cow::Owned(u) => (Cow::Owned(u[ms..me].to_string()), Cow::Owned(u[ds..].to_string())),
    })
}

fn image<'a>(f: &[(Cow<'a, str>, &'a RawValue)], at: &str) -> Result<Block<'a>, AiRefusal> {
    only_fields(f, &["type", "image_url", "cache_control"], at)?;
    let at_u = format!("{at}.image_url");
    let spec = field(f, "image_url").ok_or_else(|| invalid(&at_u, "an object with a url"))?;
    let url = if spec.get().starts_with('"') {
        string(spec, &at_u)?
    } else {
        let s = object(spec, &at_u)?;
        // `detail` chooses OpenAI's resolution; Anthropic picks its own (README says so).
        only_fields(&s, &["url", "detail"], &at_u)?;
        let url = field(&s, "url").ok_or_else(|| invalid(&format!("{at_u}.url"), "a URL"))?;
        string(url, &format!("{at_u}.url"))?
    };
    let source = if url.starts_with("https://") || url.starts_with("http://") {
        Source::Url { url }
    } else {
        let (media_type, data) = data_url(url, &format!("{at_u}.url"))?;
        if !IMAGE_TYPES.iter().any(|t| media_type.eq_ignore_ascii_case(t)) {
            return Err(unsupported(
                &at_u,
                &format!("Anthropic takes jpeg, png, gif or webp images, not {media_type}"),
            ));
        }
        Source::Base64 { media_type, data }
    };
    Ok(Block::Image { source, cache_control: field(f, "cache_control") })
}

fn file<'a>(f: &[(Cow<'a, str>, &'a RawValue)], at: &str) -> Result<Block<'a>, AiRefusal> {
    only_fields(f, &["type", "file", "cache_control"], at)?;
    let at_f = format!("{at}.file");
    let spec = object(field(f, "file").ok_or_else(|| invalid(&at_f, "an object"))?, &at_f)?;
    only_fields(&spec, &["file_data", "filename"], &at_f)?;
    let data = field(&spec, "file_data")
        .ok_or_else(|| unsupported(&at_f, "only file_data (a PDF data: URL) can be sent to Anthropic, not file_id"))?;
    let (media_type, data) = data_url(string(data, &format!("{at_f}.file_data"))?, &format!("{at_f}.file_data"))?;
    if !media_type.eq_ignore_ascii_case("application/pdf") {
        return Err(unsupported(&at_f, &format!("Anthropic takes PDF documents, not {media_type}")));
    }
    Ok(Block::Document { source: Source::Base64 { media_type, data }, cache_control: field(f, "cache_control") })
}

fn assistant<'a>(fields: &[(Cow<'a, str>, &'a RawValue)], at: &str) -> Result<Vec<Block<'a>>, AiRefusal> {
    // `annotations` are the answer's citations, echoed back by clients: not part of the turn.
    only_fields(fields, &["role", "content", "tool_calls", "refusal", "annotations"], at)?;
    let mut blocks = Vec::new();
    if let Some(content) = field(fields, "content") {
        let at_c = format!("{at}.content");
        if content.get().starts_with('"') {
            blocks.push(Block::Text { text: string(content, &at_c)?, cache_control: None });
        } else {
            for (j, part) in array(content, &at_c)?.into_iter().enumerate() {
                let at = format!("{at_c}[{j}]");
                let f = object(part, &at)?;
                match field(&f, "type").map(|t| string(t, &format!("{at}.type"))).transpose()?.as_deref() {
                    Some("text") => blocks.push(text_block(&f, &at)?),
                    Some("refusal") => {
                        only_fields(&f, &["type", "refusal"], &at)?;
                        let r = field(&f, "refusal").ok_or_else(|| invalid(&format!("{at}.refusal"), "a string"))?;
                        blocks.push(Block::Text { text: string(r, &format!("{at}.refusal"))?, cache_control: None });
                    }
                    _ => return Err(unsupported(&at, "only text and refusal parts can be sent for the assistant")),
                }
            }
        }
    }
    if let Some(r) = field(fields, "refusal") {
        blocks.push(Block::Text { text: string(r, &format!("{at}.refusal"))?, cache_control: None });
    }
    blocks.retain(|b| !matches!(b, Block::Text { text, .. } if text.is_empty()));
    if let Some(calls) = field(fields, "tool_calls") {
        for (j, call) in array(calls, &format!("{at}.tool_calls"))?.into_iter().enumerate() {
            blocks.push(tool_use(call, &format!("{at}.tool_calls[{j}]"))?);
        }
    }
    if blocks.is_empty() {
        return Err(invalid(&format!("{at}.content"), "text or tool_calls (Anthropic refuses an empty turn)"));
    }
    Ok(blocks)
}

fn tool_use<'a>(call: &'a RawValue, at: &str) -> Result<Block<'a>, AiRefusal> {
    let f = object(call, at)?;
    only_fields(&f, &["id", "type", "function"], at)?;
    if let Some(t) = field(&f, "type") {
        if string(t, &format!("{at}.type"))? != "function" {
            return Err(unsupported(&format!("{at}.type"), "only function tool calls can be sent to Anthropic"));
        }
    }
    let id =
        string(field(&f, "id").ok_or_else(|| invalid(&format!("{at}.id"), "the call's id"))?, &format!("{at}.id"))?;
    let at_f = format!("{at}.function");
    let func = object(field(&f, "function").ok_or_else(|| invalid(&at_f, "an object"))?, &at_f)?;
    only_fields(&func, &["name", "arguments"], &at_f)?;
    let name = string(field(&func, "name").ok_or_else(|| invalid(&format!("{at_f}.name"), "a string"))?, &at_f)?;
    let args = match field(&func, "arguments") {
        Some(a) => string(a, &format!("{at_f}.arguments"))?,
        None => Cow::Borrowed(""),
    };
    let args = args.trim();
    let input = if args.is_empty() { "{}" } else { args };
    let input = RawValue::from_string(input.to_string())
        .ok()
        .filter(|v| v.get().starts_with('{'))
        .ok_or_else(|| invalid(&format!("{at_f}.arguments"), "a JSON object (Anthropic's tool input)"))?;
    Ok(Block::ToolUse { id, name, input })
}

fn tool_result<'a>(fields: &[(Cow<'a, str>, &'a RawValue)], at: &str) -> Result<Vec<Block<'a>>, AiRefusal> {
    only_fields(fields, &["role", "content", "tool_call_id"], at)?;
    let at_id = format!("{at}.tool_call_id");
    let id = string(field(fields, "tool_call_id").ok_or_else(|| invalid(&at_id, "the tool call's id"))?, &at_id)?;
    let content = match field(fields, "content") {
        None => None,
        Some(c) if c.get().starts_with('"') => {
            Some(string(c, &format!("{at}.content"))?).filter(|s| !s.is_empty()).map(ResultContent::Text)
        }
        Some(c) => {
            let mut blocks = text_parts(c, &format!("{at}.content"))?;
            blocks.retain(|b| !matches!(b, Block::Text { text, .. } if text.is_empty()));
            (!blocks.is_empty()).then_some(ResultContent::Blocks(blocks))
        }
    };
    Ok(vec![Block::ToolResult { tool_use_id: id, content }])
}

/// A JSON schema an object tool takes when `parameters` is left out.
const EMPTY_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;

fn tools(raw: &RawValue) -> Result<Vec<Tool<'_>>, AiRefusal> {
    let mut out = Vec::new();
    for (i, t) in array(raw, "tools")?.into_iter().enumerate() {
        let at = format!("tools[{i}]");
        let f = object(t, &at)?;
        let kind = field(&f, "type").map(|k| string(k, &format!("{at}.type"))).transpose()?;
        if kind.as_deref() != Some("function") {
            return Err(unsupported(&format!("{at}.type"), "only function tools can be sent to Anthropic"));
        }
        only_fields(&f, &["type", "function", "cache_control"], &at)?;
        let at_f = format!("{at}.function");
        let func = object(field(&f, "function").ok_or_else(|| invalid(&at_f, "an object"))?, &at_f)?;
        only_fields(&func, &["name", "description", "parameters", "strict"], &at_f)?;
        let name = string(field(&func, "name").ok_or_else(|| invalid(&format!("{at_f}.name"), "a string"))?, &at_f)?;
        let description = field(&func, "description").map(|d| string(d, &format!("{at_f}.description"))).transpose()?;
        let input_schema = match field(&func, "parameters") {
            Some(p) if p.get().starts_with('{') => p,
            Some(_) => return Err(invalid(&format!("{at_f}.parameters"), "a JSON schema object")),
            None => empty_schema(),
        };
        let strict = field(&func, "strict").map(|s| boolean(s, &format!("{at_f}.strict"))).transpose()?;
        out.push(Tool { name, description, input_schema, strict, cache_control: field(&f, "cache_control") });
    }
    Ok(out)
}

fn empty_schema() -> &'static RawValue {
    static SCHEMA: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| RawValue::from_string(EMPTY_SCHEMA.to_string()).unwrap_or_else(|_| RawValue::NULL.to_owned()))
}

fn tool_choice<'a>(raw: Option<&'a RawValue>, parallel: Option<bool>) -> Result<Option<ToolChoice<'a>>, AiRefusal> {
    let disable = (parallel == Some(false)).then_some(true);
    let choice = match raw {
        None => disable.map(|_| ToolChoice { kind: "auto", name: None, disable_parallel_tool_use: None }),
        Some(r) if r.get().starts_with('"') => Some(match string(r, "tool_choice")?.as_ref() {
            "auto" => ToolChoice { kind: "auto", name: None, disable_parallel_tool_use: None },
            "required" => ToolChoice { kind: "any", name: None, disable_parallel_tool_use: None },
            "none" => return Ok(Some(ToolChoice { kind: "none", name: None, disable_parallel_tool_use: None })),
            _ => return Err(invalid("tool_choice", "auto, required, none or a function")),
        }),
        Some(r) => {
            let f = object(r, "tool_choice")?;
            let kind = field(&f, "type").map(|k| string(k, "tool_choice.type")).transpose()?;
            if kind.as_deref() != Some("function") {
                return Err(unsupported(
                    "tool_choice",
                    "only a function can be chosen for Anthropic (not allowed_tools or custom tools)",
                ));
            }
            only_fields(&f, &["type", "function"], "tool_choice")?;
            let func = object(
                field(&f, "function").ok_or_else(|| invalid("tool_choice.function", "an object"))?,
                "tool_choice.function",
            )?;
            only_fields(&func, &["name"], "tool_choice.function")?;
            let name = field(&func, "name").ok_or_else(|| invalid("tool_choice.function.name", "a string"))?;
            Some(ToolChoice {
                kind: "tool",
                name: Some(string(name, "tool_choice.function.name")?),
                disable_parallel_tool_use: None,
            })
        }
    };
    Ok(choice.map(|mut c| {
        c.disable_parallel_tool_use = disable;
        c
    }))
}

#[cfg(test)]
mod tests;
