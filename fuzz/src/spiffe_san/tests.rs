//! Regenerates the SPIFFE SAN target's certificate seeds (an ignored test, run by hand).

use super::*;

/// Writes the certificate seeds: `cargo test --lib -- --ignored write_certificate_seeds`.
#[test]
#[ignore = "regenerates committed seed files"]
fn write_certificate_seeds() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/spiffe_san");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::OrganizationName, "fuzz".to_string());
    let issuer = Issuer::from_params(&ca, &key);
    let leaf = |uris: &[&str], edit: &dyn Fn(&mut CertificateParams)| {
        let mut params = leaf_params(uris)?;
        edit(&mut params);
        params.signed_by(&key, &issuer)
    };
    let certs = [
        ("cert_svid.der", leaf(&[LEAF_ID], &|_| {})?),
        (
            "cert_two_uris.der",
            leaf(&[LEAF_ID, "spiffe://example.org/other"], &|_| {})?,
        ),
        (
            "cert_bad_uri.der",
            leaf(&["https://example.org/a"], &|_| {})?,
        ),
        ("cert_no_san.der", leaf(&[], &|_| {})?),
        (
            "cert_dns_and_uri.der",
            leaf(&["spiffe://td/x"], &|p: &mut CertificateParams| {
                if let Ok(dns) = Ia5String::try_from("web.example.org") {
                    p.subject_alt_names.push(SanType::DnsName(dns));
                }
            })?,
        ),
        ("cert_ca.der", ca.self_signed(&key)?),
    ];
    for (name, cert) in certs {
        std::fs::write(dir.join(name), cert.der())?;
    }
    Ok(())
}
