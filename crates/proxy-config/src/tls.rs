//! Config of mTLS: a listener that terminates it (sidecar inbound) and a cluster reached over it with the identity it must present.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::spiffe::SpiffeId;

/// Whether a TLS listener also serves plaintext.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Only mTLS; plaintext connections are closed.
    #[default]
    Strict,
    /// mTLS when the first byte opens a TLS handshake, plaintext otherwise (migration).
    Permissive,
}

/// A listener's `tls`: it terminates mTLS (TLS 1.3, a client X.509-SVID required).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// `strict` or `permissive`.
    #[serde(default)]
    pub mode: TlsMode,
}

/// A cluster's `tls`: its endpoints are reached over mTLS and must present `identity`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct ClusterTls {
    /// The SPIFFE ID the endpoints' certificates must carry, exactly.
    pub identity: SpiffeId,
}

#[cfg(test)]
mod tests;
