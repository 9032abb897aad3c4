//! The LLM request-body check and rewrite, and ai-mcp-guard, on arbitrary bodies: refused or
//! rewritten into valid JSON — never a panic. The one-pass scanner accepts only what serde_json
//! accepts, and refuses what serde_json accepts only for a repeated key, a lone surrogate in a
//! key, or nesting deeper than its limit.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use aigate::ai::json_body::RequestDoc;
use aigate::ai::provider::Dialect;
use aigate::store::pins::PinStore;
use aigate::store::ownership::MemoryStore;
use aigate::plugins::ai_proxy::request::apply_target;
use aigate::consumers::Consumers;
use aigate::plugins::ai_proxy::{AiProxy, Streaming};
use aigate::upstream::balancer::HealthRegistry;
use aigate::ai::json_body::BodyError;
use aigate::plugins::mcp_guard::{GuardRecord, McpGuard};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    proxy: AiProxy,
    guard: McpGuard,
    store: MemoryStore,
    pins: PinStore,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let yaml = "targets:\n- route_type: llm/v1/responses\n  model: {provider: openai, name: gpt-4o, options: {max_tokens: 64, temperature: 0.5}}\n";
        let guard = "servers:\n- server_label: gitmcp\n  server_url: https://api.githubcopilot.com/mcp/\n  allowed_tools: [a, b]\n  sensitive_tools: [b]\n  credential: {value: tok}\n";
        Fixture {
            proxy: AiProxy::compile_advanced(serde_yaml::from_str(yaml).unwrap(), &HealthRegistry::default(), &[]).unwrap(),
            guard: McpGuard::compile(serde_yaml::from_str(guard).unwrap(), &Consumers::default()).unwrap(),
            store: MemoryStore::new(Duration::from_secs(60), 16),
            pins: PinStore::default(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let serde_ok = serde_json::from_slice::<Box<serde_json::value::RawValue>>(data)
        .is_ok_and(|v| v.get().trim_start().starts_with('{'));
    let (mut doc, refs) = match RequestDoc::parse_with_refs(data) {
        Ok(parsed) => parsed,
        Err(e) => {
            let explained = matches!(e, BodyError::DuplicateField(_))
                || matches!(&e, BodyError::Invalid(m) if m.contains("nested deeper") || m.contains("key holds"));
            assert!(!serde_ok || explained, "serde_json accepts what the scanner refuses: {e}");
            return;
        }
    };
    assert!(serde_ok, "the scanner accepts what serde_json refuses");
    if apply_target(&mut doc, &f.proxy.targets[0], Streaming::Allow, Dialect::OpenAi).is_err() {
        return;
    }
    let mut record = GuardRecord::default();
    let _ = f.guard.apply(&mut doc, &refs, None, &f.store, &f.pins, &mut record);
    let out = doc.to_bytes();
    // Whatever was accepted is sent as valid JSON (syntax: numbers keep their full range, as
    // written by the client — found by this target, see json_body's regression test).
    assert!(serde_json::from_slice::<Box<serde_json::value::RawValue>>(&out).is_ok(), "rewritten body is not JSON");
});
