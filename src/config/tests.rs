use super::*;
use std::path::PathBuf;
use std::time::Duration;

use crate::core::Endpoint;

fn defaults() -> Timeouts {
    Timeouts { connect: Duration::from_secs(60), read: Duration::from_secs(60), write: Duration::from_secs(60) }
}

fn env(name: &str) -> Option<String> {
    match name {
        "DECK_OPENAI_API_KEY" => Some("sk-walkthrough-secret".into()),
        _ => None,
    }
}

/// Write files into a temp dir and load them in order.
fn load_texts(texts: &[&str]) -> (tempfile::TempDir, Result<Loaded, Problems>) {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let p = dir.path().join(format!("f{i}.yaml"));
            std::fs::write(&p, t).unwrap();
            p
        })
        .collect();
    let cx = LoadContext { defaults: defaults(), ..LoadContext::from_settings(&Settings::default()) };
    let r = load(&paths, &cx, &env);
    (dir, r)
}

fn ok(texts: &[&str]) -> Loaded {
    let (_d, r) = load_texts(texts);
    match r {
        Ok(l) => l,
        Err(p) => panic!("unexpected problems:\n{p}"),
    }
}

fn problems(texts: &[&str]) -> String {
    let (_d, r) = load_texts(texts);
    match r {
        Ok(_) => panic!("expected problems"),
        Err(p) => p.to_string(),
    }
}

fn walkthrough() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/deck");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
}

const COMBINED: &str = r#"_format_version: "3.0"
services:
- name: example-clean-service
  url: http://httpbin.konghq.com/
  routes:
  - name: example-route
    paths:
    - "/anything"
plugins:
- name: ai-proxy-advanced
  config:
    targets:
    - route_type: llm/v1/responses
      auth:
        header_name: Authorization
        header_value: Bearer ${{ env "DECK_OPENAI_API_KEY" }}
      model:
        provider: openai
        name: gpt-4o
        options:
          max_tokens: 512
          temperature: 1.0
- name: key-auth
  service: example-clean-service
  config:
    key_names: [apikey]
consumers:
- username: alex
  keyauth_credentials:
  - key: hello_world
"#;

#[test]
fn the_walkthrough_fragments_merge() {
    let texts = walkthrough();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let l = ok(&refs);
    let g = &l.config;
    assert_eq!(g.services.len(), 1);
    assert_eq!(g.routes.len(), 1);
    let route = &g.routes[0];
    assert_eq!(route.name, "example-route");
    assert!(route.strip_path);
    assert!(route.policies.authenticators.iter().any(|a| a.kind() == crate::plugins::PluginKind::KeyAuth));
    let ai = route.policies.ai_proxy.default.as_ref().unwrap();
    assert_eq!(ai.targets[0].model.as_deref(), Some("gpt-4o"));
    assert_eq!(g.consumers.list[0].label, "alex");
    assert!(g.consumers.find_key(b"hello_world").is_some());
    assert!(l.upstream_hosts.contains(&("api.openai.com".to_string(), 443)));
    assert!(l.upstream_hosts.contains(&("httpbin.konghq.com".to_string(), 80)));
    // The same content as one file gives the same model.
    let l2 = ok(&[COMBINED]);
    assert_eq!(l2.config.routes.len(), 1);
    assert!(l2.config.routes[0]
        .policies
        .authenticators
        .iter()
        .any(|a| a.kind() == crate::plugins::PluginKind::KeyAuth));
    assert!(l2.config.routes[0].policies.ai_proxy.default.is_some());
    assert!(l2.config.consumers.find_key(b"hello_world").is_some());
}

#[test]
fn nested_routes_and_plugins() {
    let l = ok(&[r#"_format_version: "3.0"
services:
- name: svc
  host: upstream.local
  port: 8080
  path: /api
  protocol: http
  read_timeout: 5000
  routes:
  - name: r1
    paths: [/one]
    plugins:
    - name: key-auth
  plugins:
  - name: acl
    config: {allow: [gold]}
consumers:
- username: u
  acls: [{group: gold}]
  keyauth_credentials: [{key: k1}]
"#]);
    let g = &l.config;
    assert_eq!(
        g.services[0].endpoint,
        Endpoint { tls: false, host: "upstream.local".into(), port: 8080, path: "/api".into() }
    );
    assert_eq!(g.services[0].timeouts.read, Duration::from_millis(5000));
    assert_eq!(g.services[0].timeouts.connect, Duration::from_secs(60));
    let p = &g.routes[0].policies;
    assert!(p.authenticators.iter().any(|a| a.kind() == crate::plugins::PluginKind::KeyAuth));
    assert!(p.acl.default.is_some());
    assert_eq!(g.consumers.list[0].groups, vec!["gold".to_string()]);
}

#[test]
fn kong_plugin_precedence() {
    let l = ok(&[r#"_format_version: "3.0"
services:
- name: s
  url: http://x
routes:
- {name: r, service: {name: s}, paths: [/r]}
- {name: other, service: {name: s}, paths: [/o]}
consumers:
- username: vip
- username: plain
plugins:
- name: acl
  config: {allow: [global]}
- name: acl
  service: s
  config: {allow: [service]}
- name: acl
  route: r
  config: {allow: [route]}
- name: acl
  consumer: vip
  config: {allow: [consumer]}
- name: acl
  route: r
  consumer: vip
  config: {allow: [route-consumer]}
"#]);
    let g = &l.config;
    let groups = |route: usize, consumer: Option<crate::core::ConsumerId>| {
        let acl = g.routes[route].policies.acl.for_consumer(consumer).unwrap();
        match &acl.rule {
            crate::plugins::acl::AclRule::Allow(v) => v[0].clone(),
            _ => unreachable!(),
        }
    };
    let vip = g.consumers.find("vip");
    let plain = g.consumers.find("plain");
    // Route + Consumer beats everything here.
    assert_eq!(groups(0, vip), "route-consumer");
    // Route beats Service and Global for other consumers.
    assert_eq!(groups(0, plain), "route");
    // On the other route: Consumer (4) beats Service (2).
    assert_eq!(groups(1, vip), "consumer");
    assert_eq!(groups(1, plain), "service");
}

#[test]
fn env_templating_rules() {
    let text = "_format_version: \"3.0\"\nplugins:\n- name: key-auth\n  config:\n    realm: ${{ env \"DECK_MISSING\" }}\n    anonymous: ${{ env \"NOT_DECK\" }}\n";
    let p = problems(&[text]);
    assert!(p.contains(":5:") && p.contains("'DECK_MISSING' present in state file but not set"), "{p}");
    assert!(p.contains(":6:") && p.contains("must be prefixed with 'DECK_'"), "{p}");
}

#[test]
fn secrets_never_appear_in_problems() {
    // The substituted key lands in a field of the wrong type: serde would quote it.
    let text = "_format_version: \"3.0\"\nplugins:\n- name: key-auth\n  config:\n    hide_credentials: ${{ env \"DECK_OPENAI_API_KEY\" }}\n";
    let p = problems(&[text]);
    assert!(!p.contains("sk-walkthrough-secret"), "{p}");
    assert!(p.contains("hide_credentials"), "{p}");
}

#[test]
fn every_problem_is_listed_with_file_and_line() {
    let p = problems(&[r#"_format_version: "3.0"
services:
- name: s
  url: http://x
- name: s
  url: ftp://y
routes:
- name: r
  paths: [/a]
  service: {name: ghost}
plugins:
- name: rate-limiting-unknown
- name: key-auth
  route: nowhere
  config:
    key_names: [apikey]
- name: key-auth
  consumer: nobody
consumers:
- username: a
  keyauth_credentials: [{key: same}]
- username: b
  keyauth_credentials: [{key: same}]
"#]);
    for needle in [
        "f0.yaml:5: services[1].name: service name \"s\" is used more than once",
        "services[1].url",
        "f0.yaml:10: routes[0].service: service \"ghost\" is not defined",
        "plugins[0].name: plugin \"rate-limiting-unknown\" is not supported",
        "plugins[1].route: route \"nowhere\" is not defined",
        "plugins[2].consumer",
        "consumers[1].keyauth_credentials[0].key: this key is already given to a consumer",
    ] {
        assert!(p.contains(needle), "missing {needle:?} in:\n{p}");
    }
}

#[test]
fn unknown_fields_are_refused_with_their_line() {
    let p = problems(&["_format_version: \"3.0\"\nservices:\n- name: s\n  url: http://x\n  retrys: 3\n"]);
    assert!(p.contains("f0.yaml:5") && p.contains("unknown field `retrys`"), "{p}");
    let p = problems(&["_format_version: \"3.0\"\nplugins:\n- name: key-auth\n  config:\n    key_nmes: [x]\n"]);
    assert!(p.contains("plugins[0].config") && p.contains("key_nmes"), "{p}");
}

#[test]
fn format_version_is_required() {
    assert!(problems(&["services: []\n"]).contains("_format_version is missing"));
    assert!(problems(&["_format_version: \"0.1\"\n"]).contains("not supported"));
}

#[test]
fn auth_plugins_cannot_be_consumer_scoped() {
    let p =
        problems(&["_format_version: \"3.0\"\nconsumers:\n- username: u\nplugins:\n- name: key-auth\n  consumer: u\n"]);
    assert!(p.contains("cannot be scoped to a consumer"), "{p}");
}

#[test]
fn disabled_plugins_are_validated_but_not_applied() {
    let l = ok(&["_format_version: \"3.0\"\nservices:\n- {name: s, url: 'http://x', routes: [{name: r, paths: [/]}]}\nplugins:\n- name: key-auth\n  enabled: false\n"]);
    assert!(l.config.routes[0].policies.authenticators.is_empty());
    assert!(problems(&[
        "_format_version: \"3.0\"\nplugins:\n- name: key-auth\n  enabled: false\n  config: {bad: 1}\n"
    ])
    .contains("bad"));
}

#[test]
fn prehashed_keys() {
    let stored = crate::consumers::stored_form(b"s3cret");
    let l = ok(&[&format!(
        "_format_version: \"3.0\"\nconsumers:\n- username: u\n  keyauth_credentials: [{{key: \"{stored}\"}}]\n"
    )]);
    assert!(l.config.consumers.find_key(b"s3cret").is_some());
}

#[test]
fn the_digest_follows_the_content() {
    let a = ok(&["_format_version: \"3.0\"\nconsumers: [{username: a}]\n"]).config.digest;
    let b = ok(&["_format_version: \"3.0\"\nconsumers: [{username: b}]\n"]).config.digest;
    let a2 = ok(&["_format_version: \"3.0\"\nconsumers: [{username: a}]\n"]).config.digest;
    assert_ne!(a, b);
    assert_eq!(a, a2);
    assert_eq!(a.len(), 64);
}

#[test]
fn consumer_identities_are_unique_across_fields_and_case() {
    // One consumer's username is another's custom_id (in another file): both places named.
    let p = problems(&[
        "_format_version: \"3.0\"\nconsumers:\n- username: alex\n  custom_id: alex-42\n",
        "_format_version: \"3.0\"\nconsumers:\n- username: bo\n  custom_id: ALEX\n",
    ]);
    assert!(
        p.contains("f1.yaml:4: consumers[0].custom_id: consumer custom_id \"ALEX\" is the username \"alex\" of another consumer (at "),
        "{p}"
    );
    assert!(p.contains("f0.yaml:3: consumers[0].username)"), "{p}");
    // An explicit id equal to another's username; the same username twice in another case.
    let p = problems(&[
        "_format_version: \"3.0\"\nconsumers:\n- username: root\n- username: x\n  id: Root\n- username: ROOT\n",
    ]);
    assert!(p.contains("consumers[1].id: consumer id \"Root\" is the username \"root\""), "{p}");
    assert!(p.contains("consumers[2].username: consumer username \"ROOT\" is the username \"root\""), "{p}");
    // Exact repeats keep their message; one problem per collision, not one per derived id.
    let p = problems(&["_format_version: \"3.0\"\nconsumers:\n- username: a\n- username: a\n"]);
    assert!(p.contains("consumer username \"a\" is used more than once"), "{p}");
    assert_eq!(p.matches("consumers[1]").count(), 1, "{p}");
    // A consumer may repeat its own name in its own fields.
    let l = ok(&["_format_version: \"3.0\"\nconsumers:\n- username: alex\n  custom_id: Alex\n- username: bo\n"]);
    let ids: Vec<&str> = l.config.consumers.list.iter().map(|c| c.id.as_str()).collect();
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn consumer_groups_from_both_sides() {
    let l = ok(&[r#"_format_version: "3.0"
consumer_groups:
- name: admin
- name: developer
  id: 0e1c1c5e-0000-4000-8000-000000000001
  consumers: [{username: bob}]
consumers:
- username: alice
  groups: [{name: admin}, {id: 0e1c1c5e-0000-4000-8000-000000000001}]
- username: bob
  groups: [{name: developer}]
"#]);
    let c = &l.config.consumers;
    assert_eq!(c.list[0].consumer_groups, vec!["admin".to_string(), "developer".to_string()]);
    assert_eq!(c.list[1].consumer_groups, vec!["developer".to_string()]);
    let p = problems(&[r#"_format_version: "3.0"
consumer_groups:
- name: gold
  plugins: [{name: rate-limiting, config: {minute: 1}}]
- name: silver
  consumers: [{username: nobody}]
consumers:
- username: alice
  groups: [{name: platinum}]
plugins:
- name: acl
  consumer_group: gold
  config: {allow: [gold]}
"#]);
    assert!(p.contains("consumer-group 'platinum' not found for consumer 'alice'"), "{p}");
    assert!(p.contains("consumer \"nobody\" is not defined"), "{p}");
    assert_eq!(p.matches("plugins scoped to a consumer group are not supported").count(), 2, "{p}");
}
