//! Config of retries, the per-cluster retry budget, request mirroring and fault injection.
//!
//! Percentages are floats in 0..=100 (Gateway API fractions converted), so a
//! tenth of a percent of traffic can be mirrored or faulted.

use std::collections::HashSet;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{duration_str, ConfigError};
use crate::text;

/// Most retries a rule may ask for after the first try.
pub const MAX_RETRY_ATTEMPTS: u32 = 10;
/// Longest backoff base: the cap is ten times it, and every try is bounded by the request timeout.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(10);
/// Largest reserve of retries per second a budget may keep.
pub const MAX_MIN_RETRIES_PER_SECOND: u32 = 100_000;

/// A rule's retries (Gateway API `HTTPRouteRetry`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Retries after the first try, 0 to 10.
    #[serde(default = "default_attempts")]
    #[schemars(range(max = MAX_RETRY_ATTEMPTS))]
    pub attempts: u32,
    /// Response statuses (400..=599) that are retried; connection failures always are.
    #[serde(default)]
    #[schemars(inner(range(min = 400, max = 599)))]
    pub codes: Vec<u16>,
    /// Base of the exponential backoff with full jitter (capped at ten times it).
    #[serde(default = "default_backoff", with = "duration_str")]
    #[schemars(with = "text::DurationText")]
    pub backoff: Duration,
}

fn default_attempts() -> u32 {
    1
}

fn default_backoff() -> Duration {
    Duration::from_millis(25)
}

/// The per-cluster retry budget (Finagle/Linkerd style), always on: each request
/// deposits `percent`/100 of a retry, each retry withdraws one, and
/// `min_retries_per_second` more are allowed over a 10 s window.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryBudget {
    /// Retries allowed as a percentage of requests, 0..=100.
    #[schemars(range(min = 0.0, max = 100.0))]
    pub percent: f64,
    /// Retries allowed per second whatever the request rate.
    #[schemars(range(max = MAX_MIN_RETRIES_PER_SECOND))]
    pub min_retries_per_second: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            percent: 20.0,
            min_retries_per_second: 10,
        }
    }
}

/// A copy of requests sent to another cluster (Gateway API `RequestMirror`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RequestMirror {
    /// The cluster that gets the copies.
    pub cluster: String,
    /// Share of requests copied, 0..=100.
    #[serde(default = "hundred")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub percent: f64,
}

fn hundred() -> f64 {
    100.0
}

/// Faults this proxy injects into requests to a cluster, before picking an endpoint.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Hold some requests for a while before sending them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
    /// Answer some requests with an error status instead of sending them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
}

/// Delay `percent`% of requests by `duration`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultDelay {
    /// Share of requests delayed, 0..=100.
    #[schemars(range(min = 0.0, max = 100.0))]
    pub percent: f64,
    /// How long.
    #[serde(with = "duration_str")]
    #[schemars(with = "text::DurationText")]
    pub duration: Duration,
}

/// Answer `percent`% of requests with `status`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultAbort {
    /// Share of requests aborted, 0..=100.
    #[schemars(range(min = 0.0, max = 100.0))]
    pub percent: f64,
    /// The status they get, 200..=599.
    #[schemars(range(min = 200, max = 599))]
    pub status: u16,
}

pub(crate) fn check_percent(percent: f64, path: String) -> Result<(), ConfigError> {
    if percent.is_finite() && (0.0..=100.0).contains(&percent) {
        Ok(())
    } else {
        Err(ConfigError::new(path, "must be between 0 and 100"))
    }
}

/// Checks a rule's `retry`; `at` turns a field into its JSON path.
pub fn validate_retry(retry: &Retry, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    if retry.attempts > MAX_RETRY_ATTEMPTS {
        return Err(ConfigError::new(
            at("attempts"),
            format!("must be at most {MAX_RETRY_ATTEMPTS}"),
        ));
    }
    let mut seen = HashSet::new();
    for (c, code) in retry.codes.iter().enumerate() {
        if !(400..=599).contains(code) {
            return Err(ConfigError::new(
                at(&format!("codes[{c}]")),
                "must be a status between 400 and 599",
            ));
        }
        if !seen.insert(code) {
            return Err(ConfigError::new(
                at(&format!("codes[{c}]")),
                format!("{code} is listed twice"),
            ));
        }
    }
    super::check_positive(retry.backoff, &at("backoff"))?;
    if retry.backoff > MAX_RETRY_BACKOFF {
        return Err(ConfigError::new(at("backoff"), "must be at most 10s"));
    }
    Ok(())
}

/// Checks a `request_mirror` filter against the known cluster names.
pub fn validate_mirror(
    mirror: &RequestMirror,
    clusters: &HashSet<&str>,
    at: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    if !clusters.contains(mirror.cluster.as_str()) {
        return Err(ConfigError::new(
            at("cluster"),
            format!("no cluster named {:?}", mirror.cluster),
        ));
    }
    check_percent(mirror.percent, at("percent"))
}

/// Checks cluster `i`'s `retry_budget` and `fault`.
pub fn validate_cluster(
    i: usize,
    budget: &RetryBudget,
    fault: Option<&Fault>,
) -> Result<(), ConfigError> {
    let at = |field: &str| format!("clusters[{i}].{field}");
    check_percent(budget.percent, at("retry_budget.percent"))?;
    if budget.min_retries_per_second > MAX_MIN_RETRIES_PER_SECOND {
        return Err(ConfigError::new(
            at("retry_budget.min_retries_per_second"),
            format!("must be at most {MAX_MIN_RETRIES_PER_SECOND}"),
        ));
    }
    let Some(fault) = fault else {
        return Ok(());
    };
    if fault.delay.is_none() && fault.abort.is_none() {
        return Err(ConfigError::new(at("fault"), "give delay, abort or both"));
    }
    if let Some(delay) = &fault.delay {
        check_percent(delay.percent, at("fault.delay.percent"))?;
        super::check_positive(delay.duration, &at("fault.delay.duration"))?;
    }
    if let Some(abort) = &fault.abort {
        check_percent(abort.percent, at("fault.abort.percent"))?;
        if !(200..=599).contains(&abort.status) {
            return Err(ConfigError::new(
                at("fault.abort.status"),
                "must be a status between 200 and 599",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
