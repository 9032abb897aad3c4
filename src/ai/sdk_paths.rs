//! The paths SDKs send an LLM route's requests to, beyond OpenAI's own: Anthropic's Messages API
//! (`/v1/messages`, `/v1/messages/count_tokens`, with or without `/v1`, as the `anthropic` SDKs
//! and Claude Code build them from `base_url`), and Azure OpenAI's (the `openai` SDK's
//! `AzureOpenAI` client: `/openai/deployments/{deployment}/chat/completions`,
//! `/openai/responses`, and the v1 API's `/openai/v1/...`).

use super::provider::Dialect;
use super::RouteType;

/// What a request under an LLM route asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientPath {
    /// The API's create call (inference). `deployment`: the model an Azure path names.
    Create { deployment: Option<String> },
    /// Anthropic's token counting (`/v1/messages/count_tokens`): model rules only, no usage.
    CountTokens,
    /// A sub-resource of the API (`/{id}`, `/{id}/cancel`): the path after the API's root.
    Sub(String),
    /// Not a path of the route's API.
    Unknown,
}

/// Classify the path after the route's prefix (`suffix`: empty, or starting with `/`).
pub fn classify(format: Dialect, route_type: RouteType, suffix: &str) -> ClientPath {
    let s = suffix.trim_end_matches('/');
    if format == Dialect::Anthropic {
        return match s {
            "" | "/v1/messages" | "/messages" => ClientPath::Create { deployment: None },
            "/count_tokens" | "/v1/messages/count_tokens" | "/messages/count_tokens" => ClientPath::CountTokens,
            _ => ClientPath::Unknown,
        };
    }
    if s.is_empty() {
        return ClientPath::Create { deployment: None };
    }
    match route_type {
        RouteType::Chat => {
            if let Some(dep) = s.strip_prefix("/openai/deployments/").and_then(|r| r.strip_suffix("/chat/completions"))
            {
                return match is_name(dep) {
                    true => ClientPath::Create { deployment: Some(dep.to_string()) },
                    false => ClientPath::Unknown,
                };
            }
            match s {
                "/openai/v1/chat/completions" => ClientPath::Create { deployment: None },
                _ => ClientPath::Sub(suffix.to_string()),
            }
        }
        RouteType::Responses => match s {
            "/openai/responses" | "/openai/v1/responses" => ClientPath::Create { deployment: None },
            _ => match s.strip_prefix("/openai/v1/responses").or_else(|| s.strip_prefix("/openai/responses")) {
                Some(rest) if rest.starts_with('/') => ClientPath::Sub(rest.to_string()),
                _ => ClientPath::Sub(suffix.to_string()),
            },
        },
    }
}

/// A deployment name in a path: one segment of what Azure allows.
pub fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) && s != ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_forms() {
        let c = |s| classify(Dialect::Anthropic, RouteType::Chat, s);
        for s in ["", "/", "/v1/messages", "/messages", "/v1/messages/"] {
            assert_eq!(c(s), ClientPath::Create { deployment: None }, "{s}");
        }
        for s in ["/v1/messages/count_tokens", "/messages/count_tokens", "/count_tokens"] {
            assert_eq!(c(s), ClientPath::CountTokens, "{s}");
        }
        for s in ["/v1/models", "/v1/messages/batches", "/v1/v1/messages", "/v1/files"] {
            assert_eq!(c(s), ClientPath::Unknown, "{s}");
        }
    }

    #[test]
    fn azure_forms() {
        assert_eq!(
            classify(Dialect::OpenAi, RouteType::Chat, "/openai/deployments/gpt-4o/chat/completions"),
            ClientPath::Create { deployment: Some("gpt-4o".into()) }
        );
        assert_eq!(
            classify(Dialect::OpenAi, RouteType::Chat, "/openai/deployments/a/b/chat/completions"),
            ClientPath::Unknown
        );
        assert_eq!(
            classify(Dialect::OpenAi, RouteType::Chat, "/openai/v1/chat/completions"),
            ClientPath::Create { deployment: None }
        );
        assert_eq!(
            classify(Dialect::OpenAi, RouteType::Responses, "/openai/responses"),
            ClientPath::Create { deployment: None }
        );
        assert_eq!(
            classify(Dialect::OpenAi, RouteType::Responses, "/openai/responses/resp_1/cancel"),
            ClientPath::Sub("/resp_1/cancel".into())
        );
        assert_eq!(classify(Dialect::OpenAi, RouteType::Responses, "/resp_1"), ClientPath::Sub("/resp_1".into()));
        assert_eq!(classify(Dialect::OpenAi, RouteType::Chat, ""), ClientPath::Create { deployment: None });
    }
}
