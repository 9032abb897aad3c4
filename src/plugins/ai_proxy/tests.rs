use super::*;
use crate::ai::provider::{Dialect, Provider};
use crate::upstream::balancer::HealthRegistry;

fn advanced(yaml: &str) -> Result<AiProxy, Vec<ConfigIssue>> {
    AiProxy::compile_advanced(serde_yaml::from_str(yaml).unwrap(), &HealthRegistry::default(), &[])
}

fn advanced_plain_http(yaml: &str, hosts: &[&str]) -> Result<AiProxy, Vec<ConfigIssue>> {
    let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    AiProxy::compile_advanced(serde_yaml::from_str(yaml).unwrap(), &HealthRegistry::default(), &hosts)
}

/// One target of `provider` with `options` (YAML flow mapping members) and `route_type`.
fn target(provider: &str, options: &str, route_type: &str) -> Result<AiProxy, Vec<ConfigIssue>> {
    advanced(&format!(
        "targets:\n- route_type: {route_type}\n  auth: {{header_name: x-api-key, header_value: k}}\n  model: {{provider: {provider}, name: m, options: {{{options}}}}}\n"
    ))
}

const WALKTHROUGH: &str = r#"
targets:
- route_type: llm/v1/responses
  auth:
    header_name: Authorization
    header_value: Bearer sk-test
  model:
    provider: openai
    name: gpt-4o
    options:
      max_tokens: 512
      temperature: 1.0
"#;

#[test]
fn walkthrough_target() {
    let p = advanced(WALKTHROUGH).unwrap();
    let t = &p.targets[0];
    assert_eq!(t.route_type, RouteType::Responses);
    assert_eq!(t.model.as_deref(), Some("gpt-4o"));
    assert_eq!(t.options.max_tokens, Some(512));
    assert_eq!(
        t.endpoint,
        Endpoint { tls: true, host: "api.openai.com".into(), port: 443, path: "/v1/responses".into() }
    );
    match &t.auth {
        ProviderAuth::Header { name, value } => {
            assert_eq!(name, "authorization");
            assert!(value.is_sensitive());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(p.response_streaming, Streaming::Allow);
    assert_eq!(p.balancing.algorithm, Algorithm::RoundRobin);
}

#[test]
fn upstream_url_overrides_the_endpoint() {
    let yaml = WALKTHROUGH
        .replace("temperature: 1.0", "temperature: 1.0\n      upstream_url: http://127.0.0.1:9000/v1/responses");
    // Plain http only to a host the settings name: the provider key would cross the network.
    let errs = advanced(&yaml).unwrap_err();
    assert_eq!(errs[0].path, "targets[0].model.options.upstream_url");
    assert!(errs[0].fix.contains("llm_plain_http_hosts"), "{errs:?}");
    assert!(advanced_plain_http(&yaml, &["other.host"]).is_err());
    let p = advanced_plain_http(&yaml, &["127.0.0.1"]).unwrap();
    assert_eq!(
        p.targets[0].endpoint,
        Endpoint { tls: false, host: "127.0.0.1".into(), port: 9000, path: "/v1/responses".into() }
    );
    assert!(p.targets[0].custom_url);
}

#[test]
fn chat_path() {
    let p = advanced(&WALKTHROUGH.replace("llm/v1/responses", "llm/v1/chat")).unwrap();
    assert_eq!(p.targets[0].endpoint.path, "/v1/chat/completions");
}

#[test]
fn refuses_what_it_cannot_enforce() {
    let errs = advanced(&WALKTHROUGH.replace("provider: openai", "provider: cohere")).unwrap_err();
    assert_eq!(errs[0].path, "targets[0].model.provider");
    let errs = advanced(&WALKTHROUGH.replace("llm/v1/responses", "llm/v1/embeddings")).unwrap_err();
    assert_eq!(errs[0].path, "targets[0].route_type");
    let errs = advanced(&format!("{WALKTHROUGH}  logging: {{log_payloads: true}}\n")).unwrap_err();
    assert!(errs[0].path.ends_with("log_payloads"));
    let errs = advanced(&format!("{WALKTHROUGH}response_streaming: sometimes\n")).unwrap_err();
    assert_eq!(errs[0].path, "response_streaming");
    let errs = advanced(&format!("{WALKTHROUGH}balancer: {{algorithm: semantic}}\n")).unwrap_err();
    assert_eq!(errs[0].path, "balancer.algorithm");
    assert!(advanced("targets: []").is_err());
    let mixed =
        format!("{WALKTHROUGH}{}", WALKTHROUGH.replace("targets:\n", "").replace("llm/v1/responses", "llm/v1/chat"));
    let errs = advanced(&mixed).unwrap_err();
    assert_eq!(errs[0].path, "targets[1].route_type", "{errs:?}");
}

#[test]
fn kongs_null_provider_blocks_are_accepted() {
    let p = advanced(&WALKTHROUGH.replace(
            "temperature: 1.0",
            "temperature: 1.0\n      bedrock: {aws_region: null}\n      azure_api_version: '2023-05-15'\n      anthropic_version: null",
        ));
    assert!(p.is_ok(), "{p:?}");
}

#[test]
fn a_bad_secret_is_not_echoed() {
    let yaml = WALKTHROUGH.replace("Bearer sk-test", "\"Bearer sk-te\\nst\"");
    let errs = advanced(&yaml).unwrap_err();
    assert!(errs.iter().all(|e| !e.what.contains("sk-te")), "{errs:?}");
}

#[test]
fn failover_criteria() {
    let p = advanced(&format!(
        "{WALKTHROUGH}balancer:\n  failover_criteria: [error, timeout, http_429, http_503]\n  retries: 2\n"
    ))
    .unwrap();
    assert!(p.balancing.failover.http_429);
    assert_eq!(p.balancing.failover.http_5xx, vec![503]);
    assert_eq!(p.balancing.retries, 2);
    assert!(advanced(&format!("{WALKTHROUGH}balancer:\n  failover_criteria: [http_404]\n")).is_err());
}

#[test]
fn single_target_plugin() {
    let p = AiProxy::compile_single(
            serde_yaml::from_str("route_type: llm/v1/chat\nmodel: {provider: openai, name: gpt-4o-mini}\nauth: {header_name: Authorization, header_value: Bearer x}").unwrap(),
            &HealthRegistry::default(),
            &[],
        )
        .unwrap();
    assert_eq!(p.targets.len(), 1);
    assert_eq!(p.targets[0].route_type, RouteType::Chat);
}

#[test]
fn anthropic_targets() {
    let p = target(
        "anthropic",
        "anthropic_version: '2023-06-01', max_tokens: 100, top_k: 40, temperature: 0.5",
        "llm/v1/chat",
    )
    .unwrap();
    let t = &p.targets[0];
    assert_eq!(t.provider, Provider::Anthropic);
    assert_eq!(
        t.endpoint,
        Endpoint { tls: true, host: "api.anthropic.com".into(), port: 443, path: "/v1/messages".into() }
    );
    assert_eq!(t.provider_options.anthropic_version.as_ref().unwrap(), "2023-06-01");
    assert!(!t.provider_options.refuses_sampling);
    assert_eq!(t.options.top_k, Some(40));
    assert_eq!(t.model_header.as_ref().unwrap(), "anthropic/m");
    assert!(t.translates(Dialect::OpenAi) && !t.translates(Dialect::Anthropic));
    // Kong requires the version; Anthropic's range is 0-1; 2026-10-21 refuses sampling.
    let path = |r: Result<AiProxy, Vec<ConfigIssue>>| r.unwrap_err()[0].path.clone();
    assert_eq!(path(target("anthropic", "", "llm/v1/chat")), "targets[0].model.options.anthropic_version");
    assert_eq!(
        path(target("anthropic", "anthropic_version: '2023-06-01', temperature: 1.5", "llm/v1/chat")),
        "targets[0].model.options.temperature"
    );
    assert_eq!(
        path(target("anthropic", "anthropic_version: '2026-10-21', top_p: 0.5", "llm/v1/chat")),
        "targets[0].model.options.top_p"
    );
    assert_eq!(
        path(target("anthropic", "anthropic_version: '2023-06-01'", "llm/v1/responses")),
        "targets[0].route_type"
    );
    assert_eq!(path(target("openai", "top_k: 3", "llm/v1/chat")), "targets[0].model.options.top_k");
    assert_eq!(
        path(target("openai", "anthropic_version: '2023-06-01'", "llm/v1/chat")),
        "targets[0].model.options.anthropic_version"
    );
    let errs = advanced(
        "targets:\n- route_type: llm/v1/chat\n  auth: {param_name: key, param_value: k, param_location: query}\n  model: {provider: anthropic, options: {anthropic_version: '2023-06-01'}}\n",
    )
    .unwrap_err();
    assert_eq!(errs[0].path, "targets[0].auth.param_name");
}

#[test]
fn azure_targets() {
    let p = target("azure", "azure_instance: my-res, azure_deployment_id: gpt4o-prod", "llm/v1/chat").unwrap();
    let t = &p.targets[0];
    assert_eq!(t.endpoint.host, "my-res.openai.azure.com");
    assert_eq!(t.endpoint.path, "/openai/deployments/gpt4o-prod/chat/completions");
    let az = t.provider_options.azure.as_ref().unwrap();
    assert_eq!((az.api_version.as_str(), az.deployment.as_str()), ("2023-05-15", "gpt4o-prod"));
    let p = target(
        "azure",
        "azure_instance: my-res, azure_deployment_id: d, azure_api_version: 2025-03-01-preview",
        "llm/v1/responses",
    )
    .unwrap();
    assert_eq!(p.targets[0].endpoint.path, "/openai/responses");
    assert_eq!(p.targets[0].provider_options.azure.as_ref().unwrap().api_version, "2025-03-01-preview");
    let errs = target("azure", "azure_instance: my-res", "llm/v1/chat").unwrap_err();
    assert_eq!(errs[0].path, "targets[0].model.options.azure_deployment_id");
    assert!(target("azure", "azure_instance: 'a/b', azure_deployment_id: d", "llm/v1/chat").is_err());
    assert!(target("openai", "azure_instance: x", "llm/v1/chat").is_err());
}

#[test]
fn self_hosted_targets() {
    let url = "upstream_url: 'http://vllm.internal:8000/v1/chat/completions'";
    let yaml = |provider: &str, extra: &str| {
        format!("targets:\n- route_type: llm/v1/chat\n  model: {{provider: {provider}, name: m, options: {{{url}{extra}}}}}\n")
    };
    for (provider, extra) in
        [("openai", ""), ("llama2", ", llama2_format: openai"), ("mistral", ", mistral_format: openai")]
    {
        let p = advanced_plain_http(&yaml(provider, extra), &["vllm.internal"]).unwrap();
        let e = &p.targets[0].endpoint;
        assert_eq!(
            (e.tls, e.host.as_str(), e.port, e.path.as_str()),
            (false, "vllm.internal", 8000, "/v1/chat/completions")
        );
        assert!(matches!(p.targets[0].auth, ProviderAuth::None), "no key: none is sent");
    }
    // Kong's formats that are not OpenAI's are refused, and llama2 needs a URL.
    let first = |r: Result<AiProxy, Vec<ConfigIssue>>| r.unwrap_err()[0].clone();
    assert!(first(advanced_plain_http(&yaml("llama2", ", llama2_format: ollama"), &["vllm.internal"]))
        .what
        .contains("ollama"));
    assert!(first(advanced_plain_http(&yaml("llama2", ", llama2_format: raw"), &["vllm.internal"]))
        .what
        .contains("raw"));
    assert!(first(advanced_plain_http(&yaml("llama2", ""), &["vllm.internal"])).path.ends_with("llama2_format"));
    assert!(first(advanced_plain_http(&yaml("mistral", ", mistral_format: ollama"), &["vllm.internal"]))
        .what
        .contains("ollama"));
    assert_eq!(
        first(target("llama2", "llama2_format: openai", "llm/v1/chat")).path,
        "targets[0].model.options.upstream_url"
    );
    // Mistral's own API when no URL is given.
    let p = target("mistral", "mistral_format: openai", "llm/v1/chat").unwrap();
    assert_eq!(p.targets[0].endpoint.host, "api.mistral.ai");
}

#[test]
fn llm_format_anthropic_needs_anthropic_chat_targets() {
    let anthropic = "  model: {provider: anthropic, options: {anthropic_version: '2023-06-01'}}\n";
    let p = advanced(&format!("llm_format: anthropic\ntargets:\n- route_type: llm/v1/chat\n{anthropic}")).unwrap();
    assert_eq!(p.llm_format, Dialect::Anthropic);
    assert!(!p.targets[0].translates(p.llm_format));
    let errs = advanced(&format!(
        "llm_format: anthropic\ntargets:\n- route_type: llm/v1/chat\n{anthropic}- route_type: llm/v1/chat\n  model: {{provider: openai}}\n"
    ))
    .unwrap_err();
    assert!(errs[0].what.contains("provider openai cannot serve it"), "{errs:?}");
    assert!(advanced(&format!("llm_format: gemini\ntargets:\n- route_type: llm/v1/chat\n{anthropic}")).is_err());
    // Mixed providers for OpenAI-format clients: the failover plan "OpenAI first, Anthropic next".
    let p = advanced(&format!(
        "targets:\n- route_type: llm/v1/chat\n  model: {{provider: openai, name: gpt-4o}}\n- route_type: llm/v1/chat\n{anthropic}"
    ))
    .unwrap();
    assert!(!p.targets[0].translates(p.llm_format) && p.targets[1].translates(p.llm_format));
}

#[test]
fn one_model_alias_for_every_target_or_none() {
    let t = |alias: &str| format!("- route_type: llm/v1/chat\n  model: {{provider: openai, name: gpt-4o{alias}}}\n");
    let p = advanced(&format!("targets:\n{}{}", t(", model_alias: smart"), t(", model_alias: smart"))).unwrap();
    assert_eq!(p.targets[1].model_alias.as_deref(), Some("smart"));
    let errs = advanced(&format!("targets:\n{}{}", t(", model_alias: smart"), t(", model_alias: fast"))).unwrap_err();
    assert!(errs[0].what.contains("model_alias differ"), "{errs:?}");
    assert!(advanced(&format!("targets:\n{}{}", t(", model_alias: smart"), t(""))).is_err());
    assert!(advanced("targets:\n- route_type: llm/v1/chat\n  model: {provider: openai, model_alias: smart}\n").is_err());
}
