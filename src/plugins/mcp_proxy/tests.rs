use super::*;

fn consumer(name: &str, groups: &[&str]) -> Consumer {
    let mut c = Consumer::new(format!("id-{name}"), Some(name.into()), Some(format!("cid-{name}")), vec![]);
    c.consumer_groups = groups.iter().map(|g| g.to_string()).collect();
    c
}

fn proxy(yaml: &str) -> Result<McpProxy, Vec<ConfigIssue>> {
    McpProxy::compile(serde_yaml::from_str(yaml).unwrap())
}

/// Kong's documented example (use-access-controls-for-mcp-tools) and its expected visibility.
const KONG_EXAMPLE: &str = r#"
mode: passthrough-listener
include_consumer_groups: true
default_acl:
- scope: tools
  allow: [developer, admin]
  deny: [suspended]
logging: {log_payloads: false, log_statistics: true, log_audits: true}
tools:
- {description: List users, name: list_users, acl: {allow: [admin, eason], deny: [developer]}}
- {description: Get user, name: get_user, acl: {allow: [admin, developer]}}
- {description: List orders, name: list_orders, acl: {allow: [admin, developer]}}
- {description: List orders for users, name: list_orders_for_user, acl: {allow: [admin, developer]}}
- {description: Search orders, name: search_orders, acl: {allow: [admin], deny: [developer]}}
"#;

#[test]
fn kongs_documented_visibility() {
    let p = proxy(KONG_EXAMPLE).unwrap();
    let all = ["list_users", "get_user", "list_orders", "list_orders_for_user", "search_orders"];
    let visible = |c: &Consumer| all.iter().filter(|t| p.may_use(t, Some(c))).copied().collect::<Vec<_>>();
    assert_eq!(visible(&consumer("alice", &["admin"])), all.to_vec());
    assert_eq!(visible(&consumer("bob", &["developer"])), vec!["get_user", "list_orders", "list_orders_for_user"]);
    assert_eq!(visible(&consumer("eason", &[])), vec!["list_users"]);
    let carol = consumer("carol", &["suspended"]);
    assert!(p.refused_entirely(Some(&carol)));
    assert!(!p.refused_entirely(Some(&consumer("bob", &["developer"]))));
    // A tool the configuration does not name follows default_acl.
    assert!(p.may_use("unlisted", Some(&consumer("bob", &["developer"]))));
    assert!(!p.may_use("unlisted", Some(&consumer("eason", &[]))));
    // No consumer: no entry can match.
    assert!(!p.may_use("get_user", None));
}

#[test]
fn groups_only_with_include_consumer_groups_and_identifiers() {
    let p = proxy("mode: passthrough-listener\ndefault_acl: [{allow: [admin, cid-eason]}]").unwrap();
    assert!(!p.may_use("x", Some(&consumer("alice", &["admin"]))));
    assert!(!p.may_use("x", Some(&consumer("eason", &[]))));
    let p = proxy("mode: passthrough-listener\nconsumer_identifier: custom_id\ndefault_acl: [{allow: [cid-eason]}]")
        .unwrap();
    assert!(p.may_use("x", Some(&consumer("eason", &[]))));
    // aigate's ACL groups count as groups too.
    let p = proxy("mode: passthrough-listener\ninclude_consumer_groups: true\ndefault_acl: [{allow: [ops]}]").unwrap();
    let c = Consumer::new("id".into(), Some("u".into()), None, vec!["ops".into()]);
    assert!(p.may_use("x", Some(&c)));
    // No ACL at all: everyone.
    assert!(proxy("mode: passthrough-listener").unwrap().may_use("x", None));
}

#[test]
fn what_cannot_be_enforced_is_refused() {
    let errs = proxy(
        r#"
mode: conversion-listener
consumer_identifier: email
acl_attribute_type: oauth_access_token
logging: {log_payloads: true}
server: {forward_client_headers: false, timeout: 5000, tag: x}
default_acl: [{scope: prompts, allow: [a]}]
denied_status: 404
pin_tools: always
tools_digest: md5:x
tools:
- {name: t, description: d, method: GET, path: /x}
- {description: no name}
- {name: u}
"#,
    )
    .unwrap_err();
    let text = format!("{errs:?}");
    for want in [
        "mode `conversion-listener`",
        "consumer_identifier",
        "acl_attribute_type",
        "log_payloads",
        "forward_client_headers",
        "server.timeout",
        "server.tag",
        "scope `prompts`",
        "denied_status",
        "pin_tools",
        "tools_digest",
        "tools[0].method",
        "tools[0].path",
        "tools[1].name",
        "tools[2].description",
    ] {
        assert!(text.contains(want), "{want} missing from {text}");
    }
    // decK dumps write Kong's defaults: those load.
    let p = proxy(
        "mode: passthrough-listener\nacl_attribute_type: consumer\nserver: {forward_client_headers: true, timeout: 10000}\nmax_request_body_size: 0\ndenied_status: 200",
    )
    .unwrap();
    assert_eq!((p.max_body, p.denied_status), (None, 200));
    assert_eq!(proxy("mode: passthrough-listener").unwrap().max_body, Some(1024 * 1024));
}
