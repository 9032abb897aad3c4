use super::*;

fn rt(yaml: &str) -> Result<RequestTransformer, Vec<ConfigIssue>> {
    RequestTransformer::compile(serde_yaml::from_str(yaml).unwrap())
}

fn client() -> RequestHeader {
    let mut r = RequestHeader::build("POST", b"/mcp?a=1&b=2&b=3", None).unwrap();
    r.insert_header("authorization", "Bearer client-token").unwrap();
    r.insert_header("x-old", "o").unwrap();
    r.insert_header("x-tenant", "acme").unwrap();
    r
}

#[test]
fn headers_in_kongs_order() {
    let t = rt(r#"
remove: {headers: [Authorization, X-Gone]}
rename: {headers: ["x-old:X-New"]}
replace: {headers: ["x-tenant:replaced", "x-absent:never", "host:upstream.example"]}
add: {headers: ["Authorization:Bearer gateway-pat", "x-tenant:not-added", "x-from:$(headers.x_tenant)"]}
append: {headers: ["x-multi:1", "x-multi:2", "x-empty:"]}
"#)
    .unwrap();
    let c = client();
    let mut up = c.clone();
    t.apply_headers(&c, &mut up);
    let h = |n: &str| up.headers.get_all(n).iter().map(|v| v.to_str().unwrap().to_string()).collect::<Vec<_>>();
    // remove runs before add: the client's credential is replaced by the gateway's.
    assert_eq!(h("authorization"), vec!["Bearer gateway-pat"]);
    assert_eq!(h("x-old"), Vec::<String>::new());
    assert_eq!(h("x-new"), vec!["o"]);
    assert_eq!(h("x-tenant"), vec!["replaced"]);
    assert!(h("x-absent").is_empty());
    assert_eq!(h("host"), vec!["upstream.example"]);
    // Templates read the client's request as it arrived, not the transformed one.
    assert_eq!(h("x-from"), vec!["acme"]);
    assert_eq!(h("x-multi"), vec!["1", "2"]);
    assert!(h("x-empty").is_empty());
}

#[test]
fn query_and_json_and_form_bodies() {
    let t = rt(r#"
remove: {querystring: [a], body: [secret]}
rename: {querystring: ["b:c"], body: ["old:new"]}
replace: {querystring: ["c:9"], body: ["model:gpt-4o"]}
add: {querystring: ["d:$(query_params.a)"], body: ["user:$(headers['x-tenant'])", "model:ignored"]}
append: {querystring: ["d:x"], body: ["tags:t2"]}
"#)
    .unwrap();
    let c = client();
    assert_eq!(t.apply_query(&c, Some(b"a=1&b=2&b=3")).unwrap(), b"c=9&d=1&d=x");
    let body = br#"{"secret":"s","old":1,"model":"gpt-x","tags":"t1"}"#;
    let out: Value = serde_json::from_slice(&t.apply_body(&c, BodyEncoding::Json, body).unwrap()).unwrap();
    assert_eq!(out, serde_json::json!({"new":1,"model":"gpt-4o","user":"acme","tags":["t1","t2"]}));
    // Kong leaves a body that does not parse unchanged, and adds to an empty one.
    assert_eq!(t.apply_body(&c, BodyEncoding::Json, b"{not json"), None);
    let empty: Value = serde_json::from_slice(&t.apply_body(&c, BodyEncoding::Json, b"").unwrap()).unwrap();
    assert_eq!(empty, serde_json::json!({"user":"acme","model":"ignored","tags":"t2"}));
    let form = t.apply_body(&c, BodyEncoding::Form, b"secret=s&model=x&keep=1").unwrap();
    assert_eq!(form, b"model=gpt-4o&keep=1&user=acme&tags=t2");
    assert_eq!(t.apply_body(&c, BodyEncoding::Other, b"--multipart"), None);
    assert_eq!(BodyEncoding::of(Some(b"Application/JSON; charset=utf-8")), BodyEncoding::Json);
}

#[test]
fn kong_pair_syntax_and_refusals() {
    assert_eq!(split_pair("a::b:c"), Some(("a", "b:c")));
    assert_eq!(split_pair(":x"), None);
    let t = rt("add: {headers: [\"x-a:\"]}\nhttp_method: GET\nreplace: {uri: /v2/$(headers.x_v)}").unwrap();
    assert_eq!(t.http_method, Some(http::Method::GET));
    assert!(t.uri.is_some());
    let errs = rt(r#"
http_method: get
add: {body: ["k:"], headers: ["bad header:v", "x-lua:$(os.getenv('HOME'))"]}
rename: {headers: ["only-one"]}
remove: {headers: ["bad name"]}
"#)
    .unwrap_err();
    let text = format!("{errs:?}");
    for want in [
        "http_method",
        "key 'k' has no value",
        "'bad header' is not a valid header",
        "unsupported $(...)",
        "rename.headers[0]",
        "remove.headers[0]",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    // A secret in a refused value is not echoed.
    let errs = rt("add: {headers: [\"authorization:Bearer sk-secret $(x)\"]}").unwrap_err();
    assert!(!format!("{errs:?}").contains("sk-secret"));
    assert!(serde_yaml::from_str::<RequestTransformerSchema>("add: {cookies: []}").is_err());
    assert!(format!("{:?}", rt("add: {uri: /x}").unwrap_err()).contains("add.uri"));
}

#[test]
fn the_credentials_it_sends_are_known_as_secrets() {
    let t = rt("add: {headers: [\"Authorization:Bearer ghp_abc\", \"x-trace:1\", \"x-token:$(headers.x)\"], querystring: [\"api_key:k-123\"]}").unwrap();
    assert!(!t.secrets.is_empty());
    assert!(rt("add: {headers: [\"x-trace:1\"]}").unwrap().secrets.is_empty());
}
