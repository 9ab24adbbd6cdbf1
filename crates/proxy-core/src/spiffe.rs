//! The SPIFFE ID of an X.509-SVID: its one URI SAN, parsed as a [`SpiffeId`].

use std::fmt;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

pub use crate::config::SpiffeId;

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
