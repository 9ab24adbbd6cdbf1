//! meshpy's data plane: an HTTP/1.1, HTTP/2 and TCP proxy with hot-swappable config, and no Python in it.
//!
//! [`Proxy`] is the whole public surface: create it from a bootstrap, `start`
//! it, `apply` snapshots, read `stats`, `shutdown`. Everything else is in layer
//! folders, each using only the layers listed after it (`make lint` checks it):
//!
//! - `proxy`, `admin`, `state` and `runtime` assemble the layers: plan-bind-commit
//!   of snapshots, the admin server, the stats it reports, worker threads;
//! - `server`: the listeners and what serves a client connection: accept, sniff,
//!   HTTP and TCP, the inbound mTLS handshake, slow-client limits;
//! - `upstream`: clusters, endpoints and their connection pools, circuit breakers,
//!   outlier detection, upstream TLS, mirrors;
//! - `body`: the request body on its way from client to upstream;
//! - `telemetry`: metrics (and, as they come, traces);
//! - `identity`: the proxy's X.509-SVID, rustls configs and peer verification;
//! - `policy`: pure decisions with no I/O: a request's plan (authorization, then
//!   route, timeouts, retries, mirrors, filters), load balancing, proxy headers;
//! - at the root, what every layer may use: `error` (every failure and its status
//!   code), `clock`, `rng` and `spiffe`; and `config`, the `proxy-config` crate.

#![forbid(unsafe_code)]

mod admin;
mod body;
mod clock;
pub mod error;
mod identity;
pub mod policy;
mod proxy;
mod rng;
mod runtime;
mod server;
pub mod spiffe;
mod state;
mod telemetry;
mod upstream;

pub use config::{Bootstrap, ConfigError, Snapshot};
pub use identity::csr::generate_csr;
pub use identity::store::{certificate_info, CertificateInfo, IdentityError};
pub use proxy::{Error, Proxy};
/// The proxy's configuration types and their validation (the `proxy-config` crate).
pub use proxy_config as config;
pub use spiffe::SpiffeId;
