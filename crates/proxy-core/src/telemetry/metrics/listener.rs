//! One listener's metric handles: requests by status class, failures by reason,
//! latency, connections and bytes, and its TLS handles once it has any.

use std::sync::OnceLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::tls::TlsListenerMetrics;
use super::{
    BytesLabels, ErrorLabels, ListenerLabel, Metrics, RequestLabels, TlsFamilies, ERROR_REASONS,
};

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

impl Metrics {
    /// Handles for one listener, resolved once so the request path takes no lock on the label maps.
    pub fn listener(&self, name: &str) -> ListenerMetrics {
        let label = ListenerLabel {
            listener: name.to_string(),
        };
        let requests = STATUS_CLASSES.map(|status_class| {
            self.requests
                .get_or_create(&RequestLabels {
                    listener: name.to_string(),
                    status_class,
                })
                .clone()
        });
        let errors = ERROR_REASONS.map(|reason| {
            self.errors
                .get_or_create(&ErrorLabels {
                    listener: name.to_string(),
                    reason,
                })
                .clone()
        });
        let bytes = |direction| {
            self.bytes
                .get_or_create(&BytesLabels {
                    listener: name.to_string(),
                    direction,
                })
                .clone()
        };
        ListenerMetrics {
            requests,
            errors,
            connections_open: self.connections_open.get_or_create(&label).clone(),
            connections_total: self.connections_total.get_or_create(&label).clone(),
            connections_rejected: self.connections_rejected.get_or_create(&label).clone(),
            bytes_received: bytes("received"),
            bytes_sent: bytes("sent"),
            name: name.to_string(),
            tls_families: self.tls.clone(),
            tls: OnceLock::new(),
        }
    }
}

/// One listener's metric handles.
#[derive(Debug, Clone)]
pub struct ListenerMetrics {
    requests: [Counter; 5],
    errors: [Counter; ERROR_REASONS.len()],
    /// Connections open now.
    pub connections_open: Gauge,
    /// Connections accepted.
    pub connections_total: Counter,
    /// Connections refused at max_connections.
    pub connections_rejected: Counter,
    /// Bytes read from clients.
    pub bytes_received: Counter,
    /// Bytes written to clients.
    pub bytes_sent: Counter,
    name: String,
    tls_families: TlsFamilies,
    tls: OnceLock<TlsListenerMetrics>,
}

impl ListenerMetrics {
    /// Counts one response by its status code.
    pub fn request(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.requests[class].inc();
    }

    /// Counts one proxy failure by its reason label.
    pub fn error(&self, reason: &str) {
        if let Some(i) = ERROR_REASONS.iter().position(|r| *r == reason) {
            self.errors[i].inc();
        }
    }

    /// The TLS handles, registered on first use so plaintext listeners show no TLS series.
    pub fn tls(&self) -> &TlsListenerMetrics {
        self.tls
            .get_or_init(|| self.tls_families.resolve(&self.name))
    }

    /// Requests served, by status class 1xx..5xx.
    pub fn requests_by_class(&self) -> [u64; 5] {
        self.requests.each_ref().map(Counter::get)
    }
}
