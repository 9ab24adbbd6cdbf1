//! Certificate verifiers of both handshake sides: the chain to the trust roots (webpki), then the peer's SPIFFE ID.
//!
//! Servers (inbound) accept any client whose chain verifies and whose leaf is
//! an X.509-SVID; authorization by identity happens later, per request.
//! Clients (upstream) accept only the one server identity the cluster names:
//! the check runs inside the handshake, so the proxy never sends its own
//! certificate, let alone a request, to a server that is not that workload.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};

use crate::spiffe::{self, SpiffeId};

/// The upstream presented a valid SVID of another workload than the cluster expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityMismatch {
    /// The identity the cluster names.
    pub expected: SpiffeId,
    /// The identity the upstream's certificate carries.
    pub presented: SpiffeId,
}

impl fmt::Display for IdentityMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected {} but the upstream presented {}",
            self.expected, self.presented
        )
    }
}

impl std::error::Error for IdentityMismatch {}

fn invalid(err: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(err))))
}

fn svid_id(end_entity: &CertificateDer<'_>) -> Result<SpiffeId, rustls::Error> {
    spiffe::id_of_certificate(end_entity).map_err(invalid)
}

/// Verifies client certificates: webpki against the roots, then "is an X.509-SVID".
#[derive(Debug)]
pub struct SpiffeClientVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
}

impl SpiffeClientVerifier {
    /// Wraps a webpki client verifier that requires a certificate.
    pub fn new(webpki: Arc<dyn ClientCertVerifier>) -> Self {
        Self { webpki }
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .webpki
            .verify_client_cert(end_entity, intermediates, now)?;
        svid_id(end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Verifies server certificates: webpki against the roots, then the exact SPIFFE ID expected.
///
/// Server names (DNS, IP) play no part: an SVID names a workload, not a host.
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    /// `None` checks only that the server is some valid SVID (used to vet the proxy's own chain).
    expected: Option<SpiffeId>,
}

impl SpiffeServerVerifier {
    /// A verifier that accepts only `expected` (or any SVID, for `None`).
    pub fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
        expected: Option<SpiffeId>,
    ) -> Self {
        Self {
            roots,
            provider,
            expected,
        }
    }

    /// The chain and identity checks, without the handshake around them.
    pub fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<SpiffeId, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let presented = svid_id(end_entity)?;
        match &self.expected {
            Some(expected) if *expected != presented => Err(invalid(IdentityMismatch {
                expected: expected.clone(),
                presented,
            })),
            _ => Ok(presented),
        }
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verify_chain(end_entity, intermediates, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a failed upstream handshake means for the request: a wrong workload, or any other TLS failure.
pub fn mismatch_in(err: &std::io::Error) -> Option<&IdentityMismatch> {
    let rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) =
        err.get_ref()?.downcast_ref::<rustls::Error>()?
    else {
        return None;
    };
    inner.downcast_ref::<IdentityMismatch>()
}
