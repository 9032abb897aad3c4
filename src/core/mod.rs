//! The vocabulary the rest of aigate shares, depending on nothing of aigate's own: the ids of
//! configured entities, where an upstream is ([`Endpoint`], [`Timeouts`]), configuration
//! [`problems`], request [`path`]s and query strings ([`query`]), address blocks ([`net`]), and
//! the credentials the gateway holds, kept out of answers ([`secrets`]).

pub mod endpoint;
pub mod ids;
pub mod net;
pub mod path;
pub mod problems;
pub mod query;
pub mod secrets;

pub use endpoint::{split_host_port, Endpoint, Timeouts};
pub use ids::{ConsumerId, RouteId, ServiceId};
