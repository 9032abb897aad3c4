//! What the gateway tells operators about its traffic: Prometheus [`metrics`] (families and
//! handles resolved once per route, consumer and LLM target) and the JSON [`access_log`].

pub mod access_log;
pub mod metrics;
