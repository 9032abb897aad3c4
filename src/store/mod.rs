//! Runtime stores: what the gateway learns while it runs and must remember across requests and
//! configuration reloads, behind interfaces a shared backend can implement later. Who owns which
//! Responses object ([`ownership`]), and the MCP tool lists seen and accepted ([`pins`]).

pub mod ownership;
pub mod pins;
