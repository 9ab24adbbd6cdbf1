//! meshpy's data plane: an HTTP/1.1, HTTP/2 and TCP proxy with hot-swappable config, and no Python in it.
//!
//! [`Proxy`] is the whole public surface: create it from a bootstrap, `start`
//! it, `apply` snapshots, read `stats`, `shutdown`. Everything else is the
//! request path, one module per job:
//!
//! - `accept` binds sockets and accepts connections; `http` and `tcp` serve them with
//!   the state of their `listener`;
//! - `headers` holds the proxy header rules as pure functions;
//! - `authz` decides who may call on the path that `config::path` normalises, as pure functions;
//! - `body` and `request_body` are the bodies sent downstream and upstream;
//! - `route` picks a cluster by host and rules; `cluster` and `balance` an endpoint; `endpoint` pools its connections;
//! - `outlier` ejects failing endpoints and `breaker` caps what a cluster is sent;
//! - `slow` bounds slow clients: request-head, body-progress and send timeouts;
//!   `h2guard` closes HTTP/2 connections that flood control frames;
//! - `retry` decides retries and keeps budgets, `resilience` a cluster's faults and counters,
//!   `mirror` sends copies of requests;
//! - `error` maps every failure to a status code; `metrics` and `state` report;
//! - `identity` vets and holds the proxy's X.509-SVID; `spiffe` parses SPIFFE IDs;
//!   `tls` builds rustls configs; `inbound` and `upstream_tls` run the handshakes of
//!   each side; `csr` makes a key and a CSR for enrolment.

#![forbid(unsafe_code)]

mod accept;
mod admin;
pub mod authz;
pub mod balance;
mod body;
mod breaker;
mod client_body;
mod clock;
mod cluster;
mod csr;
mod endpoint;
pub mod error;
pub mod filters;
mod h2guard;
pub mod headers;
mod http;
mod identity;
mod inbound;
mod io;
mod listener;
mod metrics;
mod mirror;
mod outlier;
mod proxy;
mod request_body;
mod resilience;
mod retry;
mod rng;
pub mod route;
mod runtime;
mod slow;
pub mod spiffe;
mod state;
mod tcp;
mod tls;
mod upstream_tls;

pub use config::{Bootstrap, ConfigError, Snapshot};
pub use csr::generate_csr;
pub use identity::{certificate_info, CertificateInfo, IdentityError};
pub use proxy::{Error, Proxy};
/// The proxy's configuration types and their validation (the `proxy-config` crate).
pub use proxy_config as config;
pub use spiffe::SpiffeId;
