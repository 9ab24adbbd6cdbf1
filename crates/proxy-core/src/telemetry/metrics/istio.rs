//! Istio's standard metrics, opt-in (bootstrap `istio_metrics`): the requests and TCP
//! connections of the edge metrics again, under Istio's names and labels, so that
//! Istio's Grafana dashboards and Kiali's graph queries read a meshpy mesh unchanged.
//!
//! - `istio_requests_total` and `istio_request_duration_milliseconds`, one count per
//!   request. A gRPC request is recorded when its response ends, because its
//!   `grpc_response_status` comes in the trailers; any other at its response head. The
//!   duration is to the response head, as the edge metrics' is.
//! - `istio_tcp_{sent,received}_bytes_total` and `istio_tcp_connections_{opened,closed}_total`
//!   for TCP listeners only (as in Istio, HTTP connections are not counted there). They
//!   are read at scrape time from the edge's own `meshpy_tcp_*` counters, so they cost
//!   nothing per chunk.
//!
//! Label values follow Istio's: `reporter` is `source` on the outbound side and
//! `destination` on the inbound one; a workload is its service (`cart`: both ends
//! must name a caller alike, and an identity does not name its version), and the
//! version is in `*_version` and `*_canonical_revision`; `destination_service` is the
//! host `<service>.<namespace>.svc`; what the proxy does not know is `unknown`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{SharedLabels, GRPC_STATUSES};

/// Istio's default buckets for `istio_request_duration_milliseconds`.
const DURATION_BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// What a label says when the proxy does not know.
const UNKNOWN: &str = "unknown";

/// Status codes with a cached handle per edge (gRPC responses are almost all 200).
const HTTP_CODES: [u16; 12] = [200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 500, 503];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS_MS)
}

/// Envoy's response flag for a request the proxy failed, by its `x-meshpy-error`
/// reason: the flags Kiali and Istio's dashboards read. `-` when none applies.
pub fn response_flags(reason: Option<&str>) -> &'static str {
    match reason {
        None => "-",
        Some("no_route" | "no_backend") => "NR",
        Some("no_endpoints") => "UH",
        Some(
            "connect_failed"
            | "connect_timeout"
            | "no-identity"
            | "upstream-tls-failed"
            | "upstream-identity-mismatch",
        ) => "UF",
        Some("upstream_failed") => "UC",
        Some("request_timeout") => "UT",
        Some("overflow") => "UO",
        Some("client_body" | "invalid-path") => "DPE",
        Some("client_body_timeout") => "DT",
        Some(_) => "-",
    }
}

/// One end of an edge as Istio names it.
#[derive(Debug, Clone, Copy)]
pub struct Peer<'a> {
    /// Its namespace, or `unknown`.
    pub namespace: &'a str,
    /// Its service, or `unknown`.
    pub service: &'a str,
    /// Its version, or `unknown`.
    pub version: &'a str,
    /// Its SPIFFE ID, when verified; else empty.
    pub principal: &'a str,
}

impl Peer<'_> {
    fn principal(&self) -> Arc<str> {
        Arc::from(if self.principal.is_empty() {
            UNKNOWN
        } else {
            self.principal
        })
    }

    /// Istio's canonical revision: the version, `latest` when there is none.
    fn revision(&self) -> Arc<str> {
        Arc::from(if self.version == UNKNOWN {
            "latest"
        } else {
            self.version
        })
    }
}

/// The labels an edge's Istio series share.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct EdgeLabels {
    reporter: &'static str,
    source_workload: Arc<str>,
    source_workload_namespace: Arc<str>,
    source_principal: Arc<str>,
    source_app: Arc<str>,
    source_version: Arc<str>,
    source_canonical_service: Arc<str>,
    source_canonical_revision: Arc<str>,
    destination_workload: Arc<str>,
    destination_workload_namespace: Arc<str>,
    destination_principal: Arc<str>,
    destination_app: Arc<str>,
    destination_version: Arc<str>,
    destination_service: Arc<str>,
    destination_service_name: Arc<str>,
    destination_service_namespace: Arc<str>,
    destination_canonical_service: Arc<str>,
    destination_canonical_revision: Arc<str>,
    connection_security_policy: &'static str,
}

/// An edge's labels, shared by its series.
type Edge = SharedLabels<EdgeLabels>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct RequestLabels {
    #[prometheus(flatten)]
    edge: Edge,
    request_protocol: &'static str,
    response_code: u16,
    grpc_response_status: &'static str,
    response_flags: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct TcpLabels {
    #[prometheus(flatten)]
    edge: Edge,
    request_protocol: &'static str,
    response_flags: &'static str,
}

type DurationFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// Istio's families, registered once per proxy when the bootstrap asks for them.
#[derive(Debug, Clone)]
pub struct IstioFamilies {
    requests: Family<RequestLabels, Counter>,
    durations: DurationFamily,
    tcp: Arc<TcpCollector>,
}

impl IstioFamilies {
    /// Registers the families in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let families = Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
            tcp: Arc::default(),
        };
        registry.register(
            "istio_requests",
            "Requests, as Istio's standard metric (see meshpy's http_*_request_duration_seconds)",
            families.requests.clone(),
        );
        registry.register(
            "istio_request_duration_milliseconds",
            "Time from receiving a request to sending its response headers, in milliseconds, \
             as Istio's standard metric",
            families.durations.clone(),
        );
        registry.register_collector(Box::new(Arc::clone(&families.tcp)));
        families
    }

    /// The Istio series of the edge between `source` and `destination`.
    pub fn edge(
        &self,
        inbound: bool,
        source: Peer<'_>,
        destination: Peer<'_>,
        mtls: bool,
    ) -> Arc<IstioEdge> {
        let labels = EdgeLabels {
            reporter: if inbound { "destination" } else { "source" },
            source_workload: Arc::from(source.service),
            source_workload_namespace: Arc::from(source.namespace),
            source_principal: source.principal(),
            source_app: Arc::from(source.service),
            source_version: Arc::from(source.version),
            source_canonical_service: Arc::from(source.service),
            source_canonical_revision: source.revision(),
            destination_workload: Arc::from(destination.service),
            destination_workload_namespace: Arc::from(destination.namespace),
            destination_principal: destination.principal(),
            destination_app: Arc::from(destination.service),
            destination_version: Arc::from(destination.version),
            destination_service: Arc::from(if destination.service == UNKNOWN {
                UNKNOWN.to_owned()
            } else {
                format!("{}.{}.svc", destination.service, destination.namespace)
            }),
            destination_service_name: Arc::from(destination.service),
            destination_service_namespace: Arc::from(destination.namespace),
            destination_canonical_service: Arc::from(destination.service),
            destination_canonical_revision: destination.revision(),
            // Istio knows the connection's security on the server side only.
            connection_security_policy: match (inbound, mtls) {
                (false, _) => UNKNOWN,
                (true, true) => "mutual_tls",
                (true, false) => "none",
            },
        };
        Arc::new(IstioEdge {
            families: self.clone(),
            edge: Edge::new(labels),
            http: OnceLock::new(),
            grpc: OnceLock::new(),
            tcp: OnceLock::new(),
        })
    }
}

/// A request's two handles: its count and its duration.
type Handles = (Counter, Histogram);

/// One edge's Istio series. Handles for common outcomes are resolved once per edge.
#[derive(Debug)]
pub struct IstioEdge {
    families: IstioFamilies,
    edge: Edge,
    /// Per code of [`HTTP_CODES`], for HTTP requests without a response flag.
    http: OnceLock<Box<[OnceLock<Handles>]>>,
    /// Per gRPC status, for gRPC requests answered 200 without a response flag.
    grpc: OnceLock<Box<[OnceLock<Handles>]>>,
    /// Set once the edge's TCP counters are in the TCP collector.
    tcp: OnceLock<()>,
}

impl IstioEdge {
    fn record(&self, request: &IstioRequest) {
        let grpc = request.grpc;
        let resolve = || {
            let labels = RequestLabels {
                edge: self.edge.clone(),
                request_protocol: if grpc.is_some() { "grpc" } else { "http" },
                response_code: request.code,
                grpc_response_status: grpc.map_or("", |status| status.label()),
                response_flags: request.flags,
            };
            (
                self.families.requests.get_or_create_owned(&labels),
                self.families.durations.get_or_create_owned(&labels),
            )
        };
        let slot = match grpc {
            _ if request.flags != "-" => None,
            Some(GrpcStatus::Ended(index)) if request.code == 200 => {
                Some((&self.grpc, GRPC_STATUSES.len(), index))
            }
            Some(_) => None,
            None => HTTP_CODES
                .iter()
                .position(|code| *code == request.code)
                .map(|index| (&self.http, HTTP_CODES.len(), index)),
        };
        let record = |(count, duration): &Handles| {
            count.inc();
            duration.observe(request.seconds * 1000.0);
        };
        match slot {
            Some((table, len, index)) => record(
                table.get_or_init(|| (0..len).map(|_| OnceLock::new()).collect())[index]
                    .get_or_init(resolve),
            ),
            // A rare outcome: found in the families, which take their locks.
            None => record(&resolve()),
        }
    }

    /// Puts a TCP listener's counters of this edge in `istio_tcp_*` (once per edge):
    /// connections `opened` and `closed`, bytes `read` from the client (Istio's
    /// received) and `written` to it (sent).
    pub fn tcp(&self, opened: &Counter, closed: &Counter, read: &Counter, written: &Counter) {
        self.tcp.get_or_init(|| {
            let counters = TcpCounters {
                opened: opened.clone(),
                closed: closed.clone(),
                received: read.clone(),
                sent: written.clone(),
            };
            let labels = TcpLabels {
                edge: self.edge.clone(),
                request_protocol: "tcp",
                response_flags: "-",
            };
            self.families
                .tcp
                .edges
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .entry(labels)
                .or_insert(counters);
        });
    }
}

/// A request to count in Istio's families when this is dropped: at once for HTTP,
/// when its trailers have come (or its body ended without them) for gRPC.
#[derive(Debug)]
pub struct IstioRequest {
    edge: Arc<IstioEdge>,
    code: u16,
    seconds: f64,
    flags: &'static str,
    /// For gRPC, its status; None for HTTP.
    grpc: Option<GrpcStatus>,
}

/// A gRPC request's status, as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GrpcStatus {
    /// Not come (yet): the label is empty.
    Unknown,
    /// Ended with the status at this index of `GRPC_STATUSES`.
    Ended(usize),
}

impl GrpcStatus {
    fn label(self) -> &'static str {
        match self {
            Self::Unknown => "",
            Self::Ended(index) => GRPC_STATUSES[index.min(GRPC_STATUSES.len() - 1)],
        }
    }
}

impl IstioRequest {
    /// A request answered `code` after `seconds`, with the proxy's response `flags`.
    pub fn new(edge: Arc<IstioEdge>, code: u16, seconds: f64, flags: &'static str) -> Self {
        Self {
            edge,
            code,
            seconds,
            flags,
            grpc: None,
        }
    }

    /// Marks it gRPC, its status not known yet.
    pub fn grpc(&mut self) {
        self.grpc = Some(GrpcStatus::Unknown);
    }

    /// Marks it gRPC, ended with the status at `index` (see `edge::grpc_status_index`).
    pub fn grpc_status(&mut self, index: usize) {
        self.grpc = Some(GrpcStatus::Ended(index.min(GRPC_STATUSES.len() - 1)));
    }
}

impl Drop for IstioRequest {
    fn drop(&mut self) {
        self.edge.record(self);
    }
}

/// An edge's TCP counters, shared with `meshpy_tcp_*`.
#[derive(Debug)]
struct TcpCounters {
    opened: Counter,
    closed: Counter,
    received: Counter,
    sent: Counter,
}

/// Renders `istio_tcp_*` from the TCP counters of every edge that has had a TCP
/// listener's connection.
#[derive(Debug, Default)]
struct TcpCollector {
    edges: Mutex<HashMap<TcpLabels, TcpCounters>>,
}

/// Which of an edge's TCP counters a family shows.
type Pick = fn(&TcpCounters) -> &Counter;

/// `istio_tcp_*`: name, help and which counter.
const TCP_FAMILIES: [(&str, &str, Pick); 4] = [
    (
        "istio_tcp_sent_bytes",
        "Bytes sent to the client of TCP connections, as Istio's standard metric",
        |c| &c.sent,
    ),
    (
        "istio_tcp_received_bytes",
        "Bytes received from the client of TCP connections, as Istio's standard metric",
        |c| &c.received,
    ),
    (
        "istio_tcp_connections_opened",
        "TCP connections opened, as Istio's standard metric",
        |c| &c.opened,
    ),
    (
        "istio_tcp_connections_closed",
        "TCP connections closed, as Istio's standard metric",
        |c| &c.closed,
    ),
];

impl Collector for TcpCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let edges = self
            .edges
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (name, help, counter) in TCP_FAMILIES {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (labels, counters) in edges.iter() {
                counter(counters).encode(family.encode_family(labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
