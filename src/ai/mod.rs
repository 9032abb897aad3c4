//! The LLM side of the gateway: the providers and where their APIs are (`provider`,
//! `sdk_paths`), how a request body is read and rewritten (`json_body`), Anthropic's Messages
//! API and its translation from and to OpenAI's Chat Completions (`anthropic`), and what the
//! answer tells us — usage and MCP activity — read from a bounded side view of the response,
//! JSON or SSE (`response`, `sse`).

pub mod anthropic;
pub mod json_body;
pub mod provider;
pub mod refusal;
pub mod response;
pub mod sdk_paths;
pub mod sse;
pub mod usage;

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

/// The object id a Responses sub-resource path names: `/resp_123/cancel` → `resp_123`.
pub fn id_from_suffix(suffix: &str) -> Option<&str> {
    let id = suffix.strip_prefix('/')?.split('/').next()?;
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        assert_eq!(id_from_suffix("/resp_1"), Some("resp_1"));
        assert_eq!(id_from_suffix("/resp_1/cancel"), Some("resp_1"));
        assert_eq!(id_from_suffix("/resp_1/input_items"), Some("resp_1"));
        assert_eq!(id_from_suffix(""), None);
        assert_eq!(id_from_suffix("/"), None);
    }
}
