//! The server side of mTLS on a listener with `tls`: mTLS or plaintext by mode and first byte, the handshake under a deadline, the client's SPIFFE ID.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::{ListenerProtocol, TlsMode};
use crate::identity::tls::{self, Alpn, HANDSHAKE_TIMEOUT};
use crate::server::listener::{ListenerShared, Shutdown};
use crate::spiffe::SpiffeId;
use crate::telemetry::metrics::Wire;

/// The content type of a TLS handshake record: the first byte a TLS client sends.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The verified SPIFFE ID of an mTLS client: kept per connection and attached
/// to each of its requests as an extension, for authorization by identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity(pub SpiffeId);

/// How a new connection is to be served, or `None` to close it. Strict mode
/// is always mTLS; permissive mode looks at the first byte without consuming it.
pub async fn classify(
    stream: &TcpStream,
    mode: TlsMode,
    wait: Duration,
    shared: &ListenerShared,
    shutdown: &Shutdown,
) -> Option<Wire> {
    if mode == TlsMode::Strict {
        return Some(Wire::Mtls);
    }
    let mut first = [0u8; 1];
    let peeked = tokio::select! {
        peeked = tokio::time::timeout(wait, stream.peek(&mut first)) => peeked,
        _ = shutdown.drain.cancelled() => return None,
    };
    match peeked {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => Some(Wire::Mtls),
        Ok(Ok(1)) => {
            shared.metrics.tls().connection(Wire::Plaintext);
            Some(Wire::Plaintext)
        }
        // Closed, failed or silent before the first byte.
        _ => None,
    }
}

/// Runs the server handshake on `io` with the current identity. `None` (the
/// connection is then closed) when there is no identity yet, the client's
/// certificate is refused, or the handshake takes longer than [`HANDSHAKE_TIMEOUT`].
pub async fn handshake<S>(
    io: S,
    shared: &ListenerShared,
    protocol: ListenerProtocol,
    shutdown: &Shutdown,
) -> Option<(TlsStream<S>, PeerIdentity)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let metrics = shared.metrics.tls();
    let Some(credentials) = shared.identity.current() else {
        metrics.handshakes.count(false);
        tracing::debug!(listener = %shared.name, "mTLS connection closed: no identity set yet");
        return None;
    };
    let alpn = match protocol {
        ListenerProtocol::Http => Alpn::Http,
        ListenerProtocol::Tcp => Alpn::None,
    };
    let accepting = TlsAcceptor::from(credentials.server_config(alpn)).accept(io);
    let accepted = tokio::select! {
        accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, accepting) => accepted,
        _ = shutdown.drain.cancelled() => return None,
    };
    let failure = match accepted {
        Ok(Ok(stream)) => match tls::peer_id(stream.get_ref().1) {
            Some(id) => {
                metrics.handshakes.count(true);
                metrics.connection(Wire::Mtls);
                return Some((stream, PeerIdentity(id)));
            }
            // The verifier already required an SVID; kept as a guard.
            None => "the client certificate carries no SPIFFE ID".to_string(),
        },
        Ok(Err(err)) => err.to_string(),
        Err(_) => format!("no handshake within {HANDSHAKE_TIMEOUT:?}"),
    };
    metrics.handshakes.count(false);
    tracing::debug!(listener = %shared.name, %failure, "mTLS handshake failed");
    None
}
