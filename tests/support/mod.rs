//! Shared test support: certificates made at test time, a local OpenAI-like upstream, a real
//! MCP server (official Python SDK), and a harness that runs the real gateway binary.
#![allow(dead_code)]

pub mod certs;
pub mod flaky_upstream;
pub mod gateway;
pub mod idp;
pub mod mcp_bed;
pub mod mcp_server;
pub mod mock_anthropic;
pub mod mock_openai;
pub mod prom;
pub mod python;
pub mod raw;
pub mod redis;
