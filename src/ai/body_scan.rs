//! One pass over an LLM request body, without building a `serde_json::Value`: it validates the
//! JSON (RFC 8259, as strictly as serde_json), refuses a key repeated in any object at any depth
//! (the gateway and the provider must read the same document: a reader keeping the first of two
//! `type`s and another keeping the last would disagree on what a tool is), keeps the top-level
//! fields as slices of the original bytes (for [`RequestDoc`](super::json_body::RequestDoc)),
//! and notes every field that names another object by id ([`BodyRefs`]).
//!
//! Which fields name objects is OpenAI's API (openai 3.57.0's request types, walked
//! mechanically): `previous_response_id`, `conversation` (a string or `{id}`),
//! `prompt_cache_options.comparison_response_id`, the `id` of any item of `input` (or of `items`
//! in the Conversations API: `item_reference` and items sent back), and ids of stored objects the
//! gateway offers no API for — `file_id`/`file_ids` anywhere, `vector_store_ids`,
//! `container`/`container_id` strings, `skill_id`, a chat message's `audio.id` — and the
//! reusable `prompt.id`. URLs (`image_url`, `file_url`) are not ids. Free-form subtrees
//! (`metadata`, JSON schemas: `parameters`, `schema`, `input_schema`) are checked for duplicate
//! keys only.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use crate::core::ObjectKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON, or truncated.
    Invalid(String),
    /// Valid JSON, but not an object.
    NotAnObject,
    /// The same key twice in one object, at any depth: the gateway and the provider could read
    /// different values.
    DuplicateField(String),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Invalid(e) => write!(f, "request body is not valid JSON: {e}"),
            BodyError::NotAnObject => write!(f, "request body must be a JSON object"),
            BodyError::DuplicateField(k) => {
                write!(f, "request body has the key \"{k}\" more than once in one object")
            }
        }
    }
}

/// Deeper nesting is refused (serde_json's limit for a `Value`).
pub const MAX_DEPTH: usize = 128;

/// The exact spellings of the MCP `type`s of tools and items.
const MCP_TYPES: &[&str] = &["mcp", "mcp_call", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response"];

/// A field naming an object that must belong to the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdRef {
    pub kind: ObjectKind,
    pub id: String,
    /// Where the body names it: `previous_response_id`, `input[3].id`, …
    pub field: String,
}

/// A body no policy may let through as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// An id-bearing field of another JSON type than the API's (an array for
    /// `previous_response_id` would otherwise skip its ownership check).
    NotAnId { field: String, expected: &'static str },
    /// A `type` a lenient reader could take for an MCP type (`"MCP"`, `"mcp "`, `" Mcp"`).
    LooseMcpType { field: String },
    /// A key a lenient reader could take for `type` (`"Type"`, `"type "`).
    LooseTypeKey { field: String },
}

/// The ids a body names, and the places that need a policy's attention.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BodyRefs {
    /// Objects the body names that must be the consumer's own.
    pub owned: Vec<IdRef>,
    /// The first field naming a stored object no consumer can own through the gateway (files,
    /// vector stores, containers, skills, audio), by its path.
    pub unownable: Option<String>,
    /// The reusable prompt the body names (`prompt.id`).
    pub prompt: Option<String>,
    /// The first malformation found (refused whatever the policies).
    pub malformed: Option<Malformed>,
    /// The first MCP tool defined anywhere but the top-level `tools` (inside `input` items such
    /// as `additional_tools`): ai-mcp-guard cannot govern it there.
    pub nested_mcp_tool: Option<String>,
    /// The body hands MCP tools to the model, or sends MCP items back.
    pub mcp: bool,
}

/// The top-level fields of an object body, as (key, raw JSON value) in order, and its refs.
pub type Scanned<'a> = (Vec<(Cow<'a, str>, &'a str)>, BodyRefs);

/// Scan a body that must be a JSON object.
pub fn scan(body: &[u8]) -> Result<Scanned<'_>, BodyError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| BodyError::Invalid(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    let mut s = Scanner {
        text,
        b: text.as_bytes(),
        i: 0,
        frames: Vec::with_capacity(16),
        keys: Vec::with_capacity(32),
        big: Vec::new(),
        fields: Vec::with_capacity(16),
        field_start: 0,
        refs: BodyRefs::default(),
    };
    s.ws();
    match s.b.get(s.i) {
        None => return Err(invalid(s.i, "the body is empty")),
        Some(b'{') => {}
        Some(_) => return Err(BodyError::NotAnObject),
    }
    s.run()?;
    Ok((s.fields, s.refs))
}

fn invalid(at: usize, what: &str) -> BodyError {
    BodyError::Invalid(format!("{what} at byte {at}"))
}

/// What a container is, for the rules of the values inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Root,
    /// `input` / `items`: an array of items.
    Items,
    Item,
    /// The top-level `tools` array, and one tool in it.
    Tools,
    Tool,
    /// `tool_choice` and everything in it (it names MCP servers, it does not define them).
    ToolChoice,
    Conversation,
    Prompt,
    CacheOptions,
    Audio,
    /// `file_ids`, `vector_store_ids`: any element is an id.
    IdList,
    /// Free-form JSON: duplicate keys only.
    Skip,
    Plain,
}

/// What a key means, whatever the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Type,
    LooseType,
    Id,
    FileId,
    IdList,
    Container,
    Unownable,
    Audio,
    FreeForm,
    PreviousResponse,
    Conversation,
    Prompt,
    CacheOptions,
    ComparisonResponse,
    Items,
    Tools,
    ToolChoice,
    Other,
}

fn classify(k: &str) -> Key {
    match k {
        "type" => Key::Type,
        "id" => Key::Id,
        "file_id" => Key::FileId,
        "file_ids" | "vector_store_ids" => Key::IdList,
        "container" => Key::Container,
        "container_id" | "skill_id" => Key::Unownable,
        "audio" => Key::Audio,
        "metadata" | "parameters" | "schema" | "input_schema" => Key::FreeForm,
        "previous_response_id" => Key::PreviousResponse,
        "conversation" => Key::Conversation,
        "prompt" => Key::Prompt,
        "prompt_cache_options" => Key::CacheOptions,
        "comparison_response_id" => Key::ComparisonResponse,
        "input" | "items" => Key::Items,
        "tools" => Key::Tools,
        "tool_choice" => Key::ToolChoice,
        _ if loose_type(k) => Key::LooseType,
        _ => Key::Other,
    }
}

/// A key a lenient reader could take for `type`: `Type`, ` type`, `TYPE\t`.
fn loose_type(k: &str) -> bool {
    k.len() >= 4
        && k.len() <= 16
        && k.as_bytes().windows(4).any(|w| w.eq_ignore_ascii_case(b"type"))
        && k.trim().eq_ignore_ascii_case("type")
}

/// How the value about to be read is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Plain,
    Skip,
    /// A string naming an object of this kind (null: absent).
    Ref(ObjectKind),
    /// `conversation`: a string, or an object with `id`.
    ConversationField,
    /// `prompt`: an object with `id`.
    PromptField,
    PromptId,
    /// Any non-null value names an object no consumer can own.
    Unownable,
    /// `container`: a string is an id; an object is read on.
    Container,
    /// `file_ids`, `vector_store_ids`: a string or a non-empty array of ids.
    IdList,
    Type,
    /// An object of this context (other values: plain).
    Object(Ctx),
    /// An array of this context (other values: plain).
    Array(Ctx),
}

/// An open container. Kept small: one is pushed and popped per object and array. How the
/// parent names it (for paths) is the parent's current key or index.
struct Frame<'a> {
    object: bool,
    ctx: Ctx,
    key_class: Key,
    /// An object's keys are in `Scanner::keys` from here, or in `Scanner::big` once there are
    /// many.
    key_start: u32,
    /// An array's current element.
    index: u32,
    /// An object's current key (raw).
    key: &'a str,
}

struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    frames: Vec<Frame<'a>>,
    keys: Vec<Cow<'a, str>>,
    /// The keys of objects with many, by depth (innermost last).
    big: Vec<(usize, HashSet<Cow<'a, str>>)>,
    fields: Vec<(Cow<'a, str>, &'a str)>,
    field_start: usize,
    refs: BodyRefs,
}

enum State {
    ObjectStart,
    ArrayStart,
    Value,
    AfterValue,
}

/// Keys an object may hold before they are looked up in a hash set instead of a list.
const LINEAR_KEYS: usize = 16;

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Result<u8, BodyError> {
        self.b.get(self.i).copied().ok_or_else(|| invalid(self.i, "unexpected end of the body"))
    }

    fn run(&mut self) -> Result<(), BodyError> {
        self.open(true, Ctx::Root)?;
        let mut state = State::ObjectStart;
        loop {
            state = match state {
                State::ObjectStart => {
                    self.ws();
                    if self.peek()? == b'}' {
                        self.i += 1;
                        self.close();
                        State::AfterValue
                    } else {
                        self.key()?;
                        State::Value
                    }
                }
                State::ArrayStart => {
                    self.ws();
                    if self.peek()? == b']' {
                        self.i += 1;
                        self.close();
                        State::AfterValue
                    } else {
                        State::Value
                    }
                }
                State::Value => self.value()?,
                State::AfterValue => {
                    let Some(top) = self.frames.last_mut() else { break };
                    let object = top.object;
                    self.ws();
                    match (self.peek()?, object) {
                        (b',', true) => {
                            self.i += 1;
                            self.ws();
                            self.key()?;
                            State::Value
                        }
                        (b',', false) => {
                            self.i += 1;
                            if let Some(top) = self.frames.last_mut() {
                                top.index += 1;
                            }
                            State::Value
                        }
                        (b'}', true) | (b']', false) => {
                            self.i += 1;
                            self.close();
                            State::AfterValue
                        }
                        _ => return Err(invalid(self.i, "expected `,` or the end of the container")),
                    }
                }
            };
        }
        self.ws();
        if self.i != self.b.len() {
            return Err(invalid(self.i, "trailing characters after the JSON object"));
        }
        Ok(())
    }

    fn open(&mut self, object: bool, ctx: Ctx) -> Result<(), BodyError> {
        if self.frames.len() >= MAX_DEPTH {
            return Err(invalid(self.i, &format!("nested deeper than {MAX_DEPTH} levels")));
        }
        self.i += 1;
        self.frames.push(Frame {
            object,
            ctx,
            key_class: Key::Other,
            key_start: self.keys.len() as u32,
            index: 0,
            key: "",
        });
        Ok(())
    }

    fn close(&mut self) {
        let depth = self.frames.len();
        if let Some(f) = self.frames.pop() {
            if f.object {
                self.keys.truncate(f.key_start as usize);
                if self.big.last().is_some_and(|(d, _)| *d == depth) {
                    self.big.pop();
                }
            }
        }
        self.value_done();
    }

    /// A value ended at `self.i`: a top-level one becomes a field.
    fn value_done(&mut self) {
        if self.frames.len() == 1 {
            let key = self.keys.last().cloned().unwrap_or_default();
            self.fields.push((key, &self.text[self.field_start..self.i]));
        }
    }

    /// Read a key and its colon; refuse it if the object has it already.
    fn key(&mut self) -> Result<(), BodyError> {
        if self.peek()? != b'"' {
            return Err(invalid(self.i, "expected a string key"));
        }
        let (raw, escaped) = self.string()?;
        let key: Cow<'a, str> = if escaped {
            Cow::Owned(decode(raw).ok_or_else(|| invalid(self.i, "a key holds an invalid escape"))?)
        } else {
            Cow::Borrowed(raw)
        };
        let class = classify(&key);
        let depth = self.frames.len();
        let keys = &mut self.keys;
        let Some(top) = self.frames.last_mut() else { return Err(invalid(self.i, "a key outside an object")) };
        let start = top.key_start as usize;
        let big = self.big.last_mut().filter(|(d, _)| *d == depth);
        let duplicate = match big {
            Some((_, set)) => !set.insert(key.clone()),
            None => {
                let mine = &keys[start..];
                if mine.contains(&key) {
                    true
                } else if mine.len() >= LINEAR_KEYS {
                    // Many keys: look them up in a set from now on (a list is quadratic).
                    let mut set: HashSet<Cow<'a, str>> = mine.iter().cloned().collect();
                    set.insert(key.clone());
                    self.big.push((depth, set));
                    false
                } else {
                    false
                }
            }
        };
        if duplicate {
            return Err(BodyError::DuplicateField(key.into_owned()));
        }
        top.key = raw;
        top.key_class = class;
        let skip = top.ctx == Ctx::Skip;
        // The last key listed names the field being read (the root's, for `fields`).
        self.keys.push(key);
        if class == Key::LooseType && !skip && self.refs.malformed.is_none() {
            self.refs.malformed = Some(Malformed::LooseTypeKey { field: self.here() });
        }
        self.ws();
        if self.peek()? != b':' {
            return Err(invalid(self.i, "expected `:` after a key"));
        }
        self.i += 1;
        Ok(())
    }

    /// The rule for the value about to be read, from its container and key.
    fn role(&self) -> Role {
        let Some(top) = self.frames.last() else { return Role::Plain };
        if top.ctx == Ctx::Skip {
            return Role::Skip;
        }
        if !top.object {
            return match top.ctx {
                Ctx::Items => Role::Object(Ctx::Item),
                Ctx::Tools => Role::Object(Ctx::Tool),
                Ctx::IdList => Role::Unownable,
                _ => Role::Plain,
            };
        }
        match (top.ctx, top.key_class) {
            (_, Key::FreeForm) => Role::Skip,
            (Ctx::Root, Key::PreviousResponse) => Role::Ref(ObjectKind::Response),
            (Ctx::Root, Key::Conversation) => Role::ConversationField,
            (Ctx::Root, Key::Prompt) => Role::PromptField,
            (Ctx::Root, Key::CacheOptions) => Role::Object(Ctx::CacheOptions),
            (Ctx::Root, Key::Items) => Role::Array(Ctx::Items),
            (Ctx::Root, Key::Tools) => Role::Array(Ctx::Tools),
            (Ctx::Root, Key::ToolChoice) => Role::Object(Ctx::ToolChoice),
            (Ctx::Conversation, Key::Id) => Role::Ref(ObjectKind::Conversation),
            (Ctx::Prompt, Key::Id) => Role::PromptId,
            (Ctx::CacheOptions, Key::ComparisonResponse) => Role::Ref(ObjectKind::Response),
            (Ctx::Item, Key::Id) => Role::Ref(ObjectKind::Item),
            (Ctx::Audio, Key::Id) => Role::Unownable,
            (_, Key::FileId | Key::Unownable) => Role::Unownable,
            (_, Key::Container) => Role::Container,
            (_, Key::IdList) => Role::IdList,
            (_, Key::Audio) => Role::Object(Ctx::Audio),
            (_, Key::Type) => Role::Type,
            _ => Role::Plain,
        }
    }

    /// Read one value (a container is opened, not read whole).
    fn value(&mut self) -> Result<State, BodyError> {
        self.ws();
        if self.frames.len() == 1 {
            self.field_start = self.i;
        }
        let role = self.role();
        let parent_ctx = self.frames.last().map_or(Ctx::Plain, |f| f.ctx);
        let inherited = match parent_ctx {
            Ctx::Skip => Ctx::Skip,
            Ctx::ToolChoice => Ctx::ToolChoice,
            _ => Ctx::Plain,
        };
        match self.peek()? {
            c @ (b'{' | b'[') => {
                let object = c == b'{';
                let ctx = match role {
                    Role::Skip => Ctx::Skip,
                    Role::Object(ctx) if object => ctx,
                    Role::Array(ctx) if !object => ctx,
                    Role::ConversationField if object => Ctx::Conversation,
                    Role::PromptField if object => Ctx::Prompt,
                    Role::IdList if !object => Ctx::IdList,
                    Role::Container | Role::Plain | Role::Type | Role::Object(_) | Role::Array(_) => inherited,
                    Role::Unownable | Role::IdList => {
                        self.unownable();
                        Ctx::Skip
                    }
                    Role::Ref(_) | Role::ConversationField | Role::PromptField | Role::PromptId => {
                        self.not_an_id(role);
                        Ctx::Skip
                    }
                };
                self.open(object, ctx)?;
                return Ok(if object { State::ObjectStart } else { State::ArrayStart });
            }
            b'"' => {
                let (raw, escaped) = self.string()?;
                self.string_value(role, parent_ctx, raw, escaped);
                self.value_done();
                return Ok(State::AfterValue);
            }
            b'n' => {
                self.literal("null")?;
                self.value_done();
                return Ok(State::AfterValue);
            }
            b't' => self.literal("true")?,
            b'f' => self.literal("false")?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return Err(invalid(self.i, "expected a JSON value")),
        }
        // A boolean or a number where an id belongs.
        match role {
            Role::Unownable | Role::IdList | Role::Container => self.unownable(),
            Role::Ref(_) | Role::ConversationField | Role::PromptField | Role::PromptId => self.not_an_id(role),
            _ => {}
        }
        self.value_done();
        Ok(State::AfterValue)
    }

    fn string_value(&mut self, role: Role, ctx: Ctx, raw: &'a str, escaped: bool) {
        let value = || if escaped { decode(raw).unwrap_or_else(|| raw.to_string()) } else { raw.to_string() };
        match role {
            Role::Ref(kind) => {
                let field = self.here();
                self.refs.owned.push(IdRef { kind, id: value(), field });
            }
            Role::ConversationField => {
                let field = self.here();
                self.refs.owned.push(IdRef { kind: ObjectKind::Conversation, id: value(), field });
            }
            Role::PromptField => self.not_an_id(role),
            Role::PromptId => self.refs.prompt = Some(value()),
            Role::Unownable | Role::Container | Role::IdList => self.unownable(),
            Role::Type => {
                let v: Cow<'_, str> = if escaped { Cow::Owned(value()) } else { Cow::Borrowed(raw) };
                if v == "mcp" {
                    match ctx {
                        Ctx::Tool => self.refs.mcp = true,
                        Ctx::ToolChoice => {}
                        // A tool definition anywhere else (inside `input`, or as an item).
                        _ => {
                            if self.refs.nested_mcp_tool.is_none() {
                                self.refs.nested_mcp_tool = Some(self.here());
                            }
                        }
                    }
                } else if MCP_TYPES.contains(&v.as_ref()) {
                    if ctx == Ctx::Item {
                        self.refs.mcp = true;
                    }
                } else if contains_mcp(&v) && self.refs.malformed.is_none() {
                    self.refs.malformed = Some(Malformed::LooseMcpType { field: self.here() });
                }
            }
            Role::Plain | Role::Skip | Role::Object(_) | Role::Array(_) => {}
        }
    }

    fn unownable(&mut self) {
        if self.refs.unownable.is_none() {
            self.refs.unownable = Some(self.here());
        }
    }

    fn not_an_id(&mut self, role: Role) {
        if self.refs.malformed.is_none() {
            let expected = match role {
                Role::ConversationField => "a string or an object with a string `id`",
                Role::PromptField => "an object",
                _ => "a string",
            };
            self.refs.malformed = Some(Malformed::NotAnId { field: self.here(), expected });
        }
    }

    /// The path of the value being read: `input[2].content[0].file_id` (each container is
    /// named by its parent's current key or index).
    fn here(&self) -> String {
        let mut out = String::new();
        for f in &self.frames {
            push_segment(&mut out, f.object, f.key, f.index);
        }
        out
    }

    /// A string starting at the quote at `self.i`: its raw contents (escapes kept) and whether
    /// it has escapes; `self.i` ends past the closing quote.
    fn string(&mut self) -> Result<(&'a str, bool), BodyError> {
        let start = self.i + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            i = special(self.b, i).ok_or_else(|| invalid(self.b.len(), "unterminated string"))?;
            if self.b[i] < 0x20 {
                return Err(invalid(i, "a control character in a string"));
            }
            if self.b[i] == b'"' {
                self.i = i + 1;
                return Ok((&self.text[start..i], escaped));
            }
            escaped = true;
            match self.b.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') if self.b.get(i + 2..i + 6).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) => i += 6,
                _ => return Err(invalid(i, "an invalid escape in a string")),
            }
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), BodyError> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(())
        } else {
            Err(invalid(self.i, "expected a JSON value"))
        }
    }

    fn number(&mut self) -> Result<(), BodyError> {
        let digits = |s: &mut Self| {
            let from = s.i;
            while s.i < s.b.len() && s.b[s.i].is_ascii_digit() {
                s.i += 1;
            }
            s.i > from
        };
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(invalid(self.i, "an invalid number")),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !digits(self) {
                return Err(invalid(self.i, "an invalid number"));
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return Err(invalid(self.i, "an invalid number"));
            }
        }
        Ok(())
    }
}

fn push_segment(out: &mut String, object: bool, key: &str, index: u32) {
    if object {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(key);
    } else {
        out.push('[');
        out.push_str(&index.to_string());
        out.push(']');
    }
}

/// The first `"`, `\\` or control character at or after `i`: the quote or backslash by
/// `memchr` (SIMD), then the bytes before it checked for controls eight at a time.
fn special(b: &[u8], i: usize) -> Option<usize> {
    let rest = b.get(i..)?;
    let end = memchr::memchr2(b'"', b'\\', rest);
    let before = &rest[..end.unwrap_or(rest.len())];
    if has_control(before) {
        return before.iter().position(|&c| c < 0x20).map(|p| i + p);
    }
    end.map(|e| i + e)
}

/// Whether any byte is below 0x20, without a branch per byte: for each 8-byte word,
/// `(w - 0x20…) & !w & 0x80…` is non-zero exactly when one of its bytes is below 0x20.
fn has_control(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut words = s.chunks_exact(8);
    let mut found = 0u64;
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let w = u64::from_le_bytes(w);
        found |= w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    }
    found != 0 || words.remainder().iter().any(|&c| c < 0x20)
}

/// Whether a `type` value has `mcp` in it, in any case.
fn contains_mcp(s: &str) -> bool {
    s.as_bytes().windows(3).any(|w| w.eq_ignore_ascii_case(b"mcp"))
}

/// The text of a string with escapes; `None` for a lone surrogate (no text has one).
fn decode(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices();
    let b = raw.as_bytes();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let (_, e) = chars.next()?;
        match e {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let hex = |at: usize| -> Option<u32> { u32::from_str_radix(raw.get(at..at + 4)?, 16).ok() };
                let first = hex(i + 2)?;
                for _ in 0..4 {
                    chars.next();
                }
                let code = match first {
                    0xD800..=0xDBFF => {
                        if b.get(i + 6) != Some(&b'\\') || b.get(i + 7) != Some(&b'u') {
                            return None;
                        }
                        let second = hex(i + 8)?;
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return None;
                        }
                        for _ in 0..6 {
                            chars.next();
                        }
                        0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return None,
                    c => c,
                };
                out.push(char::from_u32(code)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;
