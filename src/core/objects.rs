//! The kinds of provider-side objects the gateway keeps owners for: what an id names decides
//! which store entry vouches for it, so a response id can never pass for a conversation's.

/// A kind of object a provider stores and an LLM request can name by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// A Responses-API response (`resp_…`, and `POST /responses/compact` answers).
    Response,
    /// A Conversations-API conversation (`conv_…`).
    Conversation,
    /// An item of a response or a conversation (`msg_…`, `rs_…`, `fc_…`, `mcp_…`, …), named by
    /// `item_reference` and by the `id` of an item sent back in `input`.
    Item,
    /// A stored chat completion (`chatcmpl-…`).
    ChatCompletion,
    /// An MCP approval request the provider issued (`mcpr_…`), with its server and tool.
    McpApprovalRequest,
}

impl ObjectKind {
    /// A distinct byte per kind, for keys that must not collide across kinds.
    pub const fn tag(self) -> u8 {
        match self {
            ObjectKind::Response => b'r',
            ObjectKind::Conversation => b'c',
            ObjectKind::Item => b'i',
            ObjectKind::ChatCompletion => b'h',
            ObjectKind::McpApprovalRequest => b'a',
        }
    }
}

/// Whether `id` has the shape of a provider object id: 1 to 256 ASCII letters, digits, `_` or
/// `-`. Anything else (dots, `%`, `;`, slashes) is never an id, so it can never be read as a
/// path or a parameter by an upstream.
pub fn is_object_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 256 && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_grammar() {
        assert!(is_object_id("resp_0123abc"));
        assert!(is_object_id("chatcmpl-AbC"));
        for bad in ["", "resp.1", "resp%2F", "a;b", "a/b", "..", "résp", &"x".repeat(257)] {
            assert!(!is_object_id(bad), "{bad}");
        }
        assert!(is_object_id(&"x".repeat(256)));
    }
}
