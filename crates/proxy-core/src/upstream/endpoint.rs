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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

use crate::body::client;
use crate::body::request::{BodySent, RequestBody, TrackedBody};
use crate::clock;
use crate::config::{PoolConfig, UpstreamProtocol};
use crate::error::{ErrorKind, ProxyError};
use crate::identity::tls::Alpn;
use crate::policy::balance::ewma::PeakEwma;
use crate::policy::headers;
use crate::spiffe::SpiffeId;
use crate::telemetry::metrics::OutlierMetrics;
use crate::upstream::breaker::{Counters, Limit, Limits, Slot};
use crate::upstream::outlier::{self, Health, Outcome};
use crate::upstream::tls::UpstreamTls;

mod pool;

use pool::{H1Sender, H2Sender, IdleConn};

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

/// A failed attempt counts for peak EWMA as a response at least this slow,
/// so that an endpoint refusing connections quickly is shunned, not favoured.
const FAILURE_LATENCY_NS: u64 = 1_000_000_000;

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
                link.metrics.ejection();
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

    /// The endpoint held.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
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
    let kind = client::client_body_fault(&err).unwrap_or(ErrorKind::UpstreamFailed);
    ProxyError::with_source(kind, err)
}

/// A poisoned pool only means a panic elsewhere; its data is still a plain list.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
