//! The JSON Schema of a proxy config file, derived from the config types: the one published as `api/proxy-config.schema.json`.
//!
//! It comes from `#[derive(JsonSchema)]` and doc comments on the types, the text
//! forms of [`crate::text`], and hand-written schemas next to the two types that
//! parse by hand (endpoints, SPIFFE IDs). This module adds the file as
//! `meshpy proxy run` reads it: bootstrap and snapshot keys side by side, plus
//! the identity files. The schema is a little stricter than the parser where a
//! pattern documents the usual form (durations); the parser's checks across
//! fields (references, uniqueness) are not in it.

use schemars::{JsonSchema, SchemaGenerator};

use crate::{Bootstrap, Snapshot};

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

#[cfg(test)]
mod tests;
