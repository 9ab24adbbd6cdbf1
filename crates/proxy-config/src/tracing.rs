//! Config of distributed tracing: whether the proxy takes part in traces, how many of
//! the traces that start at it are sampled, and where its spans are sent.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{resilience, ConfigError};

/// Most OTLP receivers one proxy sends its spans to.
pub const MAX_EXPORTS: usize = 4;

/// Distributed tracing. With this section the proxy continues the trace of every
/// request (W3C `traceparent`, else B3), starts one where there is none, and passes
/// the trace headers on with its own span id; without it, trace headers go through
/// untouched.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tracing {
    /// Share of the traces started here that are sampled, 0..=100. A request that
    /// continues a trace keeps its caller's decision.
    #[serde(default = "default_sample_percent")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub sample_percent: f64,
    /// The service the proxy's spans belong to (OpenTelemetry's `service.name`).
    #[serde(default = "default_service")]
    #[schemars(length(min = 1, max = 253))]
    pub service: String,
    /// Attributes of every span's resource, such as `service.version` or
    /// `service.namespace`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource: BTreeMap<String, String>,
    /// OTLP/HTTP receivers the spans are sent to, in protobuf; none records no span.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_EXPORTS))]
    pub export: Vec<OtlpExport>,
}

impl Default for Tracing {
    fn default() -> Self {
        Self {
            sample_percent: default_sample_percent(),
            service: default_service(),
            resource: BTreeMap::new(),
            export: Vec::new(),
        }
    }
}

fn default_sample_percent() -> f64 {
    1.0
}

fn default_service() -> String {
    "meshpy-proxy".to_string()
}

/// One OTLP/HTTP traces receiver.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OtlpExport {
    /// The receiver's URL, `http://host:port/path`, e.g. `http://127.0.0.1:4318/v1/traces`.
    #[schemars(regex(pattern = r"^http://[^/?#\s]+(/[^?#\s]*)?$"))]
    pub endpoint: String,
    /// Headers sent with every export, such as `authorization`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// Checks the `tracing` section.
pub fn validate_tracing(tracing: &Tracing) -> Result<(), ConfigError> {
    resilience::check_percent(tracing.sample_percent, "tracing.sample_percent".into())?;
    if tracing.service.is_empty() || tracing.service.len() > 253 {
        return Err(ConfigError::new(
            "tracing.service",
            "must be 1 to 253 characters",
        ));
    }
    if tracing.export.len() > MAX_EXPORTS {
        return Err(ConfigError::new(
            "tracing.export",
            format!("at most {MAX_EXPORTS} receivers"),
        ));
    }
    for (i, export) in tracing.export.iter().enumerate() {
        let at = |field: &str| format!("tracing.export[{i}].{field}");
        export_uri(&export.endpoint).map_err(|msg| ConfigError::new(at("endpoint"), msg))?;
        for (name, value) in &export.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(ConfigError::new(
                    at("headers"),
                    format!("{name:?} is not a header name"),
                ));
            }
            if http::HeaderValue::from_str(value).is_err() {
                return Err(ConfigError::new(
                    at("headers"),
                    format!("the value of {name:?} is not a header value"),
                ));
            }
        }
    }
    Ok(())
}

/// The URI of an export endpoint: `http`, a host and port, and a path (`/` if none).
pub fn export_uri(endpoint: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|err| format!("{endpoint:?} is not a URL: {err}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!(
                "{endpoint:?}: only http:// receivers are supported, not {other}://"
            ))
        }
        None => return Err(format!("{endpoint:?} needs http://")),
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("{endpoint:?} has no host"));
    };
    if authority.host().is_empty() || authority.as_str().contains('@') {
        return Err(format!("{endpoint:?} has no host, or has a user"));
    }
    if uri.query().is_some() {
        return Err(format!("{endpoint:?} has a query, which OTLP does not use"));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests;
