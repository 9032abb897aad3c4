//! Criterion micro-benchmarks of the request path's hot spots, each beside a reference doing
//! the least comparable work, so results read as ratios:
//!
//! - key lookup among 10,000 consumers (SHA-256 + digest map) vs a plain string-keyed map;
//! - route matching among 50 routes;
//! - request-body check and rewrite (1 KiB, 100 KiB, 1 MiB) vs a full `serde_json::Value`
//!   parse and re-serialisation (the naive way);
//! - SSE usage scan per MiB vs a bare memchr pass over the same bytes;
//! - scrubbing the gateway's credentials (a provider key and an MCP credential) from a MiB of
//!   stream, in 16 KiB reads and in one read per SSE event, vs a bare memchr pass;
//! - Chat Completions → Anthropic Messages request translation (1 KiB, 100 KiB) beside the
//!   untranslated check and rewrite of the same body;
//! - Anthropic → Chat Completions stream translation per MiB beside the usage scan of the same
//!   stream (what the untranslated path does with it);
//! - the first byte of a translated stream: the extra work before the client's first chunk
//!   (translating the request, then `message_start` into the role chunk) beside the untranslated
//!   path's (checking the request, scanning the first event).
//!
//! Run: `cargo bench --bench hot_paths`
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;

use aigate::ai::anthropic::request::{chat_to_messages, RequestOptions};
use aigate::ai::anthropic::stream::StreamTranslator;
use aigate::ai::json_body::RequestDoc;
use aigate::ai::provider::Dialect;
use aigate::ai::response::StreamFacts;
use aigate::ai::sse::SseScanner;
use aigate::consumers::{digest_key, Consumer, Consumers};
use aigate::core::RouteId;
use aigate::model::router::{RouteSpec, Router};
use aigate::plugins::ai_proxy::request::apply_target;
use aigate::plugins::ai_proxy::{AiProxy, Streaming};
use aigate::upstream::balancer::HealthRegistry;
use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn key_lookup(c: &mut Criterion) {
    let mut consumers = Consumers::default();
    let mut plain: HashMap<String, usize> = HashMap::new();
    let keys: Vec<String> =
        (0..10_000).map(|i| format!("key-{i}-{:016x}", (i as u64).wrapping_mul(0x9E3779B97F4A7C15))).collect();
    for (i, k) in keys.iter().enumerate() {
        let id = consumers.add(Consumer::new(format!("id{i}"), Some(format!("u{i}")), None, vec![]));
        consumers.add_key(digest_key(k.as_bytes()), id, format!("c{i}"));
        plain.insert(k.clone(), i);
    }
    let mut g = c.benchmark_group("key_lookup_10k");
    g.bench_function("aigate_sha256_digest_map", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 7919) % keys.len();
            black_box(consumers.find_key(keys[i].as_bytes()))
        })
    });
    g.bench_function("reference_plaintext_hashmap", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 7919) % keys.len();
            black_box(plain.get(&keys[i]))
        })
    });
    g.bench_function("aigate_unknown_key", |b| b.iter(|| black_box(consumers.find_key(b"not-a-key-of-anyone"))));
    g.finish();
}

fn route_match(c: &mut Criterion) {
    let paths: Vec<Vec<String>> = (0..50).map(|i| vec![format!("/api/v{i}/resource")]).collect();
    let mut specs: Vec<RouteSpec> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| RouteSpec { id: RouteId::new(i), paths: p, methods: &[], hosts: &[], regex_priority: 0 })
        .collect();
    let any = vec!["/anything".to_string()];
    specs.push(RouteSpec { id: RouteId::new(50), paths: &any, methods: &[], hosts: &[], regex_priority: 0 });
    let router = Router::build(&specs).unwrap();
    let mut g = c.benchmark_group("route_match_51_routes");
    g.bench_function("hit_last", |b| b.iter(|| black_box(router.find("POST", "gw", "gw", black_box("/anything")))));
    g.bench_function("miss", |b| b.iter(|| black_box(router.find("POST", "gw", "gw", black_box("/nowhere/at/all")))));
    g.bench_function("normalize_path", |b| {
        b.iter(|| black_box(aigate::core::path::normalize_path(black_box("/anything/v1/../responses"))))
    });
    g.finish();
}

fn body_rewrite(c: &mut Criterion) {
    let yaml = "targets:\n- route_type: llm/v1/responses\n  auth: {header_name: Authorization, header_value: Bearer sk}\n  model: {provider: openai, name: gpt-4o, options: {max_tokens: 512, temperature: 1.0}}\n";
    let proxy =
        AiProxy::compile_advanced(serde_yaml::from_str(yaml).unwrap(), &HealthRegistry::default(), &[]).unwrap();
    let target = &proxy.targets[0];
    let mut g = c.benchmark_group("body_check_and_rewrite");
    for size in [1024usize, 100 * 1024, 1024 * 1024] {
        // A realistic body: a conversation as an input array of messages.
        let mut items = Vec::new();
        let mut len = 0;
        while len < size {
            let text = "The quick brown fox jumps over the lazy dog. ".repeat(8);
            len += text.len() + 60;
            items.push(serde_json::json!({"role": "user", "content": [{"type": "input_text", "text": text}]}));
        }
        let body = serde_json::to_vec(&serde_json::json!({"input": items, "tools": [{"type": "mcp", "server_label": "gitmcp", "server_url": "https://api.githubcopilot.com/mcp/"}], "stream": false})).unwrap();
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("aigate_top_level_rewrite", size), &body, |b, body| {
            b.iter(|| {
                let mut doc = RequestDoc::parse(black_box(body)).unwrap();
                apply_target(&mut doc, target, Streaming::Allow, Dialect::OpenAi).unwrap();
                black_box(doc.to_bytes())
            })
        });
        g.bench_with_input(BenchmarkId::new("reference_full_value_roundtrip", size), &body, |b, body| {
            b.iter(|| {
                let mut v: serde_json::Value = serde_json::from_slice(black_box(body)).unwrap();
                v["model"] = "gpt-4o".into();
                v["max_output_tokens"] = 512.into();
                black_box(serde_json::to_vec(&v).unwrap())
            })
        });
    }
    g.finish();
}

fn sse_scan(c: &mut Criterion) {
    // About 1 MiB of a Responses stream: many deltas, one completed event with usage.
    let mut stream = String::new();
    let mut n = 0;
    while stream.len() < 1024 * 1024 {
        stream.push_str(&format!("event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"sequence_number\":{n},\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"word{n} \"}}\n\n"));
        n += 1;
    }
    stream.push_str("event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"usage\":{\"input_tokens\":10,\"output_tokens\":20,\"total_tokens\":30}}}\n\n");
    let all = Bytes::from(stream);
    // Chunks as a TLS upstream delivers them.
    let chunks: Vec<Bytes> =
        (0..all.len()).step_by(16 * 1024).map(|i| all.slice(i..(i + 16 * 1024).min(all.len()))).collect();
    let mut g = c.benchmark_group("sse_usage_scan");
    g.throughput(Throughput::Bytes(all.len() as u64));
    g.bench_function("aigate_scanner_per_mib", |b| {
        b.iter(|| {
            let mut s = StreamFacts::new(4 << 20);
            for ch in &chunks {
                s.feed(ch);
            }
            s.finish();
            black_box(s.take_facts())
        })
    });
    g.bench_function("reference_memchr_newlines_per_mib", |b| {
        b.iter(|| {
            let mut n = 0;
            for ch in &chunks {
                n += memchr::memchr_iter(b'\n', ch).count();
            }
            black_box(n)
        })
    });
    g.finish();
}

fn secret_scrub(c: &mut Criterion) {
    use aigate::core::secrets::{Scrubber, SecretSet};
    use std::sync::Arc;
    // About 1 MiB of a Responses stream; every 64th event echoes the provider key.
    let key = "sk-proj-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
    let mut events: Vec<Bytes> = Vec::new();
    let mut len = 0;
    let mut n = 0;
    while len < 1024 * 1024 {
        let delta = if n % 64 == 0 { format!("Bearer {key}") } else { format!("word{n} ") };
        let e = format!("event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"sequence_number\":{n},\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"{delta}\"}}\n\n");
        len += e.len();
        events.push(Bytes::from(e));
        n += 1;
    }
    let all = Bytes::from(events.concat());
    let reads: Vec<Bytes> =
        (0..all.len()).step_by(16 * 1024).map(|i| all.slice(i..(i + 16 * 1024).min(all.len()))).collect();
    let provider = Arc::new(SecretSet::new([format!("Bearer {key}").as_str()]));
    let mcp = Arc::new(SecretSet::new(["Bearer github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"]));
    let mut g = c.benchmark_group("secret_scrub");
    g.throughput(Throughput::Bytes(all.len() as u64));
    for (name, chunks) in [("16k_reads", &reads), ("one_read_per_event", &events)] {
        g.bench_function(format!("aigate_scrubber_{name}_per_mib"), |b| {
            b.iter(|| {
                let mut s = Scrubber::new([Some(provider.clone()), Some(mcp.clone())]).unwrap();
                let mut out = 0;
                for (i, ch) in chunks.iter().enumerate() {
                    let mut body = Some(ch.clone());
                    s.apply(&mut body, i + 1 == chunks.len());
                    out += body.map_or(0, |b| b.len());
                }
                black_box(out)
            })
        });
        g.bench_function(format!("reference_memchr_newlines_{name}_per_mib"), |b| {
            b.iter(|| {
                let mut n = 0;
                for ch in chunks.iter() {
                    n += memchr::memchr_iter(b'\n', ch).count();
                }
                black_box(n)
            })
        });
    }
    g.finish();
}

/// A chat conversation of about `size` bytes, with a tool, as an OpenAI client sends it.
fn chat_body(size: usize, stream: bool) -> Vec<u8> {
    let mut messages = vec![serde_json::json!({"role": "system", "content": "You are a helpful assistant."})];
    let mut len = 0;
    let mut user = true;
    while len < size {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(8);
        len += text.len() + 40;
        messages.push(serde_json::json!({"role": if user { "user" } else { "assistant" }, "content": text}));
        user = !user;
    }
    let tools = serde_json::json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    serde_json::to_vec(&serde_json::json!({"model": "claude-x", "messages": messages, "tools": tools, "stream": stream,
        "stream_options": {"include_usage": true}}))
    .unwrap()
}

fn targets() -> (AiProxy, AiProxy) {
    let openai = "targets:\n- route_type: llm/v1/chat\n  model: {provider: openai, name: claude-x, options: {max_tokens: 512}}\n";
    let anthropic = "targets:\n- route_type: llm/v1/chat\n  model: {provider: anthropic, name: claude-x, options: {anthropic_version: '2023-06-01', max_tokens: 512}}\n";
    let compile =
        |y: &str| AiProxy::compile_advanced(serde_yaml::from_str(y).unwrap(), &HealthRegistry::default(), &[]).unwrap();
    (compile(openai), compile(anthropic))
}

fn translated_request(doc_body: &[u8], target: &aigate::plugins::ai_proxy::AiTarget) -> Vec<u8> {
    let mut doc = RequestDoc::parse(doc_body).unwrap();
    apply_target(&mut doc, target, Streaming::Allow, Dialect::OpenAi).unwrap();
    chat_to_messages(&doc, RequestOptions { refuses_sampling: false }).unwrap().body
}

fn anthropic_request_translation(c: &mut Criterion) {
    let (openai, anthropic) = targets();
    let mut g = c.benchmark_group("anthropic_request_translation");
    for size in [1024usize, 100 * 1024] {
        let body = chat_body(size, false);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("aigate_chat_to_messages", size), &body, |b, body| {
            b.iter(|| black_box(translated_request(black_box(body), &anthropic.targets[0])))
        });
        g.bench_with_input(BenchmarkId::new("reference_untranslated_rewrite", size), &body, |b, body| {
            b.iter(|| {
                let mut doc = RequestDoc::parse(black_box(body)).unwrap();
                apply_target(&mut doc, &openai.targets[0], Streaming::Allow, Dialect::OpenAi).unwrap();
                black_box(doc.to_bytes())
            })
        });
    }
    g.finish();
}

/// About 1 MiB of an Anthropic stream: message_start, many text deltas, the end.
fn anthropic_stream() -> Bytes {
    let mut s = String::from("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    let mut n = 0;
    while s.len() < 1024 * 1024 {
        s.push_str(&format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"word{n} \"}}}}\n\n"));
        n += 1;
    }
    s.push_str("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9000}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    Bytes::from(s)
}

fn anthropic_stream_translation(c: &mut Criterion) {
    let all = anthropic_stream();
    let chunks: Vec<Bytes> =
        (0..all.len()).step_by(16 * 1024).map(|i| all.slice(i..(i + 16 * 1024).min(all.len()))).collect();
    let mut g = c.benchmark_group("anthropic_stream_translation");
    g.throughput(Throughput::Bytes(all.len() as u64));
    g.bench_function("aigate_translator_per_mib", |b| {
        b.iter(|| {
            let mut t = StreamTranslator::new(true, 1, 1 << 20);
            let mut out = Vec::with_capacity(64 * 1024);
            for ch in &chunks {
                out.clear();
                t.feed(ch, &mut out);
                black_box(&out);
            }
            t.finish(&mut out);
            black_box(t.usage())
        })
    });
    g.bench_function("reference_usage_scan_per_mib", |b| {
        b.iter(|| {
            let mut s = StreamFacts::new(4 << 20);
            for ch in &chunks {
                s.feed(ch);
            }
            s.finish();
            black_box(s.take_facts())
        })
    });
    g.finish();
}

fn translated_first_byte(c: &mut Criterion) {
    let (openai, anthropic) = targets();
    let body = chat_body(1024, true);
    let all = anthropic_stream();
    let first_event = all.slice(..std::str::from_utf8(&all).unwrap().find("\n\n").unwrap() + 2);
    let openai_first = Bytes::from_static(b"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n");
    let mut g = c.benchmark_group("first_byte_of_a_stream");
    g.bench_function("aigate_translated", |b| {
        b.iter(|| {
            let req = translated_request(black_box(&body), &anthropic.targets[0]);
            let mut t = StreamTranslator::new(true, 1, 1 << 20);
            let mut out = Vec::new();
            t.feed(black_box(&first_event), &mut out);
            black_box((req, out))
        })
    });
    g.bench_function("reference_untranslated", |b| {
        b.iter(|| {
            let mut doc = RequestDoc::parse(black_box(&body)).unwrap();
            apply_target(&mut doc, &openai.targets[0], Streaming::Allow, Dialect::OpenAi).unwrap();
            let req = doc.to_bytes();
            let mut s = SseScanner::new(4 << 20);
            s.feed(black_box(&openai_first));
            black_box((req, s.take_events().count()))
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    key_lookup,
    route_match,
    body_rewrite,
    sse_scan,
    secret_scrub,
    anthropic_request_translation,
    anthropic_stream_translation,
    translated_first_byte
);
criterion_main!(benches);
