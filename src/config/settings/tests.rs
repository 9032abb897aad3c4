use super::values::parse_byte_size;
use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn defaults_follow_kong() {
    let s = Settings::from_yaml("declarative_config: kong.yaml\n", None, &no_env).unwrap();
    assert_eq!(s.proxy_listen, vec!["0.0.0.0:8000".parse().unwrap()]);
    assert_eq!(s.status_listen, Some("127.0.0.1:8100".parse().unwrap()));
    assert_eq!(s.max_request_body_size, 8 * 1024 * 1024);
    assert_eq!(s.declarative_config, vec![PathBuf::from("kong.yaml")]);
}

#[test]
fn relative_paths_follow_the_settings_file() {
    let s = Settings::from_yaml(
        "declarative_config: [a.yaml, /abs/b.yaml]\n",
        Some(Path::new("/etc/aigate/aigate.yaml")),
        &no_env,
    )
    .unwrap();
    assert_eq!(s.declarative_config, vec![PathBuf::from("/etc/aigate/a.yaml"), PathBuf::from("/abs/b.yaml")]);
}

#[test]
fn env_overrides_win_and_parse_as_yaml() {
    let env = |k: &str| match k {
        "AIGATE_PROXY_LISTEN" => Some("127.0.0.1:9000".to_string()),
        "AIGATE_UPSTREAM_RESOLVE" => Some("{\"api.openai.com:443\": \"127.0.0.1:9443\"}".to_string()),
        "AIGATE_MAX_REQUEST_BODY_SIZE" => Some("1m".to_string()),
        _ => None,
    };
    let s = Settings::from_yaml("declarative_config: k.yaml\nproxy_listen: 0.0.0.0:1\n", None, &env).unwrap();
    assert_eq!(s.proxy_listen, vec!["127.0.0.1:9000".parse().unwrap()]);
    assert_eq!(s.upstream_resolve.get("API.openai.com", 443), Some("127.0.0.1:9443".parse().unwrap()));
    assert_eq!(s.max_request_body_size, 1024 * 1024);
}

#[test]
fn client_read_buffer_is_small_by_default_and_bounded() {
    let s = Settings::from_yaml("declarative_config: k.yaml\n", None, &no_env).unwrap();
    assert_eq!(s.client_read_buffer_size, 0);
    assert_eq!(s.client_write_buffer_size, 4 * 1024);
    let s = Settings::from_yaml("declarative_config: k.yaml\nclient_write_buffer_size: 0\n", None, &no_env).unwrap();
    assert_eq!(s.client_write_buffer_size, 0);
    let err =
        Settings::from_yaml("declarative_config: k.yaml\nclient_write_buffer_size: 4m\n", None, &no_env).unwrap_err();
    assert!(err.to_string().contains("client_write_buffer_size must be at most 1m"), "{err}");
    let s = Settings::from_yaml("declarative_config: k.yaml\nclient_read_buffer_size: 64k\n", None, &no_env).unwrap();
    assert_eq!(s.client_read_buffer_size, 64 * 1024);
    let err =
        Settings::from_yaml("declarative_config: k.yaml\nclient_read_buffer_size: 2m\n", None, &no_env).unwrap_err();
    assert!(err.to_string().contains("client_read_buffer_size"), "{err}");
}

#[test]
fn client_header_timeout_is_whole_seconds_rounded_up() {
    let s = Settings::from_yaml("declarative_config: k.yaml\n", None, &no_env).unwrap();
    assert_eq!(s.client_header_timeout, Duration::from_secs(60));
    let s = Settings::from_yaml("declarative_config: k.yaml\nclient_header_timeout: 1500\n", None, &no_env).unwrap();
    assert_eq!(s.client_header_timeout, Duration::from_secs(2));
    let err = Settings::from_yaml("declarative_config: k.yaml\nclient_header_timeout: 0\n", None, &no_env).unwrap_err();
    assert!(err.to_string().contains("client_header_timeout"), "{err}");
}

#[test]
fn header_limits_default_below_the_parser_and_stay_there() {
    let s = Settings::from_yaml("declarative_config: k.yaml\n", None, &no_env).unwrap();
    assert_eq!((s.max_request_header_size, s.max_request_headers), (32 * 1024, 100));
    let s = Settings::from_yaml(
        "declarative_config: k.yaml\nmax_request_header_size: 64k\nmax_request_headers: 200\n",
        None,
        &no_env,
    )
    .unwrap();
    assert_eq!((s.max_request_header_size, s.max_request_headers), (64 * 1024, 200));
    for (bad, key) in [
        ("max_request_header_size: 1m", "max_request_header_size"),
        ("max_request_header_size: 10", "max_request_header_size"),
        ("max_request_headers: 257", "max_request_headers"),
        ("max_request_headers: 0", "max_request_headers"),
    ] {
        let err = Settings::from_yaml(&format!("declarative_config: k.yaml\n{bad}\n"), None, &no_env).unwrap_err();
        assert!(err.to_string().contains(key), "{bad}: {err}");
    }
}

#[test]
fn unknown_keys_and_bad_values_are_all_reported() {
    let err = Settings::from_yaml("declarative_config: k.yaml\nproxy_lisen: x\n", None, &no_env).unwrap_err();
    assert!(err.to_string().contains("proxy_lisen"), "{err}");

    let err = Settings::from_yaml("proxy_listen: nowhere\nlog_level: loud\n", None, &no_env).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("proxy_listen"), "{text}");
    assert!(text.contains("log_level"), "{text}");
    assert!(text.contains("declarative_config"), "{text}");
}

#[test]
fn every_documented_key_is_accepted() {
    assert_eq!(Settings::keys().len(), 41);
    assert!(!Settings::keys().contains(&"source"));
    for key in Settings::keys() {
        let (parsed, problems) = Settings::parse(&format!("{key}: null\n"), None, &no_env);
        assert!(parsed.is_some(), "{key}");
        // Only the missing declarative_config is a problem: the key itself is accepted.
        assert_eq!(problems.len(), 1, "{key} is a key but not accepted: {problems}");
        assert!(problems.to_string().contains("declarative_config is not set"), "{key}: {problems}");
    }
}

#[test]
fn the_operator_token_is_long_and_never_shown() {
    let s =
        Settings::from_yaml("declarative_config: k.yaml\nstatus_operator_token: op-0123456789abcdef\n", None, &no_env)
            .unwrap();
    assert!(s.status_operator_token.as_ref().is_some_and(|t| t.matches(b"op-0123456789abcdef")));
    assert!(!format!("{s:?}").contains("op-0123456789abcdef"));
    let err = Settings::from_yaml("declarative_config: k.yaml\nstatus_operator_token: short-secret\n", None, &no_env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("status_operator_token") && !err.contains("short-secret"), "{err}");
}

#[test]
fn byte_sizes() {
    assert_eq!(parse_byte_size("8m").unwrap(), 8 << 20);
    assert_eq!(parse_byte_size("512K").unwrap(), 512 << 10);
    assert_eq!(parse_byte_size("100").unwrap(), 100);
    assert!(parse_byte_size("lots").is_err());
}

#[test]
fn readme_documents_every_key_in_its_settings_table() {
    let readme = include_str!("../../../README.md");
    let table: Vec<&str> = readme
        .split("### Settings file")
        .nth(1)
        .and_then(|s| s.split("\n\n").find(|p| p.starts_with("| key |")))
        .map(|t| t.lines().skip(2).collect())
        .unwrap_or_default();
    let documented: Vec<String> = table
        .iter()
        .flat_map(|row| row.split('|').nth(1).unwrap_or("").split(','))
        .map(|k| k.trim().trim_matches('`').to_string())
        .collect();
    let mut keys: Vec<String> = Settings::keys().iter().map(|k| k.to_string()).collect();
    let mut documented_sorted = documented.clone();
    keys.sort();
    documented_sorted.sort();
    assert_eq!(documented_sorted, keys, "README's settings table and the Settings struct differ");
}

#[test]
fn oidc_insecure_http_hosts_are_host_names() {
    let s = Settings::from_yaml(
        "declarative_config: k.yaml\noidc_insecure_http_hosts: [127.0.0.1, idp.test, '[::1]']\n",
        None,
        &no_env,
    )
    .unwrap();
    assert_eq!(s.oidc_insecure_http_hosts, ["127.0.0.1", "idp.test", "[::1]"]);
    assert!(Settings::from_yaml("declarative_config: k.yaml\n", None, &no_env)
        .unwrap()
        .oidc_insecure_http_hosts
        .is_empty());
    for bad in ["http://127.0.0.1", "127.0.0.1:8080", "''", "idp/x", "'[]'"] {
        let err = Settings::from_yaml(
            &format!("declarative_config: k.yaml\noidc_insecure_http_hosts: [{bad}]\n"),
            None,
            &no_env,
        )
        .unwrap_err();
        assert!(err.to_string().contains("oidc_insecure_http_hosts"), "{bad}: {err}");
    }
}

#[test]
fn every_bad_value_is_reported_with_its_key_and_fix() {
    let text = "declarative_config: k.yaml\nthreads: 0\nmax_request_body_size: 0\nclient_read_buffer_size: 2m\n\
                upstream_resolve: {nohost: 1.2.3.4:5}\nstatus_listen: nowhere\nusage_scan_limit: lots\n";
    let err = Settings::from_yaml(text, None, &no_env).unwrap_err();
    let keys: Vec<&str> = err.0.iter().map(|p| p.what.split([':', ' ']).next().unwrap()).collect();
    for key in [
        "threads",
        "max_request_body_size",
        "client_read_buffer_size",
        "upstream_resolve",
        "status_listen",
        "usage_scan_limit",
    ] {
        assert!(keys.contains(&key), "{key} not reported: {err}");
    }
    assert!(err.0.iter().all(|p| !p.fix.is_empty()), "{err:?}");
    let threads = err.0.iter().find(|p| p.what.starts_with("threads")).unwrap();
    assert_eq!(threads.what, "threads: 0 is out of range");
    assert_eq!(threads.fix, "use a number from 1 to 1024, or leave it unset for one per CPU");
}

#[test]
fn trusted_ips_and_lingering() {
    let s = Settings::from_yaml(
        "declarative_config: k.yaml\ntrusted_ips: 10.0.0.0/8, ::1\nlingering_max_size: 1m\nlingering_time: 0\n",
        None,
        &no_env,
    )
    .unwrap();
    assert!(s.trusted_ips.contains("10.2.3.4".parse().unwrap()));
    assert!(s.trusted_ips.contains("::1".parse().unwrap()));
    assert!(!s.trusted_ips.contains("127.0.0.1".parse().unwrap()));
    assert_eq!(s.lingering().max_size, 1 << 20);
    assert!(s.lingering().time.is_zero());
    let d = Settings::default();
    assert!(d.trusted_ips.is_empty() && !d.allow_underscores_in_headers);
    assert_eq!((d.lingering().time.as_secs(), d.lingering().idle.as_secs()), (30, 5));
    let err = Settings::from_yaml("declarative_config: k.yaml\ntrusted_ips: [10.0.0.0/40, nowhere]\n", None, &no_env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("10.0.0.0/40") && err.contains("nowhere"), "{err}");
    let list =
        Settings::from_yaml("declarative_config: k.yaml\ntrusted_ips: [0.0.0.0/0, '::/0']\n", None, &no_env).unwrap();
    assert!(list.trusted_ips.contains("203.0.113.9".parse().unwrap()));
}

#[test]
fn cluster_secret_is_long_and_never_printed() {
    let s = Settings::from_yaml(
        "declarative_config: k.yaml\ncluster_secret: 0123456789abcdef0123456789abcdef\n",
        None,
        &no_env,
    )
    .unwrap();
    assert_eq!(s.cluster_secret.as_ref().map(|s| s.expose().len()), Some(32));
    assert!(!format!("{s:?}").contains("0123456789abcdef"));
    let err = Settings::from_yaml("declarative_config: k.yaml\ncluster_secret: short\n", None, &no_env).unwrap_err();
    assert!(err.to_string().contains("cluster_secret") && !err.to_string().contains("short\""), "{err}");
}

#[test]
fn the_cluster_store_takes_kongs_redis_record_and_checks_it() {
    let s = Settings::from_yaml("declarative_config: k.yaml\n", None, &no_env).unwrap();
    assert_eq!(s.cluster_endpoint(), Ok(None));
    let env = |k: &str| {
        (k == "AIGATE_CLUSTER_REDIS").then(|| {
            "{host: r.internal, port: 6380, password: pw, connect_timeout: 100, read_timeout: 250}".to_string()
        })
    };
    let s = Settings::from_yaml("declarative_config: k.yaml\n", None, &env).unwrap();
    let e = s.cluster_endpoint().unwrap().unwrap();
    assert_eq!((e.host.as_str(), e.port, e.password.as_deref()), ("r.internal", 6380, Some("pw")));
    assert_eq!((e.connect_timeout.as_millis(), e.timeout.as_millis()), (100, 2000));
    assert!(!format!("{s:?}").contains("pw,"), "the password is not in a debug print");
    let s = Settings::from_yaml(
        "declarative_config: k.yaml\ncluster_redis: {cluster_nodes: [{ip: a, port: 1}]}\n",
        None,
        &no_env,
    )
    .unwrap();
    assert_eq!(
        s.cluster_endpoint().unwrap_err()[0].0,
        "cluster_redis.cluster_nodes: `cluster_redis.cluster_nodes` is not supported by aigate"
    );
    assert!(Settings::from_yaml("declarative_config: k.yaml\ncluster_redis: {hots: r}\n", None, &no_env).is_err());
}
