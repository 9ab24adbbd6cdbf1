//! What the proxy reports about the traffic it carries: metrics, and the tracing to come.

pub mod metrics;
