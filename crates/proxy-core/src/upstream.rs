//! Everything on the upstream side of a request: clusters and their endpoints,
//! connection pools, circuit breakers, outlier detection, upstream TLS and mirrors.

pub mod breaker;
pub mod cluster;
pub mod endpoint;
pub mod mirror;
pub mod outlier;
pub mod resilience;
pub mod tls;
pub mod tries;
