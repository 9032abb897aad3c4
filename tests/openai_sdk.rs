//! The official OpenAI Python SDK through aigate: a consumer's client with its gateway key
//! creates responses, streams one, and gets the gateway's refusal as the SDK's own error; the
//! provider key is the gateway's. Needs the environment scripts/test creates (target/pyenv).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod support;

use serde_json::Value;
use support::gateway::{GatewaySpec, TestBed, PROVIDER_KEY};

const DECK: &str = r#"_format_version: "3.0"
services:
- name: llm
  url: http://unused.invalid
  routes:
  - name: responses
    paths: [/v1/responses]
plugins:
- name: key-auth
- name: ai-proxy
  config:
    route_type: llm/v1/responses
    auth: {header_name: Authorization, header_value: Bearer ${{ env "DECK_OPENAI_API_KEY" }}}
    model: {provider: openai, name: gpt-4o}
consumers:
- username: alex
  keyauth_credentials: [{key: hello_world}]
"#;

const SCRIPT: &str = r#"
import json, os
import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["BASE"], api_key="sk-client-never-forwarded", default_headers={"apikey": "hello_world"})
out = {}
r = client.responses.create(model="gpt-4o", input="hi")
out["text"] = r.output_text
out["input_tokens"] = r.usage.input_tokens
out["last_event"] = [e.type for e in client.responses.create(model="gpt-4o", input="hi", stream=True)][-1]
try:
    client.responses.create(model="gpt-4o-mini", input="hi")
except openai.BadRequestError as e:
    out["refused"] = [e.status_code, e.message]
print(json.dumps(out))
"#;

#[tokio::test]
async fn the_openai_python_sdk_works_through_the_gateway() {
    let bed = TestBed::new().await;
    let gw = bed.start(GatewaySpec::new(&[("kong.yaml", DECK)]));
    let base = gw.url("/v1");
    let out =
        tokio::task::spawn_blocking(move || support::python::run(SCRIPT, &["openai"], &[("BASE", base.as_str())]))
            .await
            .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}\n{}", String::from_utf8_lossy(&out.stderr), gw.logs());
    let got: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(!got["text"].as_str().unwrap().is_empty(), "{got}");
    assert!(got["input_tokens"].as_u64().unwrap() > 0, "{got}");
    assert_eq!(got["last_event"], "response.completed", "{got}");
    assert_eq!(got["refused"][0], 400, "{got}");
    assert!(got["refused"][1].as_str().unwrap().contains("cannot use own model - must be: gpt-4o"), "{got}");
    // The provider saw the gateway's key, never the client's.
    let seen = bed.mock.state.last().unwrap();
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {PROVIDER_KEY}").as_str()));
    assert_eq!(bed.mock.state.count(), 2);
}
