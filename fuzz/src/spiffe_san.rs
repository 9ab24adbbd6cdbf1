//! SPIFFE IDs from text, and the URI SAN of certificates from DER: parsed alone, described, and vetted as the proxy's identity.
//!
//! The input is read three ways: as a SPIFFE ID string; as a DER certificate
//! (`spiffe::id_of_certificate`, `certificate_info`); and as a certificate in
//! the identity the proxy would present (`Proxy::set_identity`), once as the
//! leaf with a good key and roots, once as an extra trust root of a good leaf.
//! The last two reach rustls/webpki parsing and the proxy's verifiers.

use std::sync::OnceLock;

use proxy_core::spiffe::{id_of_certificate, SpiffeId};
use proxy_core::{certificate_info, Proxy};
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};

/// The ID the good leaf carries.
pub const LEAF_ID: &str = "spiffe://example.org/ns/default/sa/web";

pub fn run(data: &[u8]) {
    check_id_text(&crate::text(data));
    check_certificate(data);
}

fn check_id_text(text: &str) {
    let Ok(id) = SpiffeId::parse(text) else {
        return;
    };
    assert_eq!(id.as_str(), text, "a parsed ID is the text it came from");
    assert!(text.len() <= 2048, "{text:?}: longer than SPIFFE allows");
    let rest = text
        .strip_prefix("spiffe://")
        .unwrap_or_else(|| panic!("{text:?} has no spiffe:// scheme"));
    assert!(!rest.contains(['?', '#']), "{text:?}: query or fragment");
    let (domain, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    assert!(
        !domain.is_empty()
            && domain.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
            }),
        "{text:?}: bad trust domain {domain:?}"
    );
    // An ID's path is a normal path: authorization by prefix and the app's view agree on it.
    assert!(
        matches!(
            proxy_core::policy::authz::normalize_path(path),
            Ok(std::borrow::Cow::Borrowed(_))
        ),
        "{text:?}: path {path:?} is not normal"
    );
    let json = serde_json::to_string(&id).unwrap_or_else(|err| panic!("{text:?}: {err}"));
    let back: SpiffeId = serde_json::from_str(&json).unwrap_or_else(|err| panic!("{json}: {err}"));
    assert_eq!(back, id);
}

fn check_certificate(der: &[u8]) {
    let id = id_of_certificate(der);
    if let Ok(id) = &id {
        assert_eq!(
            SpiffeId::parse(id.as_str()).as_ref(),
            Ok(id),
            "the SAN of a certificate is a valid ID"
        );
    }
    let pem = pem("CERTIFICATE", der);
    if let Ok(info) = certificate_info(&pem) {
        assert_eq!(
            info.identity,
            id.as_ref().ok().cloned(),
            "certificate_info and id_of_certificate disagree"
        );
    }
    let pki = pki();
    // As the leaf, with a key and roots that are good.
    let good = &pki.pem;
    if let Ok(info) = pki.proxy.set_identity(&pem, &good.leaf_key, &good.root_pem) {
        assert_eq!(
            info.identity.as_ref().map(SpiffeId::as_str),
            id.as_ref().ok().map(SpiffeId::as_str),
            "the identity set is not the certificate's SAN"
        );
        assert!(id.is_ok(), "an identity without a SPIFFE ID was accepted");
    }
    // As a trust root next to the good one (the good leaf still verifies, so
    // the whole vetting runs), tried first by path building.
    let roots = format!("{pem}{}", good.root_pem);
    if let Err(err) = pki
        .proxy
        .set_identity(&good.leaf_pem, &good.leaf_key, &roots)
    {
        // Only the fuzzed root can be at fault.
        let err = err.to_string();
        assert!(err.contains("roots"), "a good identity refused: {err}");
    }
}

/// The good identity every input is set against, made once per process.
struct Pki {
    /// Never started: `set_identity` only vets and stores.
    proxy: Proxy,
    pem: GoodPem,
}

/// A root and a leaf it signed, with the leaf's key.
pub struct GoodPem {
    pub root_pem: String,
    pub leaf_pem: String,
    pub leaf_key: String,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let pem = good_pem().unwrap_or_else(|err| panic!("test PKI: {err}"));
        let proxy = Proxy::new("{}").unwrap_or_else(|err| panic!("proxy: {err}"));
        // The good identity must be accepted, or every check above proves nothing.
        if let Err(err) = proxy.set_identity(&pem.leaf_pem, &pem.leaf_key, &pem.root_pem) {
            panic!("the good identity is refused: {err}");
        }
        Pki { proxy, pem }
    })
}

/// A fresh root and a leaf for [`LEAF_ID`] it signed.
pub fn good_pem() -> Result<GoodPem, rcgen::Error> {
    let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut root = CertificateParams::default();
    root.distinguished_name = DistinguishedName::new();
    root.distinguished_name
        .push(DnType::CommonName, "fuzz root".to_string());
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root_pem = root.self_signed(&root_key)?.pem();
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let leaf_pem = leaf_params(&[LEAF_ID])?
        .signed_by(&leaf_key, &Issuer::from_params(&root, &root_key))?
        .pem();
    Ok(GoodPem {
        root_pem,
        leaf_pem,
        leaf_key: leaf_key.serialize_pem(),
    })
}

/// An X.509-SVID's params: the URI SANs given, for both mTLS sides.
pub fn leaf_params(uris: &[&str]) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = uris
        .iter()
        .map(|uri| Ia5String::try_from(*uri).map(SanType::URI))
        .collect::<Result<_, _>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    Ok(params)
}

/// `der` as one PEM block of `label`.
fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut body = String::with_capacity(der.len() * 4 / 3 + 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                body.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                body.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests;
