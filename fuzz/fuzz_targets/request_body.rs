//! The LLM request-body check and rewrite, and ai-mcp-guard, on arbitrary bodies: refused or
//! rewritten into valid JSON — never a panic.
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
use aigate::plugins::mcp_guard::McpGuard;
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
    let Ok(mut doc) = RequestDoc::parse(data) else { return };
    if apply_target(&mut doc, &f.proxy.targets[0], Streaming::Allow, Dialect::OpenAi).is_err() {
        return;
    }
    let mut events = Vec::new();
    let _ = f.guard.apply(&mut doc, None, &f.store, &f.pins, &mut events);
    let out = doc.to_bytes();
    // Whatever was accepted is sent as valid JSON (syntax: numbers keep their full range, as
    // written by the client — found by this target, see json_body's regression test).
    assert!(serde_json::from_slice::<Box<serde_json::value::RawValue>>(&out).is_ok(), "rewritten body is not JSON");
});
