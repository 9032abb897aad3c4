//! ai-proxy and ai-proxy-advanced: send a route's traffic to an LLM provider with the provider's
//! credentials, Kong's model rules and option mapping. Both plugins compile to [`AiProxy`];
//! ai-proxy is ai-proxy-advanced with one target.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::{unsupported_unless_default, ConfigIssue};
use crate::ai::provider::{Dialect, Provider};
use crate::ai::RouteType;
use crate::core::secrets::SecretSet;
use crate::core::Endpoint;
pub use provider::{AzureTarget, ProviderOptions};
pub use schema::{
    AiProxyAdvancedSchema, AiProxySchema, AuthSchema, BalancerSchema, LoggingSchema, ModelSchema, OptionsSchema,
    TargetSchema,
};
mod provider;
pub mod request;
mod schema;

use crate::upstream::balancer::{
    Algorithm, Balancer, Balancing, FailoverCriteria, HealthRegistry, TargetKey, MAX_TARGETS,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streaming {
    Allow,
    Deny,
    Always,
}

/// Where the provider credential goes.
#[derive(Debug)]
pub enum ProviderAuth {
    None,
    Header { name: HeaderName, value: HeaderValue },
    Query { name: String, value: String },
    Body { name: String, value: String },
}

#[derive(Debug)]
pub struct ModelOptions {
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// Anthropic only.
    pub top_k: Option<u64>,
    /// Price per million input / output tokens, for `aigate_llm_cost_total`.
    pub input_cost: Option<f64>,
    pub output_cost: Option<f64>,
}

#[derive(Debug)]
pub struct AiTarget {
    /// Index among all targets of the configuration (for per-target metric handles).
    pub id: usize,
    pub route_type: RouteType,
    pub provider: Provider,
    pub model: Option<String>,
    /// A name clients may ask for instead of `model` (Kong's `model_alias`); the same on
    /// every target of a plugin, so failover between models needs no change of the client.
    pub model_alias: Option<String>,
    pub options: ModelOptions,
    /// What the provider's requests need besides the body (Anthropic's version, Azure's
    /// deployment and api-version).
    pub provider_options: ProviderOptions,
    pub endpoint: Endpoint,
    /// The upstream URL was set in config: its path is used as given.
    pub custom_url: bool,
    pub auth: ProviderAuth,
    pub allow_override: bool,
    pub weight: u32,
    pub log_statistics: bool,
    /// `X-Kong-LLM-Model: <provider>/<model>`, built once.
    pub model_header: Option<HeaderValue>,
}

#[derive(Debug)]
pub struct AiProxy {
    pub targets: Vec<AiTarget>,
    /// The `balancer` settings: algorithm, retries, failover criteria, timeouts.
    pub balancing: Balancing,
    /// Picks a target: rotation position, and handles to the targets' health (kept by the
    /// process across reloads).
    pub balancer: Balancer,
    pub response_streaming: Streaming,
    /// The plugin's own body limit when set; otherwise the gateway's `max_request_body_size`.
    pub max_request_body_size: Option<u64>,
    pub model_name_header: bool,
    /// The targets' provider keys, scrubbed from every answer a client receives.
    pub secrets: Arc<SecretSet>,
    /// Kong's `llm_format`: the API clients speak (`openai`, or `anthropic` for
    /// Anthropic-native clients, passed through to Anthropic targets).
    pub llm_format: Dialect,
}

impl AiProxy {
    /// `plain_http_hosts`: the hosts an `upstream_url` may name over plain http (the setting
    /// `llm_plain_http_hosts`).
    pub fn compile_advanced(
        s: AiProxyAdvancedSchema,
        health: &HealthRegistry,
        plain_http_hosts: &[String],
    ) -> Result<AiProxy, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        if s.targets.is_empty() {
            issues.push(ConfigIssue::new("targets", "targets is empty", "configure at least one target"));
        }
        let mut targets = Vec::new();
        for (i, t) in s.targets.into_iter().enumerate() {
            let at = format!("targets[{i}].");
            match compile_target(t.route_type, t.auth, t.model, t.logging, t.weight, plain_http_hosts, &at) {
                Ok(t) => targets.push(t),
                Err(mut e) => issues.append(&mut e),
            }
        }
        let balancing = compile_balancing(s.balancer.unwrap_or_default(), &mut issues);
        unsupported_unless_default(&mut issues, "embeddings", &s.embeddings, |_| false);
        unsupported_unless_default(&mut issues, "vectordb", &s.vectordb, |_| false);
        let common = compile_common(
            s.response_streaming,
            s.max_request_body_size,
            s.model_name_header,
            s.llm_format,
            s.genai_category,
            &mut issues,
        );
        check_format(common.3, &targets, "targets[]", &mut issues);
        check_aliases(&targets, &mut issues);
        if let Some(first) = targets.first() {
            if let Some(i) = targets.iter().position(|t| t.route_type != first.route_type) {
                issues.push(ConfigIssue::new(
                    format!("targets[{i}].route_type"),
                    format!(
                        "route_type `{}` differs from targets[0]'s `{}`: a route offers one API",
                        targets[i].route_type.as_str(),
                        first.route_type.as_str()
                    ),
                    "give every target the same route_type, or split the route",
                ));
            }
        }
        if issues.is_empty() && targets.len() > MAX_TARGETS {
            issues.push(ConfigIssue::new(
                "targets",
                format!("at most {MAX_TARGETS} targets are supported"),
                "split the route",
            ));
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        let (response_streaming, max_request_body_size, model_name_header, llm_format) = common;
        Ok(AiProxy {
            balancer: balancer(&targets, health),
            secrets: provider_secrets(&targets),
            targets,
            balancing,
            response_streaming,
            max_request_body_size,
            model_name_header,
            llm_format,
        })
    }

    pub fn compile_single(
        s: AiProxySchema,
        health: &HealthRegistry,
        plain_http_hosts: &[String],
    ) -> Result<AiProxy, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let target = compile_target(s.route_type, s.auth, s.model, s.logging, None, plain_http_hosts, "");
        let common = compile_common(
            s.response_streaming,
            s.max_request_body_size,
            s.model_name_header,
            s.llm_format,
            s.genai_category,
            &mut issues,
        );
        let target = match target {
            Ok(t) => Some(t),
            Err(mut e) => {
                issues.append(&mut e);
                None
            }
        };
        if let Some(t) = &target {
            check_format(common.3, std::slice::from_ref(t), "", &mut issues);
        }
        match target {
            Some(t) if issues.is_empty() => {
                let (response_streaming, max_request_body_size, model_name_header, llm_format) = common;
                let targets = vec![t];
                Ok(AiProxy {
                    balancer: balancer(&targets, health),
                    secrets: provider_secrets(&targets),
                    targets,
                    balancing: Balancing::default(),
                    response_streaming,
                    max_request_body_size,
                    model_name_header,
                    llm_format,
                })
            }
            _ => Err(issues),
        }
    }
}

impl AiProxy {
    /// The API the route offers (every target speaks the same one).
    pub fn route_type(&self) -> RouteType {
        self.targets.first().map_or(RouteType::Responses, |t| t.route_type)
    }
}

/// The credential values of `targets`, as a set to scrub from answers.
fn provider_secrets(targets: &[AiTarget]) -> Arc<SecretSet> {
    let values = targets.iter().filter_map(|t| match &t.auth {
        ProviderAuth::Header { value, .. } => std::str::from_utf8(value.as_bytes()).ok(),
        ProviderAuth::Query { value, .. } | ProviderAuth::Body { value, .. } => Some(value.as_str()),
        ProviderAuth::None => None,
    });
    Arc::new(SecretSet::new(values))
}

/// A balancer over `targets`, with each target's health from the process's registry.
fn balancer(targets: &[AiTarget], health: &HealthRegistry) -> Balancer {
    Balancer::new(targets.iter().map(|t| t.weight).collect(), targets.iter().map(|t| health.health(t.key())).collect())
}

impl AiTarget {
    /// Which upstream this target is (its health is kept under this identity).
    pub fn key(&self) -> TargetKey {
        TargetKey { provider: self.provider.as_str(), endpoint: self.endpoint.clone(), model: self.model.clone() }
    }

    /// The client's Chat Completions are translated to and from Anthropic's Messages API.
    pub fn translates(&self, llm_format: Dialect) -> bool {
        llm_format == Dialect::OpenAi && self.provider.dialect() == Dialect::Anthropic
    }
}

/// Kong 3.14 routes a request to the target whose `model_alias` it names; aigate balances over
/// all targets, which is the same only when they share one alias (what a failover between
/// different models needs): other combinations are refused rather than routed differently.
fn check_aliases(targets: &[AiTarget], issues: &mut Vec<ConfigIssue>) {
    let first = targets.first().map(|t| &t.model_alias);
    if targets.iter().any(|t| Some(&t.model_alias) != first) {
        issues.push(ConfigIssue::new(
            "targets[].model.model_alias",
            "the targets' model_alias differ: routing a request to a target by its alias is not supported",
            "give every target the same model_alias (one name for clients, each target's own model.name upstream), or none",
        ));
    }
}

/// Kong's rule for a native `llm_format`: chat route types only, on providers that speak it.
/// aigate passes Anthropic-native requests to Anthropic targets only (Kong 3.13 can convert
/// them for other providers; aigate does not).
fn check_format(format: Dialect, targets: &[AiTarget], at: &str, issues: &mut Vec<ConfigIssue>) {
    if format != Dialect::Anthropic {
        return;
    }
    for t in targets {
        if t.provider != Provider::Anthropic {
            issues.push(ConfigIssue::new(
                format!("{at}model.provider"),
                format!(
                    "llm_format anthropic passes Anthropic's Messages API through: provider {} cannot serve it",
                    t.provider.as_str()
                ),
                "use provider anthropic for every target, or llm_format openai",
            ));
        }
        if t.route_type != RouteType::Chat {
            issues.push(ConfigIssue::new(
                format!("{at}route_type"),
                "native provider options in llm_format can only be used with the 'llm/v1/chat' route_type",
                "use route_type llm/v1/chat",
            ));
        }
    }
}

fn compile_common(
    response_streaming: Option<String>,
    max_request_body_size: Option<u64>,
    model_name_header: Option<bool>,
    llm_format: Option<String>,
    genai_category: Option<String>,
    issues: &mut Vec<ConfigIssue>,
) -> (Streaming, Option<u64>, bool, Dialect) {
    let streaming = match response_streaming.as_deref() {
        None | Some("allow") => Streaming::Allow,
        Some("deny") => Streaming::Deny,
        Some("always") => Streaming::Always,
        Some(other) => {
            issues.push(ConfigIssue::new(
                "response_streaming",
                format!("`{other}` is not one of allow, deny, always"),
                "use allow, deny or always",
            ));
            Streaming::Allow
        }
    };
    let format = match llm_format.as_deref() {
        None | Some("openai") => Dialect::OpenAi,
        Some("anthropic") => Dialect::Anthropic,
        Some(f) => {
            issues.push(ConfigIssue::new(
                "llm_format",
                format!("llm_format `{f}` is not supported"),
                "use openai, or anthropic for Anthropic-native clients",
            ));
            Dialect::OpenAi
        }
    };
    if let Some(c) = genai_category.as_deref() {
        if c != "text/generation" {
            issues.push(ConfigIssue::new(
                "genai_category",
                format!("genai_category `{c}` is not supported"),
                "use text/generation",
            ));
        }
    }
    if max_request_body_size == Some(0) {
        issues.push(ConfigIssue::new(
            "max_request_body_size",
            "max_request_body_size must be above 0",
            "remove it to use the gateway's limit",
        ));
    }
    (streaming, max_request_body_size, model_name_header.unwrap_or(true), format)
}

fn compile_target(
    route_type: Option<String>,
    auth: Option<AuthSchema>,
    model: Option<ModelSchema>,
    logging: Option<LoggingSchema>,
    weight: Option<u32>,
    plain_http_hosts: &[String],
    at: &str,
) -> Result<AiTarget, Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let route_type = match route_type.as_deref() {
        Some("llm/v1/responses") => Some(RouteType::Responses),
        Some("llm/v1/chat") => Some(RouteType::Chat),
        Some(other) => {
            issues.push(ConfigIssue::new(
                format!("{at}route_type"),
                format!("route_type `{other}` is not supported"),
                "use llm/v1/responses or llm/v1/chat",
            ));
            None
        }
        None => {
            issues.push(ConfigIssue::new(
                format!("{at}route_type"),
                "route_type is required",
                "set llm/v1/responses or llm/v1/chat",
            ));
            None
        }
    };
    let Some(model) = model else {
        issues.push(ConfigIssue::new(
            format!("{at}model"),
            "model is required",
            "set model.provider (openai, azure, anthropic, mistral or llama2) and usually model.name",
        ));
        return Err(issues);
    };
    let o = model.options.unwrap_or_default();
    for (name, v) in [
        ("bedrock", &o.bedrock),
        ("gemini", &o.gemini),
        ("huggingface", &o.huggingface),
        ("cohere", &o.cohere),
        ("embeddings_dimensions", &o.embeddings_dimensions),
    ] {
        unsupported_unless_default(&mut issues, &format!("{at}model.options.{name}"), v, |v| {
            // Kong writes these provider blocks with every member null.
            v.as_mapping().is_some_and(|m| m.values().all(|x| x.is_null()))
                || (name == "embeddings_dimensions" && v.is_null())
        });
    }
    if o.upstream_path.is_some() {
        issues.push(ConfigIssue::new(
            format!("{at}model.options.upstream_path"),
            "upstream_path is not supported",
            "put the whole URL in upstream_url",
        ));
    }
    let auth_s = auth.unwrap_or_default();
    let compiled = provider::compile(&model.provider, route_type, &o, &auth_s, plain_http_hosts, at, &mut issues);
    for (name, value, range) in [("temperature", o.temperature, 0.0..=5.0), ("top_p", o.top_p, 0.0..=1.0)] {
        if let Some(v) = value.filter(|v| !range.contains(v)) {
            issues.push(ConfigIssue::new(
                format!("{at}model.options.{name}"),
                format!("{name} {v} is out of range"),
                format!("use a value from {} to {}", range.start(), range.end()),
            ));
        }
    }
    for (name, cost) in [("input_cost", o.input_cost), ("output_cost", o.output_cost)] {
        if cost.is_some_and(|c| !(c >= 0.0 && c.is_finite())) {
            issues.push(ConfigIssue::new(
                format!("{at}model.options.{name}"),
                format!("{name} must be a positive number"),
                "give the price per million tokens",
            ));
        }
    }
    for (name, v) in [
        ("azure_use_managed_identity", &auth_s.azure_use_managed_identity),
        ("azure_client_id", &auth_s.azure_client_id),
        ("azure_client_secret", &auth_s.azure_client_secret),
        ("azure_tenant_id", &auth_s.azure_tenant_id),
        ("gcp_use_service_account", &auth_s.gcp_use_service_account),
        ("gcp_service_account_json", &auth_s.gcp_service_account_json),
        ("aws_access_key_id", &auth_s.aws_access_key_id),
        ("aws_secret_access_key", &auth_s.aws_secret_access_key),
    ] {
        unsupported_unless_default(&mut issues, &format!("{at}auth.{name}"), v, |v| v.as_bool() == Some(false));
    }
    let auth = compile_auth(&auth_s, at, &mut issues);
    let logging = logging.unwrap_or_default();
    if logging.log_payloads {
        issues.push(ConfigIssue::new(
            format!("{at}logging.log_payloads"),
            "aigate never logs request or response bodies",
            "set log_payloads to false",
        ));
    }
    if weight == Some(0) || weight.is_some_and(|w| w > 65535) {
        issues.push(ConfigIssue::new(
            format!("{at}weight"),
            "weight must be from 1 to 65535",
            "use a weight such as 100",
        ));
    }
    if model.model_alias.is_some() && model.name.is_none() {
        issues.push(ConfigIssue::new(
            format!("{at}model.model_alias"),
            "model_alias names the model clients ask for instead of model.name, which is not set",
            "set model.name",
        ));
    }
    if let Some(name) = model.name.as_deref() {
        if name.is_empty() {
            issues.push(ConfigIssue::new(
                format!("{at}model.name"),
                "model.name is empty",
                "name the model or remove the field",
            ));
        }
    }
    let Some(compiled) = compiled else {
        return Err(issues);
    };
    let model_header =
        model.name.as_deref().and_then(|m| HeaderValue::from_str(&format!("{}/{m}", compiled.provider.as_str())).ok());
    match route_type {
        Some(route_type) if issues.is_empty() => Ok(AiTarget {
            id: 0,
            route_type,
            provider: compiled.provider,
            model: model.name,
            model_alias: model.model_alias,
            options: ModelOptions {
                max_tokens: o.max_tokens,
                temperature: o.temperature,
                top_p: o.top_p,
                top_k: o.top_k,
                input_cost: o.input_cost,
                output_cost: o.output_cost,
            },
            provider_options: compiled.options,
            endpoint: compiled.endpoint,
            custom_url: compiled.custom_url,
            auth,
            allow_override: auth_s.allow_override,
            weight: weight.unwrap_or(100),
            log_statistics: logging.log_statistics,
            model_header,
        }),
        _ => Err(issues),
    }
}

/// Two fields that go together: both set, or neither (`None`), else an issue.
fn pair<'a>(
    issues: &mut Vec<ConfigIssue>,
    at: &str,
    names: (&str, &str),
    values: (&'a Option<String>, &'a Option<String>),
) -> Option<(&'a String, &'a String)> {
    match values {
        (Some(a), Some(b)) => Some((a, b)),
        (None, None) => None,
        _ => {
            issues.push(ConfigIssue::new(
                format!("{at}auth"),
                format!("{} and {} go together", names.0, names.1),
                "set both or neither",
            ));
            None
        }
    }
}

fn compile_auth(a: &AuthSchema, at: &str, issues: &mut Vec<ConfigIssue>) -> ProviderAuth {
    let header =
        pair(issues, at, ("header_name", "header_value"), (&a.header_name, &a.header_value)).and_then(|(n, v)| {
            match (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(v)) {
                (Ok(name), Ok(mut value)) => {
                    value.set_sensitive(true);
                    Some(ProviderAuth::Header { name, value })
                }
                (Err(_), _) => {
                    issues.push(ConfigIssue::new(
                        format!("{at}auth.header_name"),
                        format!("`{n}` is not a valid header name"),
                        "use a header name such as Authorization",
                    ));
                    None
                }
                // The value is a secret: say what is wrong without repeating it.
                (_, Err(_)) => {
                    issues.push(ConfigIssue::new(
                        format!("{at}auth.header_value"),
                        "the header value has characters not allowed in a header (a newline?)",
                        "check the variable that fills it",
                    ));
                    None
                }
            }
        });
    let param = pair(issues, at, ("param_name", "param_value"), (&a.param_name, &a.param_value)).and_then(|(n, v)| {
        match a.param_location.as_deref() {
            Some("query") => Some(ProviderAuth::Query { name: n.clone(), value: v.clone() }),
            Some("body") => Some(ProviderAuth::Body { name: n.clone(), value: v.clone() }),
            other => {
                issues.push(ConfigIssue::new(
                    format!("{at}auth.param_location"),
                    format!("param_location {other:?} is not query or body"),
                    "set param_location to query or body",
                ));
                None
            }
        }
    });
    match (header, param) {
        (Some(_), Some(_)) => {
            issues.push(ConfigIssue::new(
                format!("{at}auth"),
                "configure the credential either as a header or as a parameter",
                "keep one of them",
            ));
            ProviderAuth::None
        }
        (Some(h), None) => h,
        (None, Some(p)) => p,
        (None, None) => ProviderAuth::None,
    }
}

fn compile_balancing(b: BalancerSchema, issues: &mut Vec<ConfigIssue>) -> Balancing {
    let mut cfg = Balancing::default();
    match b.algorithm.as_deref() {
        None | Some("round-robin") => cfg.algorithm = Algorithm::RoundRobin,
        Some("priority") => cfg.algorithm = Algorithm::Priority,
        Some("lowest-latency") => cfg.algorithm = Algorithm::LowestLatency,
        Some("consistent-hashing") => cfg.algorithm = Algorithm::ConsistentHashing,
        Some(other) => issues.push(ConfigIssue::new(
            "balancer.algorithm",
            format!("algorithm `{other}` is not supported"),
            "use round-robin, priority, lowest-latency or consistent-hashing",
        )),
    }
    if let Some(r) = b.retries {
        cfg.retries = r;
    }
    if let Some(list) = b.failover_criteria {
        let mut criteria = FailoverCriteria::default();
        for (i, c) in list.iter().enumerate() {
            match c.as_str() {
                "error" => criteria.error = true,
                "timeout" => criteria.timeout = true,
                "invalid_header" => criteria.error = true,
                "http_429" => criteria.http_429 = true,
                "non_idempotent" => criteria.non_idempotent = true,
                other => match other.strip_prefix("http_").and_then(|c| c.parse::<u16>().ok()) {
                    Some(code @ 500..=599) => criteria.http_5xx.push(code),
                    _ => issues.push(ConfigIssue::new(
                        format!("balancer.failover_criteria[{i}]"),
                        format!("`{other}` is not a failover criterion"),
                        "use error, timeout, http_429, http_500, http_502, http_503, http_504 or non_idempotent",
                    )),
                },
            }
        }
        cfg.failover = criteria;
    }
    let ms = |v: Option<u64>| v.map(Duration::from_millis);
    cfg.connect_timeout = ms(b.connect_timeout);
    cfg.read_timeout = ms(b.read_timeout);
    cfg.write_timeout = ms(b.write_timeout);
    if let Some(h) = b.hash_on_header {
        match HeaderName::from_bytes(h.as_bytes()) {
            Ok(n) => cfg.hash_on_header = Some(n),
            Err(_) => issues.push(ConfigIssue::new(
                "balancer.hash_on_header",
                format!("`{h}` is not a header name"),
                "name a request header",
            )),
        }
    }
    match b.latency_strategy.as_deref() {
        None | Some("tpot") | Some("e2e") => {}
        Some(other) => issues.push(ConfigIssue::new(
            "balancer.latency_strategy",
            format!("`{other}` is not supported"),
            "use tpot or e2e",
        )),
    }
    match b.tokens_count_strategy.as_deref() {
        None | Some("total-tokens") | Some("prompt-tokens") | Some("completion-tokens") => {}
        Some(other) => issues.push(ConfigIssue::new(
            "balancer.tokens_count_strategy",
            format!("`{other}` is not supported"),
            "use total-tokens",
        )),
    }
    cfg
}

#[cfg(test)]
mod tests;
