//! A tiny test PKI with rcgen: roots, intermediates and SPIFFE leaves (X.509-SVIDs), valid or not.

use rcgen::string::Ia5String;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
    PKCS_ECDSA_P256_SHA256,
};

/// A certificate authority: its params and key (to sign), its PEM, and the chain above it.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    /// This CA's certificate.
    pub pem: String,
    /// What a certificate signed by this CA is followed by in a chain:
    /// nothing for a root, else this CA and the intermediates above it.
    chain_below: String,
}

/// A leaf certificate with its key.
pub struct Leaf {
    /// The leaf, then every intermediate: what a proxy presents.
    pub chain_pem: String,
    /// The leaf alone.
    pub cert_pem: String,
    /// PKCS#8 PEM of its key.
    pub key_pem: String,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, name.to_string());
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

impl Ca {
    /// A self-signed root.
    pub fn root(name: &str) -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let params = ca_params(name);
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            params,
            key,
            chain_below: String::new(),
        }
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, name: &str) -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let params = ca_params(name);
        let cert = params
            .signed_by(&key, &Issuer::from_params(&self.params, &self.key))
            .unwrap();
        let pem = cert.pem();
        Self {
            chain_below: format!("{pem}{}", self.chain_below),
            pem,
            params,
            key,
        }
    }

    /// A leaf for `uris` (URI SANs) with serial `serial`, tweaked by `edit`.
    pub fn leaf_with(
        &self,
        uris: &[&str],
        serial: u64,
        edit: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = uris
            .iter()
            .map(|u| SanType::URI(Ia5String::try_from(*u).unwrap()))
            .collect();
        params.serial_number = Some(SerialNumber::from(serial));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        edit(&mut params);
        let cert = params
            .signed_by(&key, &Issuer::from_params(&self.params, &self.key))
            .unwrap();
        let cert_pem = cert.pem();
        Leaf {
            chain_pem: format!("{cert_pem}{}", self.chain_below),
            cert_pem,
            key_pem: key.serialize_pem(),
        }
    }

    /// A valid leaf for one SPIFFE ID.
    pub fn leaf(&self, id: &str, serial: u64) -> Leaf {
        self.leaf_with(&[id], serial, |_| {})
    }

    /// A leaf that expired in 2020.
    pub fn expired_leaf(&self, id: &str) -> Leaf {
        self.leaf_with(&[id], 90, |p| {
            p.not_before = date_time_ymd(2019, 1, 1);
            p.not_after = date_time_ymd(2020, 1, 1);
        })
    }

    /// A leaf valid only from 2090.
    pub fn future_leaf(&self, id: &str) -> Leaf {
        self.leaf_with(&[id], 91, |p| {
            p.not_before = date_time_ymd(2090, 1, 1);
            p.not_after = date_time_ymd(2091, 1, 1);
        })
    }
}
