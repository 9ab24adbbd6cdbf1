//! A cluster at run time: its endpoints, balancer and traffic policies, compiled from config so a reload keeps warm pools.
//!
//! [`Cluster::pick`] is the one way to choose an endpoint: it hashes the
//! request for `ring_hash` and `maglev`, keeps to the local zone while one of
//! its endpoints is available, leaves out ejected endpoints (all of them are
//! used when none is left: panic mode), ramps up new endpoints in slow start,
//! and can avoid the endpoint a retry failed on.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use http::header::{HeaderName, COOKIE};
use http::HeaderMap;
use xxhash_rust::xxh3::xxh3_64;

use crate::clock;
use crate::config::{self, HashOn, LbPolicy, ServiceRef, UpstreamProtocol};
use crate::identity::store::IdentityStore;
use crate::policy::balance::{self, weight, Tables, View};
use crate::rng;
use crate::spiffe::SpiffeId;
use crate::telemetry::metrics::{EdgeRequests, Metrics};
use crate::upstream::breaker::{Counters, Limits};
use crate::upstream::endpoint::{Endpoint, EndpointKey, Link};
use crate::upstream::outlier;
use crate::upstream::resilience::{MirrorGate, Traffic};
use crate::upstream::tls::UpstreamTls;

/// What compiling clusters needs besides their config.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The proxy's identity, which mTLS endpoints present.
    pub identity: &'a Arc<IdentityStore>,
    /// Where upstream handshake counters are registered.
    pub metrics: &'a Metrics,
    /// The proxy's count of mirrored requests in flight.
    pub mirror_gate: &'a Arc<MirrorGate>,
    /// The workload the proxy serves, the source of its outbound edges.
    pub workload: Option<&'a ServiceRef>,
}

/// What the clusters being replaced leave to the new ones: endpoints (with
/// their pools, health and latency) by key, and each cluster's counts by name.
#[derive(Debug, Default)]
pub struct EndpointReuse {
    endpoints: HashMap<EndpointKey, Arc<Endpoint>>,
    counters: HashMap<String, Arc<Counters>>,
}

impl EndpointReuse {
    /// Nothing to reuse: the first compile.
    pub fn new() -> Self {
        Self::default()
    }
}

/// What a request offers the balancer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pick<'a> {
    /// The request's headers, for `hash_on` a header or a cookie.
    pub headers: Option<&'a HeaderMap>,
    /// The downstream client's address, for `hash_on` the source IP.
    pub client_ip: Option<IpAddr>,
    /// An endpoint to leave out if any other may be picked: the one a retry failed on.
    pub avoid: Option<&'a Endpoint>,
}

/// The hash key of a `ring_hash` or `maglev` cluster, ready for requests.
#[derive(Debug, Clone)]
enum HashKey {
    Header(HeaderName),
    Cookie(String),
    SourceIp,
}

impl HashKey {
    fn new(config: &HashOn) -> Option<Self> {
        match config {
            // Validation refused names that do not parse.
            HashOn::Header(name) => HeaderName::from_bytes(name.as_bytes())
                .ok()
                .map(Self::Header),
            HashOn::Cookie(name) => Some(Self::Cookie(name.clone())),
            HashOn::SourceIp(_) => Some(Self::SourceIp),
        }
    }

    /// The request's hash, or `None` when it lacks the key.
    fn hash(&self, pick: &Pick<'_>) -> Option<u64> {
        match self {
            Self::Header(name) => pick.headers?.get(name).map(|v| xxh3_64(v.as_bytes())),
            Self::Cookie(name) => cookie_value(pick.headers?, name).map(xxh3_64),
            Self::SourceIp => pick.client_ip.map(|ip| match ip {
                IpAddr::V4(v4) => xxh3_64(&v4.octets()),
                // An IPv4 client seen on a dual-stack socket hashes as itself.
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => xxh3_64(&v4.octets()),
                    None => xxh3_64(&v6.octets()),
                },
            }),
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (RFC 6265 §5.4), the first if repeated.
pub fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let at = pair.iter().position(|&b| b == b'=')?;
            (pair[..at].trim_ascii() == name.as_bytes()).then(|| pair[at + 1..].trim_ascii())
        })
}

/// What the balancer knows of one endpoint from config.
#[derive(Debug)]
struct Member {
    weight: u32,
    zone: Option<String>,
    local: bool,
}

/// A named group of endpoints and the policies that pick one per request.
#[derive(Debug)]
pub struct Cluster {
    name: Arc<str>,
    lb: LbPolicy,
    protocol: UpstreamProtocol,
    tls: Option<SpiffeId>,
    endpoints: Vec<Arc<Endpoint>>,
    members: Vec<Member>,
    tables: Tables,
    cursor: AtomicUsize,
    hash_key: Option<HashKey>,
    /// `local_zone` is set, and both local and other endpoints exist.
    zoned: bool,
    /// Slow-start window in milliseconds; 0 without slow start.
    slow_start_ms: u64,
    /// When the last slow start ends (`clock::now_ms`); 0 when none runs.
    ramp_until_ms: u64,
    link: Arc<Link>,
    /// Retry budget, faults and their counters (see `resilience`).
    traffic: Traffic,
    /// The edge its requests are counted on when an outbound listener sends them.
    edge: Arc<EdgeRequests>,
}

impl Cluster {
    /// Builds a cluster from config, reusing an existing endpoint (and its
    /// pooled connections, health and latency) wherever one with the same settings exists.
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
        let existed = reuse.counters.get(&cfg.name);
        let now = clock::now_ms();
        let endpoints: Vec<Arc<Endpoint>> = cfg
            .endpoints
            .iter()
            .map(|endpoint| {
                let key = EndpointKey {
                    cluster: cfg.name.clone(),
                    addr: endpoint.address,
                    protocol,
                    connect_timeout: cfg.connect_timeout,
                    pool: cfg.pool,
                    tls: tls.clone(),
                };
                if let Some(reused) = reuse.endpoints.get(&key) {
                    return Arc::clone(reused);
                }
                let upstream_tls = tls.as_ref().zip(handshakes.as_ref()).map(|(id, counts)| {
                    UpstreamTls::new(id.clone(), Arc::clone(ctx.identity), counts.clone())
                });
                let created = Endpoint::new(key, upstream_tls);
                // Joining a cluster that already serves: slow start applies to it.
                if existed.is_some() {
                    created.set_joined(now);
                }
                Arc::new(created)
            })
            .collect();
        let local_zone = cfg.local_zone.as_deref();
        let members: Vec<Member> = cfg
            .endpoints
            .iter()
            .map(|e| Member {
                weight: e.weight,
                zone: e.zone.clone(),
                local: local_zone.is_some() && e.zone.as_deref() == local_zone,
            })
            .collect();
        let locals = members.iter().filter(|m| m.local).count();
        let slow_start_ms = cfg.slow_start.map_or(0, |s| clock::ms(s.window));
        let ramp_until_ms = match slow_start_ms {
            0 => 0,
            window => endpoints
                .iter()
                .map(|e| e.joined_ms())
                .filter(|&joined| joined != 0)
                .map(|joined| joined.saturating_add(window))
                .max()
                .unwrap_or(0),
        };
        let names: Vec<(String, u32)> = cfg
            .endpoints
            .iter()
            .map(|e| (e.address.to_string(), e.weight))
            .collect();
        let outlier = cfg
            .outlier_detection
            .as_ref()
            .map(outlier::Policy::from_config);
        let edge =
            ctx.metrics
                .edges
                .outbound(ctx.workload, cfg.service.as_ref(), cfg.tls.is_some());
        let link = Arc::new(Link {
            counters: existed.cloned().unwrap_or_default(),
            limits: Limits::from_config(cfg.circuit_breakers.as_ref()),
            outlier,
            metrics: ctx.metrics.outlier(&cfg.name, &edge),
            members: endpoints.len(),
        });
        for endpoint in &endpoints {
            endpoint.set_link(Arc::clone(&link));
        }
        // Endpoints that left took their ejections with them; count the ones here.
        let ejected = match outlier {
            Some(_) => endpoints
                .iter()
                .filter(|e| e.health().has_ejection())
                .count(),
            None => 0,
        };
        link.metrics.ejected.set(ejected as i64);
        Self {
            name: Arc::from(cfg.name.as_str()),
            lb: cfg.lb,
            protocol,
            tls,
            tables: Tables::new(cfg.lb, &names),
            endpoints,
            zoned: locals > 0 && locals < members.len(),
            members,
            cursor: AtomicUsize::new(0),
            hash_key: cfg.hash_on.as_ref().and_then(HashKey::new),
            slow_start_ms,
            ramp_until_ms,
            link,
            traffic: Traffic::compile(cfg, ctx.metrics, ctx.mirror_gate),
            edge,
        }
    }

    /// The edge an outbound listener counts requests to this cluster on.
    pub fn edge(&self) -> &Arc<EdgeRequests> {
        &self.edge
    }

    /// The retry budget, faults and counters of the cluster.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cluster's name, shared (for spans, which outlive a request).
    pub fn shared_name(&self) -> &Arc<str> {
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

    /// The zone of the endpoint at `index` in config order.
    pub fn zone(&self, index: usize) -> Option<&str> {
        self.members.get(index)?.zone.as_deref()
    }

    /// Whether outlier detection has the endpoint at `index` ejected now.
    pub fn is_ejected(&self, index: usize) -> bool {
        self.link.outlier.is_some()
            && self
                .endpoints
                .get(index)
                .is_some_and(|e| e.is_ejected(clock::now_ms()))
    }

    /// The endpoint for a request, or `None` if the cluster has none.
    ///
    /// Send to it with `Endpoint::send`, which records the outcome. A retry
    /// passes the endpoint that failed as `avoid`.
    pub fn pick(&self, request: &Pick<'_>) -> Option<&Arc<Endpoint>> {
        if self.endpoints.is_empty() {
            return None;
        }
        let hash = self.hash_key.as_ref().and_then(|key| key.hash(request));
        // One atomic load tells whether any endpoint may be ejected; only then is it checked per endpoint.
        let ejections = self.link.outlier.is_some() && self.link.metrics.ejected.get() > 0;
        let now_ms = if ejections || self.ramp_until_ms != 0 {
            clock::now_ms()
        } else {
            0
        };
        let mut view = PickView {
            cluster: self,
            zone: self.zoned,
            avoid: request.avoid,
            ejections,
            ramp: now_ms < self.ramp_until_ms,
            now_ms,
            now_ns: if self.lb == LbPolicy::PeakEwma {
                clock::now_ns()
            } else {
                0
            },
        };
        loop {
            let picked =
                balance::pick(self.lb, &self.tables, &self.cursor, hash, &view, rng::below);
            if let Some(index) = picked {
                return self.endpoints.get(index);
            }
            // No candidate: give up, in turn, the zone preference, the endpoint
            // to avoid, and last the ejections (panic mode: all are used).
            if view.zone {
                view.zone = false;
            } else if view.avoid.is_some() {
                view.avoid = None;
            } else if view.ejections {
                view.ejections = false;
            } else {
                return None;
            }
        }
    }
}

/// A cluster as one pick sees it.
struct PickView<'a> {
    cluster: &'a Cluster,
    /// Keep to local-zone endpoints.
    zone: bool,
    avoid: Option<&'a Endpoint>,
    /// Leave out ejected endpoints.
    ejections: bool,
    /// Some endpoint is in its slow start.
    ramp: bool,
    now_ms: u64,
    now_ns: u64,
}

impl View for PickView<'_> {
    fn count(&self) -> usize {
        self.cluster.endpoints.len()
    }

    fn is_plain(&self) -> bool {
        !self.zone && self.avoid.is_none() && !self.ejections && !self.ramp
    }

    fn weight(&self, i: usize) -> u64 {
        let (Some(member), Some(endpoint)) =
            (self.cluster.members.get(i), self.cluster.endpoints.get(i))
        else {
            return 0;
        };
        let joined = endpoint.joined_ms();
        if (self.zone && !member.local)
            || self.avoid.is_some_and(|a| std::ptr::eq(a, &**endpoint))
            || (self.ejections && endpoint.is_ejected(self.now_ms))
        {
            0
        } else if self.ramp && joined != 0 {
            weight::slow_start(
                member.weight,
                self.now_ms.saturating_sub(joined),
                self.cluster.slow_start_ms,
            )
        } else {
            u64::from(member.weight) * weight::FULL
        }
    }

    fn load(&self, i: usize) -> usize {
        self.cluster.endpoints.get(i).map_or(0, |e| e.in_flight())
    }

    fn rtt_ns(&self, i: usize) -> f64 {
        self.cluster
            .endpoints
            .get(i)
            .map_or(0.0, |e| e.rtt_ns(self.now_ns))
    }
}

/// Collects the endpoints and counts of `clusters` so the next compile can reuse them.
pub fn endpoints_by_key<'a>(clusters: impl IntoIterator<Item = &'a Arc<Cluster>>) -> EndpointReuse {
    let mut reuse = EndpointReuse::new();
    for cluster in clusters {
        for endpoint in &cluster.endpoints {
            reuse
                .endpoints
                .insert(endpoint.key().clone(), Arc::clone(endpoint));
        }
        reuse
            .counters
            .insert(cluster.name.to_string(), Arc::clone(&cluster.link.counters));
    }
    reuse
}

#[cfg(test)]
mod tests;
