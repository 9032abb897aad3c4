//! The official Python SDKs against providers other than OpenAI, through the real gateway: the
//! `openai` SDK against an Anthropic target (translated: chat, streams with usage, the stream
//! helper, tool calls, images, refusals and provider errors as the SDK's own exceptions), the
//! `anthropic` SDK against `llm_format: anthropic` (messages.create, messages.stream,
//! count_tokens), and `AzureOpenAI` against an Azure target. Needs target/pyenv (scripts/test).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use serde_json::Value;
use support::gateway::{GatewaySpec, TestBed, ANTHROPIC_KEY, PROVIDER_KEY};

async fn python(script: &'static str, modules: &'static [&'static str], base: String) -> Value {
    let out = tokio::task::spawn_blocking(move || support::python::run(script, modules, &[("BASE", base.as_str())]))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

const CHAT_DECK: &str = r#"_format_version: "3.0"
services:
- name: llm
  url: http://unused.invalid
  routes:
  - name: chat
    paths: [/v1/chat/completions]
plugins:
- name: key-auth
- name: ai-proxy
  config:
    route_type: llm/v1/chat
    auth: {header_name: x-api-key, header_value: '${{ env "DECK_ANTHROPIC_API_KEY" }}'}
    model: {provider: anthropic, name: claude-x, options: {anthropic_version: "2023-06-01"}}
consumers:
- username: alex
  keyauth_credentials: [{key: hello_world}]
"#;

const OPENAI_SCRIPT: &str = r#"
import base64, json, os
import openai
from openai import OpenAI

c = OpenAI(base_url=os.environ["BASE"], api_key="sk-client-never-forwarded", default_headers={"apikey": "hello_world"}, max_retries=0)
out = {}
hi = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
r = c.chat.completions.create(model="claude-x", messages=hi)
out["text"] = r.choices[0].message.content
out["finish"] = r.choices[0].finish_reason
out["model"] = r.model
out["usage"] = [r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens]

chunks = list(c.chat.completions.create(model="claude-x", messages=hi, stream=True, stream_options={"include_usage": True}))
out["stream_text"] = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
out["stream_usage"] = chunks[-1].usage.total_tokens
out["stream_finish"] = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]

tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
ask = [{"role": "user", "content": "Weather in Paris?"}]
r = c.chat.completions.create(model="claude-x", messages=ask, tools=tools)
call = r.choices[0].message.tool_calls[0]
out["tool"] = [r.choices[0].finish_reason, call.function.name, json.loads(call.function.arguments)]
r2 = c.chat.completions.create(model="claude-x", tools=tools,
    messages=ask + [r.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "18C"}])
out["after_tool"] = r2.choices[0].message.content

with c.chat.completions.stream(model="claude-x", messages=ask, tools=tools) as s:
    final = s.get_final_completion()
fc = final.choices[0].message.tool_calls[0]
out["helper"] = [final.choices[0].finish_reason, fc.function.name, json.loads(fc.function.arguments)]

png = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
r = c.chat.completions.create(model="claude-x", messages=[{"role": "user", "content": [
    {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": png}}]}])
out["image"] = r.choices[0].message.content

try:
    c.chat.completions.create(model="claude-x", messages=hi, n=2)
except openai.BadRequestError as e:
    out["refused"] = [e.status_code, e.message]
try:
    c.chat.completions.create(model="claude-x", messages=hi, extra_headers={"x-mock-status": "529"})
except openai.InternalServerError as e:
    out["overloaded"] = [e.status_code, e.code]
try:
    c.chat.completions.create(model="claude-x", messages=hi, extra_headers={"x-mock-status": "429"})
except openai.RateLimitError as e:
    out["rate_limited"] = e.status_code
print(json.dumps(out))
"#;

#[tokio::test]
async fn the_openai_sdk_talks_to_an_anthropic_target() {
    let bed = TestBed::new().await;
    let anthropic = bed.extra_upstream(&["api.anthropic.com"]).await;
    *anthropic.state.expected_key.lock().unwrap() = Some(ANTHROPIC_KEY.to_string());
    let gw = bed
        .start_resolving(GatewaySpec::new(&[("kong.yaml", CHAT_DECK)]), &[("api.anthropic.com:443", anthropic.addr)]);
    let got = python(OPENAI_SCRIPT, &["openai"], gw.url("/v1")).await;
    assert!(got["text"].as_str().unwrap().starts_with("[1 system block(s)]"), "{got}");
    assert_eq!(got["finish"], "stop");
    assert_eq!(got["model"], "claude-x");
    let u = &got["usage"];
    assert_eq!(u[0].as_u64().unwrap() + u[1].as_u64().unwrap(), u[2].as_u64().unwrap());
    assert!(got["stream_text"].as_str().unwrap().contains("part0 part1"), "{got}");
    assert!(got["stream_usage"].as_u64().unwrap() > 0);
    assert_eq!(got["stream_finish"], serde_json::json!(["stop"]));
    assert_eq!(got["tool"], serde_json::json!(["tool_calls", "get_weather", {"city": "Paris", "unit": "c"}]));
    assert!(got["after_tool"].as_str().unwrap().starts_with("Tool said: 18C."), "{got}");
    assert_eq!(got["helper"], serde_json::json!(["tool_calls", "get_weather", {"city": "Paris", "unit": "c"}]));
    assert!(got["image"].as_str().unwrap().starts_with("I see 1 image(s)."), "{got}");
    assert_eq!(got["refused"][0], 400);
    assert!(got["refused"][1].as_str().unwrap().contains("n: Anthropic answers with one choice"), "{got}");
    assert_eq!(got["overloaded"], serde_json::json!([503, "overloaded"]));
    assert_eq!(got["rate_limited"], 429);
    // The client's key never reached Anthropic.
    for r in anthropic.state.records() {
        assert_eq!(r.header("x-api-key"), Some(ANTHROPIC_KEY));
        assert_eq!(r.header("authorization"), None);
    }
    assert_eq!(bed.mock.state.count(), 0, "nothing went to OpenAI");
}

const NATIVE_DECK: &str = r#"_format_version: "3.0"
services:
- name: llm
  url: http://unused.invalid
  routes:
  - name: claude
    paths: [/claude]
plugins:
- name: key-auth
  config: {key_names: [x-api-key]}
- name: ai-proxy
  config:
    route_type: llm/v1/chat
    llm_format: anthropic
    auth: {header_name: x-api-key, header_value: '${{ env "DECK_ANTHROPIC_API_KEY" }}'}
    model: {provider: anthropic, name: claude-x, options: {anthropic_version: "2023-06-01"}}
consumers:
- username: alex
  keyauth_credentials: [{key: hello_world}]
"#;

const ANTHROPIC_SCRIPT: &str = r#"
import json, os
import anthropic
from anthropic import Anthropic

# anthropic 2.x sends api_key as a Bearer token; the consumer's gateway key goes in x-api-key.
c = Anthropic(base_url=os.environ["BASE"], api_key="sk-ant-client-never-forwarded",
              default_headers={"x-api-key": "hello_world"}, max_retries=0)
out = {}
hi = [{"role": "user", "content": "hi"}]
m = c.messages.create(model="claude-x", max_tokens=100, system="Be brief.", messages=hi)
out["create"] = [m.content[0].text, m.stop_reason, m.usage.input_tokens, m.usage.output_tokens, m.model]
with c.messages.stream(model="claude-x", max_tokens=100, messages=hi) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
out["stream"] = [text, final.stop_reason, final.usage.output_tokens]
tools = [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
with c.messages.stream(model="claude-x", max_tokens=100, messages=[{"role": "user", "content": "Weather?"}], tools=tools) as s:
    final = s.get_final_message()
out["tool"] = [final.stop_reason] + [b.input for b in final.content if b.type == "tool_use"]
out["count"] = c.messages.count_tokens(model="claude-x", messages=hi).input_tokens
try:
    c.messages.create(model="claude-opus", max_tokens=10, messages=hi)
except anthropic.BadRequestError as e:
    out["refused"] = [e.status_code, e.body["error"]["type"], e.body["error"]["message"]]
try:
    c.messages.create(model="claude-x", max_tokens=10, messages=hi, extra_headers={"x-mock-status": "529"})
except anthropic.APIStatusError as e:
    out["overloaded"] = [e.status_code, e.body["error"]["type"]]
print(json.dumps(out))
"#;

#[tokio::test]
async fn the_anthropic_sdk_passes_through_llm_format_anthropic() {
    let bed = TestBed::new().await;
    let anthropic = bed.extra_upstream(&["api.anthropic.com"]).await;
    *anthropic.state.expected_key.lock().unwrap() = Some(ANTHROPIC_KEY.to_string());
    let gw = bed
        .start_resolving(GatewaySpec::new(&[("kong.yaml", NATIVE_DECK)]), &[("api.anthropic.com:443", anthropic.addr)]);
    let got = python(ANTHROPIC_SCRIPT, &["anthropic"], gw.url("/claude")).await;
    assert_eq!(got["create"][1], "end_turn", "{got}");
    assert_eq!(got["create"][4], "claude-x");
    assert!(got["stream"][0].as_str().unwrap().contains("part0"), "{got}");
    assert_eq!(got["stream"][1], "end_turn");
    assert_eq!(got["tool"], serde_json::json!(["tool_use", {"city": "Paris", "unit": "c"}]));
    assert!(got["count"].as_u64().unwrap() > 0);
    assert_eq!(
        got["refused"],
        serde_json::json!([400, "invalid_request_error", "cannot use own model - must be: claude-x"])
    );
    assert_eq!(got["overloaded"], serde_json::json!([529, "overloaded_error"]));
    let records = anthropic.state.records();
    let paths: Vec<&str> = records.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(paths.iter().filter(|p| **p == "/v1/messages/count_tokens").count(), 1, "{paths:?}");
    for r in &records {
        assert_eq!(r.header("x-api-key"), Some(ANTHROPIC_KEY));
        assert_eq!(r.header("authorization"), None, "the SDK's Bearer reached Anthropic");
        // anthropic 2.x speaks API version 2026-10-21: the client's version is kept.
        assert_eq!(r.header("anthropic-version"), Some("2026-10-21"));
    }
    // Every answer's usage (streams included, the SDK's requests and its final messages
    // agree) is counted exactly as Anthropic reported it.
    let m = gw.metrics().await;
    let reported = anthropic.state.usage_reported.lock().unwrap().clone();
    assert_eq!(reported.len(), 3, "create, stream, tool stream");
    assert_eq!(reported[1]["output_tokens"], got["stream"][2]);
    let sum = |k: &str| reported.iter().map(|u| u[k].as_u64().unwrap()).sum::<u64>() as f64;
    let tok =
        |t: &str| support::prom::value(&m, "aigate_llm_tokens_total", &[("provider", "anthropic"), ("token_type", t)]);
    assert_eq!(tok("output"), Some(sum("output_tokens")));
    assert_eq!(tok("input"), Some(sum("input_tokens")));
}

const AZURE_DECK: &str = r#"_format_version: "3.0"
services:
- name: llm
  url: http://unused.invalid
  routes:
  - name: azure-chat
    paths: [/azure]
  - name: azure-responses
    paths: [/azr]
plugins:
- name: key-auth
- name: ai-proxy
  route: azure-chat
  config:
    route_type: llm/v1/chat
    auth: {header_name: api-key, header_value: '${{ env "DECK_OPENAI_API_KEY" }}'}
    model: {provider: azure, name: gpt-4o, options: {azure_instance: myres, azure_deployment_id: gpt4o-prod, azure_api_version: "2024-06-01"}}
- name: ai-proxy
  route: azure-responses
  config:
    route_type: llm/v1/responses
    auth: {header_name: api-key, header_value: '${{ env "DECK_OPENAI_API_KEY" }}'}
    model: {provider: azure, name: gpt-4o, options: {azure_instance: myres, azure_deployment_id: gpt4o-prod, azure_api_version: "2025-03-01-preview"}}
consumers:
- username: alex
  keyauth_credentials: [{key: hello_world}]
"#;

const AZURE_SCRIPT: &str = r#"
import json, os
from openai import AzureOpenAI

base = os.environ["BASE"]
out = {}
chat = AzureOpenAI(azure_endpoint=base + "/azure", api_version="2024-10-21", api_key="client-azure-key-never-forwarded",
                   default_headers={"apikey": "hello_world"}, max_retries=0)
r = chat.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
out["chat"] = [r.choices[0].message.content, r.usage.total_tokens]
chunks = list(chat.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True,
                                           stream_options={"include_usage": True}))
out["stream_usage"] = chunks[-1].usage.total_tokens
responses = AzureOpenAI(azure_endpoint=base + "/azr", api_version="2025-03-01-preview", api_key="client-azure-key-never-forwarded",
                        default_headers={"apikey": "hello_world"}, max_retries=0)
r = responses.responses.create(model="gpt-4o", input="hi")
out["responses"] = [r.output_text, r.usage.input_tokens > 0]
print(json.dumps(out))
"#;

#[tokio::test]
async fn azure_openai_through_the_azure_client() {
    let bed = TestBed::new().await;
    let azure = bed.extra_upstream(&["myres.openai.azure.com"]).await;
    *azure.state.expected_key.lock().unwrap() = Some(PROVIDER_KEY.to_string());
    let gw = bed
        .start_resolving(GatewaySpec::new(&[("kong.yaml", AZURE_DECK)]), &[("myres.openai.azure.com:443", azure.addr)]);
    let got = python(AZURE_SCRIPT, &["openai"], gw.url("")).await;
    assert!(!got["chat"][0].as_str().unwrap().is_empty(), "{got}");
    assert!(got["stream_usage"].as_u64().unwrap() > 0, "{got}");
    assert_eq!(got["responses"][1], true, "{got}");
    let records = azure.state.records();
    assert_eq!(records.len(), 3);
    // Chat: the deployment's path, the client's api-version (as Kong), the gateway's key.
    assert_eq!(records[0].target, "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21");
    assert_eq!(records[0].json()["model"], "gpt-4o");
    // Responses: the resource's path; the deployment is the body's model.
    assert_eq!(records[2].target, "/openai/responses?api-version=2025-03-01-preview");
    assert_eq!(records[2].json()["model"], "gpt4o-prod");
    for r in &records {
        assert_eq!(r.header("api-key"), Some(PROVIDER_KEY));
        assert_eq!(r.header("authorization"), None);
        assert_eq!(r.header("apikey"), None);
    }
    let m = gw.metrics().await;
    assert_eq!(
        support::prom::value(&m, "aigate_llm_requests_total", &[("provider", "azure"), ("status", "200")]),
        Some(3.0)
    );
    assert_eq!(support::prom::value(&m, "aigate_llm_usage_missing_total", &[("provider", "azure")]), Some(0.0));
}
