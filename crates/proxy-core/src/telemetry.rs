//! What the proxy reports about the traffic it carries: metrics, and the trace context of each request.

pub mod metrics;
pub mod tap;
pub mod trace;
