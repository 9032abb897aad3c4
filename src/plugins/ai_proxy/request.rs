//! Checking and rewriting an LLM request body with Kong's rules: the configured model wins
//! (a different one in the body is refused), configured options override the client's
//! (Kong 3.8+), `max_tokens` is written under the field name of the client's API, streaming is
//! allowed, denied or forced, and a body-placed provider credential is injected. Endpoints that
//! take no options (`compact`, `input_tokens`) get the model rules only.

use super::{AiTarget, ProviderAuth, Streaming};
use crate::ai::anthropic::request::DEFAULT_MAX_TOKENS;
use crate::ai::json_body::RequestDoc;
use crate::ai::provider::{Dialect, Provider};
use crate::ai::refusal::AiRefusal;
use crate::ai::RouteType;

/// What the gateway learnt from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    pub stream: bool,
    /// The model the provider is asked for.
    pub model: String,
    /// A chat stream whose client asked for the final usage chunk (written by the gateway
    /// when it translates the stream).
    pub include_usage: bool,
}

/// Apply the target's model rules and options to a request in the client's format
/// (`format`: OpenAI's, or Anthropic's for `llm_format: anthropic`).
pub fn apply_target(
    doc: &mut RequestDoc<'_>,
    target: &AiTarget,
    streaming: Streaming,
    format: Dialect,
) -> Result<RequestFacts, AiRefusal> {
    let model = model_rule(doc, target)?;

    let stream = match doc.raw("stream") {
        None | Some("null") | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(AiRefusal::bad_request("\"stream\" must be true or false", "invalid_type")),
    };
    let stream = match streaming {
        Streaming::Allow => stream,
        Streaming::Deny if stream => {
            return Err(AiRefusal::bad_request("response streaming is not enabled for this LLM", "streaming_denied"));
        }
        Streaming::Deny => false,
        Streaming::Always => {
            if !stream {
                doc.set("stream", &true);
            }
            true
        }
    };

    let o = &target.options;
    match (format, target.route_type, o.max_tokens) {
        // Chat: newer clients send max_completion_tokens (o-series models take only that).
        (Dialect::OpenAi, RouteType::Chat, Some(max)) if doc.contains("max_completion_tokens") => {
            doc.set("max_completion_tokens", &max);
            doc.remove("max_tokens");
        }
        (Dialect::OpenAi, rt, Some(max)) => doc.set(rt.max_tokens_field(), &max),
        // Anthropic requires max_tokens.
        (Dialect::Anthropic, _, max) => {
            if let Some(max) = max {
                doc.set("max_tokens", &max);
            } else if doc.raw("max_tokens").is_none_or(|v| v == "null") {
                doc.set("max_tokens", &DEFAULT_MAX_TOKENS);
            }
        }
        (_, _, None) => {}
    }
    if let Some(t) = o.temperature {
        doc.set("temperature", &t);
    }
    if let Some(p) = o.top_p {
        doc.set("top_p", &p);
    }
    if let Some(k) = o.top_k {
        doc.set("top_k", &k);
    }
    // Azure's Responses API names the deployment in `model`.
    if let (Provider::Azure, RouteType::Responses, Some(az)) =
        (target.provider, target.route_type, &target.provider_options.azure)
    {
        doc.set("model", &az.deployment);
    }
    if let ProviderAuth::Body { name, value } = &target.auth {
        if !(target.allow_override && doc.contains(name)) {
            doc.set(name, value);
        }
    }
    Ok(RequestFacts { stream, model, include_usage: false })
}

/// Only the model rules (and a body-placed credential): for calls that take no options and do
/// not stream (Anthropic's token counting, the Responses API's `compact` and `input_tokens`).
pub fn apply_model_only(doc: &mut RequestDoc<'_>, target: &AiTarget) -> Result<RequestFacts, AiRefusal> {
    let model = model_rule(doc, target)?;
    if let ProviderAuth::Body { name, value } = &target.auth {
        if !(target.allow_override && doc.contains(name)) {
            doc.set(name, value);
        }
    }
    Ok(RequestFacts { stream: false, model, include_usage: false })
}

/// Kong's model rules: the configured model wins, a different one in the body is refused, and
/// without either the request is refused. Returns the model the provider is asked for.
fn model_rule(doc: &mut RequestDoc<'_>, target: &AiTarget) -> Result<String, AiRefusal> {
    // Model: Kong checks only non-empty strings; anything else is replaced by the configured one.
    let body_model = match doc.raw("model") {
        Some(raw) if raw.starts_with('"') => serde_json::from_str::<String>(raw).ok().filter(|m| !m.is_empty()),
        _ => None,
    };
    match (&target.model, body_model) {
        (Some(configured), Some(requested))
            if &requested != configured && Some(&requested) != target.model_alias.as_ref() =>
        {
            Err(AiRefusal::bad_request(format!("cannot use own model - must be: {configured}"), "model_not_allowed"))
        }
        (Some(configured), requested) => {
            // Absent, or the alias: the target's own model goes upstream.
            if requested.as_ref() != Some(configured) {
                doc.set("model", configured);
            }
            Ok(configured.clone())
        }
        (None, Some(requested)) => Ok(requested),
        (None, None) => Err(AiRefusal::bad_request(
            "model parameter not found in request, nor in gateway configuration",
            "model_not_found",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::refusal::BAD_BODY;
    use crate::plugins::ai_proxy::AiProxy;
    use crate::upstream::balancer::HealthRegistry;

    fn target(extra_options: &str, route_type: &str, name: Option<&str>) -> AiTarget {
        let name = name.map(|n| format!("    name: {n}\n")).unwrap_or_default();
        let yaml = format!(
            "targets:\n- route_type: {route_type}\n  model:\n    provider: openai\n{name}    options:\n      max_tokens: 512\n      temperature: 1.0\n{extra_options}"
        );
        let mut p =
            AiProxy::compile_advanced(serde_yaml::from_str(&yaml).unwrap(), &HealthRegistry::default(), &[]).unwrap();
        p.targets.remove(0)
    }

    fn run(body: &str, t: &AiTarget, s: Streaming) -> Result<(RequestFacts, serde_json::Value), AiRefusal> {
        let mut doc = RequestDoc::parse(body.as_bytes())?;
        let facts = apply_target(&mut doc, t, s, Dialect::OpenAi)?;
        Ok((facts, serde_json::from_slice(&doc.to_bytes()).unwrap()))
    }

    #[test]
    fn walkthrough_body() {
        let t = target("", "llm/v1/responses", Some("gpt-4o"));
        let (facts, out) =
            run(r#"{"tools":[{"type":"mcp"}],"input":"How do I use GitHub MCP?"}"#, &t, Streaming::Allow).unwrap();
        assert_eq!(facts, RequestFacts { stream: false, model: "gpt-4o".into(), include_usage: false });
        assert_eq!(out["model"], "gpt-4o");
        assert_eq!(out["max_output_tokens"], 512);
        assert_eq!(out["temperature"], 1.0);
        assert!(out.get("max_tokens").is_none());
        assert_eq!(out["input"], "How do I use GitHub MCP?");
    }

    #[test]
    fn chat_uses_max_tokens_and_config_overrides_the_client() {
        let t = target("", "llm/v1/chat", Some("gpt-4o"));
        let (_, out) = run(r#"{"messages":[],"max_tokens":9000,"temperature":0.2}"#, &t, Streaming::Allow).unwrap();
        assert_eq!(out["max_tokens"], 512);
        assert_eq!(out["temperature"], 1.0);
    }

    #[test]
    fn chat_max_completion_tokens_is_the_field_the_client_used() {
        let t = target("", "llm/v1/chat", Some("gpt-4o"));
        let (_, out) =
            run(r#"{"messages":[],"max_completion_tokens":9000,"max_tokens":10}"#, &t, Streaming::Allow).unwrap();
        assert_eq!(out["max_completion_tokens"], 512);
        assert!(out.get("max_tokens").is_none());
    }

    #[test]
    fn kong_model_rules() {
        let t = target("", "llm/v1/responses", Some("gpt-4o"));
        let err = run(r#"{"model":"gpt-4o-mini","input":"x"}"#, &t, Streaming::Allow).unwrap_err();
        assert_eq!(err.status, 400);
        assert_eq!(err.message, "cannot use own model - must be: gpt-4o");
        assert!(run(r#"{"model":"gpt-4o","input":"x"}"#, &t, Streaming::Allow).is_ok());
        // Not a non-empty string: replaced by the configured model, as Kong does.
        let (_, out) = run(r#"{"model":42,"input":"x"}"#, &t, Streaming::Allow).unwrap();
        assert_eq!(out["model"], "gpt-4o");
        let (_, out) = run(r#"{"model":"","input":"x"}"#, &t, Streaming::Allow).unwrap();
        assert_eq!(out["model"], "gpt-4o");

        let open = target("", "llm/v1/responses", None);
        let (facts, _) = run(r#"{"model":"o3","input":"x"}"#, &open, Streaming::Allow).unwrap();
        assert_eq!(facts.model, "o3");
        let err = run(r#"{"input":"x"}"#, &open, Streaming::Allow).unwrap_err();
        assert_eq!(err.message, "model parameter not found in request, nor in gateway configuration");
    }

    #[test]
    fn a_model_alias_is_accepted_and_replaced_by_the_targets_model() {
        let yaml =
            "targets:\n- route_type: llm/v1/chat\n  model: {provider: openai, name: gpt-4o, model_alias: smart}\n";
        let mut p =
            AiProxy::compile_advanced(serde_yaml::from_str(yaml).unwrap(), &HealthRegistry::default(), &[]).unwrap();
        let t = p.targets.remove(0);
        let (facts, out) = run(r#"{"model":"smart","messages":[]}"#, &t, Streaming::Allow).unwrap();
        assert_eq!((facts.model.as_str(), out["model"].as_str()), ("gpt-4o", Some("gpt-4o")));
        assert!(run(r#"{"model":"gpt-4o","messages":[]}"#, &t, Streaming::Allow).is_ok());
        assert!(run(r#"{"model":"other","messages":[]}"#, &t, Streaming::Allow).is_err());
    }

    #[test]
    fn compact_and_input_tokens_get_the_model_rules_only() {
        let t = target("", "llm/v1/responses", Some("gpt-4o"));
        let mut doc = RequestDoc::parse(br#"{"input":"x"}"#).unwrap();
        let f = apply_model_only(&mut doc, &t).unwrap();
        assert_eq!(f.model, "gpt-4o");
        let out: serde_json::Value = serde_json::from_slice(&doc.to_bytes()).unwrap();
        assert_eq!(out, serde_json::json!({"input": "x", "model": "gpt-4o"}));
        let mut doc = RequestDoc::parse(br#"{"model":"o3","input":"x"}"#).unwrap();
        assert_eq!(apply_model_only(&mut doc, &t).unwrap_err().code, "model_not_allowed");
    }

    #[test]
    fn streaming_modes() {
        let t = target("", "llm/v1/responses", Some("gpt-4o"));
        let (f, _) = run(r#"{"stream":true,"input":"x"}"#, &t, Streaming::Allow).unwrap();
        assert!(f.stream);
        let err = run(r#"{"stream":true,"input":"x"}"#, &t, Streaming::Deny).unwrap_err();
        assert_eq!(err.message, "response streaming is not enabled for this LLM");
        assert!(!run(r#"{"stream":false,"input":"x"}"#, &t, Streaming::Deny).unwrap().0.stream);
        let (f, out) = run(r#"{"input":"x"}"#, &t, Streaming::Always).unwrap();
        assert!(f.stream);
        assert_eq!(out["stream"], true);
        assert!(run(r#"{"stream":"yes","input":"x"}"#, &t, Streaming::Allow).is_err());
    }

    #[test]
    fn bad_bodies_are_refused_with_kongs_message() {
        let t = target("", "llm/v1/responses", Some("gpt-4o"));
        for body in ["", "{", "[1]", "\"x\"", "{\"model\":\"a\",\"model\":\"b\"}"] {
            let err = run(body, &t, Streaming::Allow).unwrap_err();
            assert_eq!(err.status, 400, "{body}");
        }
        assert!(run("[1]", &t, Streaming::Allow).unwrap_err().message.starts_with(BAD_BODY));
    }
}
