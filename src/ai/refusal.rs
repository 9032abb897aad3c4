//! The answer to an LLM request the gateway will not forward: a 4xx in OpenAI's error envelope,
//! so SDKs show the reason.

use super::json_body::BodyError;

/// Why the gateway refuses an LLM request: a 4xx in OpenAI's error envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiRefusal {
    pub status: u16,
    pub message: String,
    /// OpenAI's `error.type`.
    pub kind: &'static str,
    /// OpenAI's `error.code`.
    pub code: &'static str,
}

impl AiRefusal {
    pub fn bad_request(message: impl Into<String>, code: &'static str) -> AiRefusal {
        AiRefusal { status: 400, message: message.into(), kind: "invalid_request_error", code }
    }
}

/// Kong's message for a body it cannot read as a JSON object.
pub const BAD_BODY: &str = "content-type header does not match request body, or bad JSON formatting";

impl From<BodyError> for AiRefusal {
    fn from(e: BodyError) -> AiRefusal {
        match e {
            BodyError::DuplicateField(_) => AiRefusal::bad_request(e.to_string(), "duplicate_field"),
            BodyError::NotAnObject => AiRefusal::bad_request(format!("{BAD_BODY}: {e}"), "invalid_json"),
            BodyError::Invalid(_) => AiRefusal::bad_request(format!("{BAD_BODY}: {e}"), "invalid_json"),
        }
    }
}
