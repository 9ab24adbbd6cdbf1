//! Tests of the CSR: an empty subject and one URI SAN, and a bad SPIFFE ID refused.

use super::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateSigningRequestDer, PrivateKeyDer};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509CertificationRequest};

#[test]
fn csr_has_an_empty_subject_and_one_uri_san() {
    let id = "spiffe://example.org/ns/default/sa/web";
    let (key_pem, csr_pem) = generate_csr(id).unwrap();
    assert!(
        key_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
        "{key_pem}"
    );
    assert!(matches!(
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap(),
        PrivateKeyDer::Pkcs8(_)
    ));
    let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes()).unwrap();
    let (_, csr) = X509CertificationRequest::from_der(der.as_ref()).unwrap();
    assert_eq!(csr.certification_request_info.subject.iter().count(), 0);
    let uris: Vec<String> = csr
        .requested_extensions()
        .into_iter()
        .flatten()
        .filter_map(|ext| match ext {
            ParsedExtension::SubjectAlternativeName(san) => Some(san),
            _ => None,
        })
        .flat_map(|san| san.general_names.iter())
        .map(|name| match name {
            GeneralName::URI(uri) => uri.to_string(),
            other => panic!("unexpected SAN {other:?}"),
        })
        .collect();
    assert_eq!(uris, vec![id.to_string()]);
}

#[test]
fn a_bad_id_is_refused() {
    let err = generate_csr("spiffe://example.org").unwrap_err();
    assert!(err.to_string().contains("has no path"), "{err}");
}
