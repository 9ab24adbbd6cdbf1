//! Config of a listener: the socket, what it speaks, where its traffic goes, and its
//! timeouts, limits, mTLS and authorization.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    authz, check_positive, duration_str, route, Authorization, ConfigError, ListenerTls,
    VirtualHost,
};
use crate::text;

/// What a listener speaks.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ListenerProtocol {
    /// HTTP/1.1 and HTTP/2 with prior knowledge, detected per connection.
    Http,
    /// An opaque byte stream relayed to one endpoint of the cluster.
    Tcp,
}

/// Which header, besides `x-forwarded-for`, records that a request went through the proxy.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProxyHeader {
    /// `via: 1.1 meshpy` on requests and responses (RFC 9110).
    #[default]
    Via,
    /// `forwarded: for=...;proto=http` on requests (RFC 7239).
    Forwarded,
    /// Neither.
    None,
}

/// Which side of its service a listener is on, for its spans and metrics.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// It takes calls to the service (a sidecar's inbound listener, or a proxy in
    /// front of a service): its spans are servers' spans.
    #[default]
    Inbound,
    /// It takes the service's calls to others (a sidecar's outbound listener): its
    /// spans are clients' spans.
    Outbound,
}

/// A socket the proxy accepts connections on, and where their traffic goes.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Unique name, used in metrics and in the address map `start()` returns.
    #[schemars(regex(pattern = text::NAME_PATTERN), length(max = 253))]
    pub name: String,
    /// `ip:port` to bind; port 0 picks a free port.
    #[schemars(with = "text::Address")]
    pub address: SocketAddr,
    /// `http` or `tcp`.
    pub protocol: ListenerProtocol,
    /// `inbound` (calls to the service) or `outbound` (the service's calls).
    #[serde(default)]
    pub direction: Direction,
    /// Name of the cluster that receives all traffic; TCP listeners need it,
    /// HTTP listeners have either this or `routes`.
    #[serde(default)]
    #[schemars(regex(pattern = text::NAME_PATTERN), length(max = 253))]
    pub cluster: Option<String>,
    /// HTTP only: virtual hosts chosen by `Host`, each with its rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<VirtualHost>,
    /// `via`, `forwarded` or `none` (HTTP only).
    #[serde(default)]
    pub proxy_header: ProxyHeader,
    /// Request, idle and slow-client timeouts.
    #[serde(default)]
    pub timeouts: ListenerTimeouts,
    /// Connection and header limits.
    #[serde(default)]
    pub limits: ListenerLimits,
    /// Terminate mTLS (a sidecar's inbound listener); absent means plaintext only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// Who may send which requests (HTTP) or open connections (TCP); absent allows everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
}

/// Timeouts of a listener.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerTimeouts {
    /// Time from receiving a request to the upstream's response headers; then 504.
    #[serde(with = "duration_str")]
    #[schemars(with = "text::DurationText")]
    pub request: Duration,
    /// A connection with no request (HTTP/1) or no bytes (TCP) for this long is closed.
    #[serde(with = "duration_str")]
    #[schemars(with = "text::DurationText")]
    pub idle: Duration,
    /// Once the first byte of an HTTP/1 request head has come, the whole head must
    /// follow within this; otherwise the connection is closed (slow head).
    #[serde(with = "duration_str")]
    #[schemars(with = "text::DurationText")]
    pub request_head: Duration,
    /// Longest a request body may go without data while the upstream waits for it;
    /// then the request fails with 408 and the connection closes (slow body).
    #[serde(with = "duration_str")]
    #[schemars(with = "text::DurationText")]
    pub body_progress: Duration,
    /// Longest a write to a client that does not read may stay blocked; then the
    /// connection is reset (slow read).
    #[serde(with = "duration_str")]
    #[schemars(with = "text::DurationText")]
    pub send: Duration,
}

impl Default for ListenerTimeouts {
    fn default() -> Self {
        Self {
            request: Duration::from_secs(15),
            idle: Duration::from_secs(300),
            request_head: Duration::from_secs(10),
            body_progress: Duration::from_secs(30),
            send: Duration::from_secs(30),
        }
    }
}

/// Limits of a listener; requests over a header limit get 431.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerLimits {
    /// Open connections at most; further ones are closed at once.
    #[schemars(range(min = 1))]
    pub max_connections: usize,
    /// Bytes of request line plus headers at most.
    #[schemars(range(min = 1024, max = 1_048_576))]
    pub max_header_bytes: usize,
    /// Number of request headers at most.
    #[schemars(range(min = 1, max = 1000))]
    pub max_headers: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_header_bytes: 65_536,
            max_headers: 100,
        }
    }
}

/// Checks listener `i` once its name and address are known to be unique: where its
/// traffic goes, its timeouts, its authorization and its limits.
pub(super) fn validate_listener(
    i: usize,
    listener: &Listener,
    cluster_names: &HashSet<&str>,
) -> Result<(), ConfigError> {
    let at = |field: &str| format!("listeners[{i}].{field}");
    match (
        &listener.cluster,
        listener.routes.is_empty(),
        listener.protocol,
    ) {
        (Some(cluster), true, _) => {
            if !cluster_names.contains(cluster.as_str()) {
                return Err(ConfigError::new(
                    at("cluster"),
                    format!("no cluster named {cluster:?}"),
                ));
            }
        }
        (None, false, ListenerProtocol::Http) => {
            route::validate_routes(i, &listener.routes, cluster_names)?;
        }
        (None, false, ListenerProtocol::Tcp) => {
            return Err(ConfigError::new(
                at("routes"),
                "tcp listeners have no routes; name a cluster",
            ));
        }
        (Some(_), false, _) => {
            return Err(ConfigError::new(
                at("routes"),
                "give either cluster or routes, not both",
            ));
        }
        (None, true, _) => {
            return Err(ConfigError::new(at("cluster"), "missing field `cluster`"));
        }
    }
    check_positive(listener.timeouts.request, &at("timeouts.request"))?;
    check_positive(listener.timeouts.idle, &at("timeouts.idle"))?;
    check_positive(listener.timeouts.request_head, &at("timeouts.request_head"))?;
    check_positive(
        listener.timeouts.body_progress,
        &at("timeouts.body_progress"),
    )?;
    check_positive(listener.timeouts.send, &at("timeouts.send"))?;
    if let Some(authorization) = &listener.authorization {
        authz::validate_authorization(i, authorization)?;
    }
    let limits = &listener.limits;
    if limits.max_connections == 0 {
        return Err(ConfigError::new(
            at("limits.max_connections"),
            "must be at least 1",
        ));
    }
    if !(1024..=1 << 20).contains(&limits.max_header_bytes) {
        return Err(ConfigError::new(
            at("limits.max_header_bytes"),
            "must be between 1024 and 1048576",
        ));
    }
    if !(1..=1000).contains(&limits.max_headers) {
        return Err(ConfigError::new(
            at("limits.max_headers"),
            "must be between 1 and 1000",
        ));
    }
    Ok(())
}
