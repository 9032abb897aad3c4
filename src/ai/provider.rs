//! The LLM providers aigate speaks to, by Kong's `model.provider` names, and where each one's
//! API is: the default URL per route type (Kong's `upstream_url_format` and operation map), the
//! Azure OpenAI URL forms, and the wire format of its bodies.

use super::RouteType;
use crate::core::Endpoint;

/// Kong's `model.provider` values aigate accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    OpenAi,
    Azure,
    Anthropic,
    /// Self-hosted models (`upstream_url` required); only `llama2_format: openai`.
    Llama2,
    /// Mistral's API or a self-hosted Mistral; only `mistral_format: openai`.
    Mistral,
}

/// The wire format of an API's request and answer bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// OpenAI's Responses and Chat Completions (also Azure OpenAI, Mistral, vLLM, Ollama, …).
    #[default]
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
}

impl Provider {
    pub fn from_name(name: &str) -> Option<Provider> {
        Some(match name {
            "openai" => Provider::OpenAi,
            "azure" => Provider::Azure,
            "anthropic" => Provider::Anthropic,
            "llama2" => Provider::Llama2,
            "mistral" => Provider::Mistral,
            _ => return None,
        })
    }

    /// Kong's name: the `provider` metric label and the first half of `X-Kong-LLM-Model`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Azure => "azure",
            Provider::Anthropic => "anthropic",
            Provider::Llama2 => "llama2",
            Provider::Mistral => "mistral",
        }
    }

    pub fn dialect(self) -> Dialect {
        match self {
            Provider::Anthropic => Dialect::Anthropic,
            _ => Dialect::OpenAi,
        }
    }

    /// The provider's own URL for a route type, when it has one (Azure's is built from its
    /// options by [`azure_endpoint`]; self-hosted providers need `upstream_url`).
    pub fn default_endpoint(self, route_type: RouteType) -> Option<Endpoint> {
        let (host, path) = match (self, route_type) {
            (Provider::OpenAi, rt) => ("api.openai.com", rt.openai_path()),
            (Provider::Anthropic, RouteType::Chat) => ("api.anthropic.com", ANTHROPIC_MESSAGES),
            (Provider::Mistral, RouteType::Chat) => ("api.mistral.ai", "/v1/chat/completions"),
            _ => return None,
        };
        Some(Endpoint { tls: true, host: host.to_string(), port: 443, path: path.to_string() })
    }
}

/// Anthropic's Messages API and its token counting, beside it.
pub const ANTHROPIC_MESSAGES: &str = "/v1/messages";
pub const ANTHROPIC_COUNT_TOKENS_SUFFIX: &str = "/count_tokens";

/// Kong's Azure default when `azure_api_version` is not set.
pub const AZURE_DEFAULT_API_VERSION: &str = "2023-05-15";

/// An Azure OpenAI resource's URL for a route type, as Azure (and the `openai` SDK's
/// `AzureOpenAI` client) builds it: chat on the deployment's path, the Responses API on the
/// resource's `/openai/responses` (the deployment named in the body's `model`). The
/// `api-version` query is added per request.
pub fn azure_endpoint(instance: &str, deployment: &str, route_type: RouteType) -> Endpoint {
    let path = match route_type {
        RouteType::Chat => format!("/openai/deployments/{deployment}/chat/completions"),
        RouteType::Responses => "/openai/responses".to_string(),
    };
    Endpoint { tls: true, host: format!("{instance}.openai.azure.com"), port: 443, path }
}

/// An Azure resource or deployment name: what Azure allows in a host label or path segment.
pub fn is_azure_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !s.starts_with(['-', '.'])
}

/// The Anthropic API version from which sampling parameters (`temperature`, `top_p`, `top_k`)
/// are refused by the API even at their defaults (Anthropic's 2026-10-21 migration notes).
pub const ANTHROPIC_NO_SAMPLING_FROM: &str = "2026-10-21";

/// Whether an `anthropic-version` value (a `YYYY-MM-DD` date) refuses sampling parameters.
pub fn anthropic_refuses_sampling(version: &str) -> bool {
    version.len() == 10 && version >= ANTHROPIC_NO_SAMPLING_FROM
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in [Provider::OpenAi, Provider::Azure, Provider::Anthropic, Provider::Llama2, Provider::Mistral] {
            assert_eq!(Provider::from_name(p.as_str()), Some(p));
        }
        assert_eq!(Provider::from_name("cohere"), None);
    }

    #[test]
    fn endpoints() {
        let e = Provider::Anthropic.default_endpoint(RouteType::Chat).unwrap();
        assert_eq!((e.host.as_str(), e.path.as_str()), ("api.anthropic.com", "/v1/messages"));
        assert!(Provider::Anthropic.default_endpoint(RouteType::Responses).is_none());
        assert!(Provider::Llama2.default_endpoint(RouteType::Chat).is_none());
        let e = azure_endpoint("my-res", "gpt4o-prod", RouteType::Chat);
        assert_eq!(e.host, "my-res.openai.azure.com");
        assert_eq!(e.path, "/openai/deployments/gpt4o-prod/chat/completions");
        assert_eq!(azure_endpoint("r", "d", RouteType::Responses).path, "/openai/responses");
        assert!(is_azure_name("gpt-4o_prod.1"));
        assert!(!is_azure_name("a/b") && !is_azure_name("") && !is_azure_name("-x"));
    }

    #[test]
    fn sampling_versions() {
        assert!(!anthropic_refuses_sampling("2023-06-01"));
        assert!(anthropic_refuses_sampling("2026-10-21"));
        assert!(anthropic_refuses_sampling("2027-01-01"));
        assert!(!anthropic_refuses_sampling("latest"));
    }
}
