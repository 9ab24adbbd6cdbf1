//! A cluster at run time: its endpoints and balancer, compiled from config so a reload keeps warm pools.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use crate::balance::{self, Weights};
use crate::config::{self, LbPolicy, UpstreamProtocol};
use crate::endpoint::{Endpoint, EndpointKey};
use crate::identity::IdentityStore;
use crate::metrics::Metrics;
use crate::resilience::{MirrorGate, Traffic};
use crate::rng;
use crate::spiffe::SpiffeId;
use crate::upstream_tls::UpstreamTls;

/// What compiling clusters needs besides their config.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The proxy's identity, which mTLS endpoints present.
    pub identity: &'a Arc<IdentityStore>,
    /// Where upstream handshake counters are registered.
    pub metrics: &'a Metrics,
    /// The proxy's count of mirrored requests in flight.
    pub mirror_gate: &'a Arc<MirrorGate>,
}

/// Endpoints of the clusters being replaced, by key, for reuse by the new ones.
pub type EndpointReuse = HashMap<EndpointKey, Arc<Endpoint>>;

/// A named group of endpoints and the policy that picks one per request.
#[derive(Debug)]
pub struct Cluster {
    name: String,
    lb: LbPolicy,
    protocol: UpstreamProtocol,
    tls: Option<SpiffeId>,
    endpoints: Vec<Arc<Endpoint>>,
    weights: Option<Weights>,
    cursor: AtomicUsize,
    /// Retry budget, faults and their counters (see `resilience`).
    traffic: Traffic,
}

impl Cluster {
    /// Builds a cluster from config, reusing an existing endpoint (and its
    /// pooled connections) wherever one with the same settings exists.
    pub fn compile(cfg: &config::Cluster, reuse: &EndpointReuse, ctx: Context<'_>) -> Self {
        let tls = cfg.tls.as_ref().map(|tls| tls.identity.clone());
        // HTTP over mTLS is always HTTP/2 (ALPN h2), whatever `protocol` says.
        let protocol = match tls {
            Some(_) => UpstreamProtocol::Http2,
            None => cfg.protocol,
        };
        let handshakes = tls
            .as_ref()
            .map(|_| ctx.metrics.upstream_handshakes(&cfg.name));
        let endpoints = cfg
            .endpoints
            .iter()
            .map(|endpoint| {
                let key = EndpointKey {
                    addr: endpoint.address,
                    protocol,
                    connect_timeout: cfg.connect_timeout,
                    pool: cfg.pool,
                    tls: tls.clone(),
                };
                if let Some(reused) = reuse.get(&key) {
                    return Arc::clone(reused);
                }
                let upstream_tls = tls.as_ref().zip(handshakes.as_ref()).map(|(id, counts)| {
                    UpstreamTls::new(id.clone(), Arc::clone(ctx.identity), counts.clone())
                });
                Arc::new(Endpoint::new(key, upstream_tls))
            })
            .collect();
        let weights: Vec<u32> = cfg.endpoints.iter().map(|e| e.weight).collect();
        Self {
            name: cfg.name.clone(),
            lb: cfg.lb,
            protocol,
            tls,
            endpoints,
            weights: Weights::new(&weights),
            cursor: AtomicUsize::new(0),
            traffic: Traffic::compile(cfg, ctx.metrics, ctx.mirror_gate),
        }
    }

    /// The retry budget, faults and counters of the cluster.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The load-balancing policy.
    pub fn lb(&self) -> LbPolicy {
        self.lb
    }

    /// What the proxy speaks to the endpoints (HTTP/2 for mTLS clusters).
    pub fn protocol(&self) -> UpstreamProtocol {
        self.protocol
    }

    /// The SPIFFE ID endpoints must present, for a cluster reached over mTLS.
    pub fn tls_identity(&self) -> Option<&SpiffeId> {
        self.tls.as_ref()
    }

    /// All endpoints, in config order.
    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// The endpoint for the next request, or `None` if there are none.
    pub fn pick(&self) -> Option<&Arc<Endpoint>> {
        let endpoints = &self.endpoints;
        let index = balance::pick(
            self.lb,
            endpoints.len(),
            self.weights.as_ref(),
            &self.cursor,
            |i| endpoints[i].in_flight(),
            rng::below,
        )?;
        endpoints.get(index)
    }
}

/// Collects the endpoints of `clusters` so the next compile can reuse them.
pub fn endpoints_by_key<'a>(clusters: impl IntoIterator<Item = &'a Arc<Cluster>>) -> EndpointReuse {
    clusters
        .into_iter()
        .flat_map(|c| c.endpoints.iter())
        .map(|e| (e.key().clone(), Arc::clone(e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(endpoints: &[&str]) -> config::Cluster {
        let json = serde_json::json!({"name": "b", "endpoints": endpoints});
        serde_json::from_value(json).unwrap()
    }

    fn compile(cfg: &config::Cluster, reuse: &EndpointReuse) -> Cluster {
        let identity = Arc::new(IdentityStore::default());
        let metrics = Metrics::new();
        let mirror_gate = Arc::default();
        Cluster::compile(
            cfg,
            reuse,
            Context {
                identity: &identity,
                metrics: &metrics,
                mirror_gate: &mirror_gate,
            },
        )
    }

    #[test]
    fn reload_reuses_endpoints_with_the_same_settings() {
        let old = Arc::new(compile(
            &cfg(&["127.0.0.1:1", "127.0.0.1:2"]),
            &EndpointReuse::new(),
        ));
        let reuse = endpoints_by_key([&old]);
        let new = compile(&cfg(&["127.0.0.1:2", "127.0.0.1:3"]), &reuse);
        assert!(Arc::ptr_eq(&new.endpoints()[0], &old.endpoints()[1]));
        assert_eq!(new.endpoints()[1].addr().port(), 3);
    }

    #[test]
    fn a_tls_identity_change_makes_new_endpoints() {
        let tls = |id: &str| {
            let json = serde_json::json!({"name": "b", "endpoints": ["127.0.0.1:1"], "tls": {"identity": id}});
            serde_json::from_value::<config::Cluster>(json).unwrap()
        };
        let old = Arc::new(compile(&tls("spiffe://td/a"), &EndpointReuse::new()));
        assert_eq!(old.protocol(), UpstreamProtocol::Http2);
        let reuse = endpoints_by_key([&old]);
        let same = compile(&tls("spiffe://td/a"), &reuse);
        assert!(Arc::ptr_eq(&same.endpoints()[0], &old.endpoints()[0]));
        let other = compile(&tls("spiffe://td/b"), &reuse);
        assert!(!Arc::ptr_eq(&other.endpoints()[0], &old.endpoints()[0]));
        let plain = compile(&cfg(&["127.0.0.1:1"]), &reuse);
        assert!(!Arc::ptr_eq(&plain.endpoints()[0], &old.endpoints()[0]));
    }

    #[test]
    fn empty_cluster_picks_nothing() {
        let cluster = compile(&cfg(&[]), &EndpointReuse::new());
        assert!(cluster.pick().is_none());
    }
}
