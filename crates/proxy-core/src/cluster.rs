//! A cluster at run time: its endpoints and balancer, compiled from config so a reload keeps warm pools.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use crate::balance::{self, Weights};
use crate::config::{self, LbPolicy, UpstreamProtocol};
use crate::endpoint::{Endpoint, EndpointKey};
use crate::rng;

/// Endpoints of the clusters being replaced, by key, for reuse by the new ones.
pub type EndpointReuse = HashMap<EndpointKey, Arc<Endpoint>>;

/// A named group of endpoints and the policy that picks one per request.
#[derive(Debug)]
pub struct Cluster {
    name: String,
    lb: LbPolicy,
    protocol: UpstreamProtocol,
    endpoints: Vec<Arc<Endpoint>>,
    weights: Option<Weights>,
    cursor: AtomicUsize,
}

impl Cluster {
    /// Builds a cluster from config, reusing an existing endpoint (and its
    /// pooled connections) wherever one with the same settings exists.
    pub fn compile(cfg: &config::Cluster, reuse: &EndpointReuse) -> Self {
        let endpoints = cfg
            .endpoints
            .iter()
            .map(|endpoint| {
                let key = EndpointKey {
                    addr: endpoint.address,
                    protocol: cfg.protocol,
                    connect_timeout: cfg.connect_timeout,
                    pool: cfg.pool,
                };
                reuse
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Endpoint::new(key)))
            })
            .collect();
        let weights: Vec<u32> = cfg.endpoints.iter().map(|e| e.weight).collect();
        Self {
            name: cfg.name.clone(),
            lb: cfg.lb,
            protocol: cfg.protocol,
            endpoints,
            weights: Weights::new(&weights),
            cursor: AtomicUsize::new(0),
        }
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The load-balancing policy.
    pub fn lb(&self) -> LbPolicy {
        self.lb
    }

    /// What the proxy speaks to the endpoints.
    pub fn protocol(&self) -> UpstreamProtocol {
        self.protocol
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
        .map(|e| (*e.key(), Arc::clone(e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(endpoints: &[&str]) -> config::Cluster {
        let json = serde_json::json!({"name": "b", "endpoints": endpoints});
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn reload_reuses_endpoints_with_the_same_settings() {
        let old = Arc::new(Cluster::compile(
            &cfg(&["127.0.0.1:1", "127.0.0.1:2"]),
            &EndpointReuse::new(),
        ));
        let reuse = endpoints_by_key([&old]);
        let new = Cluster::compile(&cfg(&["127.0.0.1:2", "127.0.0.1:3"]), &reuse);
        assert!(Arc::ptr_eq(&new.endpoints()[0], &old.endpoints()[1]));
        assert_eq!(new.endpoints()[1].addr().port(), 3);
    }

    #[test]
    fn empty_cluster_picks_nothing() {
        let cluster = Cluster::compile(&cfg(&[]), &EndpointReuse::new());
        assert!(cluster.pick().is_none());
    }
}
