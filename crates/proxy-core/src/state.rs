//! What the proxy serves right now, published for the admin listener and `stats()` without locking the control path.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::{json, Map, Value};

use crate::cluster::Cluster;
use crate::config::{LbPolicy, ListenerProtocol, UpstreamProtocol};
use crate::listener::{ListenerShared, Target};
use crate::metrics::Metrics;

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
    ready: AtomicBool,
}

impl Shared {
    /// True once started with a snapshot applied, until shutdown begins.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Marks the proxy ready or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
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
        json!({
            "version": served.version,
            "ready": self.is_ready(),
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
        "cluster": match &route.target {
            Target::Cluster(cluster) => Some(cluster.name()),
            Target::Routes(_) => None,
        },
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
        .map(|e| {
            json!({
                "address": e.addr().to_string(),
                "in_flight": e.in_flight(),
                "idle_connections": e.idle_connections(),
            })
        })
        .collect();
    json!({
        "lb": match cluster.lb() {
            LbPolicy::RoundRobin => "round_robin",
            LbPolicy::LeastRequest => "least_request",
        },
        "protocol": match cluster.protocol() {
            UpstreamProtocol::Http1 => "http1",
            UpstreamProtocol::Http2 => "http2",
        },
        "endpoints": endpoints,
    })
}
