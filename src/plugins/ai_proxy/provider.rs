//! Each provider's part of a target, from Kong's `model.provider` and `model.options`: where its
//! API is (Kong's URL per provider, or `upstream_url` as given), and what its requests need
//! (Anthropic's `anthropic-version`, Azure's deployment and `api-version`). Options of another
//! provider, and values aigate cannot honour, are refused at load.

use http::HeaderValue;

use super::schema::{AuthSchema, OptionsSchema};
use super::ConfigIssue;
use crate::ai::provider::{
    anthropic_refuses_sampling, azure_endpoint, is_azure_name, Provider, AZURE_DEFAULT_API_VERSION,
};
use crate::ai::RouteType;
use crate::core::Endpoint;

/// What a provider's requests need besides the body.
#[derive(Debug, Default)]
pub struct ProviderOptions {
    /// Anthropic: the `anthropic-version` header (Kong's required `anthropic_version`).
    pub anthropic_version: Option<HeaderValue>,
    /// Anthropic: that version refuses `temperature`, `top_p` and `top_k`.
    pub refuses_sampling: bool,
    pub azure: Option<AzureTarget>,
}

/// An Azure OpenAI deployment.
#[derive(Debug, Clone)]
pub struct AzureTarget {
    /// `api-version` query value, unless the client sends its own (as Kong).
    pub api_version: String,
    /// The deployment: in the chat path, and the Responses API's `model`.
    pub deployment: String,
}

/// A provider's compiled part of a target.
pub struct Compiled {
    pub provider: Provider,
    pub options: ProviderOptions,
    pub endpoint: Endpoint,
    /// The URL came from `upstream_url` (its path is used as given).
    pub custom_url: bool,
}

/// A Kong option written as a string, or null / absent (decK dumps write every field).
fn text(v: &Option<serde_yaml::Value>, name: &str, at: &str, issues: &mut Vec<ConfigIssue>) -> Option<String> {
    match v {
        None | Some(serde_yaml::Value::Null) => None,
        Some(serde_yaml::Value::String(s)) => Some(s.clone()),
        Some(_) => {
            issues.push(ConfigIssue::new(
                format!("{at}model.options.{name}"),
                format!("{name} must be a string"),
                "quote it",
            ));
            None
        }
    }
}

/// Options that belong to another provider are refused when set.
fn foreign(name: &str, value: &Option<String>, provider: Provider, at: &str, issues: &mut Vec<ConfigIssue>) {
    if value.is_some() {
        issues.push(ConfigIssue::new(
            format!("{at}model.options.{name}"),
            format!("{name} is not an option of provider {}", provider.as_str()),
            "remove it, or set the provider it belongs to",
        ));
    }
}

/// Compile the provider part of a target; `None` after pushing what is wrong.
pub fn compile(
    provider: &str,
    route_type: Option<RouteType>,
    o: &OptionsSchema,
    auth: &AuthSchema,
    plain_http_hosts: &[String],
    at: &str,
    issues: &mut Vec<ConfigIssue>,
) -> Option<Compiled> {
    let Some(p) = Provider::from_name(provider) else {
        issues.push(ConfigIssue::new(
            format!("{at}model.provider"),
            format!("provider `{provider}` is not supported"),
            "use openai, azure, anthropic, mistral or llama2 (any OpenAI-compatible server through upstream_url)",
        ));
        return None;
    };
    let before = issues.len();
    let anthropic_version = text(&o.anthropic_version, "anthropic_version", at, issues);
    let instance = text(&o.azure_instance, "azure_instance", at, issues);
    let deployment = text(&o.azure_deployment_id, "azure_deployment_id", at, issues);
    let api_version = text(&o.azure_api_version, "azure_api_version", at, issues);
    let llama2_format = text(&o.llama2_format, "llama2_format", at, issues);
    let mistral_format = text(&o.mistral_format, "mistral_format", at, issues);
    let opt = |name: &str| format!("{at}model.options.{name}");
    let mut options = ProviderOptions::default();

    if p != Provider::Anthropic {
        foreign("anthropic_version", &anthropic_version, p, at, issues);
    }
    if p != Provider::Azure {
        foreign("azure_instance", &instance, p, at, issues);
        foreign("azure_deployment_id", &deployment, p, at, issues);
        // Kong writes its default into every dump.
        foreign("azure_api_version", &api_version.clone().filter(|v| v != AZURE_DEFAULT_API_VERSION), p, at, issues);
    }
    if p != Provider::Llama2 {
        foreign("llama2_format", &llama2_format, p, at, issues);
    }
    if p != Provider::Mistral {
        foreign("mistral_format", &mistral_format, p, at, issues);
    }
    match p {
        Provider::Anthropic => {
            match anthropic_version.as_deref().map(HeaderValue::from_str) {
                Some(Ok(v)) if !v.is_empty() => {
                    options.refuses_sampling = anthropic_refuses_sampling(v.to_str().unwrap_or_default());
                    options.anthropic_version = Some(v);
                }
                Some(_) => issues.push(ConfigIssue::new(
                    opt("anthropic_version"),
                    "anthropic_version is not a valid header value",
                    "use a version date such as 2023-06-01",
                )),
                None => issues.push(ConfigIssue::new(
                    opt("anthropic_version"),
                    "anthropic_version is required for provider anthropic (as in Kong)",
                    "set it, e.g. anthropic_version: \"2023-06-01\"",
                )),
            }
            if options.refuses_sampling {
                for (name, set) in [
                    ("temperature", o.temperature.is_some()),
                    ("top_p", o.top_p.is_some()),
                    ("top_k", o.top_k.is_some()),
                ] {
                    if set {
                        issues.push(ConfigIssue::new(
                            opt(name),
                            format!(
                                "Anthropic API version {} refuses {name}",
                                anthropic_version.as_deref().unwrap_or("")
                            ),
                            "remove it, or use anthropic_version 2023-06-01",
                        ));
                    }
                }
            }
            if let Some(t) = o.temperature.filter(|t| *t > 1.0) {
                issues.push(ConfigIssue::new(
                    opt("temperature"),
                    format!("temperature {t} is above Anthropic's maximum of 1"),
                    "use a value from 0 to 1",
                ));
            }
            if auth.param_name.is_some() {
                issues.push(ConfigIssue::new(
                    format!("{at}auth.param_name"),
                    "Anthropic takes its key in a header, not a query or body parameter",
                    "use header_name: x-api-key and header_value: <key>",
                ));
            }
        }
        Provider::Azure => {
            for (name, v) in [("azure_instance", &instance), ("azure_deployment_id", &deployment)] {
                match v {
                    Some(v) if is_azure_name(v) => {}
                    Some(v) => issues.push(ConfigIssue::new(
                        opt(name),
                        format!("`{v}` is not an Azure resource or deployment name"),
                        "use letters, digits, - and _",
                    )),
                    None => issues.push(ConfigIssue::new(
                        opt(name),
                        format!("{name} is required for provider azure"),
                        "set it",
                    )),
                }
            }
            let api_version = api_version.unwrap_or_else(|| AZURE_DEFAULT_API_VERSION.to_string());
            if api_version.is_empty()
                || !api_version.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                issues.push(ConfigIssue::new(
                    opt("azure_api_version"),
                    format!("`{api_version}` is not an api-version"),
                    "use a version such as 2024-10-21",
                ));
            }
            options.azure = Some(AzureTarget { api_version, deployment: deployment.clone().unwrap_or_default() });
        }
        Provider::Llama2 => match llama2_format.as_deref() {
            Some("openai") => {}
            Some(f @ ("raw" | "ollama")) => issues.push(ConfigIssue::new(
                opt("llama2_format"),
                format!("llama2_format `{f}` is not supported"),
                "use openai: llama.cpp, vLLM, Ollama (its /v1 API) and LocalAI all speak it",
            )),
            Some(f) => issues.push(ConfigIssue::new(
                opt("llama2_format"),
                format!("`{f}` is not a llama2_format"),
                "use openai",
            )),
            None => issues.push(ConfigIssue::new(
                opt("llama2_format"),
                "llama2_format is required for provider llama2",
                "set llama2_format: openai",
            )),
        },
        Provider::Mistral => match mistral_format.as_deref() {
            Some("openai") => {}
            Some("ollama") => issues.push(ConfigIssue::new(
                opt("mistral_format"),
                "mistral_format `ollama` is not supported",
                "use openai (Ollama serves the OpenAI format on /v1)",
            )),
            Some(f) => issues.push(ConfigIssue::new(
                opt("mistral_format"),
                format!("`{f}` is not a mistral_format"),
                "use openai",
            )),
            None => issues.push(ConfigIssue::new(
                opt("mistral_format"),
                "mistral_format is required for provider mistral",
                "set mistral_format: openai",
            )),
        },
        Provider::OpenAi => {}
    }
    if let Some(k) = o.top_k {
        if p != Provider::Anthropic {
            issues.push(ConfigIssue::new(
                opt("top_k"),
                format!("top_k is not a parameter of provider {}", p.as_str()),
                "remove it",
            ));
        } else if k > 500 {
            issues.push(ConfigIssue::new(opt("top_k"), "top_k must be from 0 to 500", "use a smaller value"));
        }
    }
    if p == Provider::Anthropic && route_type == Some(RouteType::Responses) {
        issues.push(ConfigIssue::new(
            format!("{at}route_type"),
            "Anthropic targets serve llm/v1/chat (OpenAI's Responses API is not translated to Anthropic's)",
            "use route_type llm/v1/chat",
        ));
    }

    let (endpoint, custom_url) = match o.upstream_url.as_deref() {
        Some(url) => match Endpoint::parse_url(url) {
            Ok(e) => {
                let plain_ok = plain_http_hosts
                    .iter()
                    .any(|h| h.trim_start_matches('[').trim_end_matches(']').eq_ignore_ascii_case(&e.host));
                if !e.tls && !plain_ok {
                    issues.push(ConfigIssue::new(
                        opt("upstream_url"),
                        format!("`{url}` is plain http: the provider key and every prompt would cross the network unencrypted"),
                        format!("use https, or name the host in the setting llm_plain_http_hosts (e.g. [{}]) for a self-hosted model on a trusted network", e.host),
                    ));
                }
                (Some(e), true)
            }
            Err(e) => {
                issues.push(ConfigIssue::new(
                    opt("upstream_url"),
                    e,
                    "give a full URL such as https://api.openai.com/v1/responses",
                ));
                (None, true)
            }
        },
        None => {
            let e = match (p, route_type) {
                (_, None) => None,
                (Provider::Azure, Some(rt)) => Some(azure_endpoint(
                    instance.as_deref().unwrap_or_default(),
                    deployment.as_deref().unwrap_or_default(),
                    rt,
                )),
                (p, Some(rt)) => {
                    let e = p.default_endpoint(rt);
                    if e.is_none() && p != Provider::Anthropic {
                        issues.push(ConfigIssue::new(
                            opt("upstream_url"),
                            match p {
                                Provider::Llama2 => {
                                    "upstream_url is required for provider llama2 (a self-hosted model)".to_string()
                                }
                                _ => format!("provider {} has no {} API of its own", p.as_str(), rt.as_str()),
                            },
                            "set upstream_url to the server's URL, e.g. http://vllm.internal:8000/v1/chat/completions",
                        ));
                    }
                    e
                }
            };
            (e, false)
        }
    };
    if issues.len() > before {
        return None;
    }
    endpoint.map(|endpoint| Compiled { provider: p, options, endpoint, custom_url })
}
