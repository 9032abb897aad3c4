//! Token counts, as every provider's usage is read into them.

/// Token counts exactly as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// All input tokens, cached ones included (OpenAI's meaning, for every provider).
    pub input: u64,
    pub output: u64,
    pub total: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cached: u64,
    /// Input tokens written to the prompt cache (Anthropic's cache creation).
    pub cache_write: u64,
    pub reasoning: u64,
}
