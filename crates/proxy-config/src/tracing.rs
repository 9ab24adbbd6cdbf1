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

/// Largest `ca` bundle of a receiver, in bytes.
pub const MAX_CA_BYTES: usize = 256 * 1024;

/// One OTLP/HTTP traces receiver.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OtlpExport {
    /// The receiver's URL, `http://host:port/path` or `https://...`, e.g.
    /// `http://127.0.0.1:4318/v1/traces`. An `https` receiver must speak TLS 1.3.
    #[schemars(regex(pattern = r"^https?://[^/?#\s]+(/[^?#\s]*)?$"))]
    pub endpoint: String,
    /// Headers sent with every export, such as `authorization`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// PEM certificates that an `https` receiver's certificate must chain to, instead of
    /// the system's trusted roots (OpenTelemetry's `OTEL_EXPORTER_OTLP_CERTIFICATE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_CA_BYTES))]
    pub ca: Option<String>,
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
        let uri =
            export_uri(&export.endpoint).map_err(|msg| ConfigError::new(at("endpoint"), msg))?;
        if let Some(ca) = &export.ca {
            if uri.scheme_str() != Some("https") {
                return Err(ConfigError::new(
                    at("ca"),
                    "only an https receiver has a ca",
                ));
            }
            ca_certificates(ca).map_err(|msg| ConfigError::new(at("ca"), msg))?;
        }
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

/// The certificates of a PEM bundle: at least one, and nothing that fails to parse.
pub fn ca_certificates(
    pem: &str,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;

    if pem.len() > MAX_CA_BYTES {
        return Err(format!("longer than {MAX_CA_BYTES} bytes"));
    }
    let certificates = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("not PEM certificates: {err}"))?;
    if certificates.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certificates)
}

/// The URI of an export endpoint: `http` or `https`, a host and port, and a path (`/` if
/// none).
pub fn export_uri(endpoint: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|err| format!("{endpoint:?} is not a URL: {err}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
                "{endpoint:?}: only http:// and https:// receivers are supported, not {other}://"
            ))
        }
        None => return Err(format!("{endpoint:?} needs http:// or https://")),
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
