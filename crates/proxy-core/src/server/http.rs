//! The HTTP listener's connections: HTTP/1.1 and h2c served with the listener's limits and timeouts; each request goes to `forward`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpStream;
use tokio_util::either::Either;

use crate::config::{ListenerLimits, ListenerProtocol, ListenerTimeouts};
use crate::identity::tls::ALPN_H2;
use crate::policy::headers::ClientHeaders;
use crate::server::h2guard::H2Guard;
use crate::server::inbound::{self, PeerIdentity};
use crate::server::io::{self, ClientStream, Detected};
use crate::server::listener::{ListenerEdges, ListenerRoute, ListenerShared, Shutdown};
use crate::server::metered::Metered;
use crate::server::slow::{GatedBody, HeadTimer, Progress, WriteGate};
use crate::telemetry::metrics::{EdgeRequests, Wire};

pub mod forward;

use forward::handle;

/// Per-connection context every request on it shares.
struct Connection {
    shared: Arc<ListenerShared>,
    client: ClientHeaders,
    /// How the connection arrived, on a listener with `tls` (for metrics).
    wire: Option<Wire>,
    /// The client's verified SPIFFE ID, on an mTLS connection.
    peer: Option<PeerIdentity>,
    /// Requests started on this connection, for HTTP/2 idle detection.
    started: AtomicU64,
    /// Requests whose response headers are not sent yet.
    active: AtomicUsize,
    /// On an inbound listener, the edge from this client, found as the connection is
    /// served. A reload that renames the workload shows on the connections opened
    /// after it.
    inbound_edge: OnceLock<Arc<EdgeRequests>>,
}

impl Connection {
    fn new(
        shared: &Arc<ListenerShared>,
        addr: SocketAddr,
        wire: Option<Wire>,
        peer: Option<PeerIdentity>,
    ) -> Arc<Self> {
        let client = match &peer {
            Some(PeerIdentity(id)) => ClientHeaders::mtls(addr.ip(), id.as_str()),
            None => ClientHeaders::new(addr.ip()),
        };
        Arc::new(Self {
            shared: Arc::clone(shared),
            client,
            wire,
            peer,
            started: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            inbound_edge: OnceLock::new(),
        })
    }

    /// Resolves once no request has started or been active for a whole `idle` period.
    async fn idle(&self, idle: Duration) {
        let mut last = self.started.load(Ordering::Relaxed);
        loop {
            tokio::time::sleep(idle).await;
            let now = self.started.load(Ordering::Relaxed);
            if now == last && self.active.load(Ordering::Relaxed) == 0 {
                return;
            }
            last = now;
        }
    }
}

/// Counts a request active until its handler finishes or is dropped (client reset).
struct ActiveRequest<'a>(&'a Connection);

impl<'a> ActiveRequest<'a> {
    fn new(conn: &'a Connection) -> Self {
        conn.started.fetch_add(1, Ordering::Relaxed);
        conn.active.fetch_add(1, Ordering::Relaxed);
        Self(conn)
    }
}

impl Drop for ActiveRequest<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one downstream connection until it closes, drains or is stopped.
pub async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    route: Arc<ListenerRoute>,
    shared: &Arc<ListenerShared>,
    shutdown: Shutdown,
) {
    let _ = stream.set_nodelay(true);
    let idle = route.timeouts.idle;
    let send = route.timeouts.send;
    let progress = Progress::default();
    let gate = WriteGate::default();
    let metrics = &shared.metrics;
    let wire = match route.tls {
        None => None,
        Some(mode) => match inbound::classify(&stream, mode, idle, shared, &shutdown).await {
            None => return,
            Some(Wire::Mtls) => {
                let io = ClientStream::new(
                    stream,
                    Bytes::new(),
                    metrics.bytes_received.clone(),
                    metrics.bytes_sent.clone(),
                )
                .with_progress(progress.clone())
                .with_send_timeout(send)
                .with_write_gate(gate.clone());
                let accepted =
                    inbound::handshake(io, shared, ListenerProtocol::Http, &shutdown).await;
                let Some((tls, peer_id)) = accepted else {
                    return;
                };
                // Over TLS the version is what ALPN agreed (RFC 9113 §3.2), no sniffing.
                let detected = match tls.get_ref().1.alpn_protocol() {
                    Some(ALPN_H2) => Detected::Http2,
                    _ => Detected::Http1,
                };
                let conn = Connection::new(shared, peer, Some(Wire::Mtls), Some(peer_id));
                serve_io(tls, detected, conn, progress, gate, &route, &shutdown).await;
                return;
            }
            Some(Wire::Plaintext) => Some(Wire::Plaintext),
        },
    };
    // A client that connects and says nothing is closed after the idle timeout.
    let (detected, prefix) = tokio::select! {
        sniffed = tokio::time::timeout(idle, io::sniff(&mut stream)) => match sniffed {
            Ok(Ok(sniffed)) => sniffed,
            _ => return,
        },
        _ = shutdown.drain.cancelled() => return,
    };
    let io = ClientStream::new(
        stream,
        prefix,
        metrics.bytes_received.clone(),
        metrics.bytes_sent.clone(),
    )
    .with_progress(progress.clone())
    .with_send_timeout(send)
    .with_write_gate(gate.clone());
    let conn = Connection::new(shared, peer, wire, None);
    serve_io(io, detected, conn, progress, gate, &route, &shutdown).await;
}

/// Largest read buffer of an HTTP/1 connection, beyond what the request head needs
/// (hyper's write buffer has the same limit, but holds one response chunk at a
/// time: see [`WriteGate`]).
const H1_MAX_BUF_BYTES: usize = 16 * 1024;
/// HTTP/2 flow-control windows: at most this much of a request body is buffered
/// per stream, and per connection, when the upstream is slow to take it.
const H2_STREAM_WINDOW: u32 = 256 * 1024;
const H2_CONNECTION_WINDOW: u32 = 1024 * 1024;
/// Response bytes buffered per HTTP/2 stream for a client that grants no window.
const H2_MAX_SEND_BUF_BYTES: usize = 16 * 1024;
/// Streams at once per HTTP/2 connection (nginx allows 128, Go 250).
const H2_MAX_CONCURRENT_STREAMS: u32 = 128;

/// Serves HTTP of the `detected` version on `io` with the listener's limits.
/// `progress` counts the bytes `io` delivers, for the request-head timeout, and
/// `gate` is opened by its flushes, to pace HTTP/1 response bodies; an HTTP/2
/// client's control frames are metered by an [`H2Guard`].
async fn serve_io<I>(
    io: I,
    detected: Detected,
    conn: Arc<Connection>,
    progress: Progress,
    gate: WriteGate,
    route: &ListenerRoute,
    shutdown: &Shutdown,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let idle = route.timeouts.idle;
    let limits = route.limits;
    // Inbound, a connection is on one edge, from its client, and counted there from
    // here until it closes (when `_connection` is dropped); outbound, each request
    // picks its own.
    let (io, _connection) = match &route.edges {
        ListenerEdges::Inbound(edges) => {
            let edge = conn
                .inbound_edge
                .get_or_init(|| edges.of_caller(conn.peer.as_ref().map(|PeerIdentity(id)| id)));
            let connection = edge.tcp_opened();
            let metered = Metered::new(io, connection.read.clone(), connection.written.clone());
            (Either::Left(metered), Some(connection))
        }
        ListenerEdges::Outbound { .. } => (Either::Right(io), None),
    };
    let watched = Arc::clone(&conn);
    let gate = matches!(detected, Detected::Http1).then_some(gate);
    let service = service_fn(move |req| {
        let conn = Arc::clone(&conn);
        let gate = gate.clone();
        async move {
            let (response, end) = handle(req, &conn).await;
            Ok::<_, Infallible>(response.map(|body| GatedBody::new(body.ending_with(end), gate)))
        }
    });
    match detected {
        Detected::Http1 => {
            let served = http1_server(progress, &route.timeouts, &limits)
                .serve_connection(TokioIo::new(io), service);
            // hyper closes idle HTTP/1 connections itself (header read timeout).
            drive(served, shutdown, std::future::pending()).await;
        }
        Detected::Http2 => {
            let header_list = u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX);
            let served = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_header_list_size(header_list)
                .initial_stream_window_size(H2_STREAM_WINDOW)
                .initial_connection_window_size(H2_CONNECTION_WINDOW)
                .max_send_buf_size(H2_MAX_SEND_BUF_BYTES)
                .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
                .serve_connection(TokioIo::new(H2Guard::new(io)), service);
            // An HTTP/2 connection with no request for a whole idle period gets GOAWAY.
            drive(served, shutdown, watched.idle(idle)).await;
        }
    }
}

/// The HTTP/1 server of a connection, with the listener's timeouts and limits.
pub(crate) fn http1_server(
    progress: Progress,
    timeouts: &ListenerTimeouts,
    limits: &ListenerLimits,
) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        // The header read timeout is the idle one until the head's first byte
        // comes, then `request_head` (see `slow::HeadTimer`).
        .timer(HeadTimer::new(progress, timeouts.request_head))
        .header_read_timeout(timeouts.idle)
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(H1_MAX_BUF_BYTES.max(limits.max_header_bytes + 1))
        // Body chunks are queued, not copied into a write buffer that would
        // grow to their size and stay so for the connection's life. A queued
        // chunk pins the upstream read buffer it came from, but only until it
        // is flushed: the `WriteGate` lets no other chunk in, and the upstream
        // is not read meanwhile.
        .writev(true);
    builder
}

/// Serves a connection until it ends; on drain, or once `idle` resolves, shuts it down
/// gracefully (HTTP/1: after the current response; HTTP/2: GOAWAY); on stop, drops it.
async fn drive(
    served: impl GracefulConnection,
    shutdown: &Shutdown,
    idle: impl std::future::Future<Output = ()>,
) {
    let mut served = pin!(served);
    tokio::select! {
        _ = served.as_mut() => return,
        _ = shutdown.drain.cancelled() => served.as_mut().graceful_shutdown(),
        _ = idle => served.as_mut().graceful_shutdown(),
        _ = shutdown.stop.cancelled() => return,
    }
    tokio::select! {
        _ = served => {}
        _ = shutdown.stop.cancelled() => {}
    }
}
