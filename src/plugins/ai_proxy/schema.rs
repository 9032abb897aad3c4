//! Kong's ai-proxy and ai-proxy-advanced schemas, as decK files write them. Every field Kong
//! has is here: those aigate cannot enforce are refused by `compile` unless at their defaults.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiProxyAdvancedSchema {
    pub targets: Vec<TargetSchema>,
    pub balancer: Option<BalancerSchema>,
    pub response_streaming: Option<String>,
    pub max_request_body_size: Option<u64>,
    pub model_name_header: Option<bool>,
    pub llm_format: Option<String>,
    pub genai_category: Option<String>,
    pub embeddings: Option<serde_yaml::Value>,
    pub vectordb: Option<serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiProxySchema {
    pub route_type: Option<String>,
    pub auth: Option<AuthSchema>,
    pub model: Option<ModelSchema>,
    pub logging: Option<LoggingSchema>,
    pub response_streaming: Option<String>,
    pub max_request_body_size: Option<u64>,
    pub model_name_header: Option<bool>,
    pub llm_format: Option<String>,
    pub genai_category: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSchema {
    pub route_type: Option<String>,
    pub auth: Option<AuthSchema>,
    pub model: Option<ModelSchema>,
    pub logging: Option<LoggingSchema>,
    pub weight: Option<u32>,
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSchema {
    pub header_name: Option<String>,
    pub header_value: Option<String>,
    pub param_name: Option<String>,
    pub param_value: Option<String>,
    pub param_location: Option<String>,
    #[serde(default)]
    pub allow_override: bool,
    pub azure_use_managed_identity: Option<serde_yaml::Value>,
    pub azure_client_id: Option<serde_yaml::Value>,
    pub azure_client_secret: Option<serde_yaml::Value>,
    pub azure_tenant_id: Option<serde_yaml::Value>,
    pub gcp_use_service_account: Option<serde_yaml::Value>,
    pub gcp_service_account_json: Option<serde_yaml::Value>,
    pub aws_access_key_id: Option<serde_yaml::Value>,
    pub aws_secret_access_key: Option<serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSchema {
    pub provider: String,
    pub name: Option<String>,
    /// Kong 3.14: the name clients ask for; the target sends its own `name`.
    pub model_alias: Option<String>,
    pub options: Option<OptionsSchema>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionsSchema {
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub upstream_url: Option<String>,
    pub upstream_path: Option<String>,
    pub input_cost: Option<f64>,
    pub output_cost: Option<f64>,
    pub anthropic_version: Option<serde_yaml::Value>,
    pub azure_instance: Option<serde_yaml::Value>,
    pub azure_api_version: Option<serde_yaml::Value>,
    pub azure_deployment_id: Option<serde_yaml::Value>,
    pub llama2_format: Option<serde_yaml::Value>,
    pub mistral_format: Option<serde_yaml::Value>,
    pub bedrock: Option<serde_yaml::Value>,
    pub gemini: Option<serde_yaml::Value>,
    pub huggingface: Option<serde_yaml::Value>,
    pub cohere: Option<serde_yaml::Value>,
    pub embeddings_dimensions: Option<serde_yaml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingSchema {
    #[serde(default)]
    pub log_statistics: bool,
    #[serde(default)]
    pub log_payloads: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalancerSchema {
    pub algorithm: Option<String>,
    pub retries: Option<u32>,
    pub failover_criteria: Option<Vec<String>>,
    pub connect_timeout: Option<u64>,
    pub read_timeout: Option<u64>,
    pub write_timeout: Option<u64>,
    pub hash_on_header: Option<String>,
    pub latency_strategy: Option<String>,
    pub tokens_count_strategy: Option<String>,
    pub slots: Option<u64>,
}
