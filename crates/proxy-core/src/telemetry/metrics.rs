//! Prometheus metrics of the proxy, with per-listener handles resolved once so requests touch only atomics.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::config::{Authorization, AuthzAction};
use crate::policy::authz::{Decider, Decision};

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

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

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
    duration: Family<ListenerLabel, Histogram, fn() -> Histogram>,
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
            duration,
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
            name: name.to_string(),
            tls_families: self.tls.clone(),
            tls: OnceLock::new(),
        }
    }

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

    /// Outlier detection handles of one cluster; the same for every version of it.
    pub fn outlier(&self, cluster: &str) -> OutlierMetrics {
        let label = ClusterLabel {
            cluster: cluster.to_string(),
        };
        OutlierMetrics {
            ejections: self.outlier_ejections.get_or_create(&label).clone(),
            ejected: self.outlier_ejected.get_or_create(&label).clone(),
        }
    }

    /// Retry counters of one cluster, resolved when a snapshot is applied.
    pub fn retries(&self, cluster: &str) -> RetryCounters {
        let counter = |result| {
            self.retries
                .get_or_create(&ClusterResultLabels {
                    cluster: cluster.to_string(),
                    result,
                })
                .clone()
        };
        RetryCounters {
            sent: counter("sent"),
            budget_exhausted: counter("budget_exhausted"),
        }
    }

    /// Mirror counters of one cluster (as the target of mirrors), resolved when a snapshot is applied.
    pub fn mirrors(&self, cluster: &str) -> MirrorCounters {
        let counter = |result| {
            self.mirrors
                .get_or_create(&ClusterResultLabels {
                    cluster: cluster.to_string(),
                    result,
                })
                .clone()
        };
        MirrorCounters {
            sent: counter("sent"),
            failed: counter("failed"),
            dropped: counter("dropped"),
        }
    }

    /// Authorization counters of one listener for its policies, resolved when
    /// a snapshot is applied so that requests touch only atomics.
    pub fn authz(&self, listener: &str, config: &Authorization) -> AuthzCounters {
        let decided = |decision, policy: &str| {
            self.authz_requests
                .get_or_create(&AuthzLabels {
                    listener: listener.to_string(),
                    decision,
                    policy: policy.to_string(),
                })
                .clone()
        };
        let policies = config
            .policies
            .iter()
            .map(|policy| match policy.action {
                AuthzAction::Allow => decided("allow", &policy.name),
                AuthzAction::Deny => decided("deny", &policy.name),
                AuthzAction::Audit => self
                    .authz_audit
                    .get_or_create(&AuditLabels {
                        listener: listener.to_string(),
                        policy: policy.name.clone(),
                    })
                    .clone(),
            })
            .collect();
        AuthzCounters {
            policies,
            default_allow: decided("allow", "default"),
            default_deny: decided("deny", "default"),
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

/// Outlier detection handles of one cluster.
#[derive(Debug, Clone, Default)]
pub struct OutlierMetrics {
    /// Ejections so far.
    pub ejections: Counter,
    /// Endpoints ejected now; also the count `max_ejection_percent` is checked against.
    pub ejected: Gauge,
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

/// Retries of one cluster.
#[derive(Debug, Clone, Default)]
pub struct RetryCounters {
    /// Retries sent.
    pub sent: Counter,
    /// Retries not sent because the cluster's budget was spent.
    pub budget_exhausted: Counter,
}

/// Mirrored requests to one cluster.
#[derive(Debug, Clone, Default)]
pub struct MirrorCounters {
    /// Copies that got a response (of any status).
    pub sent: Counter,
    /// Copies that got no response (connect failure, timeout).
    pub failed: Counter,
    /// Copies not made: too many in flight, or a body that was not buffered.
    pub dropped: Counter,
}

/// The authorization counters of one listener, by the index of a policy in its config.
#[derive(Debug, Clone, Default)]
pub struct AuthzCounters {
    /// Per policy: its decisions (allow or deny policies) or its matches (audit policies).
    policies: Vec<Counter>,
    default_allow: Counter,
    default_deny: Counter,
}

impl AuthzCounters {
    /// Counts a decision.
    pub fn decided(&self, decision: &Decision) {
        let counter = match decision.by {
            Decider::Policy(index) => self.policies.get(index),
            Decider::NoAllowMatch | Decider::Default if decision.allowed => {
                Some(&self.default_allow)
            }
            Decider::NoAllowMatch | Decider::Default => Some(&self.default_deny),
        };
        if let Some(counter) = counter {
            counter.inc();
        }
    }

    /// Counts a match of the audit policy at `index`.
    pub fn audited(&self, index: usize) {
        if let Some(counter) = self.policies.get(index) {
            counter.inc();
        }
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
    fn resolve(&self, listener: &str) -> TlsListenerMetrics {
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

/// One listener's metric handles.
#[derive(Debug, Clone)]
pub struct ListenerMetrics {
    requests: [Counter; 5],
    errors: [Counter; ERROR_REASONS.len()],
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

#[cfg(test)]
mod tests;
