//! The id an answer announces in its first bytes: OpenAI writes `"id"` first in a response, a
//! conversation, a chat completion and each chunk of a chat stream, so the gateway can know
//! whose object it is before those bytes reach the client.

/// The top-level `"id"` of a JSON object whose first field it is, from its first bytes.
pub fn leading_id(b: &[u8]) -> Option<String> {
    let head = &b[..b.len().min(1024)];
    let at = memchr::memmem::find(head, b"\"id\"")?;
    if head[..at].iter().any(|c| !(c.is_ascii_whitespace() || *c == b'{')) || !head[..at].contains(&b'{') {
        return None;
    }
    let rest = head[at + 4..].trim_ascii_start().strip_prefix(b":")?;
    let rest = rest.trim_ascii_start().strip_prefix(b"\"")?;
    let end = memchr::memchr(b'"', rest)?;
    let id = std::str::from_utf8(&rest[..end]).ok()?;
    crate::core::is_object_id(id).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_field_only() {
        assert_eq!(leading_id(br#"{"id":"resp_1","object":"response"}"#).as_deref(), Some("resp_1"));
        assert_eq!(leading_id(b"{\n  \"id\" : \"conv_2\",").as_deref(), Some("conv_2"));
        assert_eq!(leading_id(br#"{"id":"chatcmpl-Ab"#), None, "not complete in these bytes");
        // An "id" further in (a list's first item) is not the answer's own.
        assert_eq!(leading_id(br#"{"object":"list","data":[{"id":"msg_1"}]}"#), None);
        assert_eq!(leading_id(br#"{"id":"a/b"}"#), None);
        assert_eq!(leading_id(br#""id":"x""#), None);
    }
}
