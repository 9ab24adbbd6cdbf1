//! Config of distributed tracing: whether the proxy takes part in traces, and how
//! many of the traces that start at it are sampled.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Distributed tracing. With this section the proxy continues the trace of every
/// request (W3C `traceparent`, else B3), starts one where there is none, and passes
/// the trace headers on with its own span id; without it, trace headers go through
/// untouched.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tracing {
    /// Share of the traces started here that are sampled, 0..=100. A request that
    /// continues a trace keeps its caller's decision.
    #[serde(default = "default_sample_percent")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub sample_percent: f64,
}

impl Default for Tracing {
    fn default() -> Self {
        Self {
            sample_percent: default_sample_percent(),
        }
    }
}

fn default_sample_percent() -> f64 {
    1.0
}

/// Checks the `tracing` section.
pub fn validate_tracing(tracing: &Tracing) -> Result<(), ConfigError> {
    let percent = tracing.sample_percent;
    if percent.is_finite() && (0.0..=100.0).contains(&percent) {
        Ok(())
    } else {
        Err(ConfigError::new(
            "tracing.sample_percent",
            "must be between 0 and 100",
        ))
    }
}

#[cfg(test)]
mod tests;
