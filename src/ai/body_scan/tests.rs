use super::*;
use serde_json::value::RawValue;

fn refs(body: &str) -> BodyRefs {
    scan(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}")).1
}

fn owned(body: &str) -> Vec<(ObjectKind, String, String)> {
    refs(body).owned.into_iter().map(|r| (r.kind, r.id, r.field)).collect()
}

#[test]
fn top_level_fields_are_raw_slices() {
    let (fields, _) = scan(b" {\"input\" : [ {\"x\": 1.50e2} ] , \"k\\u0065y\":true, \"n\":null} ").unwrap();
    let got: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_ref(), *v)).collect();
    assert_eq!(got, vec![("input", "[ {\"x\": 1.50e2} ]"), ("key", "true"), ("n", "null")]);
}

#[test]
fn duplicate_keys_at_any_depth() {
    for body in [
        r#"{"a":1,"a":2}"#,
        r#"{"tools":[{"type":"function","type":"mcp"}]}"#,
        r#"{"tools":[{"type":"mcp","server_url":"https://a","server_url":"https://b"}]}"#,
        r#"{"input":[{"content":[{"text":"x","text":"y"}]}]}"#,
        r#"{"metadata":{"k":"1","k":"2"}}"#,
        r#"{"x":{"m\u006fdel":1,"model":2}}"#,
    ] {
        assert!(matches!(scan(body.as_bytes()), Err(BodyError::DuplicateField(_))), "{body}");
    }
    // Many keys: the hash-set path.
    let many: Vec<String> = (0..100).map(|i| format!("\"k{i}\":{i}")).collect();
    let ok = format!("{{\"o\":{{{}}}}}", many.join(","));
    assert!(scan(ok.as_bytes()).is_ok());
    let dup = format!("{{\"o\":{{{},\"k7\":0}}}}", many.join(","));
    assert_eq!(scan(dup.as_bytes()).err(), Some(BodyError::DuplicateField("k7".into())));
    let top = format!("{{{},\"k99\":0}}", many.join(","));
    assert_eq!(scan(top.as_bytes()).err(), Some(BodyError::DuplicateField("k99".into())));
    // The same key in sibling objects is fine.
    assert!(scan(br#"{"a":[{"k":1},{"k":2}],"b":{"k":3}}"#).is_ok());
}

#[test]
fn strict_json() {
    for bad in [
        "",
        "   ",
        "{",
        "{\"a\":}",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":-}",
        "{\"a\":1e}",
        "{\"a\":tru}",
        "{\"a\":NaN}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":\"tab\there\"}",
        "{\"a\":1,}",
        "{\"a\":[1,]}",
        "{'a':1}",
        "{\"a\" 1}",
        "{} {}",
        "{}x",
        "{\"\\ud800\":1}",
    ] {
        assert!(scan(bad.as_bytes()).is_err(), "{bad:?}");
        assert!(!matches!(scan(bad.as_bytes()), Err(BodyError::NotAnObject)), "{bad:?}");
    }
    assert_eq!(scan(b"[1,2]").err(), Some(BodyError::NotAnObject));
    assert_eq!(scan(b" 42").err(), Some(BodyError::NotAnObject));
    assert!(scan(b"{\"a\":\"\xff\"}").is_err());
    for good in [
        "{}",
        "{\"a\":[]}",
        "{\"a\":-0.0e-999,\"b\":1E958,\"c\":[true,false,null,\"\\u00e9\\n\\\"\"]}",
        "{\"a\":\"\\ud83d\\ude00\",\"b\":\"\\ud800 lone in a value\"}",
        "\t{\n}\r\n",
    ] {
        assert!(scan(good.as_bytes()).is_ok(), "{good:?}");
    }
}

#[test]
fn depth_is_bounded() {
    let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
    assert!(scan(deep(MAX_DEPTH - 1).as_bytes()).is_ok());
    assert!(scan(deep(MAX_DEPTH).as_bytes()).is_err());
    assert!(scan(deep(100_000).as_bytes()).is_err());
}

/// Whatever the scanner accepts, serde_json accepts too (and the fields are the same text).
#[test]
fn agrees_with_serde_json() {
    let bodies = [
        r#"{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_text","text":"hi \"x\" \\ \/ \u00e9"}]}],"n":-1.5E+3}"#,
        r#"{"a":{"b":{"c":[[],{},[{}]]}},"z":""}"#,
    ];
    for b in bodies {
        let (fields, _) = scan(b.as_bytes()).unwrap();
        let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(b).unwrap();
        assert_eq!(fields.len(), v.len());
        for (k, raw) in fields {
            let parsed: serde_json::Value = serde_json::from_str(raw).unwrap();
            assert_eq!(v[k.as_ref()], parsed);
            assert!(serde_json::from_str::<Box<RawValue>>(raw).is_ok());
        }
    }
}

#[test]
fn ids_that_must_be_owned() {
    use ObjectKind::*;
    assert_eq!(
        owned(r#"{"previous_response_id":"resp_1"}"#),
        vec![(Response, "resp_1".into(), "previous_response_id".into())]
    );
    assert_eq!(owned(r#"{"conversation":"conv_1"}"#), vec![(Conversation, "conv_1".into(), "conversation".into())]);
    assert_eq!(
        owned(r#"{"conversation":{"id":"conv_2"}}"#),
        vec![(Conversation, "conv_2".into(), "conversation.id".into())]
    );
    assert_eq!(
        owned(r#"{"prompt_cache_options":{"comparison_response_id":"resp_3"}}"#),
        vec![(Response, "resp_3".into(), "prompt_cache_options.comparison_response_id".into())]
    );
    assert_eq!(
        owned(
            r#"{"input":[{"role":"user","content":"x"},{"type":"item_reference","id":"msg_1"},{"id":"rs_2"},{"type":"reasoning","id":"rs_3","summary":[]}]}"#
        ),
        vec![
            (Item, "msg_1".into(), "input[1].id".into()),
            (Item, "rs_2".into(), "input[2].id".into()),
            (Item, "rs_3".into(), "input[3].id".into())
        ]
    );
    assert_eq!(
        owned(r#"{"items":[{"type":"item_reference","id":"msg_9"}]}"#),
        vec![(Item, "msg_9".into(), "items[0].id".into())]
    );
    // Escapes are decoded: the id is what the provider reads.
    assert_eq!(owned(r#"{"previous_response_id":"resp\u005f1"}"#)[0].1, "resp_1");
    // Null is absent; ids elsewhere are not references.
    assert!(owned(r#"{"previous_response_id":null,"conversation":null,"input":"text","metadata":{"id":"x"},"tools":[{"type":"function","name":"f","id":"t"}]}"#).is_empty());
    assert!(owned(r#"{"input":[{"content":[{"id":"part"}]}]}"#).is_empty());
}

#[test]
fn ids_of_the_wrong_type_are_malformed() {
    for (body, field) in [
        (r#"{"previous_response_id":["resp_1"]}"#, "previous_response_id"),
        (r#"{"previous_response_id":{"id":"resp_1"}}"#, "previous_response_id"),
        (r#"{"previous_response_id":1}"#, "previous_response_id"),
        (r#"{"previous_response_id":true}"#, "previous_response_id"),
        (r#"{"conversation":["conv_1"]}"#, "conversation"),
        (r#"{"conversation":{"id":["conv_1"]}}"#, "conversation.id"),
        (r#"{"conversation":{"id":7}}"#, "conversation.id"),
        (r#"{"prompt":"pmpt_1"}"#, "prompt"),
        (r#"{"prompt":{"id":["pmpt_1"]}}"#, "prompt.id"),
        (r#"{"prompt_cache_options":{"comparison_response_id":[1]}}"#, "prompt_cache_options.comparison_response_id"),
        (r#"{"input":[{"type":"item_reference","id":{"x":1}}]}"#, "input[0].id"),
    ] {
        match refs(body).malformed {
            Some(Malformed::NotAnId { field: f, .. }) => assert_eq!(f, field, "{body}"),
            other => panic!("{body}: {other:?}"),
        }
    }
}

#[test]
fn ids_no_consumer_can_own() {
    for (body, field) in [
        (
            r#"{"input":[{"role":"user","content":[{"type":"input_file","file_id":"file_1"}]}]}"#,
            "input[0].content[0].file_id",
        ),
        (
            r#"{"input":[{"role":"user","content":[{"type":"input_image","file_id":"file_1"}]}]}"#,
            "input[0].content[0].file_id",
        ),
        (
            r#"{"prompt":{"id":"p","variables":{"doc":{"type":"input_file","file_id":"file_2"}}}}"#,
            "prompt.variables.doc.file_id",
        ),
        (r#"{"tools":[{"type":"file_search","vector_store_ids":["vs_1"]}]}"#, "tools[0].vector_store_ids[0]"),
        (r#"{"tools":[{"type":"code_interpreter","container":"cntr_1"}]}"#, "tools[0].container"),
        (
            r#"{"tools":[{"type":"code_interpreter","container":{"type":"auto","file_ids":["file_3"]}}]}"#,
            "tools[0].container.file_ids[0]",
        ),
        (
            r#"{"tools":[{"type":"shell","environment":{"type":"container_reference","container_id":"cntr_2"}}]}"#,
            "tools[0].environment.container_id",
        ),
        (
            r#"{"tools":[{"type":"shell","environment":{"type":"container_auto","skills":[{"type":"skill_reference","skill_id":"sk_1"}]}}]}"#,
            "tools[0].environment.skills[0].skill_id",
        ),
        (
            r#"{"tools":[{"type":"image_generation","input_image_mask":{"file_id":"file_4"}}]}"#,
            "tools[0].input_image_mask.file_id",
        ),
        (r#"{"messages":[{"role":"assistant","audio":{"id":"audio_1"}}]}"#, "messages[0].audio.id"),
        (
            r#"{"messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file_5"}}]}]}"#,
            "messages[0].content[0].file.file_id",
        ),
        (
            r#"{"input":[{"type":"code_interpreter_call","id":"ci_1","container_id":"cntr_3"}]}"#,
            "input[0].container_id",
        ),
        (r#"{"x":{"file_ids":"file_6"}}"#, "x.file_ids"),
        (r#"{"x":{"file_id":7}}"#, "x.file_id"),
    ] {
        assert_eq!(refs(body).unownable.as_deref(), Some(field), "{body}");
    }
    // URLs, nulls, empty lists and free-form JSON are not ids.
    for body in [
        r#"{"input":[{"role":"user","content":[{"type":"input_image","image_url":"https://x/y.png","file_id":null},{"type":"input_file","file_url":"https://x/f.pdf"}]}]}"#,
        r#"{"tools":[{"type":"code_interpreter","container":{"type":"auto","file_ids":[]}}]}"#,
        r#"{"metadata":{"file_id":"file_1","container":"c"}}"#,
        r#"{"text":{"format":{"type":"json_schema","schema":{"properties":{"file_id":{"type":"string","default":"f"}}}}}}"#,
        r#"{"tools":[{"type":"function","name":"f","parameters":{"properties":{"file_id":{"const":"file_1"}}}}]}"#,
        r#"{"audio":{"voice":"alloy","format":"wav"}}"#,
    ] {
        assert_eq!(refs(body).unownable, None, "{body}");
    }
}

#[test]
fn prompts() {
    assert_eq!(refs(r#"{"prompt":{"id":"pmpt_1","version":"2"}}"#).prompt.as_deref(), Some("pmpt_1"));
    assert_eq!(refs(r#"{"prompt":null}"#).prompt, None);
}

#[test]
fn mcp_types() {
    assert!(refs(r#"{"tools":[{"type":"mcp","server_label":"a"}]}"#).mcp);
    assert!(refs(r#"{"input":[{"type":"mcp_approval_response","approval_request_id":"mcpr_1","approve":true}]}"#).mcp);
    assert!(!refs(r#"{"tools":[{"type":"function"}],"tool_choice":{"type":"mcp","server_label":"a"}}"#).mcp);
    for (body, field) in [
        (r#"{"tools":[{"type":"MCP"}]}"#, "tools[0].type"),
        (r#"{"tools":[{"type":"mcp "}]}"#, "tools[0].type"),
        (r#"{"tools":[{"type":" Mcp"}]}"#, "tools[0].type"),
        (r#"{"tools":[{"type":"mcp\u00a0"}]}"#, "tools[0].type"),
        (r#"{"tools":[{"type":"mcp\n"}]}"#, "tools[0].type"),
        (r#"{"input":[{"type":"MCP_approval_response"}]}"#, "input[0].type"),
        (r#"{"input":[{"type":"mcp_call "}]}"#, "input[0].type"),
        (r#"{"tool_choice":{"type":"Mcp"}}"#, "tool_choice.type"),
    ] {
        assert_eq!(refs(body).malformed, Some(Malformed::LooseMcpType { field: field.into() }), "{body}");
    }
    for (body, field) in
        [(r#"{"tools":[{"Type":"mcp"}]}"#, "tools[0].Type"), (r#"{"tools":[{"type ":"mcp"}]}"#, "tools[0].type ")]
    {
        assert_eq!(refs(body).malformed, Some(Malformed::LooseTypeKey { field: field.into() }), "{body}");
    }
    // Escaped exact spellings are the exact type.
    assert!(refs(r#"{"tools":[{"type":"m\u0063p"}]}"#).mcp);
    // A tool definition outside `tools` cannot be governed there.
    for (body, field) in [
        (
            r#"{"input":[{"type":"additional_tools","tools":[{"type":"mcp","server_url":"https://x"}]}]}"#,
            "input[0].tools[0].type",
        ),
        (r#"{"input":[{"type":"tool_search_output","tools":[{"type":"mcp"}]}]}"#, "input[0].tools[0].type"),
        (r#"{"input":[{"type":"mcp","server_label":"x"}]}"#, "input[0].type"),
    ] {
        assert_eq!(refs(body).nested_mcp_tool.as_deref(), Some(field), "{body}");
    }
    assert_eq!(
        refs(r#"{"tool_choice":{"type":"allowed_tools","tools":[{"type":"mcp","server_label":"a"}]}}"#).nested_mcp_tool,
        None
    );
    // Schemas are free-form: their `type`s are not read.
    assert_eq!(refs(r#"{"tools":[{"type":"function","parameters":{"type":"MCP"}}]}"#).malformed, None);
}

#[test]
fn strings_are_scanned_eight_bytes_at_a_time_without_missing_a_byte() {
    for len in 0..40 {
        for (c, ok) in [
            ("\"", false),
            ("\\", false),
            ("\u{1}", false),
            ("\u{1f}", false),
            (" ", true),
            ("é", true),
            ("\u{7f}", true),
        ] {
            let text = format!("{}{}{}", "a".repeat(len), c, "z".repeat(len % 9 + 1));
            let body = format!("{{\"k\":{}}}", serde_json::Value::String(text.clone()));
            assert!(scan(body.as_bytes()).is_ok(), "{body:?}");
            // Raw (unescaped) in the string: quotes end it, backslashes escape, controls are invalid.
            let raw = format!("{{\"k\":\"{text}\"}}");
            assert_eq!(scan(raw.as_bytes()).is_ok(), ok, "{raw:?}");
        }
    }
}
