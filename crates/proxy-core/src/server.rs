//! Serving clients: listeners, accept loops, protocol sniffing, HTTP and TCP,
//! the inbound mTLS handshake and the limits on slow and hostile clients.

pub mod accept;
pub mod h2guard;
pub mod http;
pub mod inbound;
pub mod io;
pub mod listener;
pub mod metered;
pub mod response_body;
pub mod slow;
pub mod tcp;
