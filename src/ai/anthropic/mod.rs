//! Anthropic's Messages API: its usage fields, and the translation between OpenAI's Chat
//! Completions and Messages — requests ([`request`]), JSON answers and errors ([`response`]),
//! and SSE streams ([`stream`]) — for OpenAI-format clients of an Anthropic target.
//!
//! The mapping follows Anthropic's and OpenAI's API references (and LiteLLM where they are
//! silent), not Kong's driver: every system prompt is kept, stop reasons and tool calls are
//! mapped in streams too, and what has no faithful translation is refused with a 400 naming
//! the field instead of being dropped.

pub mod answer;
mod json;
pub mod request;
pub mod response;
pub mod stream;
mod usage;

pub use usage::AnthropicUsage;

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" | "model_context_window_exceeded" | "pause_turn" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// OpenAI's error `type` and `code` for an Anthropic error type, and the status an OpenAI
/// client gets (Anthropic's 529 `overloaded_error` is not an HTTP status SDKs know: 503).
pub fn openai_error(status: u16, anthropic_type: &str) -> (u16, &'static str, Option<&'static str>) {
    let status = if status == 529 { 503 } else { status };
    let (kind, code) = match anthropic_type {
        "invalid_request_error" => ("invalid_request_error", None),
        "authentication_error" => ("authentication_error", Some("invalid_api_key")),
        "billing_error" => ("insufficient_quota", Some("insufficient_quota")),
        "permission_error" => ("permission_error", None),
        "not_found_error" => ("invalid_request_error", Some("not_found")),
        "request_too_large" => ("invalid_request_error", Some("request_too_large")),
        "rate_limit_error" => ("rate_limit_error", Some("rate_limit_exceeded")),
        "timeout_error" => ("timeout", None),
        "overloaded_error" => ("server_error", Some("overloaded")),
        _ if status >= 500 => ("server_error", None),
        _ => ("invalid_request_error", None),
    };
    (status, kind, code)
}

/// Anthropic's error `type` for a status (the gateway's own refusals on Anthropic-format routes).
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons() {
        assert_eq!(finish_reason("end_turn"), "stop");
        assert_eq!(finish_reason("stop_sequence"), "stop");
        assert_eq!(finish_reason("max_tokens"), "length");
        assert_eq!(finish_reason("tool_use"), "tool_calls");
        assert_eq!(finish_reason("refusal"), "content_filter");
        assert_eq!(finish_reason("something_new"), "stop");
    }

    #[test]
    fn errors() {
        assert_eq!(openai_error(529, "overloaded_error"), (503, "server_error", Some("overloaded")));
        assert_eq!(openai_error(429, "rate_limit_error").0, 429);
        assert_eq!(openai_error(400, "invalid_request_error"), (400, "invalid_request_error", None));
        assert_eq!(error_type_for_status(404), "not_found_error");
        assert_eq!(error_type_for_status(502), "api_error");
    }
}
