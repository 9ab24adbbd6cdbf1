//! What the proxy reports about the traffic it carries: metrics, and the trace context of each request.

pub mod access_log;
pub mod metrics;
pub mod tap;
pub mod trace;
