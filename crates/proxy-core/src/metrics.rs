//! Prometheus metrics of the proxy, with per-listener handles resolved once so requests touch only atomics.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets in seconds: 100 µs to 30 s.
const LATENCY_BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    listener: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BytesLabels {
    listener: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    listener: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Reasons a proxied request can fail, as metric labels (see `ProxyError::reason`).
pub const ERROR_REASONS: [&str; 7] = [
    "no_route",
    "no_backend",
    "no_endpoints",
    "connect_failed",
    "connect_timeout",
    "upstream_failed",
    "request_timeout",
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// All metrics of one proxy and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<ListenerLabel, Histogram, fn() -> Histogram>,
    connections_open: Family<ListenerLabel, Gauge>,
    connections_total: Family<ListenerLabel, Counter>,
    connections_rejected: Family<ListenerLabel, Counter>,
    bytes: Family<BytesLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    config_reloads: Family<ResultLabel, Counter>,
    /// Version of the snapshot being served.
    pub config_version: Gauge<u64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let duration: Family<ListenerLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let connections_open = Family::<ListenerLabel, Gauge>::default();
        let connections_total = Family::<ListenerLabel, Counter>::default();
        let connections_rejected = Family::<ListenerLabel, Counter>::default();
        let bytes = Family::<BytesLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let config_reloads = Family::<ResultLabel, Counter>::default();
        let config_version = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "meshpy_requests",
            "HTTP requests served, by listener and status class",
            requests.clone(),
        );
        registry.register(
            "http_server_request_duration_seconds",
            "Time from receiving a request to sending its response headers",
            duration.clone(),
        );
        registry.register(
            "meshpy_connections_open",
            "Downstream connections open now",
            connections_open.clone(),
        );
        registry.register(
            "meshpy_connections",
            "Downstream connections accepted",
            connections_total.clone(),
        );
        registry.register(
            "meshpy_connections_rejected",
            "Downstream connections closed at once because the listener was at max_connections",
            connections_rejected.clone(),
        );
        registry.register(
            "meshpy_bytes",
            "Bytes received from and sent to downstream clients",
            bytes.clone(),
        );
        registry.register(
            "meshpy_proxy_errors",
            "Requests and connections the proxy failed, by reason",
            errors.clone(),
        );
        registry.register(
            "meshpy_config_reloads",
            "Snapshots applied or rejected",
            config_reloads.clone(),
        );
        registry.register(
            "meshpy_config_version",
            "Version of the snapshot being served",
            config_version.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            connections_open,
            connections_total,
            connections_rejected,
            bytes,
            errors,
            config_reloads,
            config_version,
        }
    }

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
            duration: self.duration.get_or_create(&label).clone(),
            connections_open: self.connections_open.get_or_create(&label).clone(),
            connections_total: self.connections_total.get_or_create(&label).clone(),
            connections_rejected: self.connections_rejected.get_or_create(&label).clone(),
            bytes_received: bytes("received"),
            bytes_sent: bytes("sent"),
        }
    }

    /// Counts a snapshot applied (`true`) or rejected.
    pub fn config_reload(&self, applied: bool) {
        let result = if applied { "applied" } else { "rejected" };
        self.config_reloads
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// One listener's metric handles.
#[derive(Debug, Clone)]
pub struct ListenerMetrics {
    requests: [Counter; 5],
    errors: [Counter; 7],
    /// Request latency to response headers, in seconds.
    pub duration: Histogram,
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

    /// Requests served, by status class 1xx..5xx.
    pub fn requests_by_class(&self) -> [u64; 5] {
        self.requests.each_ref().map(Counter::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_handles_feed_the_registry() {
        let metrics = Metrics::new();
        let web = metrics.listener("web");
        web.request(200);
        web.request(204);
        web.request(503);
        web.duration.observe(0.002);
        web.error("no_endpoints");
        metrics.config_version.set(7);
        let text = metrics.render();
        assert!(
            text.contains(r#"meshpy_requests_total{listener="web",status_class="2xx"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"meshpy_requests_total{listener="web",status_class="5xx"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"http_server_request_duration_seconds_count{listener="web"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"meshpy_proxy_errors_total{listener="web",reason="no_endpoints"} 1"#),
            "{text}"
        );
        assert!(text.contains("meshpy_config_version 7"), "{text}");
        assert_eq!(web.requests_by_class(), [0, 2, 0, 0, 1]);
    }

    #[test]
    fn handles_for_the_same_listener_share_counts() {
        let metrics = Metrics::new();
        metrics.listener("web").request(200);
        metrics.listener("web").request(200);
        assert_eq!(metrics.listener("web").requests_by_class()[1], 2);
    }
}
