//! Distributed tracing: the trace context a request carries, continued or started at each hop.

pub mod context;
