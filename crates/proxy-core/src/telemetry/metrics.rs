//! Prometheus metrics of the proxy, with per-listener handles resolved once so requests touch only atomics.
//!
//! [`Metrics`] holds the registry, every family and their label sets; the handles it
//! resolves are in its children: one listener's (`listener`), mTLS counters (`tls`),
//! one cluster's (`cluster`), authorization counters (`authz`), the per-edge
//! request durations (`edge`), the requests by route and rule (`route`), and Istio's
//! names for the same requests, when asked for (`istio`).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

mod authz;
mod cluster;
pub mod edge;
pub mod istio;
mod listener;
mod route;
mod tls;
pub use authz::AuthzCounters;
pub use cluster::{MirrorCounters, OutlierMetrics, RetryCounters};
pub use edge::{EdgeFamilies, EdgeRequests, InboundEdges};
pub use listener::ListenerMetrics;
pub use route::{RouteRequests, RouteShape};
pub use tls::{Handshakes, Wire};

/// Latency buckets in seconds: 100 µs to 30 s.
const LATENCY_BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// gRPC status codes as labels: OK (0) to UNAUTHENTICATED (16), then `other` for
/// any value outside them (see `edge::grpc_status_index`).
const GRPC_STATUSES: [&str; 18] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    "other",
];

/// A label set shared by many series (an edge's, by each of its methods and codes):
/// cloned as one `Arc`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct SharedLabels<L>(Arc<L>);

impl<L> SharedLabels<L> {
    fn new(labels: L) -> Self {
        Self(Arc::new(labels))
    }
}

impl<L: EncodeLabelSet> EncodeLabelSet for SharedLabels<L> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    listener: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamHandshakeLabels {
    cluster: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabel {
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterResultLabels {
    cluster: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthzLabels {
    listener: String,
    decision: &'static str,
    policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuditLabels {
    listener: String,
    policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WireLabels {
    listener: String,
    tls: &'static str,
}

/// Reasons a proxied request can fail, as metric labels (see `ProxyError::reason`).
pub const ERROR_REASONS: [&str; 15] = [
    "no_route",
    "no_backend",
    "no_endpoints",
    "connect_failed",
    "connect_timeout",
    "upstream_failed",
    "request_timeout",
    "no-identity",
    "upstream-tls-failed",
    "upstream-identity-mismatch",
    "unauthorized",
    "invalid-path",
    "overflow",
    "client_body",
    "client_body_timeout",
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// All metrics of one proxy and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    /// Request durations per edge, inbound and outbound.
    pub edges: EdgeFamilies,
    route_requests: Family<route::RouteRequestLabels, Counter>,
    connections_open: Family<ListenerLabel, Gauge>,
    connections_total: Family<ListenerLabel, Counter>,
    connections_rejected: Family<ListenerLabel, Counter>,
    bytes: Family<BytesLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    config_reloads: Family<ResultLabel, Counter>,
    tls: TlsFamilies,
    upstream_handshakes: Family<UpstreamHandshakeLabels, Counter>,
    authz_requests: Family<AuthzLabels, Counter>,
    authz_audit: Family<AuditLabels, Counter>,
    outlier_ejections: Family<ClusterLabel, Counter>,
    outlier_ejected: Family<ClusterLabel, Gauge>,
    retries: Family<ClusterResultLabels, Counter>,
    mirrors: Family<ClusterResultLabels, Counter>,
    /// Version of the snapshot being served.
    pub config_version: Gauge<u64, AtomicU64>,
    /// `not_after` of the proxy's certificate, Unix seconds; 0 before an identity is set.
    pub identity_expiration: Gauge<f64, AtomicU64>,
    /// What became of the spans the proxy recorded.
    pub trace: TraceCounters,
}

/// What became of recorded spans; kept across snapshots, whose exporters come and go.
#[derive(Debug, Clone, Default)]
pub struct TraceCounters {
    /// Spans a receiver accepted.
    pub exported: Counter,
    /// Spans dropped because the export queue was full.
    pub dropped: Counter,
    /// Spans lost because an export failed (the receiver refused them, or was unreachable).
    pub failed: Counter,
}

/// The per-listener TLS families, kept to resolve a listener's handles on first use.
#[derive(Debug, Clone, Default)]
struct TlsFamilies {
    handshakes: Family<HandshakeLabels, Counter>,
    connections: Family<WireLabels, Counter>,
    requests: Family<WireLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric, without Istio's.
    pub fn new() -> Self {
        Self::with_istio(false)
    }

    /// Registers every metric, and Istio's standard ones if `istio` (see [`istio`]).
    pub fn with_istio(istio: bool) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let mut edges = EdgeFamilies::new();
        let connections_open = Family::<ListenerLabel, Gauge>::default();
        let connections_total = Family::<ListenerLabel, Counter>::default();
        let connections_rejected = Family::<ListenerLabel, Counter>::default();
        let bytes = Family::<BytesLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let config_reloads = Family::<ResultLabel, Counter>::default();
        let config_version = Gauge::<u64, AtomicU64>::default();
        let tls = TlsFamilies::default();
        let upstream_handshakes = Family::<UpstreamHandshakeLabels, Counter>::default();
        let identity_expiration = Gauge::<f64, AtomicU64>::default();
        let authz_requests = Family::<AuthzLabels, Counter>::default();
        let authz_audit = Family::<AuditLabels, Counter>::default();
        let outlier_ejections = Family::<ClusterLabel, Counter>::default();
        let outlier_ejected = Family::<ClusterLabel, Gauge>::default();
        registry.register(
            "meshpy_outlier_ejections",
            "Endpoints ejected by outlier detection, by cluster",
            outlier_ejections.clone(),
        );
        registry.register(
            "meshpy_outlier_ejected_endpoints",
            "Endpoints ejected by outlier detection now, by cluster",
            outlier_ejected.clone(),
        );
        let retries = Family::<ClusterResultLabels, Counter>::default();
        let mirrors = Family::<ClusterResultLabels, Counter>::default();
        let trace = TraceCounters::default();
        registry.register(
            "meshpy_trace_spans_exported",
            "Spans an OTLP receiver accepted (one count per receiver)",
            trace.exported.clone(),
        );
        registry.register(
            "meshpy_trace_spans_dropped",
            "Spans dropped because the export queue was full",
            trace.dropped.clone(),
        );
        registry.register(
            "meshpy_trace_spans_failed",
            "Spans lost because an export failed (refused, or the receiver unreachable)",
            trace.failed.clone(),
        );
        registry.register(
            "meshpy_requests",
            "HTTP requests served, by listener and status class",
            requests.clone(),
        );
        edges.register(&mut registry, istio);
        let route_requests = Family::<route::RouteRequestLabels, Counter>::default();
        registry.register(
            "meshpy_route_requests",
            "HTTP requests on listeners with routes, by direction, destination service, the \
             route and rule (its index in the route) that matched them (both empty: none did), \
             and status code",
            route_requests.clone(),
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
        registry.register(
            "meshpy_tls_handshakes",
            "Downstream mTLS handshakes on listeners with tls, by result (ok, failed)",
            tls.handshakes.clone(),
        );
        registry.register(
            "meshpy_tls_connections",
            "Connections accepted on listeners with tls, by how they arrived (mtls, plaintext)",
            tls.connections.clone(),
        );
        registry.register(
            "meshpy_tls_requests",
            "HTTP requests served on listeners with tls, by how their connection arrived (mtls, plaintext)",
            tls.requests.clone(),
        );
        registry.register(
            "meshpy_upstream_tls_handshakes",
            "mTLS handshakes with endpoints of clusters with tls, by result (ok, failed)",
            upstream_handshakes.clone(),
        );
        registry.register(
            "meshpy_identity_cert_expiration_timestamp_seconds",
            "When the proxy's certificate expires (its not_after), Unix seconds",
            identity_expiration.clone(),
        );
        registry.register(
            "meshpy_authz_requests",
            "HTTP requests and TCP connections authorized on listeners with authorization, \
             by decision (allow, deny) and the policy that decided (or default)",
            authz_requests.clone(),
        );
        registry.register(
            "meshpy_authz_audit",
            "HTTP requests and TCP connections that a rule of an audit policy matched",
            authz_audit.clone(),
        );
        registry.register(
            "meshpy_retries",
            "Retries of requests to a cluster, by result (sent, budget_exhausted: not sent for want of budget)",
            retries.clone(),
        );
        registry.register(
            "meshpy_mirror_requests",
            "Copies of requests to a mirror cluster, by result (sent: answered, failed: no answer, \
             dropped: not made, over the in-flight limit or with a streamed body)",
            mirrors.clone(),
        );
        Self {
            registry,
            requests,
            edges,
            route_requests,
            connections_open,
            connections_total,
            connections_rejected,
            bytes,
            errors,
            config_reloads,
            tls,
            upstream_handshakes,
            authz_requests,
            authz_audit,
            outlier_ejections,
            outlier_ejected,
            retries,
            mirrors,
            config_version,
            identity_expiration,
            trace,
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

#[cfg(test)]
mod tests;
