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
mod tests;
