use super::*;
use Operation::*;
use SurfaceRefusal::*;

fn r(method: &str, path: &str) -> Result<Operation, SurfaceRefusal> {
    resolve(RouteType::Responses, method, path)
}

fn c(method: &str, path: &str) -> Result<Operation, SurfaceRefusal> {
    resolve(RouteType::Chat, method, path)
}

#[test]
fn responses_create_in_every_form_the_sdks_use() {
    for p in ["", "/", "/responses", "/v1/responses"] {
        assert_eq!(r("POST", p), Ok(CreateResponse), "{p}");
        assert_eq!(r("GET", p), Err(MethodNotAllowed { allow: "POST" }), "{p}");
    }
    for p in ["/compact", "/responses/compact", "/v1/responses/compact"] {
        assert_eq!(r("POST", p), Ok(CompactResponse), "{p}");
    }
    for p in ["/input_tokens", "/responses/input_tokens", "/v1/responses/input_tokens"] {
        assert_eq!(r("POST", p), Ok(CountInputTokens), "{p}");
        assert_eq!(r("GET", p), Err(MethodNotAllowed { allow: "POST" }));
    }
}

#[test]
fn responses_by_id() {
    for prefix in ["", "/responses", "/v1/responses"] {
        let id = "resp_abc-1";
        assert_eq!(r("GET", &format!("{prefix}/{id}")), Ok(GetResponse(id.into())));
        assert_eq!(r("DELETE", &format!("{prefix}/{id}")), Ok(DeleteResponse(id.into())));
        assert_eq!(r("POST", &format!("{prefix}/{id}")), Err(MethodNotAllowed { allow: "GET, DELETE" }));
        assert_eq!(r("POST", &format!("{prefix}/{id}/cancel")), Ok(CancelResponse(id.into())));
        assert_eq!(r("GET", &format!("{prefix}/{id}/input_items")), Ok(ListInputItems(id.into())));
        assert_eq!(r("DELETE", &format!("{prefix}/{id}/input_items")), Err(MethodNotAllowed { allow: "GET" }));
    }
}

#[test]
fn anything_else_is_not_found() {
    for p in [
        "/resp_1/",
        "/resp_1/cancel/",
        "/resp_1/input_items/x",
        "/resp_1/..%2Fresp_2",
        "/resp_1/%2E%2E/resp_2",
        "/resp_1%2Fcancel",
        "/resp_1;x=1",
        "/resp.1",
        "/v1/models",
        "/v1",
        "/responses/",
        "/v1/responses/resp_1/cancel/extra",
        "/chat/completions",
        "/v1/chat/completions",
        "/files/file_1",
        "else",
        &format!("/{}", "x".repeat(257)),
    ] {
        for m in ["GET", "POST", "DELETE"] {
            assert_eq!(r(m, p), Err(NotFound), "{m} {p}");
        }
    }
}

#[test]
fn one_segment_is_an_id_and_ownership_decides() {
    // `/models` has the shape of an id: the gateway never recorded it, so it is refused as
    // a response nobody owns (and never read as another API's path).
    assert_eq!(r("GET", "/models"), Ok(GetResponse("models".into())));
    assert_eq!(r("POST", "/models"), Err(MethodNotAllowed { allow: "GET, DELETE" }));
    assert_eq!(
        Operation::GetResponse("models".into()).upstream_path("/v1/responses", Dialect::OpenAi).as_deref(),
        Some("/v1/responses/models")
    );
}

#[test]
fn methods_a_provider_never_sees() {
    for m in ["OPTIONS", "PUT", "PATCH", "TRACE", "CONNECT", "HEAD"] {
        assert!(matches!(r(m, ""), Err(MethodNotAllowed { .. })), "{m}");
        assert!(matches!(r(m, "/resp_1"), Err(MethodNotAllowed { .. })), "{m}");
        assert!(matches!(r(m, "/conversations/conv_1"), Err(MethodNotAllowed { .. })), "{m}");
        assert!(matches!(c(m, "/chat/completions"), Err(MethodNotAllowed { .. })), "{m}");
        assert!(matches!(c(m, "/chatcmpl-1"), Err(MethodNotAllowed { .. })), "{m}");
    }
}

#[test]
fn conversations() {
    for q in ["", "/v1"] {
        assert_eq!(r("POST", &format!("{q}/conversations")), Ok(CreateConversation));
        assert_eq!(r("GET", &format!("{q}/conversations")), Err(MethodNotAllowed { allow: "POST" }));
        assert_eq!(r("GET", &format!("{q}/conversations/conv_1")), Ok(GetConversation("conv_1".into())));
        assert_eq!(r("POST", &format!("{q}/conversations/conv_1")), Ok(UpdateConversation("conv_1".into())));
        assert_eq!(r("DELETE", &format!("{q}/conversations/conv_1")), Ok(DeleteConversation("conv_1".into())));
        assert_eq!(r("GET", &format!("{q}/conversations/conv_1/items")), Ok(ListConversationItems("conv_1".into())));
        assert_eq!(r("POST", &format!("{q}/conversations/conv_1/items")), Ok(CreateConversationItems("conv_1".into())));
        assert_eq!(
            r("GET", &format!("{q}/conversations/conv_1/items/msg_1")),
            Ok(GetConversationItem("conv_1".into(), "msg_1".into()))
        );
        assert_eq!(
            r("DELETE", &format!("{q}/conversations/conv_1/items/msg_1")),
            Ok(DeleteConversationItem("conv_1".into(), "msg_1".into()))
        );
        assert_eq!(r("GET", &format!("{q}/conversations/conv_1/items/msg_1/x")), Err(NotFound));
        assert_eq!(r("GET", &format!("{q}/conversations/conv.1")), Err(NotFound));
    }
    // Not under the Responses prefix, and never on chat routes.
    assert_eq!(r("POST", "/v1/responses/conversations"), Err(MethodNotAllowed { allow: "GET, DELETE" }));
    assert_eq!(r("GET", "/v1/responses/conversations/conv_1"), Err(NotFound));
    assert_eq!(c("POST", "/conversations"), Err(NotFound));
    assert_eq!(c("POST", "/v1/conversations"), Err(NotFound));
}

#[test]
fn chat() {
    for p in ["", "/", "/chat/completions", "/v1/chat/completions"] {
        assert_eq!(c("POST", p), Ok(CreateChatCompletion), "{p}");
        // The list of stored completions holds every tenant's.
        assert_eq!(c("GET", p), Err(MethodNotAllowed { allow: "POST" }), "{p}");
    }
    for prefix in ["", "/chat/completions", "/v1/chat/completions"] {
        let id = "chatcmpl-Ab1";
        assert_eq!(c("GET", &format!("{prefix}/{id}")), Ok(GetChatCompletion(id.into())));
        assert_eq!(c("POST", &format!("{prefix}/{id}")), Ok(UpdateChatCompletion(id.into())));
        assert_eq!(c("DELETE", &format!("{prefix}/{id}")), Ok(DeleteChatCompletion(id.into())));
        assert_eq!(c("GET", &format!("{prefix}/{id}/messages")), Ok(ListChatMessages(id.into())));
        assert_eq!(c("POST", &format!("{prefix}/{id}/messages")), Err(MethodNotAllowed { allow: "GET" }));
    }
    for p in ["/responses", "/v1/responses", "/v1", "/chat", "/v1/chat", "/chatcmpl-1/x", "/chat/completions/a%2Fb"] {
        assert_eq!(c("GET", p), Err(NotFound), "{p}");
    }
}

#[test]
fn upstream_paths() {
    let b = "/v1/responses";
    assert_eq!(CreateResponse.upstream_path(b, Dialect::OpenAi).as_deref(), Some("/v1/responses"));
    assert_eq!(CompactResponse.upstream_path(b, Dialect::OpenAi).as_deref(), Some("/v1/responses/compact"));
    assert_eq!(CountInputTokens.upstream_path(b, Dialect::OpenAi).as_deref(), Some("/v1/responses/input_tokens"));
    assert_eq!(CancelResponse("r".into()).upstream_path(b, Dialect::OpenAi).as_deref(), Some("/v1/responses/r/cancel"));
    assert_eq!(CreateConversation.upstream_path(b, Dialect::OpenAi).as_deref(), Some("/v1/conversations"));
    assert_eq!(
        DeleteConversationItem("c".into(), "i".into())
            .upstream_path("/openai/v1/responses/", Dialect::OpenAi)
            .as_deref(),
        Some("/openai/v1/conversations/c/items/i")
    );
    assert_eq!(CreateConversation.upstream_path("/custom/llm", Dialect::OpenAi), None);
    let chat = "/v1/chat/completions";
    assert_eq!(
        ListChatMessages("c".into()).upstream_path(chat, Dialect::OpenAi).as_deref(),
        Some("/v1/chat/completions/c/messages")
    );
}

#[test]
fn what_each_operation_needs() {
    assert_eq!(CreateResponse.body(), BodyRule::Inference { options: true });
    assert_eq!(CountInputTokens.body(), BodyRule::Inference { options: false });
    assert!(!CountInputTokens.has_usage() && CompactResponse.has_usage());
    assert_eq!(CancelResponse("r".into()).body(), BodyRule::Empty);
    assert_eq!(CreateConversationItems("c".into()).body(), BodyRule::Json);
    assert_eq!(GetConversationItem("c".into(), "i".into()).owned_object(), Some((ObjectKind::Conversation, "c")));
    assert_eq!(DeleteConversationItem("c".into(), "i".into()).deletes(), Some((ObjectKind::Item, "i")));
    assert_eq!(UpdateChatCompletion("x".into()).owned_object(), Some((ObjectKind::ChatCompletion, "x")));
    assert_eq!(CompactResponse.records(), Records::Response);
    assert_eq!(ListInputItems("r".into()).records(), Records::ItemList);
}

#[test]
fn anthropic_format_offers_messages_and_token_counting_only() {
    let a = |m: &str, p: &str| resolve_in(Dialect::Anthropic, RouteType::Chat, m, p);
    for p in ["", "/", "/messages", "/v1/messages", "/v1/messages/"] {
        assert_eq!(a("POST", p), Ok(CreateMessage), "{p}");
        assert_eq!(a("GET", p), Err(NotFound), "{p}");
    }
    for p in ["/count_tokens", "/messages/count_tokens", "/v1/messages/count_tokens"] {
        assert_eq!(a("POST", p), Ok(CountMessageTokens), "{p}");
    }
    // Batches, files and models would be every tenant's (or the account's).
    for p in ["/v1/messages/batches", "/v1/messages/batches/msgbatch_1", "/v1/files", "/v1/models", "/v1/v1/messages"] {
        assert_eq!(a("POST", p), Err(NotFound), "{p}");
        assert_eq!(a("GET", p), Err(NotFound), "{p}");
    }
    assert!(CreateMessage.has_usage() && !CountMessageTokens.has_usage());
    assert_eq!(CreateMessage.records(), Records::Nothing);
    let b = "/v1/messages";
    assert_eq!(CountMessageTokens.upstream_path(b, Dialect::Anthropic).as_deref(), Some("/v1/messages/count_tokens"));
    // An Anthropic target serves a (translated) chat create, nothing stored.
    assert_eq!(CreateChatCompletion.upstream_path(b, Dialect::Anthropic).as_deref(), Some(b));
    assert_eq!(GetChatCompletion("c".into()).upstream_path(b, Dialect::Anthropic), None);
    assert_eq!(CreateMessage.upstream_path("/v1/chat/completions", Dialect::OpenAi), None);
}

#[test]
fn azure_forms_are_the_same_operations() {
    assert_eq!(c("POST", "/openai/deployments/gpt-4o/chat/completions"), Ok(CreateChatCompletion));
    assert_eq!(
        c("GET", "/openai/deployments/gpt-4o/chat/completions"),
        Err(MethodNotAllowed { allow: "POST" }),
        "no list of every tenant's completions"
    );
    assert_eq!(c("POST", "/openai/deployments/a/b/chat/completions"), Err(NotFound));
    assert_eq!(c("POST", "/openai/deployments/../chat/completions"), Err(NotFound));
    assert_eq!(c("POST", "/openai/v1/chat/completions"), Ok(CreateChatCompletion));
    assert_eq!(c("GET", "/openai/v1/chat/completions"), Err(MethodNotAllowed { allow: "POST" }));
    assert_eq!(c("GET", "/openai/v1/chat/completions/chatcmpl-1"), Ok(GetChatCompletion("chatcmpl-1".into())));
    for p in ["/openai/responses", "/openai/v1/responses"] {
        assert_eq!(r("POST", p), Ok(CreateResponse), "{p}");
        assert_eq!(r("POST", &format!("{p}/resp_1/cancel")), Ok(CancelResponse("resp_1".into())), "{p}");
        assert_eq!(r("GET", &format!("{p}/resp_1/x")), Err(NotFound), "{p}");
    }
}
