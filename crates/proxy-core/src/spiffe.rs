//! SPIFFE IDs: parsing `spiffe://trust-domain/path` strictly, and reading the one URI SAN of an X.509-SVID.
//!
//! The rules are those of the SPIFFE ID specification, plus one of ours: a
//! workload ID must have a path (a bare trust domain names no workload).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

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

/// A certificate that is not a usable X.509-SVID, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvidError(pub String);

impl fmt::Display for SvidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SvidError {}

/// The SPIFFE ID of a DER certificate: its one and only URI SAN, which must be a SPIFFE ID.
pub fn id_of_certificate(der: &[u8]) -> Result<SpiffeId, SvidError> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|err| SvidError(format!("the certificate cannot be parsed: {err}")))?;
    id_of_parsed(&cert)
}

/// Like [`id_of_certificate`], for a certificate already parsed.
pub fn id_of_parsed(cert: &X509Certificate<'_>) -> Result<SpiffeId, SvidError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|err| SvidError(format!("the subjectAltName extension is invalid: {err}")))?;
    let uris: Vec<&str> = san
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some(*uri),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    match uris.as_slice() {
        [uri] => SpiffeId::parse(uri)
            .map_err(|why| SvidError(format!("its URI SAN is not a valid SPIFFE ID: {why}"))),
        [] => Err(SvidError(
            "the certificate has no URI SAN; an X.509-SVID carries exactly one spiffe:// URI"
                .to_string(),
        )),
        many => Err(SvidError(format!(
            "the certificate has {} URI SANs; an X.509-SVID carries exactly one",
            many.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_ids_parse() {
        for ok in [
            "spiffe://example.org/ns/default/sa/web",
            "spiffe://cluster.local/a",
            "spiffe://x_y-z.0/A.b-c_D",
        ] {
            assert_eq!(SpiffeId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn malformed_ids_are_refused_with_a_reason() {
        let cases = [
            ("https://example.org/a", "must start with"),
            ("SPIFFE://example.org/a", "must start with"),
            ("spiffe:///a", "no trust domain"),
            ("spiffe://example.org", "has no path"),
            ("spiffe://example.org/", "must not be empty"),
            ("spiffe://example.org/a/", "must not be empty"),
            ("spiffe://example.org/a//b", "must not be empty"),
            ("spiffe://example.org/a/../b", "must not be empty"),
            ("spiffe://example.org:8443/a", "port"),
            ("spiffe://user@example.org/a", "user info"),
            ("spiffe://Example.org/a", "lowercase"),
            ("spiffe://example.org/a?x=1", "query"),
            ("spiffe://example.org/a#f", "fragment"),
            ("spiffe://example.org/a b", "path segments may hold"),
            ("spiffe://example.org/%41", "path segments may hold"),
        ];
        for (text, fragment) in cases {
            let err = SpiffeId::parse(text).unwrap_err();
            assert!(err.contains(fragment), "{text}: {err}");
        }
        let long = format!("spiffe://example.org/{}", "a".repeat(MAX_LEN));
        assert!(SpiffeId::parse(&long).is_err());
    }
}
