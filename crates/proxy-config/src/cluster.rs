//! Config of how a cluster spreads and protects its traffic: endpoints with zones, hash keys, slow start, outlier detection, circuit breakers.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderName;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::value::MapAccessDeserializer;
use serde::{Deserialize, Deserializer, Serialize};

use super::{check_positive, duration_str, Cluster, ConfigError, LbPolicy};
use crate::text;

/// Largest weight of an endpoint: keeps the weighted round-robin schedule small.
pub const MAX_ENDPOINT_WEIGHT: u32 = 128;

/// An upstream endpoint: `"ip:port"`, or `{address, weight, zone}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Where the endpoint listens.
    pub address: SocketAddr,
    /// Proportional share of requests (1..=128).
    pub weight: u32,
    /// The zone the endpoint runs in, for `local_zone` preference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

impl<'de> Deserialize<'de> for EndpointConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Object {
            address: SocketAddr,
            #[serde(default = "one")]
            weight: u32,
            #[serde(default)]
            zone: Option<String>,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = EndpointConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"ip:port\" or {address, weight, zone}")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<EndpointConfig, E> {
                let address = value
                    .parse()
                    .map_err(|_| E::custom(format!("invalid socket address {value:?}")))?;
                Ok(EndpointConfig {
                    address,
                    weight: 1,
                    zone: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<EndpointConfig, A::Error> {
                let object = Object::deserialize(MapAccessDeserializer::new(map))?;
                Ok(EndpointConfig {
                    address: object.address,
                    weight: object.weight,
                    zone: object.zone,
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// An endpoint written as an object.
#[derive(JsonSchema)]
#[schemars(rename = "WeightedEndpoint", deny_unknown_fields)]
#[allow(dead_code)]
struct EndpointObject {
    /// Where the endpoint listens.
    address: text::Address,
    /// Proportional share of requests.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = crate::MAX_ENDPOINT_WEIGHT))]
    weight: u32,
    /// The zone the endpoint runs in, for the cluster's `local_zone` preference.
    #[serde(default)]
    #[schemars(regex(pattern = text::ZONE_PATTERN))]
    zone: Option<String>,
}

impl JsonSchema for EndpointConfig {
    fn schema_name() -> Cow<'static, str> {
        "Endpoint".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An endpoint: \"ip:port\" (weight 1, no zone), or an object.",
            "anyOf": [generator.subschema_for::<text::Address>(), generator.subschema_for::<EndpointObject>()]
        })
    }
}

fn one() -> u32 {
    1
}

/// What a hashing balancer (`ring_hash`, `maglev`) hashes to choose an endpoint.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HashOn {
    /// The value of this request header (case-insensitive name).
    #[schemars(title = "HashOnHeader")]
    Header(#[schemars(regex(pattern = text::TOKEN_PATTERN))] String),
    /// The value of this cookie in the `Cookie` header.
    #[schemars(title = "HashOnCookie")]
    Cookie(#[schemars(regex(pattern = text::TOKEN_PATTERN))] String),
    /// The downstream client's IP address; must be `true`.
    #[schemars(title = "HashOnSourceIp")]
    SourceIp(bool),
}

/// Ramp of the share of an endpoint that joins a cluster already serving.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SlowStart {
    /// Time over which the endpoint's weight grows linearly from 10% to 100%.
    #[serde(with = "duration_str")]
    #[schemars(with = "text::DurationText")]
    pub window: Duration,
}

/// Passive health checking: endpoints that keep failing are left out for a while.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetection {
    /// Consecutive 5xx responses, connect failures or timeouts that eject; null disables.
    #[serde(default = "default_consecutive_5xx")]
    #[schemars(range(min = 1))]
    pub consecutive_5xx: Option<u32>,
    /// Consecutive 502, 503, 504, connect failures or timeouts that eject; null disables.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub consecutive_gateway_errors: Option<u32>,
    /// Each interval an endpoint stays in, its count of past ejections goes down by one.
    #[serde(default = "default_interval", with = "duration_str")]
    #[schemars(with = "text::DurationText")]
    pub interval: Duration,
    /// An ejection lasts this times the number of times the endpoint was ejected (at most 300 s).
    #[serde(default = "default_base_ejection_time", with = "duration_str")]
    #[schemars(with = "text::DurationText")]
    pub base_ejection_time: Duration,
    /// Most endpoints ejected at once, as a percentage of the cluster; one may always be.
    #[serde(default = "default_max_ejection_percent")]
    #[schemars(range(max = 100))]
    pub max_ejection_percent: u32,
}

fn default_consecutive_5xx() -> Option<u32> {
    Some(5)
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_base_ejection_time() -> Duration {
    Duration::from_secs(30)
}

fn default_max_ejection_percent() -> u32 {
    10
}

impl Default for OutlierDetection {
    fn default() -> Self {
        Self {
            consecutive_5xx: default_consecutive_5xx(),
            consecutive_gateway_errors: None,
            interval: default_interval(),
            base_ejection_time: default_base_ejection_time(),
            max_ejection_percent: default_max_ejection_percent(),
        }
    }
}

/// Limits on what this proxy sends to a cluster; over one, a request fails at once with 503.
///
/// A limit left out is not enforced.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakers {
    /// Upstream connections open to the cluster's endpoints at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_connections: Option<u32>,
    /// HTTP/1 requests waiting for a connection while the cluster is at `max_connections`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_pending_requests: Option<u32>,
    /// Requests (and TCP connections) in flight to the cluster at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_requests: Option<u32>,
}

/// Checks the balancing fields of cluster `i`.
pub(super) fn validate_cluster(i: usize, cluster: &Cluster) -> Result<(), ConfigError> {
    let at = |field: &str| format!("clusters[{i}].{field}");
    if let Some(service) = &cluster.service {
        super::metrics::validate_service_ref(service, &at("service"))?;
    }
    for (j, endpoint) in cluster.endpoints.iter().enumerate() {
        let address = endpoint.address;
        let at_endpoint = format!("clusters[{i}].endpoints[{j}]");
        if address.port() == 0 || address.ip().is_unspecified() {
            return Err(ConfigError::new(
                at_endpoint,
                format!("{address} is not a reachable address"),
            ));
        }
        if !(1..=MAX_ENDPOINT_WEIGHT).contains(&endpoint.weight) {
            return Err(ConfigError::new(
                format!("{at_endpoint}.weight"),
                format!("must be between 1 and {MAX_ENDPOINT_WEIGHT}"),
            ));
        }
        if let Some(zone) = &endpoint.zone {
            check_zone(zone).map_err(|msg| ConfigError::new(format!("{at_endpoint}.zone"), msg))?;
        }
    }
    if let Some(zone) = &cluster.local_zone {
        check_zone(zone).map_err(|msg| ConfigError::new(at("local_zone"), msg))?;
    }
    let hashing = matches!(cluster.lb, LbPolicy::RingHash | LbPolicy::Maglev);
    match (&cluster.hash_on, hashing) {
        (None, true) => {
            return Err(ConfigError::new(
                at("hash_on"),
                format!("{} needs hash_on", cluster.lb.name()),
            ))
        }
        (Some(_), false) => {
            return Err(ConfigError::new(
                at("hash_on"),
                format!(
                    "only ring_hash and maglev hash requests, not {}",
                    cluster.lb.name()
                ),
            ))
        }
        (Some(HashOn::Header(name)), true) => {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(ConfigError::new(
                    at("hash_on.header"),
                    format!("{name:?} is not a header name"),
                ));
            }
        }
        (Some(HashOn::Cookie(name)), true) => {
            let plain = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c);
            if name.is_empty() || !name.chars().all(plain) {
                return Err(ConfigError::new(
                    at("hash_on.cookie"),
                    format!("{name:?} is not a cookie name"),
                ));
            }
        }
        (Some(HashOn::SourceIp(enabled)), true) => {
            if !enabled {
                return Err(ConfigError::new(
                    at("hash_on.source_ip"),
                    "must be true (or hash on a header or cookie)",
                ));
            }
        }
        (None, false) => {}
    }
    if let Some(slow_start) = &cluster.slow_start {
        check_positive(slow_start.window, &at("slow_start.window"))?;
    }
    if let Some(outlier) = &cluster.outlier_detection {
        let at = |field: &str| at(&format!("outlier_detection.{field}"));
        if outlier.consecutive_5xx.is_none() && outlier.consecutive_gateway_errors.is_none() {
            return Err(ConfigError::new(
                at("consecutive_5xx"),
                "set consecutive_5xx or consecutive_gateway_errors",
            ));
        }
        for (field, value) in [
            ("consecutive_5xx", outlier.consecutive_5xx),
            (
                "consecutive_gateway_errors",
                outlier.consecutive_gateway_errors,
            ),
        ] {
            if value == Some(0) {
                return Err(ConfigError::new(at(field), "must be at least 1"));
            }
        }
        check_positive(outlier.interval, &at("interval"))?;
        check_positive(outlier.base_ejection_time, &at("base_ejection_time"))?;
        if outlier.max_ejection_percent > 100 {
            return Err(ConfigError::new(
                at("max_ejection_percent"),
                "must be between 0 and 100",
            ));
        }
    }
    if let Some(breakers) = &cluster.circuit_breakers {
        for (field, value) in [
            ("max_connections", breakers.max_connections),
            ("max_pending_requests", breakers.max_pending_requests),
            ("max_requests", breakers.max_requests),
        ] {
            if value == Some(0) {
                return Err(ConfigError::new(
                    at(&format!("circuit_breakers.{field}")),
                    "must be at least 1",
                ));
            }
        }
    }
    Ok(())
}

/// Zones appear in stats and come from orchestrators' labels: kept plain.
fn check_zone(zone: &str) -> Result<(), String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/');
    if !zone.is_empty() && zone.len() <= 128 && zone.chars().all(plain) {
        Ok(())
    } else {
        Err(format!(
            "{zone:?} is not a valid zone: use letters, digits, '-', '_', '.' and '/'"
        ))
    }
}

#[cfg(test)]
mod tests;
