//! The JSON Schema of a proxy config file, derived from the config types: the one published as `api/proxy-config.schema.json`.
//!
//! Most of it comes from `#[derive(JsonSchema)]` and doc comments on the types.
//! This module holds what a derive cannot say: the text forms of durations,
//! socket addresses and SPIFFE IDs, endpoints written either way, and the
//! file as `meshpy proxy run` reads it (bootstrap and snapshot keys side by
//! side, plus the identity files). The schema is a little stricter than the
//! parser where a pattern documents the usual form (durations); the parser's
//! checks across fields (references, uniqueness) are not in it.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use crate::cluster::EndpointConfig;
use crate::spiffe::{SpiffeId, MAX_LEN as MAX_SPIFFE_ID_LEN};
use crate::{Bootstrap, Snapshot};

/// Names of listeners and clusters (see `check_name`).
pub(crate) const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9_.-]*$";
/// Zones of endpoints and of the proxy.
pub(crate) const ZONE_PATTERN: &str = "^[A-Za-z0-9_./-]{1,128}$";
/// HTTP tokens (RFC 9110): header, cookie and method names.
pub(crate) const TOKEN_PATTERN: &str = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
/// What an authorization path may hold: `/`, then RFC 3986 path characters.
pub(crate) const AUTHZ_PATH_PATTERN: &str = r"^/[!$-;=@-\[\]_a-z~]*$";
/// The prefix of SPIFFE IDs: a trust domain and a path that may end in `/`.
pub(crate) const SPIFFE_PREFIX_PATTERN: &str = "^spiffe://[a-z0-9._-]+/[A-Za-z0-9._/-]*$";

/// A whole proxy config file, as `meshpy proxy run` reads it: the bootstrap keys
/// (admin, workers, max_connections), a snapshot, and the identity files.
#[derive(JsonSchema)]
#[schemars(title = "ProxyConfig", deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(flatten)]
    pub bootstrap: Bootstrap,
    #[serde(flatten)]
    pub snapshot: Snapshot,
    /// Files of the proxy's mTLS identity, loaded at start and on SIGHUP; needed
    /// when a listener or cluster has `tls`.
    #[serde(default)]
    pub identity: Option<IdentityFiles>,
}

/// PEM files of the proxy's mTLS identity; relative paths are relative to the config file.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct IdentityFiles {
    /// The X.509-SVID, then its intermediates (PEM).
    #[schemars(length(min = 1))]
    pub cert_chain: String,
    /// Its private key: PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`.
    #[schemars(length(min = 1))]
    pub key: String,
    /// Trust roots (PEM, one or more, all trusted).
    #[schemars(length(min = 1))]
    pub roots: String,
}

/// The JSON Schema (draft 2020-12) of a proxy config file.
pub fn config_file_schema() -> serde_json::Value {
    let mut generator = SchemaGenerator::default();
    // Named in `$defs` too: the documents `Proxy(...)` and `Proxy.apply` take.
    generator.subschema_for::<Bootstrap>();
    generator.subschema_for::<Snapshot>();
    generator.into_root_schema_for::<ConfigFile>().to_value()
}

/// A duration, as `duration_str` reads and writes it.
pub(crate) struct DurationText;

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": r"^\s*(\d+\s*(ms|s|m|h)\s*)+$",
            "description": "A duration: numbers with units (ms, s, m, h), e.g. \"250ms\", \"15s\", \"1m 30s\"."
        })
    }
}

/// A socket address, `ip:port` (IPv6 in brackets).
pub(crate) struct Address;

impl JsonSchema for Address {
    fn schema_name() -> Cow<'static, str> {
        "Address".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": r"^(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}$",
            "description": "`ip:port`, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"."
        })
    }
}

impl JsonSchema for SpiffeId {
    fn schema_name() -> Cow<'static, str> {
        "SpiffeId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^spiffe://[a-z0-9._-]+(/[A-Za-z0-9._-]+)+$",
            "maxLength": MAX_SPIFFE_ID_LEN,
            "description": "A SPIFFE ID of a workload, e.g. \"spiffe://example.org/ns/default/sa/web\"."
        })
    }
}

/// An endpoint written as an object.
#[derive(JsonSchema)]
#[schemars(rename = "WeightedEndpoint", deny_unknown_fields)]
#[allow(dead_code)]
struct EndpointObject {
    /// Where the endpoint listens.
    address: Address,
    /// Proportional share of requests.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = crate::MAX_ENDPOINT_WEIGHT))]
    weight: u32,
    /// The zone the endpoint runs in, for the cluster's `local_zone` preference.
    #[serde(default)]
    #[schemars(regex(pattern = ZONE_PATTERN))]
    zone: Option<String>,
}

fn one() -> u32 {
    1
}

impl JsonSchema for EndpointConfig {
    fn schema_name() -> Cow<'static, str> {
        "Endpoint".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An endpoint: \"ip:port\" (weight 1, no zone), or an object.",
            "anyOf": [generator.subschema_for::<Address>(), generator.subschema_for::<EndpointObject>()]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_describes_the_whole_file_and_refuses_unknown_keys() {
        let schema = config_file_schema();
        let properties = schema["properties"].as_object().unwrap();
        let mut keys: Vec<&str> = properties.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "admin",
                "clusters",
                "identity",
                "listeners",
                "max_connections",
                "version",
                "workers"
            ]
        );
        assert_eq!(schema["additionalProperties"], false);
    }
}
