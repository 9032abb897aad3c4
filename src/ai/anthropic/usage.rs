//! Anthropic's token counts and how they map to aigate's token types. Anthropic's
//! `input_tokens` leaves out the tokens read from or written to the prompt cache; OpenAI's
//! input includes its cached tokens. So that `input` means the same for every provider:
//!
//! | aigate | Anthropic |
//! |---|---|
//! | `input` | `input_tokens + cache_creation_input_tokens + cache_read_input_tokens` |
//! | `cached` | `cache_read_input_tokens` |
//! | `cache_write` | `cache_creation_input_tokens` |
//! | `output` | `output_tokens` |
//! | `total` | `input + output` |

use serde::Deserialize;

use crate::ai::usage::Usage;

/// Token counts as Anthropic reports them; in a stream, `message_start` gives the input and
/// cache counts and each `message_delta` the cumulative output (and sometimes input again).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct AnthropicUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Take the counts a later report gives (they are totals, not increments).
    pub fn update(&mut self, later: &AnthropicUsage) {
        let keep = |old: &mut Option<u64>, new: Option<u64>| {
            if new.is_some() {
                *old = new;
            }
        };
        keep(&mut self.input_tokens, later.input_tokens);
        keep(&mut self.output_tokens, later.output_tokens);
        keep(&mut self.cache_creation_input_tokens, later.cache_creation_input_tokens);
        keep(&mut self.cache_read_input_tokens, later.cache_read_input_tokens);
    }

    /// aigate's usage, when both input and output were reported (never guessed).
    pub fn exact(&self) -> Option<Usage> {
        let cache_write = self.cache_creation_input_tokens.unwrap_or(0);
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let input = self.input_tokens? + cache_write + cached;
        let output = self.output_tokens?;
        Some(Usage { input, output, total: input + output, cached, cache_write, reasoning: 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_counts_are_input() {
        let u: AnthropicUsage = serde_json::from_str(
            r#"{"input_tokens":25,"output_tokens":15,"cache_creation_input_tokens":100,"cache_read_input_tokens":40,"service_tier":"standard"}"#,
        )
        .unwrap();
        assert_eq!(
            u.exact(),
            Some(Usage { input: 165, output: 15, total: 180, cached: 40, cache_write: 100, reasoning: 0 })
        );
        let partial: AnthropicUsage = serde_json::from_str(r#"{"input_tokens":25}"#).unwrap();
        assert_eq!(partial.exact(), None);
    }

    #[test]
    fn later_totals_replace_earlier_ones() {
        let mut u: AnthropicUsage =
            serde_json::from_str(r#"{"input_tokens":25,"output_tokens":1,"cache_read_input_tokens":3}"#).unwrap();
        u.update(&serde_json::from_str(r#"{"output_tokens":15}"#).unwrap());
        u.update(&serde_json::from_str(r#"{"output_tokens":20}"#).unwrap());
        assert_eq!(u.exact().map(|x| (x.input, x.output, x.cached)), Some((28, 20, 3)));
    }
}
