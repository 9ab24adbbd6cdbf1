//! SPIFFE IDs: parsing `spiffe://trust-domain/path` strictly.
//!
//! The rules are those of the SPIFFE ID specification, plus one of ours: a
//! workload ID must have a path (a bare trust domain names no workload).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// The longest SPIFFE ID the specification allows, in bytes.
const MAX_LEN: usize = 2048;

/// A well-formed SPIFFE ID of a workload, e.g. `spiffe://example.org/ns/default/sa/web`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct SpiffeId(Arc<str>);

impl SpiffeId {
    /// Parses and checks `text`; the error says what is wrong in words a user can act on.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_LEN {
            return Err(format!("is longer than {MAX_LEN} bytes"));
        }
        let Some(rest) = text.strip_prefix("spiffe://") else {
            return Err(format!(
                "{text:?} is not a SPIFFE ID: it must start with \"spiffe://\""
            ));
        };
        if rest.contains(['?', '#']) {
            return Err(format!("{text:?} must not have a query or a fragment"));
        }
        let (domain, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, ""),
        };
        if domain.is_empty() {
            return Err(format!("{text:?} has no trust domain"));
        }
        if domain.contains([':', '@']) {
            return Err(format!(
                "{text:?}: the trust domain must not have a port or user info"
            ));
        }
        if !domain.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        }) {
            return Err(format!(
                "{text:?}: the trust domain may hold only lowercase letters, digits, '.', '-' and '_'"
            ));
        }
        if path.is_empty() {
            return Err(format!(
                "{text:?} has no path; a workload ID looks like spiffe://{domain}/ns/<namespace>/sa/<service>"
            ));
        }
        for segment in path[1..].split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(format!(
                    "{text:?}: path segments must not be empty, \".\" or \"..\" (nor end with '/')"
                ));
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
            {
                return Err(format!(
                    "{text:?}: path segments may hold only letters, digits, '.', '-' and '_'"
                ));
            }
        }
        Ok(Self(Arc::from(text)))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SpiffeId {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

impl From<SpiffeId> for String {
    fn from(id: SpiffeId) -> Self {
        id.0.to_string()
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
            "maxLength": MAX_LEN,
            "description": "A SPIFFE ID of a workload, e.g. \"spiffe://example.org/ns/default/sa/web\"."
        })
    }
}

#[cfg(test)]
mod tests;
