//! rustls settings of mTLS: TLS 1.3 only on the aws-lc-rs provider, the proxy's SVID on both sides.
//!
//! Configs are built once per identity (see `identity`), so a handshake only
//! clones an `Arc`. Session resumption is off on both sides: every connection
//! proves its certificate again, so a new identity or new roots apply to every
//! new connection at once.

pub mod verify;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, CommonState, RootCertStore, ServerConfig};

use crate::spiffe::{self, SpiffeId};
use verify::{SpiffeClientVerifier, SpiffeServerVerifier};

/// Longest time a downstream client may take to complete its handshake, so a silent one cannot hold a slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The ALPN id of HTTP/2 over TLS.
pub const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// What a handshake negotiates by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// HTTP: servers offer `h2` and `http/1.1`, clients ask for `h2`.
    Http,
    /// A byte stream (TCP listeners and clusters): no ALPN.
    None,
}

/// The crypto provider every config uses.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider())))
}

/// The verifier of client certificates: chains to `roots`, is an X.509-SVID.
pub fn client_verifier(
    roots: Arc<RootCertStore>,
) -> Result<Arc<SpiffeClientVerifier>, rustls::Error> {
    let webpki = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|err| rustls::Error::General(err.to_string()))?;
    Ok(Arc::new(SpiffeClientVerifier::new(webpki)))
}

/// A server (inbound) config presenting `key` and requiring a client SVID.
pub fn server_config(
    key: &Arc<CertifiedKey>,
    verifier: Arc<SpiffeClientVerifier>,
    alpn: Alpn,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(Arc::clone(key))));
    if alpn == Alpn::Http {
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
    }
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// A client (upstream) config presenting `key` and accepting only the server `verifier` accepts.
pub fn client_config(
    key: &Arc<CertifiedKey>,
    verifier: Arc<SpiffeServerVerifier>,
    alpn: Alpn,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(Arc::clone(key))));
    if alpn == Alpn::Http {
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
    }
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// The SPIFFE ID of the peer of a finished handshake (verified by then).
pub fn peer_id(conn: &CommonState) -> Option<SpiffeId> {
    let leaf = conn.peer_certificates()?.first()?;
    spiffe::id_of_certificate(leaf).ok()
}
