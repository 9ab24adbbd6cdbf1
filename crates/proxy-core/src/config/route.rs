//! Config of HTTP routing: virtual hosts by `Host`, rules with matches, weighted backends; and weighted endpoints.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::value::MapAccessDeserializer;
use serde::{Deserialize, Deserializer, Serialize};

use super::{check_positive, duration_str, ConfigError};

/// A virtual host: requests whose `Host` is one of `hosts` follow its rules.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VirtualHost {
    /// Name for logs and stats, e.g. `payment.default`.
    pub name: String,
    /// Host names without port, matched case-insensitively; `*` matches any host.
    pub hosts: Vec<String>,
    /// Rules; Gateway API precedence decides which matching rule wins.
    pub rules: Vec<RouteRule>,
}

/// A routing rule: if any match applies, the request goes to one of the backends.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// Alternatives (OR); an empty list matches every request.
    #[serde(default)]
    pub matches: Vec<RouteMatch>,
    /// Clusters with proportional weights; a weight may be 0.
    pub backends: Vec<WeightedBackend>,
    /// Overrides the listener's timeouts for requests of this rule.
    #[serde(default)]
    pub timeouts: Option<RuleTimeouts>,
}

/// Conditions that must all hold (AND) for a match.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// Path condition; none means any path.
    #[serde(default)]
    pub path: Option<PathMatch>,
    /// Headers that must be present with these exact values.
    #[serde(default)]
    pub headers: Vec<NameValue>,
    /// Query parameters that must be present with these exact values.
    #[serde(default)]
    pub query_params: Vec<NameValue>,
    /// The request method, e.g. `GET`.
    #[serde(default)]
    pub method: Option<String>,
}

/// How a path is matched.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub enum PathMatchType {
    /// The whole path equals the value.
    Exact,
    /// The path starts with the value, element by element (`/a` matches `/a/b`, not `/ab`).
    PathPrefix,
}

/// A path condition.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PathMatch {
    /// `Exact` or `PathPrefix`.
    #[serde(rename = "type")]
    pub kind: PathMatchType,
    /// An absolute path starting with `/`.
    pub value: String,
}

/// An exact name/value condition.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NameValue {
    /// Header name (case-insensitive) or query parameter name (exact).
    pub name: String,
    /// The exact value.
    pub value: String,
}

/// A cluster a rule sends to, with its share.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WeightedBackend {
    /// Name of the cluster.
    pub cluster: String,
    /// Proportional weight; 0 sends nothing.
    #[serde(default = "one")]
    pub weight: u32,
}

/// Per-rule timeouts.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleTimeouts {
    /// Time from receiving a request to the upstream's response headers; then 504.
    #[serde(with = "duration_str")]
    pub request: Duration,
}

fn one() -> u32 {
    1
}

/// Largest weight of a backend or an endpoint.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// An upstream endpoint: `"ip:port"`, or `{address, weight}`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Where the endpoint listens.
    pub address: SocketAddr,
    /// Proportional share of requests (1..=128).
    pub weight: u32,
}

/// Largest weight of an endpoint: keeps the weighted round-robin schedule small.
pub const MAX_ENDPOINT_WEIGHT: u32 = 128;

impl<'de> Deserialize<'de> for EndpointConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Object {
            address: SocketAddr,
            #[serde(default = "one")]
            weight: u32,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = EndpointConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"ip:port\" or {address, weight}")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<EndpointConfig, E> {
                let address = value
                    .parse()
                    .map_err(|_| E::custom(format!("invalid socket address {value:?}")))?;
                Ok(EndpointConfig { address, weight: 1 })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<EndpointConfig, A::Error> {
                let object = Object::deserialize(MapAccessDeserializer::new(map))?;
                Ok(EndpointConfig {
                    address: object.address,
                    weight: object.weight,
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Checks the routes of listener `i` against the known cluster names.
pub fn validate_routes(
    i: usize,
    routes: &[VirtualHost],
    clusters: &HashSet<&str>,
) -> Result<(), ConfigError> {
    let mut hosts_seen = HashSet::new();
    for (v, vhost) in routes.iter().enumerate() {
        let at = |field: &str| format!("listeners[{i}].routes[{v}].{field}");
        if vhost.hosts.is_empty() {
            return Err(ConfigError::new(at("hosts"), "must list at least one host"));
        }
        for (h, host) in vhost.hosts.iter().enumerate() {
            let host = host.to_ascii_lowercase();
            if host.is_empty() || host.contains([':', '/', ' ']) {
                return Err(ConfigError::new(
                    at(&format!("hosts[{h}]")),
                    format!("{host:?} is not a host name (no port, no path)"),
                ));
            }
            if !hosts_seen.insert(host.clone()) {
                return Err(ConfigError::new(
                    at(&format!("hosts[{h}]")),
                    format!("host {host:?} is already routed by another virtual host"),
                ));
            }
        }
        for (r, rule) in vhost.rules.iter().enumerate() {
            let at = |field: &str| format!("listeners[{i}].routes[{v}].rules[{r}].{field}");
            if rule.backends.is_empty() {
                return Err(ConfigError::new(
                    at("backends"),
                    "must list at least one backend",
                ));
            }
            for (b, backend) in rule.backends.iter().enumerate() {
                if !clusters.contains(backend.cluster.as_str()) {
                    return Err(ConfigError::new(
                        at(&format!("backends[{b}].cluster")),
                        format!("no cluster named {:?}", backend.cluster),
                    ));
                }
                if backend.weight > MAX_WEIGHT {
                    return Err(ConfigError::new(
                        at(&format!("backends[{b}].weight")),
                        format!("must be at most {MAX_WEIGHT}"),
                    ));
                }
            }
            if let Some(timeouts) = &rule.timeouts {
                check_positive(timeouts.request, &at("timeouts.request"))?;
            }
            for (m, matched) in rule.matches.iter().enumerate() {
                validate_match(matched, &|field| at(&format!("matches[{m}].{field}")))?;
            }
        }
    }
    Ok(())
}

fn validate_match(matched: &RouteMatch, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    if let Some(path) = &matched.path {
        if !path.value.starts_with('/') {
            return Err(ConfigError::new(at("path.value"), "must start with '/'"));
        }
    }
    for (h, header) in matched.headers.iter().enumerate() {
        if http::HeaderName::from_bytes(header.name.as_bytes()).is_err() {
            return Err(ConfigError::new(
                at(&format!("headers[{h}].name")),
                format!("{:?} is not a valid header name", header.name),
            ));
        }
        if http::HeaderValue::from_str(&header.value).is_err() {
            return Err(ConfigError::new(
                at(&format!("headers[{h}].value")),
                "is not a valid header value",
            ));
        }
    }
    if let Some(method) = &matched.method {
        if http::Method::from_bytes(method.as_bytes()).is_err() || method.is_empty() {
            return Err(ConfigError::new(
                at("method"),
                format!("{method:?} is not a valid method"),
            ));
        }
    }
    Ok(())
}
