//! Kong's rate-limiting schema (3.x), as decK files write it, with the deprecated flat
//! `redis_*` fields that Kong still accepts beside the `redis` record.

use serde::Deserialize;

use crate::plugins::limits::redis_record::OssRedisSchema;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitingSchema {
    pub second: Option<f64>,
    pub minute: Option<f64>,
    pub hour: Option<f64>,
    pub day: Option<f64>,
    pub month: Option<f64>,
    pub year: Option<f64>,
    pub limit_by: Option<String>,
    pub header_name: Option<String>,
    pub path: Option<String>,
    pub policy: Option<String>,
    pub fault_tolerant: Option<bool>,
    pub redis: Option<OssRedisSchema>,
    pub hide_client_headers: Option<bool>,
    pub error_code: Option<f64>,
    pub error_message: Option<String>,
    pub sync_rate: Option<f64>,
    // Deprecated aliases of `redis.*` (removed in Kong 4.0).
    pub redis_host: Option<String>,
    pub redis_port: Option<u16>,
    pub redis_password: Option<String>,
    pub redis_username: Option<String>,
    pub redis_ssl: Option<bool>,
    pub redis_ssl_verify: Option<bool>,
    pub redis_server_name: Option<String>,
    pub redis_timeout: Option<u64>,
    pub redis_database: Option<i64>,
}
