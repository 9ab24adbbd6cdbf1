//! Pure decisions on the request path, table-tested: no sockets, no tasks, no clocks but the caller's.
//!
//! Nothing here reaches the server, the upstream or the network (`make lint` checks it).
//! `explain` alone is off the request path: it runs `plan` for an operator's question.

pub mod authz;
pub mod balance;
pub mod explain;
pub mod filters;
pub mod headers;
pub mod plan;
pub mod retry;
pub mod route;
