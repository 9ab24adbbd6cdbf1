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
use crate::config::{self, HashOn, LbPolicy, UpstreamProtocol};
use crate::identity::store::IdentityStore;
use crate::policy::balance::{self, weight, Tables, View};
use crate::rng;
use crate::spiffe::SpiffeId;
use crate::telemetry::metrics::Metrics;
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
    name: String,
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
        let link = Arc::new(Link {
            counters: existed.cloned().unwrap_or_default(),
            limits: Limits::from_config(cfg.circuit_breakers.as_ref()),
            outlier,
            metrics: ctx.metrics.outlier(&cfg.name),
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
            name: cfg.name.clone(),
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
            .insert(cluster.name.clone(), Arc::clone(&cluster.link.counters));
    }
    reuse
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::COOKIE;

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
        assert!(cluster.pick(&Pick::default()).is_none());
    }

    fn json_cluster(json: serde_json::Value) -> config::Cluster {
        serde_json::from_value(json).unwrap()
    }

    /// How often each endpoint (by port) is picked for `request`.
    fn spread(cluster: &Cluster, request: &Pick<'_>, rounds: usize) -> HashMap<u16, usize> {
        let mut seen = HashMap::new();
        for _ in 0..rounds {
            let endpoint = cluster.pick(request).unwrap();
            *seen.entry(endpoint.addr().port()).or_default() += 1;
        }
        seen
    }

    /// Fails `endpoint` until outlier detection acts on it.
    fn fail(cluster: &Cluster, index: usize, times: usize) {
        let endpoint = &cluster.endpoints()[index];
        for _ in 0..times {
            endpoint.record(&cluster.link, outlier::Outcome::Response(500));
        }
    }

    #[test]
    fn the_local_zone_is_preferred_until_none_of_it_is_available() {
        let cluster = compile(
            &json_cluster(serde_json::json!({
                "name": "b",
                "local_zone": "zone-a",
                "lb": "least_request",
                "endpoints": [
                    {"address": "127.0.0.1:1", "zone": "zone-a"},
                    {"address": "127.0.0.1:2", "zone": "zone-b"},
                    {"address": "127.0.0.1:3", "zone": "zone-a"},
                ],
                "outlier_detection": {"consecutive_5xx": 2, "max_ejection_percent": 100},
            })),
            &EndpointReuse::new(),
        );
        let seen = spread(&cluster, &Pick::default(), 300);
        assert_eq!(seen.get(&2), None, "{seen:?}");
        assert!(seen[&1] > 100 && seen[&3] > 100, "{seen:?}");
        // A retry avoiding one local endpoint goes to the other local one.
        let first = Arc::clone(&cluster.endpoints()[0]);
        let avoiding = Pick {
            avoid: Some(&first),
            ..Pick::default()
        };
        assert_eq!(spread(&cluster, &avoiding, 50).get(&3), Some(&50));
        fail(&cluster, 0, 2);
        assert!(cluster.is_ejected(0));
        assert_eq!(spread(&cluster, &Pick::default(), 50).get(&3), Some(&50));
        // No local endpoint left: every zone is used.
        fail(&cluster, 2, 2);
        assert_eq!(spread(&cluster, &Pick::default(), 50).get(&2), Some(&50));
        // Nothing left at all: panic mode uses every endpoint.
        fail(&cluster, 1, 2);
        assert!((0..3).all(|i| cluster.is_ejected(i)));
        assert_eq!(spread(&cluster, &Pick::default(), 300).len(), 3);
    }

    #[test]
    fn ejected_endpoints_are_skipped_by_every_balancer_within_max_percent() {
        for lb in [
            "round_robin",
            "least_request",
            "peak_ewma",
            "ring_hash",
            "maglev",
        ] {
            let mut json = serde_json::json!({
                "name": "b",
                "lb": lb,
                "endpoints": ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"],
                "outlier_detection": {"consecutive_5xx": 3, "max_ejection_percent": 25},
            });
            if lb == "ring_hash" || lb == "maglev" {
                json["hash_on"] = serde_json::json!({"header": "x-user"});
            }
            let metrics = Metrics::new();
            let identity = Arc::new(IdentityStore::default());
            let mirror_gate = Arc::default();
            let ctx = Context {
                identity: &identity,
                metrics: &metrics,
                mirror_gate: &mirror_gate,
            };
            let cluster = Cluster::compile(&json_cluster(json), &EndpointReuse::new(), ctx);
            fail(&cluster, 1, 2);
            assert!(!cluster.is_ejected(1), "{lb}: below the threshold");
            fail(&cluster, 1, 1);
            assert!(cluster.is_ejected(1), "{lb}");
            // 25% of 4 is one endpoint: the next one stays in.
            fail(&cluster, 2, 10);
            assert!(!cluster.is_ejected(2), "{lb}");
            let mut headers = HeaderMap::new();
            for user in 0..200 {
                headers.insert("x-user", user.to_string().parse().unwrap());
                let request = Pick {
                    headers: Some(&headers),
                    ..Pick::default()
                };
                let seen = spread(&cluster, &request, 2);
                assert_eq!(seen.get(&2), None, "{lb}: {seen:?}");
            }
            let text = metrics.render();
            assert!(
                text.contains(r#"meshpy_outlier_ejections_total{cluster="b"} 1"#),
                "{text}"
            );
            assert!(
                text.contains(r#"meshpy_outlier_ejected_endpoints{cluster="b"} 1"#),
                "{text}"
            );
        }
    }

    #[test]
    fn a_hashing_cluster_keeps_a_key_on_one_endpoint_and_a_keyless_request_is_spread() {
        let cluster = compile(
            &json_cluster(serde_json::json!({
                "name": "b",
                "lb": "ring_hash",
                "hash_on": {"cookie": "session"},
                "endpoints": ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"],
            })),
            &EndpointReuse::new(),
        );
        let mut used = HashMap::new();
        for session in 0..100 {
            let mut headers = HeaderMap::new();
            let cookie = format!("theme=dark; session={session}");
            headers.insert(COOKIE, cookie.parse().unwrap());
            let request = Pick {
                headers: Some(&headers),
                ..Pick::default()
            };
            let seen = spread(&cluster, &request, 10);
            assert_eq!(seen.len(), 1, "{seen:?}");
            for port in seen.keys() {
                *used.entry(*port).or_insert(0) += 1;
            }
        }
        assert_eq!(used.len(), 3, "{used:?}");
        assert_eq!(spread(&cluster, &Pick::default(), 300).len(), 3);
    }

    #[test]
    fn source_ip_hashing_keeps_a_client_on_one_endpoint() {
        let cluster = compile(
            &json_cluster(serde_json::json!({
                "name": "b",
                "lb": "maglev",
                "hash_on": {"source_ip": true},
                "endpoints": ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"],
            })),
            &EndpointReuse::new(),
        );
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let at = |ip| {
            let request = Pick {
                client_ip: Some(ip),
                ..Pick::default()
            };
            let seen = spread(&cluster, &request, 20);
            assert_eq!(seen.len(), 1, "{seen:?}");
            seen.into_keys().next().unwrap()
        };
        assert_eq!(at(v4), at(mapped));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, "a=1; sessionx=no".parse().unwrap());
        headers.append(COOKIE, "session = yes ;b=2".parse().unwrap());
        assert_eq!(cookie_value(&headers, "session"), Some(&b"yes"[..]));
        assert_eq!(cookie_value(&headers, "a"), Some(&b"1"[..]));
        assert_eq!(cookie_value(&headers, "c"), None);
        assert_eq!(cookie_value(&HeaderMap::new(), "a"), None);
    }

    #[test]
    fn an_endpoint_joining_a_serving_cluster_starts_slow() {
        let slow = |endpoints: &[&str]| {
            json_cluster(serde_json::json!({
                "name": "b",
                "endpoints": endpoints,
                "slow_start": {"window": "60s"},
            }))
        };
        // Endpoints of a new cluster are all there from the start: no ramp.
        let first = Arc::new(compile(&slow(&["127.0.0.1:1"]), &EndpointReuse::new()));
        assert_eq!(first.ramp_until_ms, 0);
        let reuse = endpoints_by_key([&first]);
        let second = compile(&slow(&["127.0.0.1:1", "127.0.0.1:2"]), &reuse);
        assert!(second.ramp_until_ms > 0);
        // By effective weight: 100 to 10 at the start of the ramp.
        let seen = spread(&second, &Pick::default(), 1100);
        assert!((50..=160).contains(&seen[&2]), "{seen:?}");
        // The joining endpoint keeps its start through a further reload.
        let second = Arc::new(second);
        let third = compile(
            &slow(&["127.0.0.1:1", "127.0.0.1:2"]),
            &endpoints_by_key([&second]),
        );
        assert_eq!(third.ramp_until_ms, second.ramp_until_ms);
    }

    #[test]
    fn counts_and_ejections_carry_over_a_reload() {
        let json = serde_json::json!({
            "name": "b",
            "endpoints": ["127.0.0.1:1", "127.0.0.1:2"],
            "outlier_detection": {"consecutive_5xx": 1, "max_ejection_percent": 50},
            "circuit_breakers": {"max_requests": 5},
        });
        let old = Arc::new(compile(&json_cluster(json.clone()), &EndpointReuse::new()));
        fail(&old, 0, 1);
        let new = compile(&json_cluster(json), &endpoints_by_key([&old]));
        assert!(Arc::ptr_eq(&old.link.counters, &new.link.counters));
        assert!(new.is_ejected(0));
        assert_eq!(new.link.metrics.ejected.get(), 1);
        assert_eq!(spread(&new, &Pick::default(), 10).get(&2), Some(&10));
    }
}
