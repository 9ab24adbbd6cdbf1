//! Config of the per-edge metrics: the workload this proxy serves, and the service a
//! cluster's endpoints belong to.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Longest namespace, service or version name a label takes.
pub const MAX_NAME_LEN: usize = 63;

/// Labels of the proxy's edge metrics. Every request is counted on the edge between
/// two services; this section names the end the proxy stands for. Absent, that end
/// is `unknown`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// The workload whose sidecar this proxy is: the source of its outbound
    /// requests and the destination of its inbound ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<ServiceRef>,
}

/// A service (and version) of the mesh, as metric labels name it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct ServiceRef {
    /// Its namespace.
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"), length(max = 63))]
    pub namespace: String,
    /// Its name.
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"), length(max = 63))]
    pub service: String,
    /// The version, when it is one version's instances only (or the workload's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"), length(max = 63))]
    pub version: Option<String>,
}

/// Whether `name` is a DNS label (lower-case letters, digits and inner dashes, 1 to
/// 63 characters), as namespaces, services and versions are.
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Checks a service reference at `at` (`metrics.workload`, `clusters[2].service`).
pub fn validate_service_ref(service: &ServiceRef, at: &str) -> Result<(), ConfigError> {
    let fields = [
        ("namespace", Some(&service.namespace)),
        ("service", Some(&service.service)),
        ("version", service.version.as_ref()),
    ];
    for (field, value) in fields {
        if let Some(value) = value.filter(|value| !is_dns_label(value)) {
            return Err(ConfigError::new(
                format!("{at}.{field}"),
                format!(
                    "{value:?} is not a DNS label (a-z, 0-9 and '-', at most {MAX_NAME_LEN} characters)"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
