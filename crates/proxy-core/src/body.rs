//! A request body on its way from the client to the upstream: read with a stall limit,
//! held back for a replay, and tracked until it has been sent whole.

pub mod client;
pub mod request;
