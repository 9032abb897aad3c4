//! Shared test support: certificates made at test time, a local OpenAI-like upstream, and a
//! harness that runs the real gateway binary.
#![allow(dead_code)]

pub mod certs;
pub mod gateway;
pub mod idp;
pub mod mock_openai;
pub mod prom;
pub mod python;
pub mod raw;
