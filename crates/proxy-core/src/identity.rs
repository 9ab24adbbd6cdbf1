//! The proxy's identity: its X.509-SVID, the rustls configs built from it, and key generation for enrolment.

pub mod csr;
pub mod store;
pub mod tls;
