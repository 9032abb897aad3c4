use super::*;

fn who<'a>(headers: &'a HeaderMap, consumer: Option<&'a str>, credential: Option<&'a str>) -> Who<'a> {
    Who {
        consumer,
        consumer_index: None,
        credential,
        client_ip: Some("192.0.2.7".parse().unwrap()),
        service: "svc-id",
        headers,
        path: "/v1/responses",
    }
}

fn compile(value: &str, header: Option<&str>, path: Option<&str>) -> (Identifier, Vec<ConfigIssue>) {
    let mut issues = Vec::new();
    let id = Identifier::compile("limit_by", Some(value), header, path, &mut issues);
    (id, issues)
}

#[test]
fn kongs_identifiers_fall_back_to_the_client_ip() {
    let mut h = HeaderMap::new();
    h.insert("x-team", "blue".parse().unwrap());
    let (consumer, _) = compile("consumer", None, None);
    assert_eq!(consumer.of(&who(&h, Some("c-1"), Some("k-1"))), (IdKind::Consumer, "c-1".into()));
    // No consumer: its credential; neither: the IP.
    assert_eq!(consumer.of(&who(&h, None, Some("k-1"))), (IdKind::Credential, "k-1".into()));
    assert_eq!(consumer.of(&who(&h, None, None)), (IdKind::Ip, "192.0.2.7".into()));
    let (credential, _) = compile("credential", None, None);
    assert_eq!(credential.of(&who(&h, Some("c-1"), None)), (IdKind::Ip, "192.0.2.7".into()));
    let (service, _) = compile("service", None, None);
    assert_eq!(service.of(&who(&h, None, None)), (IdKind::Service, "svc-id".into()));
    let (header, issues) = compile("header", Some("X-Team"), None);
    assert!(issues.is_empty());
    assert_eq!(header.of(&who(&h, None, None)), (IdKind::Header, "blue".into()));
    assert_eq!(header.of(&who(&HeaderMap::new(), None, None)).0, IdKind::Ip);
    // path: only the exact path; any other path is counted per IP (not exempt).
    let (path, _) = compile("path", None, Some("/v1/responses"));
    assert_eq!(path.of(&who(&h, None, None)), (IdKind::Path, "/v1/responses".into()));
    let (other, _) = compile("path", None, Some("/v1/chat"));
    assert_eq!(other.of(&who(&h, None, None)).0, IdKind::Ip);
    let (ip, _) = compile("ip", None, None);
    assert_eq!(ip.of(&who(&h, Some("c-1"), None)), (IdKind::Ip, "192.0.2.7".into()));
}

#[test]
fn identifiers_are_checked_as_kong_checks_them() {
    let msg = |v: &str, h: Option<&str>, p: Option<&str>| compile(v, h, p).1.first().map(|i| i.what.clone());
    assert_eq!(
        msg("header", Some("x team"), None).unwrap(),
        "bad header name 'x team', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
    );
    assert!(msg("header", None, None).unwrap().contains("header_name is not set"));
    assert!(msg("path", None, Some("v1//x")).unwrap().contains("is not a path"));
    assert!(msg("consumer-group", None, None).unwrap().contains("not supported"));
    assert!(msg("everyone", None, None).unwrap().contains("is not one of"));
}

#[test]
fn numbers_as_lua_writes_them() {
    assert_eq!(kong_number(5.0), "5");
    assert_eq!(kong_number(0.0), "0");
    assert_eq!(kong_number(2.5), "2.5");
    assert_eq!(kong_number(19.9975), "19.9975");
    assert_eq!(kong_number(0.1 + 0.2), "0.3");
    // The header values say the same.
    let numbers = [5.0, 0.0, 2.5, 19.9975, 0.1 + 0.2, 1e12];
    let mut b = HeaderBuilder::with_capacity(8);
    for v in numbers {
        assert_eq!(configured_number(v).to_str().unwrap(), kong_number(v));
        b.number(http::HeaderName::from_static("x-n"), v);
    }
    b.seconds(http::HeaderName::from_static("x-s"), 54);
    let headers = b.finish();
    let values: Vec<&str> = headers.iter().map(|(_, v)| v.to_str().unwrap()).collect();
    assert_eq!(values, ["5", "0", "2.5", "19.9975", "0.3", "1000000000000", "54"]);
    // Interned texts are kept once.
    let a = interned("X-AI-RateLimit-Limit-minute-openai".to_string());
    let b = interned("X-AI-RateLimit-Limit-minute-openai".to_string());
    assert_eq!(a.as_ptr(), b.as_ptr());
}

#[test]
fn redis_records_as_kong_writes_them() {
    use redis_record::{EeRedisSchema, OssRedisSchema};
    let oss: OssRedisSchema = serde_yaml::from_str("{host: r.example, port: 6380, timeout: 50, username: gw, password: pw, database: 3, ssl: false, ssl_verify: false, server_name: null, cloud_authentication: null}").unwrap();
    let mut issues = Vec::new();
    let e = oss.endpoint("redis", None, &mut issues).unwrap();
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!((e.host.as_str(), e.port, e.database, e.tls), ("r.example", 6380, 3, false));
    assert_eq!((e.timeout.as_millis(), e.connect_timeout.as_millis()), (50, 50));
    assert_eq!((e.username.as_deref(), e.password.as_deref()), (Some("gw"), Some("pw")));
    // An empty password sends no AUTH (Kong's len_min 0).
    let oss: OssRedisSchema = serde_yaml::from_str("{host: r, password: ''}").unwrap();
    assert_eq!(oss.endpoint("redis", None, &mut issues).unwrap().password, None);
    // Kong EE's record: the three timeouts, the deprecated `timeout`, Kong's defaults.
    let ee: EeRedisSchema = serde_yaml::from_str("{connect_timeout: 100, send_timeout: 300, read_timeout: 200, keepalive_pool_size: 256, cluster_max_redirections: 5, sentinel_nodes: null, cluster_nodes: []}").unwrap();
    let e = ee.endpoint("redis", None, &mut issues).unwrap();
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 6379));
    assert_eq!((e.connect_timeout.as_millis(), e.timeout.as_millis()), (100, 300));
    let ee: EeRedisSchema = serde_yaml::from_str("{timeout: 70}").unwrap();
    assert_eq!(ee.endpoint("redis", None, &mut issues).unwrap().timeout.as_millis(), 70);
    // What aigate cannot honour is refused, by name.
    let refused = |yaml: &str| {
        let ee: EeRedisSchema = serde_yaml::from_str(yaml).unwrap();
        let mut issues = Vec::new();
        assert!(ee.endpoint("redis", None, &mut issues).is_none(), "{yaml}");
        issues[0].path.clone()
    };
    assert_eq!(
        refused("{sentinel_master: m, sentinel_role: any, sentinel_nodes: [{host: a, port: 1}]}"),
        "redis.sentinel_master"
    );
    assert_eq!(refused("{cluster_nodes: [{ip: 10.0.0.1, port: 6379}]}"), "redis.cluster_nodes");
    assert_eq!(refused("{ssl: true, ssl_verify: false}"), "redis.ssl_verify");
    assert_eq!(refused("{host: r.example, ssl: true, server_name: other.example}"), "redis.server_name");
    assert_eq!(refused("{connection_is_proxied: true}"), "redis.connection_is_proxied");
    assert_eq!(refused("{port: 0}"), "redis.port");
    assert_eq!(refused("{read_timeout: 0}"), "redis.read_timeout");
    let oss: OssRedisSchema = serde_yaml::from_str("{port: 6379}").unwrap();
    let mut issues = Vec::new();
    assert!(oss.endpoint("redis", None, &mut issues).is_none());
    assert_eq!(issues[0].path, "redis.host");
    assert!(
        serde_yaml::from_str::<OssRedisSchema>("{host: r, connect_timeout: 5}").is_err(),
        "not in Kong's OSS record"
    );
}
