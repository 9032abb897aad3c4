use super::*;
use crate::upstream::balancer::HealthRegistry;

fn advanced(yaml: &str) -> Result<AiProxy, Vec<ConfigIssue>> {
    AiProxy::compile_advanced(serde_yaml::from_str(yaml).unwrap(), &HealthRegistry::default())
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
    let p = advanced(
        &WALKTHROUGH
            .replace("temperature: 1.0", "temperature: 1.0\n      upstream_url: http://127.0.0.1:9000/v1/responses"),
    )
    .unwrap();
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
    let errs = advanced(&WALKTHROUGH.replace("provider: openai", "provider: anthropic")).unwrap_err();
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
        )
        .unwrap();
    assert_eq!(p.targets.len(), 1);
    assert_eq!(p.targets[0].route_type, RouteType::Chat);
}
