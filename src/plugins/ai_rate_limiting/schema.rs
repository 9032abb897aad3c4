//! Kong's ai-rate-limiting-advanced schema (3.8–3.14, provider mode), as decK files write it.

use serde::Deserialize;

use crate::plugins::limits::redis_record::EeRedisSchema;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiRateLimitingSchema {
    pub llm_providers: Option<Vec<ProviderSchema>>,
    /// 3.14's policy mode.
    pub policies: Option<serde_yaml::Value>,
    pub window_type: Option<String>,
    pub identifier: Option<String>,
    pub tokens_count_strategy: Option<String>,
    pub strategy: Option<String>,
    pub sync_rate: Option<f64>,
    /// Kong's shared-memory zone: aigate's counters live in the process, so it changes nothing.
    pub dictionary_name: Option<String>,
    pub namespace: Option<String>,
    pub redis: Option<EeRedisSchema>,
    pub hide_client_headers: Option<bool>,
    pub retry_after_jitter_max: Option<f64>,
    pub header_name: Option<String>,
    pub path: Option<String>,
    /// Only affects the `requestPrompt` provider, which aigate refuses.
    pub disable_penalty: Option<bool>,
    pub request_prompt_count_function: Option<String>,
    pub custom_cost_count_function: Option<String>,
    /// Fractional costs: aigate counts cost in exact integer micro-units anyway.
    pub decrease_by_fractions_in_redis: Option<bool>,
    pub error_code: Option<f64>,
    pub error_message: Option<String>,
    pub error_hide_providers: Option<bool>,
    pub llm_format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSchema {
    pub name: String,
    /// Arrays since Kong 3.10; one number before.
    pub limit: OneOrMany,
    pub window_size: OneOrMany,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(f64),
    Many(Vec<f64>),
}

impl OneOrMany {
    pub fn values(&self) -> Vec<f64> {
        match self {
            OneOrMany::One(v) => vec![*v],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}
