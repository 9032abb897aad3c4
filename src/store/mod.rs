//! Runtime stores: what the gateway learns while it runs and must remember across requests and
//! configuration reloads. Who owns which Responses object ([`ownership`]), the MCP tool lists
//! seen and accepted ([`pins`]), rate-limit and budget counters ([`ratelimit`]) — each in this
//! process, or shared by every gateway of a cluster through [`redis`] ([`cluster`]: ownership
//! and pins on Redis).

pub mod cluster;
pub mod ownership;
pub mod pins;
pub mod ratelimit;
pub mod redis;
