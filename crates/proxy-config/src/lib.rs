//! The proxy's configuration: a bootstrap fixed at start and a hot-swappable snapshot, parsed strictly.
//!
//! Both are JSON documents. Unknown fields are refused, and every error carries
//! the JSON path of the field at fault (`clusters[0].lb`), so a user can fix a
//! file without guessing. These types are the one definition of the config: the
//! proxy reads them, [`schema`] derives the published JSON Schema from them, and
//! the Python types are generated from that schema (`make schema`). Nothing here
//! touches the network: the crate has no tokio or hyper.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod authz;
mod cluster;
mod listener;
mod metrics;
pub mod path;
mod resilience;
mod route;
pub mod schema;
mod spiffe;
pub mod text;
mod tls;
mod tracing;
pub use authz::{
    Authorization, AuthzAction, AuthzDefault, AuthzPath, AuthzPolicy, AuthzRule, AuthzSource,
    AuthzTarget,
};
pub use cluster::{
    CircuitBreakers, EndpointConfig, HashOn, OutlierDetection, SlowStart, MAX_ENDPOINT_WEIGHT,
};
pub use listener::{
    Direction, Listener, ListenerLimits, ListenerProtocol, ListenerTimeouts, ProxyHeader,
};
pub use metrics::{Metrics, ServiceRef};
pub use resilience::{
    Fault, FaultAbort, FaultDelay, RequestMirror, Retry, RetryBudget, MAX_RETRY_ATTEMPTS,
};
pub use route::{
    compile_regex, HeaderModifier, HeaderPair, NameValue, PathMatch, PathMatchType, PathRewrite,
    PathRewriteType, RouteFilters, RouteMatch, RouteRule, RuleTimeouts, UrlRewrite, ValueMatchType,
    VirtualHost, WeightedBackend, MAX_REGEX_LEN, MAX_REGEX_SIZE, MAX_WEIGHT,
};
pub use spiffe::SpiffeId;
pub use tls::{ClusterTls, ListenerTls, TlsMode};
pub use tracing::{ca_certificates, export_uri, OtlpExport, Tracing, MAX_EXPORTS};

/// A configuration error: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path of the bad field, e.g. `listeners[1].cluster`; empty for the whole document.
    pub path: String,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

impl ConfigError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Settings fixed for the life of a proxy: where the admin listener is and how many threads run it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    /// Address of the admin listener (`/ready`, `/stats`, `/metrics`); none disables it.
    #[serde(default)]
    #[schemars(with = "Option<text::Address>")]
    pub admin: Option<SocketAddr>,
    /// Number of tokio worker threads; 1 suits a sidecar.
    #[serde(default = "default_workers")]
    #[schemars(range(min = 1, max = 64))]
    pub workers: usize,
    /// Connections open at once on all listeners together; at the limit new ones are
    /// refused at accept and those open are kept (each listener also has its own).
    #[serde(default = "default_max_connections")]
    #[schemars(range(min = 1))]
    pub max_connections: usize,
    /// Where to write the access log, one JSON line per request as it ends: `-` for
    /// stderr, else a file, appended to. None writes none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub access_log: Option<String>,
    /// Also export Istio's standard metrics (`istio_requests_total`,
    /// `istio_request_duration_milliseconds`, `istio_tcp_*`), so that Istio's
    /// dashboards and Kiali read the mesh. Costs a counter and a histogram per request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub istio_metrics: bool,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self {
            admin: None,
            workers: default_workers(),
            max_connections: default_max_connections(),
            access_log: None,
            istio_metrics: false,
        }
    }
}

fn default_workers() -> usize {
    1
}

fn default_max_connections() -> usize {
    20_000
}

/// Everything that can change while the proxy runs: listeners and the clusters they send to.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Version of this snapshot; 0 or absent means "one more than the current".
    #[serde(default)]
    pub version: u64,
    /// Sockets to accept connections on.
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// Named groups of upstream endpoints.
    #[serde(default)]
    pub clusters: Vec<Cluster>,
    /// Distributed tracing; absent, trace headers pass through untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Tracing>,
    /// The labels of the per-edge metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
}

impl Snapshot {
    /// Whether any listener or cluster uses mTLS, so that serving needs an identity.
    pub fn uses_tls(&self) -> bool {
        self.listeners.iter().any(|l| l.tls.is_some())
            || self.clusters.iter().any(|c| c.tls.is_some())
    }
}

/// How endpoints of a cluster are chosen.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    /// Each endpoint in turn.
    #[default]
    RoundRobin,
    /// The less busy of two endpoints picked at random (power of two choices).
    LeastRequest,
    /// Of two endpoints picked at random, the one with the lower latency estimate
    /// times requests in flight (Finagle's and Linkerd's peak EWMA).
    PeakEwma,
    /// A consistent-hash ring (Ketama) over `hash_on`: a key keeps its endpoint.
    RingHash,
    /// Google's Maglev lookup table over `hash_on`: even spread, little disruption.
    Maglev,
}

impl LbPolicy {
    /// The name used in config and stats.
    pub fn name(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::LeastRequest => "least_request",
            Self::PeakEwma => "peak_ewma",
            Self::RingHash => "ring_hash",
            Self::Maglev => "maglev",
        }
    }
}

/// What the proxy speaks to a cluster's endpoints.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive, one request per connection at a time.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge, requests multiplexed on one connection.
    Http2,
}

/// A named set of upstream endpoints and how to reach them.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Unique name that listeners refer to.
    #[schemars(regex(pattern = text::NAME_PATTERN), length(max = 253))]
    pub name: String,
    /// Each endpoint, `"ip:port"` or `{address, weight}`; may be empty (requests then get 503).
    #[serde(default)]
    pub endpoints: Vec<EndpointConfig>,
    /// `round_robin`, `least_request`, `peak_ewma`, `ring_hash` or `maglev`.
    #[serde(default)]
    pub lb: LbPolicy,
    /// What `ring_hash` and `maglev` hash (required by them, refused by the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<HashOn>,
    /// The zone this proxy runs in: endpoints of that zone are preferred while one is available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = text::ZONE_PATTERN))]
    pub local_zone: Option<String>,
    /// Ramp up the share of endpoints that join the cluster while it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<SlowStart>,
    /// Leave out, for a while, endpoints that keep failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// Limits on connections and requests to the cluster from this proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breakers: Option<CircuitBreakers>,
    /// `http1` or `http2`; ignored by TCP listeners, and by HTTP ones when `tls` is set (always HTTP/2).
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// Time allowed to open a TCP connection to an endpoint; then 502.
    #[serde(default = "default_connect_timeout", with = "duration_str")]
    #[schemars(with = "text::DurationText")]
    pub connect_timeout: Duration,
    /// Reuse of upstream connections.
    #[serde(default)]
    pub pool: PoolConfig,
    /// Reach the endpoints over mTLS (HTTP/2 for HTTP traffic); absent means plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClusterTls>,
    /// How many retries requests to this cluster may cause; always on.
    #[serde(default)]
    pub retry_budget: RetryBudget,
    /// Delays and errors injected into requests to this cluster (for testing resilience).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// The mesh service its endpoints are: the destination its requests are counted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(2)
}

/// Keep-alive pool of upstream connections.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// An idle pooled connection older than this is closed instead of reused.
    #[serde(with = "duration_str")]
    #[schemars(with = "text::DurationText")]
    pub idle_timeout: Duration,
    /// Idle HTTP/1 connections kept per endpoint at most.
    pub max_idle_per_endpoint: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(60),
            max_idle_per_endpoint: 64,
        }
    }
}

/// Parses a bootstrap document and checks its values.
pub fn parse_bootstrap(json: &str) -> Result<Bootstrap, ConfigError> {
    let bootstrap: Bootstrap = parse_json(json)?;
    if !(1..=64).contains(&bootstrap.workers) {
        return Err(ConfigError::new("workers", "must be between 1 and 64"));
    }
    if bootstrap.max_connections == 0 {
        return Err(ConfigError::new("max_connections", "must be at least 1"));
    }
    if let Some(path) = &bootstrap.access_log {
        if path.is_empty() || path.len() > 4096 || path.contains('\0') {
            return Err(ConfigError::new(
                "access_log",
                "must be \"-\" (stderr) or a file path of 1 to 4096 bytes",
            ));
        }
    }
    Ok(bootstrap)
}

/// Parses a snapshot document and checks its values and cross-references.
pub fn parse_snapshot(json: &str) -> Result<Snapshot, ConfigError> {
    let snapshot: Snapshot = parse_json(json)?;
    validate_snapshot(&snapshot)?;
    Ok(snapshot)
}

fn parse_json<T: for<'de> Deserialize<'de>>(json: &str) -> Result<T, ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigError::new(path, strip_position(&err.into_inner().to_string()))
    })
}

/// serde_json appends "at line 1 column 80"; the path already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

/// Checks what the types alone cannot: names, uniqueness, references, ranges.
pub fn validate_snapshot(snapshot: &Snapshot) -> Result<(), ConfigError> {
    let mut cluster_names = HashSet::new();
    for (i, cluster) in snapshot.clusters.iter().enumerate() {
        let at = |field: &str| format!("clusters[{i}].{field}");
        check_name(&cluster.name).map_err(|msg| ConfigError::new(at("name"), msg))?;
        if !cluster_names.insert(cluster.name.as_str()) {
            return Err(ConfigError::new(
                at("name"),
                format!("duplicate cluster name {:?}", cluster.name),
            ));
        }
        cluster::validate_cluster(i, cluster)?;
        let mut addresses = HashSet::new();
        for (j, endpoint) in cluster.endpoints.iter().enumerate() {
            if !addresses.insert(endpoint.address) {
                return Err(ConfigError::new(
                    format!("clusters[{i}].endpoints[{j}]"),
                    format!("{} is listed twice", endpoint.address),
                ));
            }
        }
        check_positive(cluster.connect_timeout, &at("connect_timeout"))?;
        check_positive(cluster.pool.idle_timeout, &at("pool.idle_timeout"))?;
        resilience::validate_cluster(i, &cluster.retry_budget, cluster.fault.as_ref())?;
    }
    let mut listener_names = HashSet::new();
    let mut addresses = HashSet::new();
    for (i, listener) in snapshot.listeners.iter().enumerate() {
        let at = |field: &str| format!("listeners[{i}].{field}");
        check_name(&listener.name).map_err(|msg| ConfigError::new(at("name"), msg))?;
        if listener.name == "admin" {
            return Err(ConfigError::new(
                at("name"),
                "\"admin\" is reserved for the admin listener",
            ));
        }
        if !listener_names.insert(listener.name.as_str()) {
            return Err(ConfigError::new(
                at("name"),
                format!("duplicate listener name {:?}", listener.name),
            ));
        }
        if listener.address.port() != 0 && !addresses.insert(listener.address) {
            return Err(ConfigError::new(
                at("address"),
                format!("{} is used by another listener", listener.address),
            ));
        }
        listener::validate_listener(i, listener, &cluster_names)?;
    }
    if let Some(workload) = snapshot.metrics.as_ref().and_then(|m| m.workload.as_ref()) {
        metrics::validate_service_ref(workload, "metrics.workload")?;
    }
    if let Some(tracing) = &snapshot.tracing {
        tracing::validate_tracing(tracing)?;
    }
    Ok(())
}

fn check_positive(value: Duration, path: &str) -> Result<(), ConfigError> {
    if value.is_zero() {
        Err(ConfigError::new(path, "must be longer than zero"))
    } else {
        Ok(())
    }
}

/// Names appear in metric labels and URLs, so they are kept plain.
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if first_ok && rest_ok && name.len() <= 253 {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name: use lowercase letters, digits, '-', '_' and '.', starting with a letter or digit"
        ))
    }
}

/// Durations as human strings: "250ms", "15s", "5m".
mod duration_str {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"250ms\", \"15s\" or \"5m\"")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Duration, E> {
                humantime::parse_duration(value).map_err(|err| {
                    E::custom(format!(
                        "invalid duration {value:?} ({err}); use e.g. \"250ms\", \"15s\" or \"5m\""
                    ))
                })
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests;
