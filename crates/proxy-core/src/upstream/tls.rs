//! The client side of mTLS to a cluster's endpoints: the identity they must present, client configs per proxy identity, the handshake.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::{ErrorKind, ProxyError};
use crate::identity::store::{Credentials, IdentityStore};
use crate::identity::tls::{verify, Alpn, ALPN_H2};
use crate::spiffe::SpiffeId;
use crate::telemetry::metrics::Handshakes;

/// Client configs built for one proxy identity.
#[derive(Debug)]
struct Configs {
    credentials: Arc<Credentials>,
    http: Arc<ClientConfig>,
    stream: Arc<ClientConfig>,
}

impl Configs {
    fn pick(&self, alpn: Alpn) -> Arc<ClientConfig> {
        match alpn {
            Alpn::Http => Arc::clone(&self.http),
            Alpn::None => Arc::clone(&self.stream),
        }
    }
}

/// mTLS towards the endpoints of one cluster.
#[derive(Debug)]
pub struct UpstreamTls {
    expected: SpiffeId,
    identity: Arc<IdentityStore>,
    /// Built on the first connection after each identity change, then shared lock-free.
    configs: ArcSwapOption<Configs>,
    handshakes: Handshakes,
}

impl UpstreamTls {
    /// mTLS to servers that must present `expected`, with the proxy's identity from `identity`.
    pub fn new(expected: SpiffeId, identity: Arc<IdentityStore>, handshakes: Handshakes) -> Self {
        Self {
            expected,
            identity,
            configs: ArcSwapOption::empty(),
            handshakes,
        }
    }

    /// The client config for the identity in force; fails fast when there is none.
    pub fn config(&self, alpn: Alpn) -> Result<Arc<ClientConfig>, ProxyError> {
        let credentials = self
            .identity
            .current()
            .ok_or_else(|| ProxyError::new(ErrorKind::NoIdentity))?;
        if let Some(configs) = self.configs.load().as_ref() {
            if Arc::ptr_eq(&configs.credentials, &credentials) {
                return Ok(configs.pick(alpn));
            }
        }
        let build = |alpn| {
            credentials
                .client_config(&self.expected, alpn)
                .map_err(|err| ProxyError::with_source(ErrorKind::UpstreamTls, err))
        };
        let configs = Configs {
            http: build(Alpn::Http)?,
            stream: build(Alpn::None)?,
            credentials,
        };
        let picked = configs.pick(alpn);
        self.configs.store(Some(Arc::new(configs)));
        Ok(picked)
    }

    /// Runs the client handshake on `tcp` until `deadline`; HTTP must agree on `h2`.
    pub async fn handshake(
        &self,
        config: Arc<ClientConfig>,
        tcp: TcpStream,
        addr: SocketAddr,
        alpn: Alpn,
        deadline: Instant,
    ) -> Result<TlsStream<TcpStream>, ProxyError> {
        // Only the certificate's SPIFFE ID matters; the name is needed by the API (and sends no SNI for an IP).
        let name = ServerName::IpAddress(addr.ip().into());
        let connecting = TlsConnector::from(config).connect(name, tcp);
        let result = match tokio::time::timeout_at(deadline, connecting).await {
            Err(_) => Err(ProxyError::new(ErrorKind::ConnectTimeout)),
            Ok(Err(err)) => Err(match verify::mismatch_in(&err) {
                Some(mismatch) => {
                    ProxyError::with_source(ErrorKind::UpstreamIdentityMismatch, mismatch.clone())
                }
                None => ProxyError::with_source(ErrorKind::UpstreamTls, err),
            }),
            Ok(Ok(stream)) => {
                let agreed = stream.get_ref().1.alpn_protocol();
                if alpn == Alpn::Http && agreed != Some(ALPN_H2) {
                    Err(ProxyError::with_source(
                        ErrorKind::UpstreamTls,
                        "the upstream did not agree to HTTP/2 (ALPN h2)",
                    ))
                } else {
                    Ok(stream)
                }
            }
        };
        self.handshakes.count(result.is_ok());
        result
    }
}
