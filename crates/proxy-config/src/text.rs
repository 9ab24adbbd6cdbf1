//! The text forms of config values in the JSON Schema: the patterns of names, zones, tokens and paths, and the schemas of durations and socket addresses.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

/// Names of listeners and clusters (see `check_name`).
pub const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9_.-]*$";
/// Zones of endpoints and of the proxy.
pub const ZONE_PATTERN: &str = "^[A-Za-z0-9_./-]{1,128}$";
/// HTTP tokens (RFC 9110): header, cookie and method names.
pub const TOKEN_PATTERN: &str = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
/// What an authorization path may hold: `/`, then RFC 3986 path characters.
pub const AUTHZ_PATH_PATTERN: &str = r"^/[!$-;=@-\[\]_a-z~]*$";
/// The prefix of SPIFFE IDs: a trust domain and a path that may end in `/`.
pub const SPIFFE_PREFIX_PATTERN: &str = "^spiffe://[a-z0-9._-]+/[A-Za-z0-9._/-]*$";

/// A duration, as `duration_str` reads and writes it.
pub struct DurationText;

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
pub struct Address;

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
