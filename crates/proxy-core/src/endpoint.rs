//! One upstream endpoint: its count of requests in flight and its pool of keep-alive connections.
//!
//! HTTP/1 connections carry one request at a time: an idle one is taken from
//! the pool, and given back when its response body has ended cleanly and its
//! request body has been sent whole; one whose exchange did not finish both ways
//! is closed, and a checkout never waits for another request's exchange. HTTP/2
//! keeps one shared connection per endpoint and multiplexes on it. Endpoints
//! of a cluster with `tls` are reached over mTLS, and HTTP goes over HTTP/2.
//!
//! Every request sent, wherever from, goes through [`Endpoint::send`] (or
//! [`Endpoint::connect_stream`] for TCP), which applies the cluster's circuit
//! breakers and records the outcome: latency for peak EWMA, status or failure
//! for outlier detection.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

use crate::balance::ewma::PeakEwma;
use crate::breaker::{Counters, Limit, Limits, Slot};
use crate::client_body;
use crate::clock;
use crate::config::{PoolConfig, UpstreamProtocol};
use crate::error::{ErrorKind, ProxyError};
use crate::headers;
use crate::metrics::OutlierMetrics;
use crate::outlier::{self, Health, Outcome};
use crate::request_body::{BodySent, RequestBody, TrackedBody};
use crate::spiffe::SpiffeId;
use crate::tls::Alpn;
use crate::upstream_tls::UpstreamTls;

type H1Sender = http1::SendRequest<TrackedBody>;
type H2Sender = http2::SendRequest<TrackedBody>;

/// A connection to an endpoint for the L4 proxy: plain, or mTLS.
pub type UpstreamStream = Either<TcpStream, TlsStream<TcpStream>>;

/// What makes two endpoints interchangeable, so a reload can keep a warm pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    /// The cluster the endpoint belongs to: health, limits and pools are per cluster.
    pub cluster: String,
    /// Where the endpoint listens.
    pub addr: SocketAddr,
    /// What the proxy speaks to it.
    pub protocol: UpstreamProtocol,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Keep-alive settings.
    pub pool: PoolConfig,
    /// The SPIFFE ID the endpoint must present over mTLS; `None` for plaintext.
    pub tls: Option<SpiffeId>,
}

/// An upstream endpoint shared by every request routed to it.
#[derive(Debug)]
pub struct Endpoint {
    key: EndpointKey,
    in_flight: AtomicUsize,
    idle_h1: Mutex<Vec<IdleConn>>,
    shared_h2: Mutex<Option<H2Sender>>,
    tls: Option<UpstreamTls>,
    /// Latency to response headers, for peak EWMA.
    latency: PeakEwma,
    /// Failure streaks and ejection, for outlier detection.
    health: Health,
    /// When the endpoint joined a cluster already serving (`clock::now_ms`), for slow start; 0 if not.
    joined_ms: AtomicU64,
    /// What the current config of its cluster decides for it.
    link: ArcSwap<Link>,
}

/// What an endpoint's cluster, as configured now, decides for every request
/// to it; replaced by each config compile.
#[derive(Debug)]
pub struct Link {
    /// The cluster's counts, shared by all its endpoints and kept across reloads.
    pub counters: Arc<Counters>,
    /// The cluster's circuit breaker limits.
    pub limits: Limits,
    /// The cluster's outlier detection, if any.
    pub outlier: Option<outlier::Policy>,
    /// Ejection counter and gauge of the cluster.
    pub metrics: OutlierMetrics,
    /// Endpoints in the cluster, for `max_ejection_percent`.
    pub members: usize,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            counters: Arc::default(),
            limits: Limits::NONE,
            outlier: None,
            metrics: OutlierMetrics::default(),
            members: 1,
        }
    }
}

/// Largest read or write buffer of an upstream HTTP/1 connection: what a response held
/// back by a slow client can occupy, and the largest response head (nginx allows 4 or
/// 8 KiB by default).
const UPSTREAM_H1_MAX_BUF_BYTES: usize = 16 * 1024;

/// A failed attempt counts for peak EWMA as a response at least this slow,
/// so that an endpoint refusing connections quickly is shunned, not favoured.
const FAILURE_LATENCY_NS: u64 = 1_000_000_000;

#[derive(Debug)]
struct IdleConn {
    sender: H1Sender,
    since: Instant,
}

impl Endpoint {
    /// A new endpoint with an empty pool; `tls` must be given when `key.tls` is.
    pub fn new(key: EndpointKey, tls: Option<UpstreamTls>) -> Self {
        Self {
            key,
            in_flight: AtomicUsize::new(0),
            idle_h1: Mutex::new(Vec::new()),
            shared_h2: Mutex::new(None),
            tls,
            latency: PeakEwma::default(),
            health: Health::default(),
            joined_ms: AtomicU64::new(0),
            link: ArcSwap::from_pointee(Link::default()),
        }
    }

    /// Binds the endpoint to its cluster's current config.
    pub fn set_link(&self, link: Arc<Link>) {
        self.link.store(link);
    }

    /// Marks the endpoint as joining a cluster already serving at `now_ms`, for slow start.
    pub fn set_joined(&self, now_ms: u64) {
        self.joined_ms.store(now_ms, Ordering::Relaxed);
    }

    /// When the endpoint joined a cluster already serving; 0 if it was there from the start.
    pub fn joined_ms(&self) -> u64 {
        self.joined_ms.load(Ordering::Relaxed)
    }

    /// Latency estimate in nanoseconds at `now_ns`.
    pub fn rtt_ns(&self, now_ns: u64) -> f64 {
        self.latency.estimate_ns(now_ns)
    }

    /// Failure streaks and ejection state.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Whether outlier detection has the endpoint ejected at `now_ms`; ends an
    /// ejection whose time is up (and takes it off the cluster's count).
    pub fn is_ejected(&self, now_ms: u64) -> bool {
        if self.health.expire(now_ms) {
            self.link.load().metrics.ejected.dec();
        }
        self.health.is_ejected(now_ms)
    }

    /// Records what came of a request: feeds outlier detection and, when a
    /// streak reaches its threshold and `max_ejection_percent` allows, ejects.
    pub fn record(&self, link: &Link, outcome: Outcome) {
        let Some(policy) = &link.outlier else {
            return;
        };
        if !self.health.record(policy, outcome) {
            return;
        }
        let now = clock::now_ms();
        if self.is_ejected(now) {
            return;
        }
        let ejected = &link.metrics.ejected;
        // Count first and undo if over: two endpoints cannot both take the last place.
        let before = usize::try_from(ejected.inc()).unwrap_or(0);
        if !outlier::may_eject(before, link.members, policy.max_percent) {
            ejected.dec();
            return;
        }
        match self.health.eject(policy, now) {
            Some(until) => {
                link.metrics.ejections.inc();
                tracing::info!(
                    cluster = %self.key.cluster,
                    endpoint = %self.key.addr,
                    for_ms = until - now,
                    "outlier ejected"
                );
            }
            None => {
                ejected.dec();
            }
        }
    }

    /// The settings this endpoint was made with.
    pub fn key(&self) -> &EndpointKey {
        &self.key
    }

    /// Where the endpoint listens.
    pub fn addr(&self) -> SocketAddr {
        self.key.addr
    }

    /// Requests sent to this endpoint whose response has not ended.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Idle HTTP/1 connections in the pool.
    pub fn idle_connections(&self) -> usize {
        lock(&self.idle_h1).len()
    }

    /// Sends `req` over a pooled or new connection, waiting at most `timeout`
    /// for the response headers. The returned lease must live as long as the
    /// response body: it counts the request in flight (and against the
    /// cluster's `max_requests`) and hands the HTTP/1 connection back when the
    /// body ends.
    ///
    /// The outcome (status, or failure and timeout) is recorded for outlier
    /// detection, and the latency for peak EWMA, before this returns; an
    /// overflow of a circuit breaker is not the endpoint's fault and is not.
    pub async fn send(
        self: &Arc<Self>,
        req: Request<RequestBody>,
        timeout: Duration,
    ) -> Result<(Response<Incoming>, Lease), ProxyError> {
        let link = self.link.load_full();
        let Some(slot) = link.counters.acquire(Limit::Requests, &link.limits) else {
            return Err(ProxyError::new(ErrorKind::Overflow(Limit::Requests)));
        };
        let mut lease = Lease::new(Arc::clone(self), link);
        lease.request = Some(slot);
        let (parts, body) = req.into_parts();
        let (body, body_sent) = TrackedBody::new(body);
        let req = Request::from_parts(parts, body);
        let started = clock::now_ns();
        let send = self.send_on(req, body_sent.clone(), &mut lease);
        let sent = tokio::time::timeout(timeout, send).await;
        let now = clock::now_ns();
        let elapsed = now.saturating_sub(started);
        match sent {
            Ok(Ok(response)) => {
                self.latency.observe(elapsed, now);
                let outcome = Outcome::Response(response.status().as_u16());
                self.record(&lease.link, outcome);
                Ok((response, lease))
            }
            Ok(Err(err)) => {
                if err.blames_endpoint() {
                    self.failed(&lease.link, elapsed, now);
                }
                Err(err)
            }
            Err(_) => {
                // Time spent waiting for a free connection is the breakers' doing, and
                // time waiting for a slow client's body the client's: not the endpoint's.
                if !lease.waiting && body_sent.is_sent() {
                    self.failed(&lease.link, elapsed, now);
                }
                Err(ProxyError::new(ErrorKind::RequestTimeout))
            }
        }
    }

    fn failed(&self, link: &Link, elapsed_ns: u64, now_ns: u64) {
        self.latency
            .observe(elapsed_ns.max(FAILURE_LATENCY_NS), now_ns);
        self.record(link, Outcome::Failure);
    }

    async fn send_on(
        &self,
        mut req: Request<TrackedBody>,
        body_sent: BodySent,
        lease: &mut Lease,
    ) -> Result<Response<Incoming>, ProxyError> {
        // mTLS endpoints speak HTTP/2 whatever the cluster's protocol says.
        let protocol = match self.tls {
            Some(_) => UpstreamProtocol::Http2,
            None => self.key.protocol,
        };
        match protocol {
            UpstreamProtocol::Http1 => {
                headers::frame_h1_body(&mut req);
                let (response, sender) = self.send_h1(req, lease).await?;
                lease.conn = Some((sender, body_sent));
                Ok(response)
            }
            UpstreamProtocol::Http2 => self.send_h2(req, &lease.link).await,
        }
    }

    async fn send_h1(
        &self,
        mut req: Request<TrackedBody>,
        lease: &mut Lease,
    ) -> Result<(Response<Incoming>, H1Sender), ProxyError> {
        loop {
            let (mut sender, reused) = match self.h1_connection(lease).await? {
                H1Conn::Idle(sender) => (sender, true),
                H1Conn::New(slot) => (self.connect_h1(slot).await?, false),
            };
            match sender.try_send_request(req).await {
                Ok(response) => return Ok((response, sender)),
                Err(mut err) => match err.take_message() {
                    // A pooled connection closed under us before the request went
                    // out: the upstream never saw it, so a fresh connection is safe.
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(upstream_failed(err.into_error())),
                },
            }
        }
    }

    /// An idle connection, or a slot to open one. At `max_connections` the
    /// request waits, as pending, for a connection to come back to the pool
    /// or to close (bounded by the caller's timeout).
    async fn h1_connection(&self, lease: &mut Lease) -> Result<H1Conn, ProxyError> {
        let link = Arc::clone(&lease.link);
        let counters = &link.counters;
        let mut pending: Option<Slot> = None;
        loop {
            if let Some(sender) = self.checkout_h1() {
                lease.waiting = false;
                return Ok(H1Conn::Idle(sender));
            }
            if let Some(slot) = counters.acquire(Limit::Connections, &link.limits) {
                lease.waiting = false;
                return Ok(H1Conn::New(slot));
            }
            if pending.is_none() {
                let slot = counters
                    .acquire(Limit::PendingRequests, &link.limits)
                    .ok_or_else(|| ProxyError::new(ErrorKind::Overflow(Limit::PendingRequests)))?;
                pending = Some(slot);
                lease.waiting = true;
            }
            let mut freed = pin!(counters.freed());
            freed.as_mut().enable();
            // Checked again once registered, so a release in between is not missed.
            if lock(&self.idle_h1).is_empty()
                && counters.count(Limit::Connections) >= link.limits.max_connections
            {
                freed.await;
            }
        }
    }

    /// Takes the most recently used idle connection that is ready for a request now.
    /// It never waits: one that is not ready is still busy with something (writing out
    /// what it was given), so it is dropped, and hyper closes it once that is done.
    fn checkout_h1(&self) -> Option<H1Sender> {
        loop {
            let idle = lock(&self.idle_h1).pop()?;
            if idle.since.elapsed() > self.key.pool.idle_timeout || idle.sender.is_closed() {
                continue;
            }
            if idle.sender.is_ready() {
                return Some(idle.sender);
            }
        }
    }

    async fn connect_h1(&self, slot: Slot) -> Result<H1Sender, ProxyError> {
        let io = TokioIo::new(self.connect_tcp().await?);
        let (mut sender, conn) = http1::Builder::new()
            .max_buf_size(UPSTREAM_H1_MAX_BUF_BYTES)
            .handshake(io)
            .await
            .map_err(|e| ProxyError::with_source(ErrorKind::ConnectFailed, e))?;
        let addr = self.key.addr;
        tokio::spawn(async move {
            // The connection counts against max_connections until it ends.
            let _slot = slot;
            if let Err(err) = conn.await {
                tracing::debug!(%addr, %err, "upstream connection ended");
            }
        });
        sender
            .ready()
            .await
            .map_err(|e| ProxyError::with_source(ErrorKind::ConnectFailed, e))?;
        Ok(sender)
    }

    /// Gives a connection back after a response ended cleanly, if its request was sent
    /// whole; otherwise it is dropped, and hyper closes it once the request body is
    /// finished or abandoned (RFC 9112 §9.6: it cannot carry another request before).
    fn put_idle(&self, sender: H1Sender, sent: &BodySent, link: &Link) {
        if sender.is_closed() || !sent.is_sent() {
            return;
        }
        {
            let mut idle = lock(&self.idle_h1);
            if idle.len() >= self.key.pool.max_idle_per_endpoint {
                return;
            }
            idle.push(IdleConn {
                sender,
                since: Instant::now(),
            });
        }
        if link.limits.max_connections != usize::MAX {
            link.counters.wake_pending();
        }
    }

    async fn send_h2(
        &self,
        req: Request<TrackedBody>,
        link: &Link,
    ) -> Result<Response<Incoming>, ProxyError> {
        let mut sender = self.shared_h2_sender(link).await?;
        sender.ready().await.map_err(upstream_failed)?;
        sender.send_request(req).await.map_err(upstream_failed)
    }

    /// The shared HTTP/2 connection, opened on first use or after it closed.
    async fn shared_h2_sender(&self, link: &Link) -> Result<H2Sender, ProxyError> {
        if let Some(sender) = lock(&self.shared_h2).as_ref() {
            if !sender.is_closed() {
                return Ok(sender.clone());
            }
        }
        // Requests multiplex on one connection: none waits for another to open.
        let slot = link
            .counters
            .acquire(Limit::Connections, &link.limits)
            .ok_or_else(|| ProxyError::new(ErrorKind::Overflow(Limit::Connections)))?;
        let sender = match &self.tls {
            None => self.h2_handshake(self.connect_tcp().await?, slot).await?,
            Some(tls) => {
                self.h2_handshake(self.connect_tls(tls, Alpn::Http).await?, slot)
                    .await?
            }
        };
        let mut shared = lock(&self.shared_h2);
        // Another request may have connected meanwhile; keep one connection.
        match shared.as_ref() {
            Some(existing) if !existing.is_closed() => Ok(existing.clone()),
            _ => {
                *shared = Some(sender.clone());
                Ok(sender)
            }
        }
    }

    /// Opens an HTTP/2 connection over `io` and drives it on its own task.
    async fn h2_handshake<I>(&self, io: I, slot: Slot) -> Result<H2Sender, ProxyError>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| ProxyError::with_source(ErrorKind::ConnectFailed, e))?;
        let addr = self.key.addr;
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(err) = conn.await {
                tracing::debug!(%addr, %err, "upstream h2 connection ended");
            }
        });
        Ok(sender)
    }

    /// TCP connect plus mTLS handshake, both within `connect_timeout`.
    async fn connect_tls(
        &self,
        tls: &UpstreamTls,
        alpn: Alpn,
    ) -> Result<TlsStream<TcpStream>, ProxyError> {
        // Without an identity there is nothing to present: fail before connecting.
        let config = tls.config(alpn)?;
        let deadline = tokio::time::Instant::now() + self.key.connect_timeout;
        let tcp = self.connect_tcp().await?;
        tls.handshake(config, tcp, self.key.addr, alpn, deadline)
            .await
    }

    async fn connect_tcp(&self) -> Result<TcpStream, ProxyError> {
        let connect = TcpStream::connect(self.key.addr);
        let stream = match tokio::time::timeout(self.key.connect_timeout, connect).await {
            Err(_) => return Err(ProxyError::new(ErrorKind::ConnectTimeout)),
            Ok(Err(err)) => return Err(ProxyError::with_source(ErrorKind::ConnectFailed, err)),
            Ok(Ok(stream)) => stream,
        };
        // Small requests and responses must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// Opens a connection for the L4 proxy (mTLS without ALPN if the cluster has `tls`),
    /// counted in flight, and against `max_requests` and `max_connections`, while the lease lives.
    /// A connect failure or success is recorded for outlier detection.
    pub async fn connect_stream(self: &Arc<Self>) -> Result<(UpstreamStream, Lease), ProxyError> {
        let link = self.link.load_full();
        let request = link.counters.acquire(Limit::Requests, &link.limits);
        let connection = link.counters.acquire(Limit::Connections, &link.limits);
        let (request, connection) = match (request, connection) {
            (None, _) => return Err(ProxyError::new(ErrorKind::Overflow(Limit::Requests))),
            (_, None) => return Err(ProxyError::new(ErrorKind::Overflow(Limit::Connections))),
            (Some(request), Some(connection)) => (request, connection),
        };
        let mut lease = Lease::new(Arc::clone(self), link);
        lease.request = Some(request);
        lease.connection = Some(connection);
        let connected = match &self.tls {
            None => self.connect_tcp().await.map(Either::Left),
            Some(tls) => self.connect_tls(tls, Alpn::None).await.map(Either::Right),
        };
        match connected {
            Ok(stream) => {
                self.record(&lease.link, Outcome::Connected);
                Ok((stream, lease))
            }
            Err(err) => {
                if err.blames_endpoint() {
                    self.record(&lease.link, Outcome::Failure);
                }
                Err(err)
            }
        }
    }
}

enum H1Conn {
    Idle(H1Sender),
    New(Slot),
}

/// One request's hold on an endpoint: counted in flight, and in the
/// cluster's circuit breakers, until dropped.
#[derive(Debug)]
pub struct Lease {
    endpoint: Arc<Endpoint>,
    /// The HTTP/1 connection, and whether its request body is sent whole.
    conn: Option<(H1Sender, BodySent)>,
    link: Arc<Link>,
    request: Option<Slot>,
    /// A TCP relay's connection slot.
    connection: Option<Slot>,
    /// Waiting as pending for a connection.
    waiting: bool,
}

impl Lease {
    fn new(endpoint: Arc<Endpoint>, link: Arc<Link>) -> Self {
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            endpoint,
            conn: None,
            link,
            request: None,
            connection: None,
            waiting: false,
        }
    }

    /// The response ended cleanly: its HTTP/1 connection may carry another request
    /// once the request body is sent too.
    pub fn complete(&mut self) {
        if let Some((sender, sent)) = self.conn.take() {
            self.endpoint.put_idle(sender, &sent, &self.link);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A connection not handed back by `complete` is closed with `conn`.
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A failed exchange: the upstream's fault, unless the client's body failed under it.
fn upstream_failed(err: hyper::Error) -> ProxyError {
    let kind = client_body::client_body_fault(&err).unwrap_or(ErrorKind::UpstreamFailed);
    ProxyError::with_source(kind, err)
}

/// A poisoned pool only means a panic elsewhere; its data is still a plain list.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
