//! The API surface of an LLM route: which (method, path after the route) are an operation of
//! the route type's API, and what each needs — its body, the object in its path that must be
//! the consumer's, what its answer adds to the consumer's objects, and the provider path it is
//! sent to. Everything else is refused before any upstream work: 404 for a path the API does not
//! have, 405 (with `Allow`) for a method the path does not take.
//!
//! The path forms are the ones the official SDKs produce with `base_url` at the route (with or
//! without `/v1`), and the provider's own under the route (a route at `/v1/responses` with
//! `base_url=…/v1`):
//!
//! | route type | method and path after the route | operation |
//! |---|---|---|
//! | responses | `POST` ``, `/`, `/responses`, `/v1/responses` | create |
//! | responses | `POST {P}/compact`, `POST {P}/input_tokens` | compact, count input tokens |
//! | responses | `GET`/`DELETE {P}/{id}`, `POST {P}/{id}/cancel`, `GET {P}/{id}/input_items` | one response |
//! | responses | `POST {Q}/conversations`; `GET`/`POST`/`DELETE {Q}/conversations/{id}`; `GET`/`POST …/{id}/items`; `GET`/`DELETE …/{id}/items/{item}` | Conversations API |
//! | chat | `POST` ``, `/`, `/chat/completions`, `/v1/chat/completions` | create |
//! | chat | `GET`/`POST`/`DELETE {P}/{id}`, `GET {P}/{id}/messages` | one stored completion |
//! | chat, `llm_format: anthropic` | `POST` ``, `/`, `/messages`, `/v1/messages` | create a message |
//! | chat, `llm_format: anthropic` | `POST /count_tokens`, `/messages/count_tokens`, `/v1/messages/count_tokens` | count tokens |
//!
//! Azure OpenAI's forms (the `openai` SDK's `AzureOpenAI` client) are the same operations:
//! `/openai/deployments/{deployment}/chat/completions` and `/openai/v1/chat/completions` for
//! chat, `/openai/responses` and `/openai/v1/responses` (and their sub-resources) for responses.
//!
//! `{P}` is nothing, `/responses` or `/v1/responses` (`/chat/completions`, `/v1/chat/completions`
//! for chat); `{Q}` is nothing or `/v1`. Ids are 1–256 of `[A-Za-z0-9_-]`, matched exactly; the
//! path after an id must be exactly one of the forms above (no extra segment, no encoded `/` or
//! `.`, no `;` parameters). The list of stored chat completions (`GET /v1/chat/completions`) is
//! refused: it lists every tenant's.

use super::provider::{Dialect, ANTHROPIC_COUNT_TOKENS_SUFFIX};
use super::RouteType;
use crate::core::{is_object_id, ObjectKind};

/// One operation of an LLM route's API, with the ids its path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    CreateResponse,
    CompactResponse,
    CountInputTokens,
    GetResponse(String),
    DeleteResponse(String),
    CancelResponse(String),
    ListInputItems(String),
    CreateConversation,
    GetConversation(String),
    UpdateConversation(String),
    DeleteConversation(String),
    CreateConversationItems(String),
    ListConversationItems(String),
    GetConversationItem(String, String),
    DeleteConversationItem(String, String),
    CreateChatCompletion,
    GetChatCompletion(String),
    UpdateChatCompletion(String),
    DeleteChatCompletion(String),
    ListChatMessages(String),
    /// Anthropic's Messages API (`llm_format: anthropic`).
    CreateMessage,
    CountMessageTokens,
}

/// Why a request is not an operation of the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SurfaceRefusal {
    /// No such path in the route type's API.
    NotFound,
    /// The path exists; the method does not (`Allow` lists the ones it takes).
    MethodNotAllowed { allow: &'static str },
}

/// What an operation's request body must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRule {
    /// None: a body is refused (it could be read as a second request upstream).
    Empty,
    /// An inference call: model rules, ai-mcp-guard, ownership of every id, usage. `options`:
    /// the endpoint takes the configured options (max tokens, temperature, top_p, streaming);
    /// compact and input_tokens take only the model.
    Inference { options: bool },
    /// A JSON object (conversation items, a metadata update), or nothing: checked for duplicate
    /// keys and the ids it names, sent as it is.
    Json,
}

/// What a successful answer adds to the consumer's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Records {
    Nothing,
    /// A response: its id, its output items' ids, its MCP approval requests.
    Response,
    ChatCompletion,
    Conversation,
    /// A list of items (`data[].id`) of an object the consumer owns.
    ItemList,
}

const POST: &str = "POST";
const GET: &str = "GET";

/// Decide the operation of an LLM route whose clients speak `dialect` (`llm_format`).
pub fn resolve_in(
    dialect: Dialect,
    route_type: RouteType,
    method: &str,
    path: &str,
) -> Result<Operation, SurfaceRefusal> {
    if dialect != Dialect::Anthropic {
        return resolve(route_type, method, path);
    }
    // Anthropic's Messages API takes POST only (anything else is not found, as Anthropic
    // answers); its other APIs (models, batches, files) are not offered (a batch or a file
    // would be every tenant's).
    if method != POST {
        return Err(SurfaceRefusal::NotFound);
    }
    match path.trim_end_matches('/') {
        "" | "/messages" | "/v1/messages" => Ok(Operation::CreateMessage),
        "/count_tokens" | "/messages/count_tokens" | "/v1/messages/count_tokens" => Ok(Operation::CountMessageTokens),
        _ => Err(SurfaceRefusal::NotFound),
    }
}

/// Decide the operation of an OpenAI-format LLM route from the method and the normalised path
/// after the route's prefix.
pub fn resolve(route_type: RouteType, method: &str, path: &str) -> Result<Operation, SurfaceRefusal> {
    let segments: Vec<&str> = match path {
        "" | "/" => Vec::new(),
        p => match p.strip_prefix('/') {
            Some(rest) => rest.split('/').collect(),
            None => return Err(SurfaceRefusal::NotFound),
        },
    };
    match route_type {
        RouteType::Responses => responses(method, &segments),
        RouteType::Chat => chat(method, &segments),
    }
}

fn only(method: &str, allowed: &'static str, op: Operation) -> Result<Operation, SurfaceRefusal> {
    if method == allowed {
        Ok(op)
    } else {
        Err(SurfaceRefusal::MethodNotAllowed { allow: allowed })
    }
}

/// An id segment: the id grammar, and not a word of the API's own paths.
fn id(segment: &str, reserved: &[&str]) -> Option<String> {
    (is_object_id(segment) && !reserved.contains(&segment)).then(|| segment.to_string())
}

fn responses(method: &str, s: &[&str]) -> Result<Operation, SurfaceRefusal> {
    let (rest, prefixed) = match s {
        ["v1", "responses", rest @ ..]
        | ["responses", rest @ ..]
        | ["openai", "v1", "responses", rest @ ..]
        | ["openai", "responses", rest @ ..] => (rest, true),
        ["v1", "conversations", rest @ ..] | ["conversations", rest @ ..] => return conversations(method, rest),
        rest => (rest, false),
    };
    let reserved: &[&str] = if prefixed { &[] } else { &["v1", "responses", "conversations", "chat"] };
    match rest {
        [] => only(method, POST, Operation::CreateResponse),
        ["compact"] => only(method, POST, Operation::CompactResponse),
        ["input_tokens"] => only(method, POST, Operation::CountInputTokens),
        [r] => {
            let r = id(r, reserved).ok_or(SurfaceRefusal::NotFound)?;
            match method {
                "GET" => Ok(Operation::GetResponse(r)),
                "DELETE" => Ok(Operation::DeleteResponse(r)),
                _ => Err(SurfaceRefusal::MethodNotAllowed { allow: "GET, DELETE" }),
            }
        }
        [r, "cancel"] => {
            only(method, POST, Operation::CancelResponse(id(r, reserved).ok_or(SurfaceRefusal::NotFound)?))
        }
        [r, "input_items"] => {
            only(method, GET, Operation::ListInputItems(id(r, reserved).ok_or(SurfaceRefusal::NotFound)?))
        }
        _ => Err(SurfaceRefusal::NotFound),
    }
}

fn conversations(method: &str, s: &[&str]) -> Result<Operation, SurfaceRefusal> {
    let conv = |c: &str| id(c, &[]).ok_or(SurfaceRefusal::NotFound);
    match s {
        [] => only(method, POST, Operation::CreateConversation),
        [c] => {
            let c = conv(c)?;
            match method {
                "GET" => Ok(Operation::GetConversation(c)),
                "POST" => Ok(Operation::UpdateConversation(c)),
                "DELETE" => Ok(Operation::DeleteConversation(c)),
                _ => Err(SurfaceRefusal::MethodNotAllowed { allow: "GET, POST, DELETE" }),
            }
        }
        [c, "items"] => {
            let c = conv(c)?;
            match method {
                "GET" => Ok(Operation::ListConversationItems(c)),
                "POST" => Ok(Operation::CreateConversationItems(c)),
                _ => Err(SurfaceRefusal::MethodNotAllowed { allow: "GET, POST" }),
            }
        }
        [c, "items", item] => {
            let (c, item) = (conv(c)?, conv(item)?);
            match method {
                "GET" => Ok(Operation::GetConversationItem(c, item)),
                "DELETE" => Ok(Operation::DeleteConversationItem(c, item)),
                _ => Err(SurfaceRefusal::MethodNotAllowed { allow: "GET, DELETE" }),
            }
        }
        _ => Err(SurfaceRefusal::NotFound),
    }
}

fn chat(method: &str, s: &[&str]) -> Result<Operation, SurfaceRefusal> {
    let (rest, prefixed) = match s {
        ["v1", "chat", "completions", rest @ ..]
        | ["chat", "completions", rest @ ..]
        | ["openai", "v1", "chat", "completions", rest @ ..] => (rest, true),
        // Azure's deployment form: create only (the deployment is the model).
        ["openai", "deployments", d, "chat", "completions"] if super::sdk_paths::is_name(d) => {
            return only(method, POST, Operation::CreateChatCompletion)
        }
        rest => (rest, false),
    };
    let reserved: &[&str] = if prefixed { &[] } else { &["v1", "chat", "responses", "conversations"] };
    match rest {
        // `GET` here would list every tenant's stored completions: only create is offered.
        [] => only(method, POST, Operation::CreateChatCompletion),
        [c] => {
            let c = id(c, reserved).ok_or(SurfaceRefusal::NotFound)?;
            match method {
                "GET" => Ok(Operation::GetChatCompletion(c)),
                "POST" => Ok(Operation::UpdateChatCompletion(c)),
                "DELETE" => Ok(Operation::DeleteChatCompletion(c)),
                _ => Err(SurfaceRefusal::MethodNotAllowed { allow: "GET, POST, DELETE" }),
            }
        }
        [c, "messages"] => {
            only(method, GET, Operation::ListChatMessages(id(c, reserved).ok_or(SurfaceRefusal::NotFound)?))
        }
        _ => Err(SurfaceRefusal::NotFound),
    }
}

impl Operation {
    pub fn body(&self) -> BodyRule {
        use Operation::*;
        match self {
            CreateResponse | CreateChatCompletion | CreateMessage => BodyRule::Inference { options: true },
            CompactResponse | CountInputTokens | CountMessageTokens => BodyRule::Inference { options: false },
            CreateConversation | UpdateConversation(_) | CreateConversationItems(_) | UpdateChatCompletion(_) => {
                BodyRule::Json
            }
            _ => BodyRule::Empty,
        }
    }

    pub fn is_inference(&self) -> bool {
        matches!(self.body(), BodyRule::Inference { .. })
    }

    /// The object the path names, which must be the consumer's.
    pub fn owned_object(&self) -> Option<(ObjectKind, &str)> {
        use Operation::*;
        match self {
            GetResponse(r) | DeleteResponse(r) | CancelResponse(r) | ListInputItems(r) => {
                Some((ObjectKind::Response, r))
            }
            GetConversation(c)
            | UpdateConversation(c)
            | DeleteConversation(c)
            | CreateConversationItems(c)
            | ListConversationItems(c)
            | GetConversationItem(c, _)
            | DeleteConversationItem(c, _) => Some((ObjectKind::Conversation, c)),
            GetChatCompletion(c) | UpdateChatCompletion(c) | DeleteChatCompletion(c) | ListChatMessages(c) => {
                Some((ObjectKind::ChatCompletion, c))
            }
            CreateResponse | CompactResponse | CountInputTokens | CreateConversation | CreateChatCompletion
            | CreateMessage | CountMessageTokens => None,
        }
    }

    /// The object a successful answer deletes.
    pub fn deletes(&self) -> Option<(ObjectKind, &str)> {
        use Operation::*;
        match self {
            DeleteResponse(r) => Some((ObjectKind::Response, r)),
            DeleteConversation(c) => Some((ObjectKind::Conversation, c)),
            DeleteConversationItem(_, i) => Some((ObjectKind::Item, i)),
            DeleteChatCompletion(c) => Some((ObjectKind::ChatCompletion, c)),
            _ => None,
        }
    }

    pub fn records(&self) -> Records {
        use Operation::*;
        match self {
            CreateResponse | CompactResponse => Records::Response,
            CreateChatCompletion => Records::ChatCompletion,
            CreateConversation => Records::Conversation,
            CreateConversationItems(_) | ListConversationItems(_) | ListInputItems(_) => Records::ItemList,
            _ => Records::Nothing,
        }
    }

    /// Whether the answer carries token usage (counting tokens uses none).
    pub fn has_usage(&self) -> bool {
        !matches!(self, Operation::CountInputTokens | Operation::CountMessageTokens) && self.is_inference()
    }

    /// The provider path, from the target's API path (`/v1/responses`, `/v1/chat/completions`);
    /// `None` when the target cannot serve it (the Conversations API needs a path ending in
    /// `/responses` to be derived from; an Anthropic target serves only creating a message —
    /// a chat completion translated — and counting its tokens).
    pub fn upstream_path(&self, base: &str, dialect: Dialect) -> Option<String> {
        use Operation::*;
        let b = base.trim_end_matches('/');
        if dialect == Dialect::Anthropic {
            return match self {
                CreateMessage | CreateChatCompletion => Some(base.to_string()),
                CountMessageTokens => Some(format!("{b}{ANTHROPIC_COUNT_TOKENS_SUFFIX}")),
                _ => None,
            };
        }
        let conversations = || b.strip_suffix("/responses").map(|p| format!("{p}/conversations"));
        Some(match self {
            CreateResponse | CreateChatCompletion => base.to_string(),
            CompactResponse => format!("{b}/compact"),
            CountInputTokens => format!("{b}/input_tokens"),
            GetResponse(r) | DeleteResponse(r) => format!("{b}/{r}"),
            CancelResponse(r) => format!("{b}/{r}/cancel"),
            ListInputItems(r) => format!("{b}/{r}/input_items"),
            CreateConversation => conversations()?,
            GetConversation(c) | UpdateConversation(c) | DeleteConversation(c) => format!("{}/{c}", conversations()?),
            CreateConversationItems(c) | ListConversationItems(c) => format!("{}/{c}/items", conversations()?),
            GetConversationItem(c, i) | DeleteConversationItem(c, i) => {
                format!("{}/{c}/items/{i}", conversations()?)
            }
            GetChatCompletion(c) | UpdateChatCompletion(c) | DeleteChatCompletion(c) => format!("{b}/{c}"),
            ListChatMessages(c) => format!("{b}/{c}/messages"),
            CreateMessage | CountMessageTokens => return None,
        })
    }
}

/// OpenAI's words for an object that does not exist (or is not the consumer's).
pub fn not_found_message(kind: ObjectKind, id: &str) -> String {
    let what = match kind {
        ObjectKind::Response => "Response",
        ObjectKind::Conversation => "Conversation",
        ObjectKind::Item => "Item",
        ObjectKind::ChatCompletion => "Chat completion",
        ObjectKind::McpApprovalRequest => "Approval request",
    };
    format!("{what} with id '{id}' not found.")
}

#[cfg(test)]
mod tests;
