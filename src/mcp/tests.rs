use super::*;
use serde_json::json;

fn post(body: &str, batches: bool) -> Result<Post, RpcError> {
    parse_post(body.as_bytes(), batches)
}

#[test]
fn messages_are_classified() {
    let p = post(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{}}}"#, false)
        .unwrap();
    assert_eq!(p.messages[0].kind, Kind::Request);
    assert_eq!(p.messages[0].tool.as_deref(), Some("add"));
    assert_eq!(p.messages[0].id, Some(json!(1)));
    let n = post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#, false).unwrap();
    assert_eq!(n.messages[0].kind, Kind::Notification);
    let r = post(r#"{"jsonrpc":"2.0","id":"s-1","result":{"roots":[]}}"#, false).unwrap();
    assert_eq!(r.messages[0].kind, Kind::Response);
    assert!(!r.batch);
}

#[test]
fn malformed_input_gets_json_rpc_errors() {
    let e = post("{not json", false).unwrap_err();
    assert_eq!((e.status, e.code, e.id.clone()), (400, PARSE_ERROR, None));
    assert_eq!(e.to_value()["id"], Value::Null);
    for (body, code) in [
        (r#"{"id":1,"method":"ping"}"#, INVALID_REQUEST),
        (r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, INVALID_REQUEST),
        (r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#, INVALID_REQUEST),
        (r#"{"jsonrpc":"2.0","id":1,"method":7}"#, INVALID_REQUEST),
        (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#, INVALID_REQUEST),
        (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}"#, INVALID_REQUEST),
        (r#"{"jsonrpc":"2.0","result":{}}"#, INVALID_REQUEST),
        (r#""just a string""#, INVALID_REQUEST),
        (r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, INVALID_REQUEST),
    ] {
        let e = post(body, false).unwrap_err();
        assert_eq!((e.status, e.code), (400, code), "{body}");
    }
    // The id is echoed when it could be read.
    assert_eq!(post(r#"{"jsonrpc":"2.0","id":9,"method":"tools/call"}"#, false).unwrap_err().id, Some(json!(9)));
}

#[test]
fn batches_only_where_allowed_and_each_element_checked() {
    let b = post(
        r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#,
        true,
    )
    .unwrap();
    assert!(b.batch);
    assert_eq!(b.requests().count(), 1);
    assert!(post("[]", true).is_err());
    let e = post(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"1.0","id":2,"method":"ping"}]"#, true)
        .unwrap_err();
    assert!(e.message.contains("batch element 1"), "{}", e.message);
    assert_eq!(e.id, Some(json!(2)));
    assert!(post(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"result":{}}]"#, true).is_err());
}

#[test]
fn methods_and_content_types() {
    assert!(known_method("tools/call", false));
    assert!(!known_method("server/discover", false));
    assert!(known_method("notifications/cancelled", true));
    assert!(!known_method("tools/call", true));
    assert!(is_json_content_type(None));
    assert!(is_json_content_type(Some(b"application/json; charset=utf-8")));
    assert!(!is_json_content_type(Some(b"text/plain")));
}
