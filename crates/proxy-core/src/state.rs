//! What the proxy serves right now, published for the admin listener and `stats()` without locking the control path.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::{json, Map, Value};

use crate::config::{ListenerProtocol, TlsMode, UpstreamProtocol};
use crate::identity::store::IdentityStore;
use crate::policy::plan::Target;
use crate::server::listener::{ConnectionBudget, ListenerShared};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::tap::TapHub;
use crate::upstream::cluster::Cluster;
use crate::upstream::resilience::MirrorGate;

/// One served listener, as stats report it.
#[derive(Debug, Clone)]
pub struct ServedListener {
    /// Shared state of the listener (route, metrics, counts).
    pub shared: Arc<ListenerShared>,
    /// The address bound, or `None` before `start()`.
    pub bound: Option<SocketAddr>,
}

/// The served configuration, replaced whole by each apply.
#[derive(Debug, Default)]
pub struct Served {
    /// Version of the applied snapshot; 0 before the first.
    pub version: u64,
    /// Listeners, in config order.
    pub listeners: Vec<ServedListener>,
    /// Clusters, in config order.
    pub clusters: Vec<Arc<Cluster>>,
}

/// State shared by the control path, the admin listener and the Python binding.
#[derive(Debug, Default)]
pub struct Shared {
    /// Every metric of the proxy.
    pub metrics: Metrics,
    /// What is served now.
    pub served: ArcSwap<Served>,
    /// The proxy's mTLS identity, once set.
    pub identity: Arc<IdentityStore>,
    /// Mirrored requests in flight, bounded per proxy.
    pub mirror_gate: Arc<MirrorGate>,
    /// Connections open on all listeners, bounded per proxy.
    pub connections: Arc<ConnectionBudget>,
    /// Live taps of the requests served (`GET /tap` on the admin listener).
    pub tap: Arc<TapHub>,
    ready: AtomicBool,
    needs_identity: AtomicBool,
}

impl Shared {
    /// State around `metrics`, not ready yet.
    pub fn new(metrics: Metrics) -> Self {
        Self {
            metrics,
            ..Self::default()
        }
    }

    /// True once started with a snapshot applied, until shutdown begins, and
    /// with an identity if the snapshot uses mTLS.
    pub fn is_ready(&self) -> bool {
        self.not_ready_reason().is_none()
    }

    /// Why the proxy is not ready, or `None` if it is.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if !self.ready.load(Ordering::Acquire) {
            Some("not serving: not started with a config yet, or shutting down")
        } else if self.needs_identity.load(Ordering::Acquire) && !self.identity.is_set() {
            Some("no identity: the config uses tls and no certificate has been set")
        } else {
            None
        }
    }

    /// Marks the proxy serving or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Records whether the served snapshot uses mTLS (and so needs an identity to be ready).
    pub fn set_needs_identity(&self, needs: bool) {
        self.needs_identity.store(needs, Ordering::Release);
    }

    /// Stats as a JSON document: version, readiness, listeners and clusters.
    pub fn stats(&self) -> Value {
        let served = self.served.load();
        let listeners: Map<String, Value> = served
            .listeners
            .iter()
            .map(|l| (l.shared.name.clone(), listener_stats(l)))
            .collect();
        let clusters: Map<String, Value> = served
            .clusters
            .iter()
            .map(|c| (c.name().to_string(), cluster_stats(c)))
            .collect();
        let identity = self.identity.current().map(|credentials| {
            let info = credentials.info();
            json!({
                "identity": credentials.identity().as_str(),
                "serial": info.serial,
                "issuer": info.issuer,
                "not_before": info.not_before,
                "not_after": info.not_after,
            })
        });
        json!({
            "version": served.version,
            "ready": self.is_ready(),
            "identity": identity,
            "listeners": listeners,
            "clusters": clusters,
        })
    }
}

fn listener_stats(listener: &ServedListener) -> Value {
    let shared = &listener.shared;
    let route = shared.route.load();
    let metrics = &shared.metrics;
    let [r1, r2, r3, r4, r5] = metrics.requests_by_class();
    json!({
        "address": listener.bound.map(|a| a.to_string()),
        "protocol": match route.protocol {
            ListenerProtocol::Http => "http",
            ListenerProtocol::Tcp => "tcp",
        },
        "cluster": match &route.policy.target {
            Target::Cluster(cluster) => Some(cluster.name()),
            Target::Routes(_) => None,
        },
        "tls": route.tls.map(|mode| match mode {
            TlsMode::Strict => "strict",
            TlsMode::Permissive => "permissive",
        }),
        "connections_open": shared.open_connections(),
        "connections_total": metrics.connections_total.get(),
        "connections_rejected": metrics.connections_rejected.get(),
        "requests": {"1xx": r1, "2xx": r2, "3xx": r3, "4xx": r4, "5xx": r5},
        "bytes_received": metrics.bytes_received.get(),
        "bytes_sent": metrics.bytes_sent.get(),
    })
}

fn cluster_stats(cluster: &Cluster) -> Value {
    let endpoints: Vec<Value> = cluster
        .endpoints()
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({
                "address": e.addr().to_string(),
                "zone": cluster.zone(i),
                "in_flight": e.in_flight(),
                "idle_connections": e.idle_connections(),
                "ejected": cluster.is_ejected(i),
            })
        })
        .collect();
    json!({
        "lb": cluster.lb().name(),
        "protocol": match cluster.protocol() {
            UpstreamProtocol::Http1 => "http1",
            UpstreamProtocol::Http2 => "http2",
        },
        "tls": cluster.tls_identity().map(|id| id.as_str()),
        "endpoints": endpoints,
    })
}
