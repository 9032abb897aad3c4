use super::*;
use crate::consumers::Consumer;
use crate::store::ownership::{MemoryStore, OwnershipStore};
use crate::store::pins::ListedTools;
use std::time::Duration;

fn consumers() -> Consumers {
    let mut c = Consumers::default();
    for (name, groups) in [("alex", vec!["devs"]), ("bo", vec![]), ("cy", vec!["ops"])] {
        c.add(Consumer::new(
            format!("id-{name}"),
            Some(name.into()),
            None,
            groups.iter().map(|g| g.to_string()).collect(),
        ));
    }
    c
}

const GUARD: &str = r#"
servers:
- server_label: gitmcp
  server_url: https://api.githubcopilot.com/mcp/
  consumers: [alex]
  groups: [ops]
  allowed_tools: [search_code, get_issue, create_pull_request]
  sensitive_tools: [create_pull_request]
  credential: {header: Authorization, value: "Bearer gateway-pat"}
- server_label: gitmcp
  server_url: https://api.githubcopilot.com/mcp/
  consumers: [bo]
  allowed_tools: [search_code]
- server_label: docs
  server_url: https://docs.example/mcp
  credential: {field: authorization, value: "docs-token"}
  client_credentials: refuse
  pin_tools: block
"#;

fn guard(yaml: &str, c: &Consumers) -> McpGuard {
    McpGuard::compile(serde_yaml::from_str(yaml).unwrap(), c).unwrap()
}

struct Run {
    result: Result<Vec<GuardEvent>, AiRefusal>,
    body: Value,
}

fn run(g: &McpGuard, c: &Consumers, who: Option<&str>, body: Value) -> Run {
    run_with(g, c, who, body, &MemoryStore::new(Duration::from_secs(60), 100), &PinStore::default())
}

fn run_with(g: &McpGuard, c: &Consumers, who: Option<&str>, body: Value, store: &MemoryStore, pins: &PinStore) -> Run {
    let bytes = serde_json::to_vec(&body).unwrap();
    let (mut doc, refs) = RequestDoc::parse_with_refs(&bytes).unwrap();
    let consumer = who.map(|w| {
        let id = c.find(w).unwrap();
        (id, c.get(id))
    });
    let mut record = GuardRecord::default();
    let result = g.apply(&mut doc, &refs, consumer, store, pins, &mut record).map(|()| record.events);
    let body = serde_json::from_slice(&doc.to_bytes()).unwrap();
    Run { result, body }
}

fn git_tool(extra: Value) -> Value {
    let mut t = json!({"type": "mcp", "server_label": "gitmcp", "server_url": "https://api.githubcopilot.com/mcp/", "require_approval": "never"});
    for (k, v) in extra.as_object().unwrap() {
        t[k] = v.clone();
    }
    t
}

#[test]
fn the_walkthrough_request_is_allowed_for_alex_with_the_gateway_credential() {
    let c = consumers();
    let g = guard(GUARD, &c);
    let r = run(
        &g,
        &c,
        Some("alex"),
        json!({"input": "x", "tools": [git_tool(json!({"headers": {"Authorization": "Bearer client-pat", "X-Other": "1"}}))]}),
    );
    let events = r.result.unwrap();
    let tool = &r.body["tools"][0];
    assert_eq!(tool["headers"]["Authorization"], "Bearer gateway-pat");
    assert_eq!(tool["headers"]["X-Other"], "1", "other headers pass");
    assert_eq!(tool["allowed_tools"], json!(["create_pull_request", "get_issue", "search_code"]));
    // create_pull_request needs approval, the others keep "never".
    assert_eq!(
        tool["require_approval"],
        json!({"always": {"tool_names": ["create_pull_request"]}, "never": {"tool_names": ["get_issue", "search_code"]}})
    );
    let decisions: Vec<&str> = events.iter().map(|e| e.decision).collect();
    assert_eq!(decisions, vec!["narrowed", "approval_forced", "stripped", "injected"]);
}

#[test]
fn other_consumers_and_servers_are_refused() {
    let c = consumers();
    let g = guard(GUARD, &c);
    let tool = git_tool(json!({}));
    let r = run(&g, &c, Some("cy"), json!({"tools": [tool.clone()]}));
    assert!(r.result.is_ok(), "cy is in group ops");
    let r = run(&g, &c, None, json!({"tools": [tool.clone()]}));
    assert_eq!(r.result.unwrap_err().status, 403);
    let evil = json!({"type": "mcp", "server_label": "gitmcp", "server_url": "https://evil.example/mcp/"});
    let e = run(&g, &c, Some("alex"), json!({"tools": [evil]})).result.unwrap_err();
    assert_eq!(e.status, 403);
    assert!(e.message.contains("'gitmcp' is not allowed at this URL"), "{}", e.message);
    let unknown = json!({"type": "mcp", "server_label": "other", "server_url": "https://other.example/"});
    let e = run(&g, &c, Some("alex"), json!({"tools": [unknown]})).result.unwrap_err();
    assert!(e.message.contains("'other' is not allowed"));
    // Non-MCP tools are not the guard's business.
    assert!(run(&g, &c, None, json!({"tools": [{"type": "web_search"}]})).result.is_ok());
}

#[test]
fn urls_are_compared_normalised_and_userinfo_is_refused() {
    let c = consumers();
    let g = guard(GUARD, &c);
    for same in ["HTTPS://API.githubcopilot.com:443/mcp/", "https://api.githubcopilot.com/x/../mcp/"] {
        let t = json!({"type": "mcp", "server_label": "gitmcp", "server_url": same});
        assert!(run(&g, &c, Some("alex"), json!({"tools": [t]})).result.is_ok(), "{same}");
    }
    for different in [
        "https://api.githubcopilot.com/mcp",
        "http://api.githubcopilot.com/mcp/",
        "https://user:pw@api.githubcopilot.com/mcp/",
        "https://api.githubcopilot.com:8443/mcp/",
    ] {
        let t = json!({"type": "mcp", "server_label": "gitmcp", "server_url": different});
        assert_eq!(run(&g, &c, Some("alex"), json!({"tools": [t]})).result.unwrap_err().status, 403, "{different}");
    }
}

#[test]
fn allowed_tools_are_narrowed_or_refused() {
    let c = consumers();
    let g = guard(GUARD, &c);
    // bo may only search: the request's list is narrowed.
    let r =
        run(&g, &c, Some("bo"), json!({"tools": [git_tool(json!({"allowed_tools": ["search_code", "delete_repo"]}))]}));
    assert!(r.result.is_ok());
    assert_eq!(r.body["tools"][0]["allowed_tools"], json!(["search_code"]));
    // The object form keeps its shape.
    let r = run(
        &g,
        &c,
        Some("bo"),
        json!({"tools": [git_tool(json!({"allowed_tools": {"tool_names": ["search_code", "x"], "read_only": true}}))]}),
    );
    assert_eq!(r.body["tools"][0]["allowed_tools"], json!({"tool_names": ["search_code"], "read_only": true}));
    // Nothing permitted left: refused.
    assert_eq!(
        run(&g, &c, Some("bo"), json!({"tools": [git_tool(json!({"allowed_tools": ["delete_repo"]}))]}))
            .result
            .unwrap_err()
            .status,
        403
    );
    let strict = guard(&format!("on_disallowed_tools: refuse\n{GUARD}"), &c);
    let e = run(
        &strict,
        &c,
        Some("bo"),
        json!({"tools": [git_tool(json!({"allowed_tools": ["search_code", "delete_repo"]}))]}),
    )
    .result
    .unwrap_err();
    assert!(e.message.contains("delete_repo"), "{}", e.message);
}

#[test]
fn client_credentials_can_be_refused_and_field_credentials_injected() {
    let c = consumers();
    let g = guard(GUARD, &c);
    let docs = |extra: Value| {
        let mut t = json!({"type": "mcp", "server_label": "docs", "server_url": "https://docs.example/mcp"});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        t
    };
    let r = run(&g, &c, Some("bo"), json!({"tools": [docs(json!({}))]}));
    assert!(r.result.is_ok());
    assert_eq!(r.body["tools"][0]["authorization"], "docs-token");
    for creds in [json!({"authorization": "mine"}), json!({"headers": {"authorization": "Bearer mine"}})] {
        assert_eq!(run(&g, &c, Some("bo"), json!({"tools": [docs(creds)]})).result.unwrap_err().status, 403);
    }
}

#[test]
fn approval_is_forced_even_without_a_known_tool_list() {
    let c = consumers();
    let g = guard("servers:\n- server_label: s\n  server_url: https://s.example/\n  sensitive_tools: [drop_db]\n", &c);
    let r = run(
        &g,
        &c,
        None,
        json!({"tools": [{"type": "mcp", "server_label": "s", "server_url": "https://s.example/", "require_approval": "never"}]}),
    );
    assert_eq!(r.body["tools"][0]["require_approval"], "always");
    let r = run(
        &g,
        &c,
        None,
        json!({"tools": [{"type": "mcp", "server_label": "s", "server_url": "https://s.example/", "require_approval": {"never": {"tool_names": ["drop_db", "read"]}}}]}),
    );
    assert_eq!(
        r.body["tools"][0]["require_approval"],
        json!({"always": {"tool_names": ["drop_db"]}, "never": {"tool_names": ["read"]}})
    );
}

#[test]
fn mcp_items_sent_back_in_input_follow_the_same_rules() {
    let c = consumers();
    let g = guard(GUARD, &c);
    let store = MemoryStore::new(Duration::from_secs(60), 100);
    store.record(
        crate::core::ObjectKind::McpApprovalRequest,
        "mcpr_1",
        "id-alex",
        Some(("gitmcp".into(), "create_pull_request".into())),
    );
    let pins = PinStore::default();
    let approve =
        json!({"input": [{"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": true}]});
    assert!(run_with(&g, &c, Some("alex"), approve.clone(), &store, &pins).result.is_ok());
    // Not alex's approval request, or an unknown one.
    assert_eq!(run_with(&g, &c, Some("bo"), approve, &store, &pins).result.unwrap_err().status, 403);
    let unknown =
        json!({"input": [{"type": "mcp_approval_response", "approval_request_id": "mcpr_x", "approve": true}]});
    assert_eq!(run_with(&g, &c, Some("alex"), unknown, &store, &pins).result.unwrap_err().status, 403);
    // A replayed mcp_call of a server bo may not use.
    let call = json!({"input": [{"type": "mcp_call", "server_label": "docs", "name": "read"}, {"type": "mcp_call", "server_label": "gitmcp", "name": "create_pull_request"}]});
    assert_eq!(run(&g, &c, Some("bo"), call).result.unwrap_err().status, 403);
}

#[tokio::test]
async fn a_blocked_pin_refuses_the_server() {
    let c = consumers();
    let g = guard(GUARD, &c);
    let pins = PinStore::default();
    let store = MemoryStore::new(Duration::from_secs(60), 100);
    let (a, b) = (vec![("read".to_string(), "d1".to_string())], vec![("read".to_string(), "d2".to_string())]);
    pins.observe("docs", ListedTools { digest: "sha256:a", tools: &a, full: true }, None, PinMode::Block);
    pins.observe("docs", ListedTools { digest: "sha256:b", tools: &b, full: true }, None, PinMode::Block);
    let body = json!({"tools": [{"type": "mcp", "server_label": "docs", "server_url": "https://docs.example/mcp"}]});
    let e = run_with(&g, &c, Some("bo"), body.clone(), &store, &pins).result.unwrap_err();
    assert!(e.message.contains("sha256:b"), "{}", e.message);
    pins.accept("docs").await;
    assert!(run_with(&g, &c, Some("bo"), body, &store, &pins).result.is_ok());
}

#[test]
fn config_errors() {
    let c = consumers();
    let bad = |y: &str| McpGuard::compile(serde_yaml::from_str(y).unwrap(), &c).unwrap_err();
    assert!(bad("servers: []")[0].what.contains("empty"));
    assert_eq!(bad("allowed_prompts: ['pmpt 1']")[0].path, "allowed_prompts[0]");
    // A guard may only list prompts.
    assert!(McpGuard::compile(serde_yaml::from_str("allowed_prompts: [pmpt_1]").unwrap(), &c).is_ok());
    assert_eq!(bad("servers: [{server_label: a, server_url: 'http://x/'}]")[0].path, "servers[0].server_url");
    assert_eq!(
        bad("servers: [{server_label: a, server_url: 'https://x/', consumers: [ghost]}]")[0].path,
        "servers[0].consumers[0]"
    );
    assert!(!bad("servers: [{server_label: a}]").is_empty());
    assert!(!bad("servers: [{server_label: a, server_url: 'https://u:p@x/'}]").is_empty());
    assert!(!bad("servers: [{server_label: a, server_url: 'https://x/', tools_digest: abc}]").is_empty());
    assert!(serde_yaml::from_str::<McpGuardSchema>(
        "servers: [{server_label: a, server_url: 'https://x/', allowed_tool: [b]}]"
    )
    .is_err());
    // The credential's value never shows in debug output.
    let g = guard(GUARD, &c);
    assert!(!format!("{g:?}").contains("gateway-pat"));
}

#[test]
fn url_normalisation() {
    assert_eq!(normalize_url("HTTPS://Example.COM:443").unwrap(), "https://example.com/");
    assert_eq!(normalize_url("https://example.com:8443/a/./b/../c?x=1").unwrap(), "https://example.com:8443/a/c?x=1");
    assert!(normalize_url("https://u@example.com/").is_err());
    assert!(normalize_url("ftp://example.com/").is_err());
    assert!(normalize_url("https://example.com/#frag").is_err());
    assert!(normalize_url("example.com").is_err());
}

#[test]
fn allowed_tools_must_be_names_or_openais_filter() {
    let c = consumers();
    let g = guard(GUARD, &c);
    for bad in [
        json!([1, "search_code"]),
        json!(["search_code", {"name": "delete_repository"}]),
        json!({"tool_names": ["search_code", null]}),
        json!({"tool_names": "search_code"}),
        json!({"tool_names": ["search_code"], "names": ["delete_repository"]}),
        json!({"read_only": "yes"}),
        json!("search_code"),
        json!(true),
    ] {
        let body = json!({"tools": [git_tool(json!({"allowed_tools": bad.clone()}))]});
        let e = run(&g, &c, Some("alex"), body).result.unwrap_err();
        assert_eq!((e.status, e.code), (400, "invalid_allowed_tools"), "{bad}");
    }
    for good in [
        json!(["search_code"]),
        json!({"tool_names": ["search_code"], "read_only": true}),
        json!({"read_only": false}),
        Value::Null,
    ] {
        let body = json!({"tools": [git_tool(json!({"allowed_tools": good.clone()}))]});
        assert!(run(&g, &c, Some("alex"), body).result.is_ok(), "{good}");
    }
}

#[test]
fn mcp_tools_defined_inside_input_are_refused() {
    let c = consumers();
    let g = guard(GUARD, &c);
    let body = json!({"input": [{"type": "additional_tools", "tools": [{"type": "mcp", "server_label": "evil", "server_url": "https://evil.example/"}]}]});
    let e = run(&g, &c, Some("alex"), body).result.unwrap_err();
    assert_eq!(e.status, 403);
    assert!(e.message.contains("input[0].tools[0]"), "{}", e.message);
    // A tunnel the guard cannot check.
    let body = json!({"tools": [git_tool(json!({"tunnel_id": "tun_1"}))]});
    assert_eq!(run(&g, &c, Some("alex"), body).result.unwrap_err().status, 403);
}

#[test]
fn refusals_of_unknown_servers_are_marked_as_such() {
    let c = consumers();
    let g = guard(GUARD, &c);
    let body =
        json!({"tools": [{"type": "mcp", "server_label": "random-label-1", "server_url": "https://x.example/"}]});
    let events = {
        let bytes = serde_json::to_vec(&body).unwrap();
        let (mut doc, refs) = RequestDoc::parse_with_refs(&bytes).unwrap();
        let mut record = GuardRecord::default();
        let store = MemoryStore::new(Duration::from_secs(60), 10);
        assert!(g.apply(&mut doc, &refs, None, &store, &PinStore::default(), &mut record).is_err());
        record.events
    };
    assert_eq!(events.len(), 1);
    assert!(!events[0].configured);
}

#[test]
fn the_listing_is_full_only_under_the_servers_own_filter() {
    let c = consumers();
    let g = guard(GUARD, &c);
    let listing = |tool: Value| {
        let bytes = serde_json::to_vec(&json!({"tools": [tool]})).unwrap();
        let (mut doc, refs) = RequestDoc::parse_with_refs(&bytes).unwrap();
        let mut record = GuardRecord::default();
        let store = MemoryStore::new(Duration::from_secs(60), 10);
        let alex = c.find("alex").map(|id| (id, c.get(id)));
        g.apply(&mut doc, &refs, alex, &store, &PinStore::default(), &mut record).unwrap();
        record.full_listing("gitmcp").or(record.full_listing("docs")).unwrap()
    };
    assert!(listing(git_tool(json!({}))));
    assert!(listing(git_tool(json!({"allowed_tools": ["search_code", "get_issue", "create_pull_request"]}))));
    assert!(!listing(git_tool(json!({"allowed_tools": ["search_code"]}))));
    let docs = json!({"type": "mcp", "server_label": "docs", "server_url": "https://docs.example/mcp"});
    assert!(listing(docs.clone()));
    let mut narrowed = docs.clone();
    narrowed["allowed_tools"] = json!({"read_only": true});
    assert!(!listing(narrowed));
}
