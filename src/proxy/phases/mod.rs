//! The phases of a request, in the order they run:
//! `inbound` (route, size limits, authentication, authorization, rate limits, LLM checks:
//! `surface` decides the operation of the route's API) → `forward` (peer and
//! upstream request) → `body` (request body held back, checked, released) → `outbound`
//! (response headers and body, side view for accounting) → `failure` (retries, failover and
//! error answers) → `account` (metrics and access log). `respond` writes the gateway's own
//! answers; `remember` keeps what an answer tells the requests after it (owners, approvals,
//! tool lists); `headers` decides which headers cross the gateway (identity, forwarding,
//! provider account); `edges` handles HTTP/1 edges (`100 Continue`, lingering close, HTTP/1.0
//! streams); `mcp` and `mcp_check` are the MCP route's part of each phase (ai-mcp-proxy);
//! `limits` admits requests under their rate limits and budgets and charges what they used.

pub mod account;
pub mod authenticate;
pub mod body;
pub mod edges;
pub mod failure;
pub mod forward;
pub mod headers;
pub mod inbound;
pub mod limits;
pub mod mcp;
pub mod mcp_check;
pub mod outbound;
pub mod remember;
pub mod respond;
pub mod surface;
