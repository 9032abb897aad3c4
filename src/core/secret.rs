//! A secret from the configuration (an operator token): never shown by `Debug`, compared in
//! constant time.

#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The secret's bytes, for keying (never for display).
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Whether `given` is the secret (the time taken depends on the lengths only).
    pub fn matches(&self, given: &[u8]) -> bool {
        let mine = self.0.as_bytes();
        given.len() == mine.len() && given.iter().zip(mine).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_and_never_shows() {
        let s = Secret::new("op-token-0123456789".into());
        assert!(s.matches(b"op-token-0123456789"));
        assert!(!s.matches(b"op-token-012345678"));
        assert!(!s.matches(b"op-token-0123456780"));
        assert_eq!(format!("{s:?}"), "<redacted>");
    }
}
