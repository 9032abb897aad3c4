use http::HeaderMap;

use super::*;
use crate::plugins::limits::compile_for_test;
use crate::store::ratelimit::CounterStores;

// 2026-11-26T09:35:06.123Z
const NOW: i64 = 1_795_685_706_123;

fn compile_with(yaml: &str, counters: &CounterStores) -> Result<RateLimiting, Vec<ConfigIssue>> {
    compile_for_test(counters, "rate-limiting:-:-:-", |cx| {
        RateLimiting::compile(serde_yaml::from_str(yaml).unwrap(), cx)
    })
}

fn compile(yaml: &str) -> RateLimiting {
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
        client_ip: Some("192.0.2.1".parse().unwrap()),
        service: "svc",
        headers,
        path: "/",
    }
}

fn header<'a>(v: &'a Verdict, name: &str) -> Option<&'a str> {
    v.headers.iter().find(|(n, _)| n.as_str().eq_ignore_ascii_case(name)).map(|(_, v)| v.to_str().unwrap())
}

#[tokio::test]
async fn kongs_headers_for_the_third_request_of_a_second() {
    let rl = compile("{second: 5, minute: 10}");
    let h = HeaderMap::new();
    let mut v = Verdict::default();
    for _ in 0..3 {
        v = rl.admit(&who(&h), NOW).await.unwrap();
    }
    assert!(v.refused.is_none());
    let shown: Vec<(String, &str)> =
        v.headers.iter().map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap())).collect();
    let want = [
        ("X-RateLimit-Limit-Second", "5"),
        ("X-RateLimit-Remaining-Second", "2"),
        ("X-RateLimit-Limit-Minute", "10"),
        ("X-RateLimit-Remaining-Minute", "7"),
        ("RateLimit-Limit", "5"),
        ("RateLimit-Remaining", "2"),
        ("RateLimit-Reset", "1"),
    ];
    // Kong's names (sent in lower case: names are case-insensitive).
    assert_eq!(shown, want.iter().map(|(n, v)| (n.to_ascii_lowercase(), *v)).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_request_over_the_limit_gets_429_and_is_not_counted() {
    let rl = compile("{minute: 2, hour: 100}");
    let h = HeaderMap::new();
    let first = rl.admit(&who(&h), NOW).await.unwrap();
    assert_eq!(header(&first, "X-RateLimit-Remaining-Minute"), Some("1"));
    let second = rl.admit(&who(&h), NOW).await.unwrap();
    assert!(second.refused.is_none(), "the request reaching the limit exactly is allowed");
    assert_eq!(header(&second, "X-RateLimit-Remaining-Minute"), Some("0"));
    let third = rl.admit(&who(&h), NOW).await.unwrap();
    let r = third.refused.as_ref().expect("refused");
    assert_eq!((r.status, r.message.as_str(), r.window.as_str()), (429, "API rate limit exceeded", "minute"));
    assert!(r.with_request_id);
    assert_eq!(header(&third, "Retry-After"), Some("54"));
    assert_eq!(header(&third, "RateLimit-Reset"), Some("54"));
    assert_eq!(header(&third, "RateLimit-Remaining"), Some("0"));
    // The refused request was not counted in the hour.
    assert_eq!(header(&third, "X-RateLimit-Remaining-Hour"), Some("98"));
    // Another consumer has its own counter.
    let bo = Who { consumer: Some("bo-id"), ..who(&h) };
    assert!(rl.admit(&bo, NOW).await.unwrap().refused.is_none());
    // The next minute starts over.
    assert!(rl.admit(&who(&h), NOW + 60_000).await.unwrap().refused.is_none());
}

#[tokio::test]
async fn hidden_headers_custom_answers_and_no_headers_on_refusal() {
    let rl = compile("{minute: 1, hide_client_headers: true, error_code: 403, error_message: slow down}");
    let h = HeaderMap::new();
    assert!(rl.admit(&who(&h), NOW).await.unwrap().headers.is_empty());
    let v = rl.admit(&who(&h), NOW).await.unwrap();
    assert!(v.headers.is_empty(), "not even Retry-After (Kong 3.9+)");
    let r = v.refused.unwrap();
    assert_eq!((r.status, r.message.as_str()), (403, "slow down"));
}

#[tokio::test]
async fn instances_count_apart_by_scope() {
    // Two instances (two scopes) on the same local store: separate namespaces.
    let stores = CounterStores::default();
    let a = compile_with("{minute: 1}", &stores).unwrap();
    let h = HeaderMap::new();
    assert!(a.admit(&who(&h), NOW).await.unwrap().refused.is_none());
    assert!(a.admit(&who(&h), NOW).await.unwrap().refused.is_some());
    let b = compile_for_test(&stores, "rate-limiting:svc-2:-:-", |cx| {
        RateLimiting::compile(serde_yaml::from_str("{minute: 1}").unwrap(), cx)
    })
    .unwrap();
    assert!(b.admit(&who(&h), NOW).await.unwrap().refused.is_none());
}

#[test]
fn kongs_checks_with_kongs_messages() {
    assert_eq!(
        problems("{}"),
        vec!["at least one of these fields must be non-empty: 'config.second', 'config.minute', 'config.hour', 'config.day', 'config.month', 'config.year'"]
    );
    assert_eq!(
        problems("{minute: 20, hour: 10}"),
        vec!["The limit for hour(10.0) cannot be lower than the limit for minute(20.0)"]
    );
    assert!(problems("{minute: 0}")[0].contains("greater than 0"));
    assert_eq!(problems("{minute: 5, sync_rate: 1}"), vec!["sync_rate can only be used with the redis policy"]);
    assert_eq!(
        problems("{minute: 5, policy: redis, redis: {host: r}, sync_rate: 0.01}"),
        vec!["sync_rate must be greater than 0.02, or -1 to disable"]
    );
    assert!(problems("{minute: 5, policy: cluster}")[0].contains("Kong's database"));
    assert!(problems("{minute: 5, policy: redis}")[0].contains("Redis host is required"));
    assert!(problems("{minute: 5, limit_by: consumer-group}")[0].contains("consumer-group"));
    assert!(problems("{minute: 5, error_code: 0}")[0].contains("not an HTTP status"));
    // decK dumps write every field, nulls and defaults included.
    assert!(problems(
        "{second: null, minute: 5, hour: null, day: null, month: null, year: null, limit_by: consumer, header_name: null, path: null, policy: local, fault_tolerant: true, redis: {host: null, port: 6379, timeout: 2000, username: null, password: null, database: 0, ssl: false, ssl_verify: false, server_name: null}, hide_client_headers: false, error_code: 429, error_message: API rate limit exceeded, sync_rate: -1}"
    )
    .is_empty());
    assert!(serde_yaml::from_str::<RateLimitingSchema>("{minute: 5, unknown_field: 1}").is_err());
}

#[test]
fn deprecated_flat_redis_fields_still_work_unless_they_contradict() {
    assert!(
        problems("{minute: 5, policy: redis, redis_host: r.example, redis_port: 6380, redis_timeout: 100}").is_empty()
    );
    assert_eq!(
        problems("{minute: 5, policy: redis, redis_host: a.example, redis: {host: b.example}}"),
        vec!["redis_host (deprecated) and redis.host differ"]
    );
    assert!(problems("{minute: 5, policy: redis, redis_host: a.example, redis: {host: a.example}}").is_empty());
}

#[tokio::test]
async fn a_consumers_cached_subject_is_the_same_counter_as_its_digest() {
    // The subject is digested once per consumer and kept: it must be the very counter (and
    // Redis key) a node without the cached subject uses for the same consumer.
    let mut consumers = crate::consumers::Consumers::default();
    let alex = consumers.add(crate::consumers::Consumer::new("alex-id".into(), Some("alex".into()), None, vec![]));
    let bo = consumers.add(crate::consumers::Consumer::new("bo-id".into(), Some("bo".into()), None, vec![]));
    let counters = CounterStores::default();
    let rl = crate::plugins::limits::compile_for_test_with(&consumers, &counters, "rate-limiting:-:-:-", |cx| {
        RateLimiting::compile(serde_yaml::from_str("{minute: 3}").unwrap(), cx)
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    let h = HeaderMap::new();
    let as_consumer = |id, index| Who { consumer: Some(id), consumer_index: Some(index), ..who(&h) };
    assert!(rl.admit(&as_consumer("alex-id", alex), NOW).await.unwrap().refused.is_none());
    assert!(rl.admit(&as_consumer("alex-id", alex), NOW).await.unwrap().refused.is_none());
    // The same consumer without its index (digested on the spot) sees the same count.
    assert_eq!(header(&rl.admit(&who(&h), NOW).await.unwrap(), "X-RateLimit-Remaining-Minute"), Some("0"));
    assert!(rl.admit(&as_consumer("alex-id", alex), NOW).await.unwrap().refused.is_some());
    // Another consumer's cached subject is its own.
    assert!(rl.admit(&as_consumer("bo-id", bo), NOW).await.unwrap().refused.is_none());
}

#[tokio::test]
async fn what_a_consumer_has_left_is_read_for_the_metrics_in_the_current_windows() {
    let rl = compile("{second: 5, minute: 10}");
    let h = HeaderMap::new();
    for _ in 0..3 {
        rl.admit(&who(&h), NOW).await.unwrap();
    }
    let alex = ConsumerId::new(0);
    assert_eq!(rl.window_labels(), ["second", "minute"]);
    assert_eq!(rl.remaining_now(alex, "alex-id", NOW).unwrap().as_slice(), [2.0, 7.0]);
    // A second later the second's window is a new one; the minute's still holds the three.
    assert_eq!(rl.remaining_now(alex, "alex-id", NOW + 1000).unwrap().as_slice(), [5.0, 7.0]);
    // Reading counts nothing.
    assert_eq!(rl.remaining_now(alex, "alex-id", NOW).unwrap().as_slice(), [2.0, 7.0]);
    // Counted by IP, a consumer has no count of its own to show.
    let by_ip = compile("{minute: 10, limit_by: ip}");
    by_ip.admit(&who(&h), NOW).await.unwrap();
    assert!(by_ip.window_labels().is_empty());
    assert_eq!(by_ip.remaining_now(alex, "alex-id", NOW), None);
}
