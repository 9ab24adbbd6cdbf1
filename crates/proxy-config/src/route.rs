//! Config of HTTP routing: virtual hosts by `Host`, and rules with their weighted
//! backends, timeouts and retries. What a rule matches is in `matches`, what it
//! changes in `filters`; the checks of a listener's routes start here.

use std::collections::HashSet;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::resilience::{self, Retry};
use super::{check_positive, duration_str, ConfigError};
use crate::text;

mod filters;
mod matches;
use filters::validate_filters;
pub use filters::{
    HeaderModifier, HeaderPair, PathRewrite, PathRewriteType, RouteFilters, UrlRewrite,
};
use matches::validate_match;
pub use matches::{
    compile_regex, NameValue, PathMatch, PathMatchType, RouteMatch, ValueMatchType, MAX_REGEX_LEN,
    MAX_REGEX_SIZE,
};

/// A virtual host: requests whose `Host` is one of `hosts` follow its rules.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VirtualHost {
    /// Name for logs and stats, e.g. `payment.default`.
    pub name: String,
    /// Host names without port, matched case-insensitively; `*` matches any host.
    #[schemars(length(min = 1))]
    pub hosts: Vec<String>,
    /// Rules; Gateway API precedence decides which matching rule wins.
    pub rules: Vec<RouteRule>,
}

/// A routing rule: if any match applies, the request goes to one of the backends.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// Alternatives (OR); an empty list matches every request.
    #[serde(default)]
    pub matches: Vec<RouteMatch>,
    /// Clusters with proportional weights; a weight may be 0.
    #[schemars(length(min = 1))]
    pub backends: Vec<WeightedBackend>,
    /// Overrides the listener's timeouts for requests of this rule.
    #[serde(default)]
    pub timeouts: Option<RuleTimeouts>,
    /// Header changes and URL rewrites for every request of this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<RouteFilters>,
    /// Retries of failed requests, within the target cluster's retry budget; absent means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

/// A cluster a rule sends to, with its share.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WeightedBackend {
    /// Name of the cluster.
    pub cluster: String,
    /// Proportional weight; 0 sends nothing.
    #[serde(default = "one")]
    #[schemars(range(max = MAX_WEIGHT))]
    pub weight: u32,
    /// Filters for requests sent to this backend only, applied after the rule's
    /// header modifiers; its URL rewrite replaces the rule's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<RouteFilters>,
}

/// Per-rule timeouts (Gateway API `timeouts`); each is optional.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleTimeouts {
    /// Time from receiving a request to the response headers, all attempts included; then 504.
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<text::DurationText>")]
    pub request: Option<Duration>,
    /// Time one request to an upstream endpoint may take to its response headers; then 504.
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<text::DurationText>")]
    pub backend_request: Option<Duration>,
}

/// Optional durations as human strings.
mod duration_opt {
    use super::*;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => duration_str::serialize(value, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// A duration string, or null (as absent).
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "duration_str")] Duration);
        Option::<Wrapped>::deserialize(deserializer).map(|found| found.map(|Wrapped(d)| d))
    }
}

fn one() -> u32 {
    1
}

/// Largest weight of a backend or an endpoint.
pub const MAX_WEIGHT: u32 = 1_000_000;

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
            let prefix_only = rule.matches.iter().all(|m| {
                m.path
                    .as_ref()
                    .is_none_or(|p| p.kind == PathMatchType::PathPrefix)
            });
            if let Some(filters) = &rule.filters {
                validate_filters(filters, prefix_only, clusters, &|field| {
                    at(&format!("filters.{field}"))
                })?;
            }
            for (b, backend) in rule.backends.iter().enumerate() {
                if let Some(filters) = &backend.filters {
                    validate_filters(filters, prefix_only, clusters, &|field| {
                        at(&format!("backends[{b}].filters.{field}"))
                    })?;
                }
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
                if let Some(request) = timeouts.request {
                    check_positive(request, &at("timeouts.request"))?;
                }
                if let Some(backend) = timeouts.backend_request {
                    check_positive(backend, &at("timeouts.backend_request"))?;
                    if timeouts.request.is_some_and(|request| backend > request) {
                        return Err(ConfigError::new(
                            at("timeouts.backend_request"),
                            "must not be longer than timeouts.request",
                        ));
                    }
                }
            }
            if let Some(retry) = &rule.retry {
                resilience::validate_retry(retry, &|field| at(&format!("retry.{field}")))?;
            }
            for (m, matched) in rule.matches.iter().enumerate() {
                validate_match(matched, &|field| at(&format!("matches[{m}].{field}")))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
