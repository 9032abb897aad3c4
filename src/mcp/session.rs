//! MCP session ids bound to the consumer that created them. The gateway hands the client
//! `<server's id>.<tag>`, where the tag is an HMAC-SHA256 (truncated to 128 bits) of the
//! server's id, the MCP server and the consumer under the gateway's secret; on the way in it
//! checks the tag for the consumer presenting the id and gives the server its own id back. So
//! another consumer's id — or a forged one — is refused, and every gateway node sharing the
//! secret (`cluster_secret`) checks ids the others issued without shared memory.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use subtle::ConstantTimeEq;

/// The tag's length in bytes (22 characters of base64url).
const TAG_BYTES: usize = 16;

pub struct SessionCodec {
    key: hmac::Key,
}

impl SessionCodec {
    pub fn new(secret: &[u8]) -> SessionCodec {
        SessionCodec { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    fn tag(&self, server_id: &str, binding: &str) -> [u8; TAG_BYTES] {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in [b"aigate-mcp-session\0".as_slice(), binding.as_bytes(), b"\0", server_id.as_bytes()] {
            ctx.update(part);
        }
        let full = ctx.sign();
        let mut out = [0u8; TAG_BYTES];
        out.copy_from_slice(&full.as_ref()[..TAG_BYTES]);
        out
    }

    /// The id the client sees for the server's `server_id`, bound to `binding` (the MCP
    /// server and the consumer).
    pub fn wrap(&self, server_id: &str, binding: &str) -> String {
        format!("{server_id}.{}", URL_SAFE_NO_PAD.encode(self.tag(server_id, binding)))
    }

    /// The server's id inside `presented`, if its tag is right for `binding`.
    pub fn unwrap<'a>(&self, presented: &'a str, binding: &str) -> Option<&'a str> {
        if !presented.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return None;
        }
        let (server_id, tag) = presented.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let expected = self.tag(server_id, binding);
        (tag.len() == TAG_BYTES && bool::from(tag.as_slice().ct_eq(&expected))).then_some(server_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bound_to_their_consumer_and_secret() {
        let a = SessionCodec::new(b"0123456789abcdef0123456789abcdef");
        let id = a.wrap("3b98.11", "svc\0alex");
        assert!(id.starts_with("3b98.11."));
        assert!(id.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        assert_eq!(a.unwrap(&id, "svc\0alex"), Some("3b98.11"));
        assert_eq!(a.unwrap(&id, "svc\0bo"), None);
        assert_eq!(a.unwrap(&id, "other\0alex"), None);
        assert_eq!(a.unwrap("3b98.11", "svc\0alex"), None);
        assert_eq!(a.unwrap("plain", "svc\0alex"), None);
        // Another node with the same secret accepts it; one with another secret does not.
        assert_eq!(SessionCodec::new(b"0123456789abcdef0123456789abcdef").unwrap(&id, "svc\0alex"), Some("3b98.11"));
        assert_eq!(SessionCodec::new(b"another secret, 32 bytes long...").unwrap(&id, "svc\0alex"), None);
        let mut tampered = id.clone();
        tampered.replace_range(0..1, "4");
        assert_eq!(a.unwrap(&tampered, "svc\0alex"), None);
    }
}
