//! The LLM side of the gateway: what an OpenAI request may look like and how it is rewritten
//! (`request`), and what the answer tells us — usage and MCP activity — read from a bounded side
//! view of the response, JSON or SSE (`response`, `sse`).

pub mod json_body;
pub mod mcp_pins;
pub mod ownership;
pub mod request;
pub mod response;
pub mod sse;

/// Kong's `route_type`: which OpenAI API a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteType {
    /// `llm/v1/responses`: POST /v1/responses and its sub-resources.
    Responses,
    /// `llm/v1/chat`: POST /v1/chat/completions.
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
