use http::HeaderMap;

use super::*;
use crate::plugins::limits::compile_for_test;
use crate::store::ratelimit::CounterStores;

// 2026-11-26T09:35:06.123Z
const NOW: i64 = 1_795_685_706_123;

fn compile_with(yaml: &str, counters: &CounterStores) -> Result<AiRateLimiting, Vec<ConfigIssue>> {
    compile_for_test(counters, "ai-rate-limiting-advanced:-:-:-", |cx| {
        AiRateLimiting::compile(serde_yaml::from_str(yaml).unwrap(), cx)
    })
}

fn compile(yaml: &str) -> AiRateLimiting {
    compile_with(yaml, &CounterStores::default()).unwrap_or_else(|e| panic!("{e:?}"))
}

fn problems(yaml: &str) -> Vec<String> {
    match compile_with(yaml, &CounterStores::default()) {
        Ok(_) => Vec::new(),
        Err(issues) => issues.into_iter().map(|i| i.what).collect(),
    }
}

fn who(headers: &HeaderMap) -> Who<'_> {
    Who {
        consumer: Some("alex-id"),
        consumer_index: None,
        credential: None,
        client_ip: None,
        service: "svc",
        headers,
        path: "/",
    }
}

fn header<'a>(v: &'a Verdict, name: &str) -> Option<&'a str> {
    v.headers.iter().find(|(n, _)| n.as_str().eq_ignore_ascii_case(name)).map(|(_, v)| v.to_str().unwrap())
}

fn usage(input: u64, output: u64) -> Usage {
    Usage { input, output, total: input + output, cached: 0, cache_write: 0, reasoning: 0 }
}

#[tokio::test]
async fn tokens_are_charged_after_the_answer_and_the_next_request_is_refused() {
    let ai =
        compile("{llm_providers: [{name: openai, limit: [100, 1000], window_size: [60, 180]}], window_type: fixed}");
    let h = HeaderMap::new();
    let (v, ticket) = ai.admit(&who(&h), NOW).await.unwrap();
    assert!(v.refused.is_none());
    assert_eq!(header(&v, "X-AI-RateLimit-Limit-minute-openai"), Some("100"));
    assert_eq!(header(&v, "X-AI-RateLimit-Remaining-minute-openai"), Some("100"));
    assert_eq!(header(&v, "X-AI-RateLimit-Limit-180-openai"), Some("1000"));
    // The answer used 120 tokens: the request in flight finishes, the next one is refused.
    ai.charge(&ticket, "openai", ai.amount(&usage(70, 50), None, None), NOW);
    let (v, _) = ai.admit(&who(&h), NOW).await.unwrap();
    let r = v.refused.as_ref().expect("refused");
    assert_eq!(r.message, "AI token rate limit exceeded for provider(s): openai");
    assert!(!r.with_request_id, "Kong answers with kong.response.exit: no request_id");
    assert_eq!((r.status, r.window.as_str()), (429, "minute-openai"));
    assert_eq!(header(&v, "X-AI-RateLimit-Remaining-minute-openai"), Some("0"));
    assert_eq!(header(&v, "X-AI-RateLimit-Remaining-180-openai"), Some("880"));
    assert_eq!(header(&v, "X-AI-RateLimit-Reset-minute-openai"), Some("54"));
    assert_eq!(header(&v, "X-AI-RateLimit-Retry-After-minute-openai"), Some("54"));
    assert_eq!(header(&v, "X-AI-RateLimit-Reset"), Some("54"));
    assert_eq!(header(&v, "X-AI-RateLimit-Retry-After"), Some("54"));
    // The metrics read the same budgets (and reading them charges nothing).
    let alex = crate::core::ConsumerId::new(0);
    assert_eq!(ai.window_labels(), ["minute-openai", "180-openai"]);
    assert_eq!(ai.remaining_now(alex, "alex-id", NOW).unwrap().as_slice(), [0.0, 880.0]);
    // Both windows end 53.877 s after NOW (fixed windows: full budgets again).
    assert_eq!(ai.remaining_now(alex, "alex-id", NOW + 53_877).unwrap().as_slice(), [100.0, 1000.0]);
    assert_eq!(ai.remaining_now(alex, "alex-id", NOW + 53_876).unwrap().as_slice(), [0.0, 880.0]);
    // Another provider's usage is not this provider's.
    let other = compile("{llm_providers: [{name: azure, limit: [10], window_size: [60]}]}");
    other.charge(&ticket, "openai", 1000, NOW);
    assert!(other.admit(&who(&h), NOW).await.unwrap().0.refused.is_none());
}

#[tokio::test]
async fn hidden_headers_keep_kongs_two_and_providers_can_be_hidden() {
    let ai = compile("{llm_providers: [{name: openai, limit: 10, window_size: 60}], hide_client_headers: true, error_hide_providers: true, error_message: 'over budget', error_code: 402}");
    let h = HeaderMap::new();
    let (v, ticket) = ai.admit(&who(&h), NOW).await.unwrap();
    assert!(v.headers.is_empty());
    ai.charge(&ticket, "openai", 10, NOW);
    let (v, _) = ai.admit(&who(&h), NOW).await.unwrap();
    let names: Vec<&str> = v.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["x-ai-ratelimit-reset", "x-ai-ratelimit-retry-after"]);
    let r = v.refused.unwrap();
    assert_eq!((r.status, r.message.as_str()), (402, "over budget"));
}

#[tokio::test]
async fn a_cost_budget_counts_exact_micro_units() {
    // alex may spend 0.01 a minute; prices per million tokens: 2.5 in, 10 out.
    let ai = compile("{llm_providers: [{name: openai, limit: [0.01], window_size: [60]}], tokens_count_strategy: cost, window_type: fixed}");
    let u = usage(1000, 500);
    // 1000 × 2.5 + 500 × 10 = 7,500 micro-units = 0.0075.
    assert_eq!(ai.amount(&u, Some(2.5), Some(10.0)), 7_500);
    assert_eq!(ai.amount(&u, None, Some(10.0)), 0, "Kong: cost only when both prices are set");
    let h = HeaderMap::new();
    let (v, ticket) = ai.admit(&who(&h), NOW).await.unwrap();
    assert_eq!(header(&v, "X-AI-RateLimit-Limit-minute-openai"), Some("0.01"));
    ai.charge(&ticket, "openai", 7_500, NOW);
    let (v, _) = ai.admit(&who(&h), NOW).await.unwrap();
    assert!(v.refused.is_none());
    assert_eq!(header(&v, "X-AI-RateLimit-Remaining-minute-openai"), Some("0.0025"));
    ai.charge(&ticket, "openai", 7_500, NOW);
    assert!(ai.admit(&who(&h), NOW).await.unwrap().0.refused.is_some());
}

#[tokio::test]
async fn a_sliding_window_remembers_the_previous_one() {
    let ai = compile("{llm_providers: [{name: openai, limit: [100], window_size: [60]}]}");
    let h = HeaderMap::new();
    let start = 1_795_685_700_000; // a minute boundary
    let (_, ticket) = ai.admit(&who(&h), start + 59_000).await.unwrap();
    ai.charge(&ticket, "openai", 100, start + 59_000);
    // 15 s into the next minute, 75% of the previous one still counts: 75 < 100.
    let (v, _) = ai.admit(&who(&h), start + 75_000).await.unwrap();
    assert!(v.refused.is_none());
    assert_eq!(header(&v, "X-AI-RateLimit-Remaining-minute-openai"), Some("25"));
    ai.charge(&ticket, "openai", 30, start + 75_000);
    // 75 + 30 = 105 ≥ 100: refused until the estimate falls under 100.
    let (v, _) = ai.admit(&who(&h), start + 75_000).await.unwrap();
    assert!(v.refused.is_some());
    // prev × (45 − t)/60 + 30 < 100 ⇒ t > 3 s.
    assert_eq!(header(&v, "X-AI-RateLimit-Reset-minute-openai"), Some("3"));
}

#[test]
fn kongs_checks_with_kongs_messages() {
    assert!(problems("{}")[0].contains("llm_providers is required"));
    assert_eq!(
        problems("{llm_providers: [{name: openai, limit: [1, 2], window_size: [60]}]}"),
        vec!["There must be a matching number of window limits and sizes specified"]
    );
    assert_eq!(
        problems("{llm_providers: [{name: openai, limit: [1], window_size: [60]}, {name: openai, limit: [2], window_size: [60]}]}"),
        vec!["Provider 'openai' is not unique"]
    );
    assert!(problems("{llm_providers: [{name: requestPrompt, limit: [1], window_size: [60]}]}")[0].contains("Lua"));
    let p = "llm_providers: [{name: openai, limit: [1], window_size: [60]}]";
    assert_eq!(
        problems(&format!("{{{p}, sync_rate: 1}}")),
        vec!["sync_rate cannot be configured when using a local strategy"]
    );
    assert_eq!(
        problems(&format!("{{{p}, strategy: redis, redis: {{host: r}}}}")),
        vec!["sync_rate is required if not using a local strategy"]
    );
    assert_eq!(
        problems(&format!("{{{p}, strategy: redis, redis: {{host: r}}, sync_rate: 0.01}}")),
        vec!["Config option 'sync_rate' must not be a decimal between 0 and 0.02"]
    );
    assert!(problems(&format!("{{{p}, strategy: cluster}}"))[0].contains("Kong's database"));
    assert!(problems(&format!("{{{p}, retry_after_jitter_max: -1}}"))[0].contains("Non-negative"));
    assert!(
        problems(&format!("{{{p}, policies: [{{limits: [{{limit: 1, window_size: 60}}]}}]}}"))[0].contains("policies")
    );
    assert!(problems(&format!("{{{p}, tokens_count_strategy: words}}"))[0].contains("is not one of"));
    // Accepted: Redis synchronous (0), periodic (> 0), this node only (-1); Kong's decK dump fields.
    for rate in ["0", "0.5", "-1"] {
        assert!(
            problems(&format!("{{{p}, strategy: redis, redis: {{host: r}}, sync_rate: {rate}}}")).is_empty(),
            "{rate}"
        );
    }
    assert!(problems(&format!(
        "{{{p}, dictionary_name: kong_rate_limiting_counters, disable_penalty: false, decrease_by_fractions_in_redis: false, llm_format: openai, identifier: consumer, window_type: sliding, retry_after_jitter_max: 0, policies: null, request_prompt_count_function: null}}"
    ))
    .is_empty());
}

#[tokio::test]
async fn a_consumers_cached_subjects_are_the_same_counters_as_their_digests() {
    let mut consumers = crate::consumers::Consumers::default();
    let alex = consumers.add(crate::consumers::Consumer::new("alex-id".into(), Some("alex".into()), None, vec![]));
    let counters = CounterStores::default();
    let ai = crate::plugins::limits::compile_for_test_with(&consumers, &counters, "ai:-:-:-", |cx| {
        AiRateLimiting::compile(
            serde_yaml::from_str(
                "{llm_providers: [{name: openai, limit: 100, window_size: 60}, {name: anthropic, limit: 50, window_size: 60}], window_type: fixed}",
            )
            .unwrap(),
            cx,
        )
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    let h = HeaderMap::new();
    let cached = Who { consumer_index: Some(alex), ..who(&h) };
    let (_, ticket) = ai.admit(&cached, NOW).await.unwrap();
    ai.charge(&ticket, "anthropic", 50, NOW);
    // Digested on the spot: the same counters, per provider.
    let (v, ticket) = ai.admit(&who(&h), NOW).await.unwrap();
    assert_eq!(header(&v, "X-AI-RateLimit-Remaining-minute-anthropic"), Some("0"));
    assert_eq!(header(&v, "X-AI-RateLimit-Remaining-minute-openai"), Some("100"));
    ai.charge(&ticket, "openai", 100, NOW);
    let (v, _) = ai.admit(&cached, NOW).await.unwrap();
    assert_eq!(
        v.refused.map(|r| r.message),
        Some("AI token rate limit exceeded for provider(s): openai, anthropic".into())
    );
}
