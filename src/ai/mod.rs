//! The LLM side of the gateway: the providers and where their APIs are (`provider`,
//! `sdk_paths`), the API surface of each route type (`surface`), what an OpenAI request body
//! may look like and which objects it names (`body_scan`, `json_body`), Anthropic's Messages
//! API and its translation from and to OpenAI's Chat Completions (`anthropic`), and what the
//! answer tells us — usage, MCP activity, the ids it creates — read from a bounded side view of
//! the response, JSON or SSE (`response`, `sse`, `answer_id`).

pub mod answer_id;
pub mod anthropic;
pub mod body_scan;
pub mod chat_usage;
pub mod json_body;
pub mod provider;
pub mod refusal;
pub mod response;
pub mod sdk_paths;
pub mod sse;
pub mod surface;
pub mod usage;

/// Kong's `route_type`: which OpenAI API a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteType {
    /// `llm/v1/responses`: the Responses API (and the Conversations API beside it).
    Responses,
    /// `llm/v1/chat`: Chat Completions (create, and stored completions by id).
    Chat,
}

impl RouteType {
    pub fn openai_path(self) -> &'static str {
        match self {
            RouteType::Responses => "/v1/responses",
            RouteType::Chat => "/v1/chat/completions",
        }
    }

    /// Kong's name, used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteType::Responses => "llm/v1/responses",
            RouteType::Chat => "llm/v1/chat",
        }
    }

    /// The body field that caps output tokens in this API.
    pub fn max_tokens_field(self) -> &'static str {
        match self {
            RouteType::Responses => "max_output_tokens",
            RouteType::Chat => "max_tokens",
        }
    }
}
