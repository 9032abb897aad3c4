//! The vocabulary the rest of aigate shares, depending on nothing of aigate's own: the ids of
//! configured entities, the kinds of provider objects ([`ObjectKind`]), where an upstream is
//! ([`Endpoint`], [`Timeouts`]), configuration [`problems`], UTC [`calendar`] days, request
//! [`path`]s and query strings ([`query`]), address blocks ([`net`]), the credentials the gateway
//! holds, kept out of answers ([`secrets`]), and an operator's configured [`Secret`] (compared in
//! constant time).

pub mod calendar;
pub mod endpoint;
pub mod ids;
pub mod net;
pub mod objects;
pub mod path;
pub mod problems;
pub mod query;
pub mod secret;
pub mod secrets;

pub use endpoint::{split_host_port, Endpoint, Timeouts};
pub use ids::{ConsumerId, RouteId, ServiceId};
pub use objects::{is_object_id, ObjectKind};
pub use secret::Secret;
