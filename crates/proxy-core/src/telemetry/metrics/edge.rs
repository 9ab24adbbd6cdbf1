//! Per-edge request metrics: each request observed, with its duration, on the edge
//! between the two services it went between, under OpenTelemetry's HTTP names.
//!
//! An edge's labels come only from the snapshot (the proxy's workload, a cluster's
//! service) and from a peer's verified SPIFFE ID, never from what a client sends, so a
//! client can't grow the series with headers or paths: methods outside HTTP's own are
//! `_OTHER`, and past [`MAX_PEERS`] callers a listener counts the rest as `unknown`.
//! Each [`EdgeRequests`] resolves its handle for a (method, status code) pair once;
//! after that a request costs an index and the histogram's observation.
//!
//! A gRPC response's status (its `grpc-status`, in the trailers, or in the headers of
//! a trailers-only response) is counted on the edge too, in `meshpy_grpc_responses`:
//! a gRPC error is an HTTP 200, and would otherwise not show.
//!
//! The connections of an edge are counted in `meshpy_tcp_*`, as Linkerd's `tcp_*`:
//! opened, closed, open now, and the bytes read from the edge's source (the client of
//! the connection) and written to it, after TLS: the same on both ends of an edge.
//!
//! Retries, outlier ejections, overflows and authorization refusals are counted on
//! the edge too ([`EdgeEvent`]), in `meshpy_edge_*`: the per-cluster and
//! per-listener families of the same things have no edge.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::istio::{IstioEdge, IstioFamilies, IstioRequest, Peer};
use super::{latency_histogram, SharedLabels, GRPC_STATUSES};
use crate::config::ServiceRef;
use crate::error::ErrorKind;
use crate::spiffe::SpiffeId;

/// The most callers an inbound listener labels by identity; later ones are `unknown`.
pub const MAX_PEERS: usize = 1024;

/// What a label says when the snapshot does not know.
const UNKNOWN: &str = "unknown";

/// Methods with a label of their own (OpenTelemetry's list); any other is `_OTHER`.
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER",
];

/// Status codes whose handles are kept per edge; others are looked up in the family.
pub(super) const CODES: [u16; 28] = [
    200, 201, 202, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 412, 413,
    415, 422, 429, 431, 500, 501, 502, 503, 504,
];

/// The index in [`GRPC_STATUSES`] of a `grpc-status` value: its decimal code if it is
/// one of gRPC's, else `other`.
pub fn grpc_status_index(value: &[u8]) -> usize {
    let other = GRPC_STATUSES.len() - 1;
    if value.is_empty() || value.len() > 2 || !value.iter().all(u8::is_ascii_digit) {
        return other;
    }
    let code = value
        .iter()
        .fold(0usize, |code, digit| code * 10 + usize::from(digit - b'0'));
    if code < other {
        code
    } else {
        other
    }
}

/// What else is counted on an edge, each in a family of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeEvent {
    /// A retry sent.
    Retry,
    /// An endpoint of the cluster the edge goes to, ejected by outlier detection.
    Ejection,
    /// A request or connection failed at a circuit breaker's limit.
    Overflow,
    /// A request or connection refused by the listener's authorization.
    AuthzDenied,
}

/// Each [`EdgeEvent`]'s family: its name and help, in the enum's order.
const EVENTS: [(&str, &str); 4] = [
    (
        "meshpy_edge_retries",
        "Retries sent, by edge (as the request durations); by cluster in meshpy_retries",
    ),
    (
        "meshpy_edge_ejections",
        "Endpoints ejected by outlier detection, by the edge to their cluster (outbound, \
         as the request durations); by cluster in meshpy_outlier_ejections",
    ),
    (
        "meshpy_edge_overflows",
        "Requests and connections failed at a circuit breaker's limit, by edge (as the \
         request durations)",
    ),
    (
        "meshpy_edge_authz_denied",
        "Requests and connections refused by authorization, by edge (as the request \
         durations); by policy in meshpy_authz_requests",
    ),
];

impl EdgeEvent {
    /// The event a failed request or connection is counted as on its edge, if any.
    pub fn of_error(kind: ErrorKind) -> Option<Self> {
        match kind {
            ErrorKind::Overflow(_) => Some(Self::Overflow),
            ErrorKind::Unauthorized => Some(Self::AuthzDenied),
            _ => None,
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Retry => 0,
            Self::Ejection => 1,
            Self::Overflow => 2,
            Self::AuthzDenied => 3,
        }
    }
}

/// The index of `method` in [`METHODS`].
pub fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::CONNECT => 5,
        Method::OPTIONS => 6,
        Method::TRACE => 7,
        Method::PATCH => 8,
        _ => 9,
    }
}

/// Which way a request crossed the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Into the proxy's workload: counted under `http_server_request_duration_seconds`.
    Inbound,
    /// Out of it, to another service: `http_client_request_duration_seconds`.
    Outbound,
}

impl Direction {
    /// The direction as a label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// Both ends of an edge, as labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct EdgeLabels {
    direction: &'static str,
    source_namespace: Arc<str>,
    source_service: Arc<str>,
    source_version: Arc<str>,
    source_identity: Arc<str>,
    destination_namespace: Arc<str>,
    destination_service: Arc<str>,
    destination_version: Arc<str>,
    mtls: &'static str,
}

/// One end of an edge: namespace, service and version.
#[derive(Clone, Debug)]
struct End {
    namespace: Arc<str>,
    service: Arc<str>,
    version: Arc<str>,
}

impl End {
    fn unknown() -> Self {
        let unknown: Arc<str> = Arc::from(UNKNOWN);
        Self {
            namespace: Arc::clone(&unknown),
            service: Arc::clone(&unknown),
            version: unknown,
        }
    }

    /// This end as Istio's labels name it, with its verified `identity` (or "").
    fn peer<'a>(&'a self, identity: &'a str) -> Peer<'a> {
        Peer {
            namespace: &self.namespace,
            service: &self.service,
            version: &self.version,
            principal: identity,
        }
    }

    fn of(service: Option<&ServiceRef>) -> Self {
        service.map_or_else(Self::unknown, |service| Self {
            namespace: Arc::from(service.namespace.as_str()),
            service: Arc::from(service.service.as_str()),
            version: Arc::from(service.version.as_deref().unwrap_or(UNKNOWN)),
        })
    }

    /// The caller an mTLS identity names: the mesh's CA issues
    /// `spiffe://<trust domain>/ns/<namespace>/sa/<service>`. Its version is not in it.
    fn of_identity(id: &SpiffeId) -> Self {
        let path = id.as_str().splitn(4, '/').nth(3).unwrap_or("");
        match path.split('/').collect::<Vec<_>>().as_slice() {
            ["ns", namespace, "sa", service] => Self {
                namespace: Arc::from(*namespace),
                service: Arc::from(*service),
                version: Arc::from(UNKNOWN),
            },
            _ => Self::unknown(),
        }
    }
}

impl EdgeLabels {
    fn new(
        direction: Direction,
        source: End,
        identity: &str,
        destination: End,
        mtls: bool,
    ) -> Self {
        Self {
            direction: direction.label(),
            source_namespace: source.namespace,
            source_service: source.service,
            source_version: source.version,
            source_identity: Arc::from(identity),
            destination_namespace: destination.namespace,
            destination_service: destination.service,
            destination_version: destination.version,
            mtls: if mtls { "true" } else { "false" },
        }
    }
}

/// An edge's labels, shared by every series of the edge.
type Edge = SharedLabels<EdgeLabels>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct RequestLabels {
    #[prometheus(flatten)]
    edge: Edge,
    http_request_method: &'static str,
    http_response_status_code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct GrpcLabels {
    #[prometheus(flatten)]
    edge: Edge,
    grpc_status: &'static str,
}

type DurationFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// The request families every edge is recorded in, registered once per proxy.
#[derive(Debug, Clone)]
pub struct EdgeFamilies {
    server: DurationFamily,
    client: DurationFamily,
    grpc: Family<GrpcLabels, Counter>,
    tcp: Arc<TcpFamilies>,
    events: Arc<[Family<Edge, Counter>; EVENTS.len()]>,
    /// Istio's families, when the bootstrap asks for them.
    istio: Option<Arc<IstioFamilies>>,
}

/// The connection families of every edge.
#[derive(Debug, Clone, Default)]
struct TcpFamilies {
    opened: Family<Edge, Counter>,
    closed: Family<Edge, Counter>,
    open: Family<Edge, Gauge>,
    read: Family<Edge, Counter>,
    written: Family<Edge, Counter>,
}

impl EdgeFamilies {
    /// Families to be registered in a registry.
    pub(super) fn new() -> Self {
        Self {
            server: Family::new_with_constructor(latency_histogram),
            client: Family::new_with_constructor(latency_histogram),
            grpc: Family::default(),
            tcp: Arc::default(),
            events: Arc::default(),
            istio: None,
        }
    }

    /// Registers the families in `registry`, and Istio's too if `istio`.
    pub(super) fn register(&mut self, registry: &mut Registry, istio: bool) {
        if istio {
            self.istio = Some(Arc::new(IstioFamilies::register(registry)));
        }
        registry.register(
            "http_server_request_duration_seconds",
            "Inbound requests: time from receiving one to sending its response headers, \
             by edge (source and destination service, version, identity, mTLS), method \
             and status code",
            self.server.clone(),
        );
        registry.register(
            "http_client_request_duration_seconds",
            "Outbound requests: time from receiving one to sending its response headers, \
             by edge (source and destination service and version, mTLS), method and \
             status code",
            self.client.clone(),
        );
        registry.register(
            "meshpy_grpc_responses",
            "gRPC responses, inbound and outbound, when they end: by edge (as the request \
             durations) and grpc_status, the code of their grpc-status (0 to 16, or other)",
            self.grpc.clone(),
        );
        let tcp = &self.tcp;
        let by_edge = "by edge (as the request durations)";
        registry.register(
            "meshpy_tcp_open",
            format!("Connections opened on an edge, {by_edge}"),
            tcp.opened.clone(),
        );
        registry.register(
            "meshpy_tcp_close",
            format!("Connections of an edge closed, {by_edge}"),
            tcp.closed.clone(),
        );
        registry.register(
            "meshpy_tcp_connections_open",
            format!("Connections of an edge open now, {by_edge}"),
            tcp.open.clone(),
        );
        registry.register(
            "meshpy_tcp_read_bytes",
            format!(
                "Bytes read from the source of an edge (the client of its connections), \
                 TLS excluded, {by_edge}"
            ),
            tcp.read.clone(),
        );
        registry.register(
            "meshpy_tcp_write_bytes",
            format!(
                "Bytes written to the source of an edge (the client of its connections), \
                 TLS excluded, {by_edge}"
            ),
            tcp.written.clone(),
        );
        for ((name, help), family) in EVENTS.iter().zip(self.events.iter()) {
            registry.register(*name, *help, family.clone());
        }
    }

    fn edge(
        &self,
        direction: Direction,
        source: End,
        identity: &str,
        destination: End,
        mtls: bool,
    ) -> Arc<EdgeRequests> {
        let family = match direction {
            Direction::Inbound => self.server.clone(),
            Direction::Outbound => self.client.clone(),
        };
        let istio = self.istio.as_ref().map(|families| {
            families.edge(
                direction == Direction::Inbound,
                source.peer(identity),
                destination.peer(""),
                mtls,
            )
        });
        let labels = EdgeLabels::new(direction, source, identity, destination, mtls);
        Arc::new(EdgeRequests {
            istio,
            family,
            grpc: self.grpc.clone(),
            tcp_families: Arc::clone(&self.tcp),
            event_families: Arc::clone(&self.events),
            events: Default::default(),
            edge: Edge::new(labels),
            slots: OnceLock::new(),
            grpc_slots: OnceLock::new(),
            tcp: OnceLock::new(),
        })
    }

    /// The edge of requests an outbound listener sends to a cluster of `destination`
    /// (None: not a mesh service, or no cluster at all), from `workload`.
    pub fn outbound(
        &self,
        workload: Option<&ServiceRef>,
        destination: Option<&ServiceRef>,
        mtls: bool,
    ) -> Arc<EdgeRequests> {
        self.edge(
            Direction::Outbound,
            End::of(workload),
            "",
            End::of(destination),
            mtls,
        )
    }

    /// The edges of an inbound listener to `workload`, one per caller.
    pub fn inbound(&self, workload: Option<&ServiceRef>) -> InboundEdges {
        InboundEdges {
            families: self.clone(),
            workload: End::of(workload),
            unknown: self.edge(
                Direction::Inbound,
                End::unknown(),
                "",
                End::of(workload),
                false,
            ),
            peers: Mutex::new(HashMap::new()),
        }
    }
}

/// One edge's handles: its request durations, by method and status code, its gRPC
/// statuses and its connections.
#[derive(Debug)]
pub struct EdgeRequests {
    family: DurationFamily,
    edge: Edge,
    /// A handle per (method, one of [`CODES`]), resolved on first use. The table
    /// itself is made on the edge's first request: a sidecar has a cluster for every
    /// service of the mesh, and calls few of them.
    slots: OnceLock<Box<[OnceLock<Histogram>]>>,
    grpc: Family<GrpcLabels, Counter>,
    /// A handle per gRPC status (see [`grpc_status_index`]), made on the edge's first
    /// gRPC response.
    grpc_slots: OnceLock<Box<[OnceLock<Counter>]>>,
    tcp_families: Arc<TcpFamilies>,
    /// The connection handles, resolved on the edge's first connection.
    tcp: OnceLock<TcpEdge>,
    event_families: Arc<[Family<Edge, Counter>; EVENTS.len()]>,
    /// A handle per [`EdgeEvent`], resolved on its first count.
    events: [OnceLock<Counter>; EVENTS.len()],
    /// The edge's Istio series, when the bootstrap asks for them.
    istio: Option<Arc<IstioEdge>>,
}

/// One edge's connection handles.
#[derive(Debug)]
struct TcpEdge {
    opened: Counter,
    closed: Counter,
    open: Gauge,
    read: Counter,
    written: Counter,
}

/// A connection counted open on its edge until this is dropped; the bytes of the
/// connection go to [`read`](Self::read) and [`written`](Self::written).
#[derive(Debug)]
pub struct TcpConnection {
    /// Bytes read from the client.
    pub read: Counter,
    /// Bytes written to the client.
    pub written: Counter,
    closed: Counter,
    open: Gauge,
}

impl Drop for TcpConnection {
    fn drop(&mut self) {
        self.closed.inc();
        self.open.dec();
    }
}

impl EdgeRequests {
    /// Records one request: its method (see [`method_index`]), status and duration.
    pub fn observe(&self, method: usize, status: u16, seconds: f64) {
        let method = method.min(METHODS.len() - 1);
        let resolve = || {
            self.family.get_or_create_owned(&RequestLabels {
                edge: self.edge.clone(),
                http_request_method: METHODS[method],
                http_response_status_code: status,
            })
        };
        match CODES.iter().position(|code| *code == status) {
            Some(code) => self.slots()[method * CODES.len() + code]
                .get_or_init(resolve)
                .observe(seconds),
            // A rare code: found in the family, which takes its lock.
            None => resolve().observe(seconds),
        }
    }

    /// Counts one gRPC response that ended with the status at `index` of
    /// [`grpc_status_index`].
    pub fn grpc_status(&self, index: usize) {
        let index = index.min(GRPC_STATUSES.len() - 1);
        let slots = self
            .grpc_slots
            .get_or_init(|| (0..GRPC_STATUSES.len()).map(|_| OnceLock::new()).collect());
        slots[index]
            .get_or_init(|| {
                self.grpc.get_or_create_owned(&GrpcLabels {
                    edge: self.edge.clone(),
                    grpc_status: GRPC_STATUSES[index],
                })
            })
            .inc();
    }

    /// A request to count in Istio's families (when they are on) once it is dropped:
    /// answered `status` after `seconds`, failed by the proxy for `error` (its reason).
    pub fn istio_request(
        &self,
        status: u16,
        seconds: f64,
        error: Option<&str>,
    ) -> Option<IstioRequest> {
        let edge = self.istio.as_ref()?;
        let flags = super::istio::response_flags(error);
        Some(IstioRequest::new(Arc::clone(edge), status, seconds, flags))
    }

    /// The service the edge goes to, as labelled (`unknown` if the snapshot does not
    /// name it).
    pub fn destination_service(&self) -> &str {
        &self.edge.0.destination_service
    }

    /// Counts `event` on this edge.
    pub fn count(&self, event: EdgeEvent) {
        let index = event.index();
        if let (Some(slot), Some(family)) = (self.events.get(index), self.event_families.get(index))
        {
            slot.get_or_init(|| family.get_or_create_owned(&self.edge))
                .inc();
        }
    }

    /// Counts a connection opened on this edge; it is counted closed when the handle
    /// returned is dropped.
    pub fn tcp_opened(&self) -> TcpConnection {
        let tcp = self.tcp.get_or_init(|| {
            let families = &self.tcp_families;
            TcpEdge {
                opened: families.opened.get_or_create_owned(&self.edge),
                closed: families.closed.get_or_create_owned(&self.edge),
                open: families.open.get_or_create_owned(&self.edge),
                read: families.read.get_or_create_owned(&self.edge),
                written: families.written.get_or_create_owned(&self.edge),
            }
        });
        tcp.opened.inc();
        tcp.open.inc();
        TcpConnection {
            read: tcp.read.clone(),
            written: tcp.written.clone(),
            closed: tcp.closed.clone(),
            open: tcp.open.clone(),
        }
    }

    /// Counts a TCP listener's connection opened on this edge, as
    /// [`tcp_opened`](Self::tcp_opened), and in Istio's `istio_tcp_*` when they are on.
    pub fn tcp_stream_opened(&self) -> TcpConnection {
        let connection = self.tcp_opened();
        if let (Some(istio), Some(tcp)) = (&self.istio, self.tcp.get()) {
            istio.tcp(&tcp.opened, &tcp.closed, &tcp.read, &tcp.written);
        }
        connection
    }

    fn slots(&self) -> &[OnceLock<Histogram>] {
        self.slots.get_or_init(|| {
            (0..METHODS.len() * CODES.len())
                .map(|_| OnceLock::new())
                .collect()
        })
    }
}

/// An inbound listener's edges: one per calling identity, up to [`MAX_PEERS`].
#[derive(Debug)]
pub struct InboundEdges {
    families: EdgeFamilies,
    workload: End,
    unknown: Arc<EdgeRequests>,
    peers: Mutex<HashMap<SpiffeId, Arc<EdgeRequests>>>,
}

impl InboundEdges {
    /// The edge from the client of a connection: by its verified identity over mTLS,
    /// else `unknown`. Called once per connection, not per request.
    pub fn of_caller(&self, peer: Option<&SpiffeId>) -> Arc<EdgeRequests> {
        let Some(peer) = peer else {
            return Arc::clone(&self.unknown);
        };
        let mut peers = self
            .peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(edge) = peers.get(peer) {
            return Arc::clone(edge);
        }
        if peers.len() >= MAX_PEERS {
            return Arc::clone(&self.unknown);
        }
        let edge = self.families.edge(
            Direction::Inbound,
            End::of_identity(peer),
            peer.as_str(),
            self.workload.clone(),
            true,
        );
        peers.insert(peer.clone(), Arc::clone(&edge));
        edge
    }
}

#[cfg(test)]
mod tests;
