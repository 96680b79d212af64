//! Conversions between plumb.v1 wire types and the agent's own types; the only place that
//! knows both. The session speaks [`Outgoing`](crate::message::Outgoing) and
//! [`Incoming`](crate::message::Incoming); the stream converts at its edge: `inbound` what the
//! controller sends, `outbound` what the agent sends.

mod ahead;
mod inbound;
mod outbound;

pub use ahead::ReadAhead;
pub use inbound::{Inbound, Malformed};
pub use outbound::{outgoing_to_proto, split};
