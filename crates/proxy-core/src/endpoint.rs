//! One upstream endpoint: its count of requests in flight and its pool of keep-alive connections.
//!
//! HTTP/1 connections carry one request at a time: an idle one is taken from
//! the pool, and given back when its response body has ended cleanly. HTTP/2
//! keeps one shared connection per endpoint and multiplexes on it. Endpoints
//! of a cluster with `tls` are reached over mTLS, and HTTP goes over HTTP/2.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

use crate::body::RequestBody;
use crate::config::{PoolConfig, UpstreamProtocol};
use crate::error::{ErrorKind, ProxyError};
use crate::spiffe::SpiffeId;
use crate::tls::Alpn;
use crate::upstream_tls::UpstreamTls;

type H1Sender = http1::SendRequest<RequestBody>;
type H2Sender = http2::SendRequest<RequestBody>;

/// A connection to an endpoint for the L4 proxy: plain, or mTLS.
pub type UpstreamStream = Either<TcpStream, TlsStream<TcpStream>>;

/// What makes two endpoints interchangeable, so a reload can keep a warm pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointKey {
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
}

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

    /// Sends `req` over a pooled or new connection. The returned lease must
    /// live as long as the response body: it counts the request in flight and
    /// hands the HTTP/1 connection back when the body ends.
    pub async fn send(
        self: &Arc<Self>,
        req: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Lease), ProxyError> {
        let mut lease = Lease::new(Arc::clone(self));
        // mTLS endpoints speak HTTP/2 whatever the cluster's protocol says.
        let protocol = match self.tls {
            Some(_) => UpstreamProtocol::Http2,
            None => self.key.protocol,
        };
        let response = match protocol {
            UpstreamProtocol::Http1 => {
                let (response, sender) = self.send_h1(req).await?;
                lease.conn = Some(sender);
                response
            }
            UpstreamProtocol::Http2 => self.send_h2(req).await?,
        };
        Ok((response, lease))
    }

    async fn send_h1(
        &self,
        mut req: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, H1Sender), ProxyError> {
        loop {
            let (mut sender, reused) = match self.checkout_h1().await {
                Some(sender) => (sender, true),
                None => (self.connect_h1().await?, false),
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

    /// Takes the most recently used idle connection that is still good.
    async fn checkout_h1(&self) -> Option<H1Sender> {
        loop {
            let idle = lock(&self.idle_h1).pop()?;
            if idle.since.elapsed() > self.key.pool.idle_timeout || idle.sender.is_closed() {
                continue;
            }
            let mut sender = idle.sender;
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    async fn connect_h1(&self) -> Result<H1Sender, ProxyError> {
        let io = TokioIo::new(self.connect_tcp().await?);
        let (mut sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| ProxyError::with_source(ErrorKind::ConnectFailed, e))?;
        let addr = self.key.addr;
        tokio::spawn(async move {
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

    /// Gives a connection back after a response ended cleanly.
    fn put_idle(&self, sender: H1Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = lock(&self.idle_h1);
        if idle.len() < self.key.pool.max_idle_per_endpoint {
            idle.push(IdleConn {
                sender,
                since: Instant::now(),
            });
        }
    }

    async fn send_h2(&self, req: Request<RequestBody>) -> Result<Response<Incoming>, ProxyError> {
        let mut sender = self.shared_h2_sender().await?;
        sender.ready().await.map_err(upstream_failed)?;
        sender.send_request(req).await.map_err(upstream_failed)
    }

    /// The shared HTTP/2 connection, opened on first use or after it closed.
    async fn shared_h2_sender(&self) -> Result<H2Sender, ProxyError> {
        if let Some(sender) = lock(&self.shared_h2).as_ref() {
            if !sender.is_closed() {
                return Ok(sender.clone());
            }
        }
        let sender = match &self.tls {
            None => self.h2_handshake(self.connect_tcp().await?).await?,
            Some(tls) => {
                self.h2_handshake(self.connect_tls(tls, Alpn::Http).await?)
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
    async fn h2_handshake<I>(&self, io: I) -> Result<H2Sender, ProxyError>
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
    /// counted in flight while the lease lives.
    pub async fn connect_stream(self: &Arc<Self>) -> Result<(UpstreamStream, Lease), ProxyError> {
        let lease = Lease::new(Arc::clone(self));
        let stream = match &self.tls {
            None => Either::Left(self.connect_tcp().await?),
            Some(tls) => Either::Right(self.connect_tls(tls, Alpn::None).await?),
        };
        Ok((stream, lease))
    }
}

/// One request's hold on an endpoint: counted in flight until dropped.
#[derive(Debug)]
pub struct Lease {
    endpoint: Arc<Endpoint>,
    conn: Option<H1Sender>,
}

impl Lease {
    fn new(endpoint: Arc<Endpoint>) -> Self {
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            endpoint,
            conn: None,
        }
    }

    /// The response ended cleanly: its HTTP/1 connection may carry another request.
    pub fn complete(&mut self) {
        if let Some(sender) = self.conn.take() {
            self.endpoint.put_idle(sender);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A connection not handed back by `complete` is closed with `conn`.
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn upstream_failed(err: hyper::Error) -> ProxyError {
    ProxyError::with_source(ErrorKind::UpstreamFailed, err)
}

/// A poisoned pool only means a panic elsewhere; its data is still a plain list.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
