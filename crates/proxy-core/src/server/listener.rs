//! The per-listener state that connections share and a reload swaps: the route, the authorization, connection counts and limits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::config::{
    self, Direction, ListenerLimits, ListenerProtocol, ListenerTimeouts, ProxyHeader, ServiceRef,
    TlsMode,
};
use crate::identity::store::IdentityStore;
use crate::policy::authz::{AuthzRequest, Decision};
use crate::policy::plan::ListenerPolicy;
use crate::telemetry::metrics::edge::Direction as EdgeDirection;
use crate::telemetry::metrics::{
    AuthzCounters, EdgeRequests, InboundEdges, ListenerMetrics, Metrics, RouteRequests, RouteShape,
};
use crate::telemetry::tap::TapHub;
use crate::telemetry::trace::span::Kind;
use crate::telemetry::trace::Tracer;
use crate::upstream::cluster::Cluster;

/// What a listener's new connections and requests follow; replaced whole on reload.
#[derive(Debug)]
pub struct ListenerRoute {
    /// HTTP or TCP.
    pub protocol: ListenerProtocol,
    /// Where traffic goes, the request timeout and authorization: what a request's
    /// plan is made from.
    pub policy: ListenerPolicy<Arc<Cluster>>,
    /// Which proxy header to add.
    pub proxy_header: ProxyHeader,
    /// Request and idle timeouts.
    pub timeouts: ListenerTimeouts,
    /// Connection and header limits.
    pub limits: ListenerLimits,
    /// mTLS termination, if the listener has `tls`.
    pub tls: Option<TlsMode>,
    /// The authorization's decisions and audit matches, if the listener has `authorization`.
    pub authz_counters: Option<AuthzCounters>,
    /// The snapshot's tracing; without it, trace headers pass through untouched.
    pub tracer: Option<Arc<Tracer>>,
    /// The kind of this listener's spans: server (inbound) or client (outbound).
    pub span_kind: Kind,
    /// The edges its requests are counted on.
    pub edges: ListenerEdges,
    /// Its requests by route and rule, on a listener with routes.
    pub route_requests: Option<RouteRequests>,
}

/// Where a listener's requests are counted: inbound, on the edge from each caller;
/// outbound, on the edge to the cluster a request was sent to (see `Cluster::edge`),
/// or on `unrouted` when it was sent to none.
#[derive(Debug)]
pub enum ListenerEdges {
    /// Requests into the workload.
    Inbound(InboundEdges),
    /// Requests out of it.
    Outbound {
        /// Requests that reached no cluster (no route, refused).
        unrouted: Arc<EdgeRequests>,
    },
}

impl ListenerRoute {
    /// Combines a listener's config with its compiled clusters (validated to exist),
    /// its authorization, compiled with its counters, the snapshot's tracing, and the
    /// edges of `workload` its requests are counted on.
    pub fn new(
        cfg: &config::Listener,
        clusters: &HashMap<&str, Arc<Cluster>>,
        tracer: Option<Arc<Tracer>>,
        metrics: &Metrics,
        workload: Option<&ServiceRef>,
    ) -> Self {
        let edges = match cfg.direction {
            Direction::Inbound => ListenerEdges::Inbound(metrics.edges.inbound(workload)),
            Direction::Outbound => ListenerEdges::Outbound {
                unrouted: metrics.edges.outbound(workload, None, false),
            },
        };
        let route_requests = (!cfg.routes.is_empty()).then(|| {
            let (direction, unmatched, shapes) = match &edges {
                ListenerEdges::Inbound(edges) => {
                    let workload = edges.of_caller(None);
                    let to: Arc<str> = Arc::from(workload.destination_service());
                    let shapes = route_shapes(cfg, |_| Some(Arc::clone(&to)));
                    (EdgeDirection::Inbound, workload, shapes)
                }
                ListenerEdges::Outbound { unrouted } => {
                    let shapes = route_shapes(cfg, |name| {
                        let cluster = clusters.get(name)?;
                        Some(Arc::from(cluster.edge().destination_service()))
                    });
                    (EdgeDirection::Outbound, Arc::clone(unrouted), shapes)
                }
            };
            metrics.route_requests(direction, &shapes, unmatched.destination_service())
        });
        Self {
            protocol: cfg.protocol,
            policy: ListenerPolicy::compile(cfg, |name| clusters.get(name).cloned()),
            proxy_header: cfg.proxy_header,
            timeouts: cfg.timeouts,
            limits: cfg.limits,
            tls: cfg.tls.map(|tls| tls.mode),
            authz_counters: cfg
                .authorization
                .as_ref()
                .map(|authz| metrics.authz(&cfg.name, authz)),
            tracer,
            span_kind: match cfg.direction {
                Direction::Inbound => Kind::Server,
                Direction::Outbound => Kind::Client,
            },
            edges,
            route_requests,
        }
    }

    /// Counts an authorization decision.
    pub fn count_decision(&self, decision: &Decision) {
        if let Some(counters) = &self.authz_counters {
            counters.decided(decision);
        }
    }

    /// Counts a match of the audit policy at `index`.
    pub fn count_audit(&self, index: usize) {
        if let Some(counters) = &self.authz_counters {
            counters.audited(index);
        }
    }

    /// The name of what decided, for logs: a policy's name, or the default.
    pub fn decided_by(&self, decision: &Decision) -> &str {
        self.policy
            .authz
            .as_ref()
            .map_or("", |authorizer| authorizer.label(decision.by))
    }

    /// Decides on a whole connection (TCP) from `identity`, counted; `None` without
    /// authorization.
    pub fn authorize_connection(&self, identity: Option<&str>) -> Option<Decision> {
        let authorizer = self.policy.authz.as_ref()?;
        let req = AuthzRequest {
            identity,
            http: None,
        };
        let decision = authorizer.evaluate(&req, |index| self.count_audit(index));
        self.count_decision(&decision);
        Some(decision)
    }
}

/// The routes of `cfg` as their requests are counted: each rule with the services of
/// its backends, as `service_of` a cluster's name gives them.
fn route_shapes(
    cfg: &config::Listener,
    service_of: impl Fn(&str) -> Option<Arc<str>>,
) -> Vec<RouteShape> {
    cfg.routes
        .iter()
        .map(|route| RouteShape {
            name: route.name.clone(),
            rules: route
                .rules
                .iter()
                .map(|rule| {
                    rule.backends
                        .iter()
                        .filter_map(|backend| service_of(&backend.cluster))
                        .collect()
                })
                .collect(),
        })
        .collect()
}

/// Connections open across every listener of the proxy, and the most allowed
/// (`max_connections` of the bootstrap): at the limit new connections are refused
/// at accept, and those open are kept.
#[derive(Debug)]
pub struct ConnectionBudget {
    open: AtomicUsize,
    limit: AtomicUsize,
}

impl Default for ConnectionBudget {
    fn default() -> Self {
        Self {
            open: AtomicUsize::new(0),
            limit: AtomicUsize::new(usize::MAX),
        }
    }
}

impl ConnectionBudget {
    /// Sets the most connections open at once.
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Connections open now, on all listeners.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn is_full(&self) -> bool {
        self.open() >= self.limit.load(Ordering::Relaxed)
    }
}

/// State of one listener that outlives reloads: its route slot, metrics and connection count.
#[derive(Debug)]
pub struct ListenerShared {
    /// The listener's name.
    pub name: String,
    /// The current route; connections and requests load it, reloads store it.
    pub route: ArcSwap<ListenerRoute>,
    /// Metric handles.
    pub metrics: ListenerMetrics,
    /// The proxy's identity, which mTLS handshakes present.
    pub identity: Arc<IdentityStore>,
    /// The proxy's live taps.
    pub tap: Arc<TapHub>,
    /// The listener's name, shared by its tap events.
    pub tap_name: Arc<str>,
    open: AtomicUsize,
    /// The proxy-wide connection budget.
    budget: Arc<ConnectionBudget>,
}

impl ListenerShared {
    /// Shared state for a listener starting with `route`.
    pub fn new(
        name: &str,
        route: ListenerRoute,
        metrics: ListenerMetrics,
        identity: Arc<IdentityStore>,
        budget: Arc<ConnectionBudget>,
        tap: Arc<TapHub>,
    ) -> Self {
        Self {
            name: name.to_string(),
            route: ArcSwap::from_pointee(route),
            metrics,
            identity,
            tap,
            tap_name: name.into(),
            open: AtomicUsize::new(0),
            budget,
        }
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Counts a new connection open, or refuses it (counted as rejected) when the
    /// listener has `max_connections` open or the proxy-wide budget is full:
    /// shedding refuses new connections first, and those open are kept.
    pub fn admit(self: &Arc<Self>, max_connections: usize) -> Option<OpenConnection> {
        if self.open_connections() >= max_connections || self.budget.is_full() {
            self.metrics.connections_rejected.inc();
            return None;
        }
        Some(OpenConnection::new(self))
    }
}

/// A connection counted open, on its listener and in the budget, for as long as it lives.
pub struct OpenConnection(Arc<ListenerShared>);

impl OpenConnection {
    fn new(shared: &Arc<ListenerShared>) -> Self {
        shared.open.fetch_add(1, Ordering::Relaxed);
        shared.budget.open.fetch_add(1, Ordering::Relaxed);
        shared.metrics.connections_open.inc();
        shared.metrics.connections_total.inc();
        Self(Arc::clone(shared))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.budget.open.fetch_sub(1, Ordering::Relaxed);
        self.0.metrics.connections_open.dec();
    }
}

/// Signals that end connections: `drain` asks them to finish, `stop` ends them now.
#[derive(Debug, Clone)]
pub struct Shutdown {
    /// Stop accepting; finish in-flight requests, then close.
    pub drain: CancellationToken,
    /// Close now.
    pub stop: CancellationToken,
}
