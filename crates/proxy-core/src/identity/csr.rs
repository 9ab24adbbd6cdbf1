//! A fresh key and a certificate signing request for a SPIFFE ID, so a sidecar can enrol without a Python crypto library.

use rcgen::string::Ia5String;
use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType, PKCS_ECDSA_P256_SHA256};

use crate::identity::store::IdentityError;
use crate::spiffe::SpiffeId;

/// A new ECDSA P-256 key (PKCS#8 PEM) and a PKCS#10 CSR (PEM) for `spiffe_id`:
/// empty subject, the ID as its one URI SAN, signed by the key.
pub fn generate_csr(spiffe_id: &str) -> Result<(String, String), IdentityError> {
    let id = SpiffeId::parse(spiffe_id).map_err(IdentityError::new)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|err| IdentityError::with_source("cannot generate a key", err))?;
    let mut params = CertificateParams::default();
    // X.509-SVIDs identify by the URI SAN alone; rcgen's default subject has a CN.
    params.distinguished_name = DistinguishedName::new();
    let uri = Ia5String::try_from(id.as_str())
        .map_err(|err| IdentityError::with_source("the SPIFFE ID is not ASCII", err))?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    let csr = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|err| IdentityError::with_source("cannot build the CSR", err))?;
    Ok((key.serialize_pem(), csr))
}

#[cfg(test)]
mod tests {
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
}
