//! The proxy's workload identity: an X.509-SVID chain, its key and the trust roots, vetted whole, then swapped in atomically.
//!
//! A refused identity changes nothing. An accepted one is stored in an
//! `ArcSwapOption`: handshakes load it without a lock, and the TLS configs of
//! both sides are built here once, not per connection.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::identity::tls::verify::SpiffeServerVerifier;
use crate::identity::tls::{self, Alpn};
use crate::spiffe::{self, SpiffeId};

/// Why an identity was refused, with the error underneath when there is one.
#[derive(Debug)]
pub struct IdentityError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl IdentityError {
    /// A refusal with only a message.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// A refusal with a message and its cause.
    pub(crate) fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for IdentityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// What a certificate says, for logs, stats and the Python API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Its SPIFFE ID, if it is an X.509-SVID.
    pub identity: Option<SpiffeId>,
    /// Subject, RFC 4514 style; empty for most SVIDs.
    pub subject: String,
    /// Issuer, RFC 4514 style.
    pub issuer: String,
    /// Serial number in lowercase hex, without leading zeros.
    pub serial: String,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// Whether it is a CA certificate.
    pub is_ca: bool,
}

impl CertificateInfo {
    fn of(cert: &X509Certificate<'_>) -> Self {
        Self {
            identity: spiffe::id_of_parsed(cert).ok(),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial: format!("{:x}", cert.serial),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            is_ca: cert.is_ca(),
        }
    }
}

/// Describes the first certificate of a PEM document.
pub fn certificate_info(pem: &str) -> Result<CertificateInfo, IdentityError> {
    let chain = certificates(pem, "pem")?;
    let first = chain
        .first()
        .ok_or_else(|| IdentityError::new("pem holds no CERTIFICATE block"))?;
    let (_, cert) = X509Certificate::from_der(first)
        .map_err(|err| IdentityError::with_source("the certificate cannot be parsed", err))?;
    Ok(CertificateInfo::of(&cert))
}

/// A vetted identity and the TLS configs built from it.
pub struct Credentials {
    identity: SpiffeId,
    info: CertificateInfo,
    key: Arc<CertifiedKey>,
    roots: Arc<RootCertStore>,
    inbound_http: Arc<ServerConfig>,
    inbound_tcp: Arc<ServerConfig>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("identity", &self.identity)
            .field("serial", &self.info.serial)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Parses and checks a chain (leaf first), its key and the trust roots, as of now.
    pub fn from_pem(
        chain_pem: &str,
        key_pem: &str,
        roots_pem: &str,
    ) -> Result<Self, IdentityError> {
        Self::from_pem_at(chain_pem, key_pem, roots_pem, UnixTime::now())
    }

    fn from_pem_at(
        chain_pem: &str,
        key_pem: &str,
        roots_pem: &str,
        now: UnixTime,
    ) -> Result<Self, IdentityError> {
        let chain = certificates(chain_pem, "cert_chain")?;
        let Some(leaf_der) = chain.first().cloned() else {
            return Err(IdentityError::new("cert_chain holds no CERTIFICATE block"));
        };
        let (_, leaf) = X509Certificate::from_der(&leaf_der).map_err(|err| {
            IdentityError::with_source("cert_chain: the first certificate cannot be parsed", err)
        })?;
        let info = CertificateInfo::of(&leaf);
        check_validity(&leaf, now)?;
        let identity = spiffe::id_of_parsed(&leaf).map_err(|err| {
            IdentityError::with_source(
                "cert_chain: the first certificate is not an X.509-SVID",
                err,
            )
        })?;

        let key = private_key(key_pem)?;
        let signing_key = tls::provider()
            .key_provider
            .load_private_key(key)
            .map_err(|err| {
                IdentityError::with_source("key: unsupported or malformed private key", err)
            })?;
        let certified = CertifiedKey::new(chain.clone(), signing_key);
        certified.keys_match().map_err(|err| {
            IdentityError::with_source(
                "key: does not match the public key of the first certificate in cert_chain",
                err,
            )
        })?;
        let key = Arc::new(certified);

        let roots = Arc::new(root_store(roots_pem)?);
        let client_verifier = tls::client_verifier(Arc::clone(&roots))
            .map_err(|err| IdentityError::with_source("roots cannot verify clients", err))?;
        // The proxy presents this chain as a server (inbound) and as a client
        // (upstream): peers holding the same roots must accept it both ways.
        let intermediates = &chain[1..];
        SpiffeServerVerifier::new(Arc::clone(&roots), tls::provider(), None)
            .verify_chain(&leaf_der, intermediates, now)
            .and_then(|_| client_verifier.verify_client_cert(&leaf_der, intermediates, now))
            .map_err(|err| {
                IdentityError::with_source("cert_chain does not chain to any of the roots", err)
            })?;

        let server = |alpn| {
            tls::server_config(&key, Arc::clone(&client_verifier), alpn).map_err(|err| {
                IdentityError::with_source("cannot build the TLS server config", err)
            })
        };
        Ok(Self {
            inbound_http: server(Alpn::Http)?,
            inbound_tcp: server(Alpn::None)?,
            identity,
            info,
            key,
            roots,
        })
    }

    /// The SPIFFE ID this proxy presents.
    pub fn identity(&self) -> &SpiffeId {
        &self.identity
    }

    /// What the leaf certificate says.
    pub fn info(&self) -> &CertificateInfo {
        &self.info
    }

    /// The inbound (server) config for HTTP or byte-stream listeners.
    pub fn server_config(&self, alpn: Alpn) -> Arc<ServerConfig> {
        match alpn {
            Alpn::Http => Arc::clone(&self.inbound_http),
            Alpn::None => Arc::clone(&self.inbound_tcp),
        }
    }

    /// An upstream (client) config that accepts only a server presenting `expected`.
    pub fn client_config(
        &self,
        expected: &SpiffeId,
        alpn: Alpn,
    ) -> Result<Arc<ClientConfig>, rustls::Error> {
        let verifier = SpiffeServerVerifier::new(
            Arc::clone(&self.roots),
            tls::provider(),
            Some(expected.clone()),
        );
        tls::client_config(&self.key, Arc::new(verifier), alpn)
    }
}

fn check_validity(leaf: &X509Certificate<'_>, now: UnixTime) -> Result<(), IdentityError> {
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = leaf.validity();
    if now < validity.not_before.timestamp() {
        return Err(IdentityError::new(format!(
            "cert_chain: the certificate is not valid yet (valid from {})",
            validity.not_before
        )));
    }
    if now > validity.not_after.timestamp() {
        return Err(IdentityError::new(format!(
            "cert_chain: the certificate expired at {}",
            validity.not_after
        )));
    }
    Ok(())
}

fn certificates(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| IdentityError::with_source(format!("{what}: invalid PEM"), err))
}

fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, IdentityError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|err| {
        IdentityError::with_source(
            "key: no private key found (expected a PKCS#8 \"PRIVATE KEY\" or SEC1 \"EC PRIVATE KEY\" block)",
            err,
        )
    })
}

fn root_store(pem: &str) -> Result<RootCertStore, IdentityError> {
    let roots = certificates(pem, "roots")?;
    if roots.is_empty() {
        return Err(IdentityError::new("roots holds no CERTIFICATE block"));
    }
    let mut store = RootCertStore::empty();
    for (i, root) in roots.into_iter().enumerate() {
        store.add(root).map_err(|err| {
            IdentityError::with_source(
                format!("roots: certificate {i} is not a usable trust anchor"),
                err,
            )
        })?;
    }
    Ok(store)
}

/// The current identity, if any: read lock-free by every handshake, replaced whole by `set`.
#[derive(Debug, Default)]
pub struct IdentityStore {
    current: ArcSwapOption<Credentials>,
}

impl IdentityStore {
    /// The identity in force now, or `None` before the first `set`.
    pub fn current(&self) -> Option<Arc<Credentials>> {
        self.current.load_full()
    }

    /// Whether an identity was set.
    pub fn is_set(&self) -> bool {
        self.current.load().is_some()
    }

    /// Puts `credentials` in force for every handshake from now on.
    pub fn set(&self, credentials: Credentials) {
        self.current.store(Some(Arc::new(credentials)));
    }
}
