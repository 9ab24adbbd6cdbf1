//! mTLS counters: handshakes with clients and with endpoints by result, and a TLS
//! listener's connections and requests by how they arrived (mTLS or plaintext).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::{HandshakeLabels, Metrics, TlsFamilies, UpstreamHandshakeLabels, WireLabels};

/// How a connection on a listener with `tls` arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Over mutual TLS.
    Mtls,
    /// In plaintext (permissive mode).
    Plaintext,
}

impl Wire {
    fn index(self) -> usize {
        match self {
            Self::Mtls => 0,
            Self::Plaintext => 1,
        }
    }
}

const WIRES: [&str; 2] = ["mtls", "plaintext"];

impl Metrics {
    /// Upstream handshake counters of one cluster.
    pub fn upstream_handshakes(&self, cluster: &str) -> Handshakes {
        let counter = |result| {
            self.upstream_handshakes
                .get_or_create(&UpstreamHandshakeLabels {
                    cluster: cluster.to_string(),
                    result,
                })
                .clone()
        };
        Handshakes {
            ok: counter("ok"),
            failed: counter("failed"),
        }
    }
}

/// Handshakes that succeeded and failed.
#[derive(Debug, Clone, Default)]
pub struct Handshakes {
    ok: Counter,
    failed: Counter,
}

impl Handshakes {
    /// Counts one handshake.
    pub fn count(&self, ok: bool) {
        if ok { &self.ok } else { &self.failed }.inc();
    }
}

/// The TLS handles of one listener.
#[derive(Debug, Clone)]
pub struct TlsListenerMetrics {
    /// Handshakes by result.
    pub handshakes: Handshakes,
    connections: [Counter; 2],
    requests: [Counter; 2],
}

impl TlsListenerMetrics {
    /// Counts a connection by how it arrived.
    pub fn connection(&self, wire: Wire) {
        self.connections[wire.index()].inc();
    }

    /// Counts a request by how its connection arrived.
    pub fn request(&self, wire: Wire) {
        self.requests[wire.index()].inc();
    }
}

impl TlsFamilies {
    pub(super) fn resolve(&self, listener: &str) -> TlsListenerMetrics {
        let handshake = |result| {
            self.handshakes
                .get_or_create(&HandshakeLabels {
                    listener: listener.to_string(),
                    result,
                })
                .clone()
        };
        let by_wire = |family: &Family<WireLabels, Counter>| {
            WIRES.map(|tls| {
                family
                    .get_or_create(&WireLabels {
                        listener: listener.to_string(),
                        tls,
                    })
                    .clone()
            })
        };
        TlsListenerMetrics {
            handshakes: Handshakes {
                ok: handshake("ok"),
                failed: handshake("failed"),
            },
            connections: by_wire(&self.connections),
            requests: by_wire(&self.requests),
        }
    }
}
