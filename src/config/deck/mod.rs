//! The decK format as users write it: the file schema ([`schema`]), decK's environment
//! templating ([`template`]), and line numbers for places in a file ([`lines`]).

pub mod lines;
pub mod schema;
pub mod template;
