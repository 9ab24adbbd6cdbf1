//! The connections to one endpoint: the HTTP/1 pool (checkout, return), the shared
//! HTTP/2 connection, and TCP and mTLS connects under the connect timeout.

use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{lock, upstream_failed, Endpoint, Lease, Link};
use crate::body::request::{BodySent, TrackedBody};
use crate::error::{ErrorKind, ProxyError};
use crate::identity::tls::Alpn;
use crate::upstream::breaker::{Limit, Slot};
use crate::upstream::tls::UpstreamTls;

pub(super) type H1Sender = http1::SendRequest<TrackedBody>;
pub(super) type H2Sender = http2::SendRequest<TrackedBody>;

/// Largest read or write buffer of an upstream HTTP/1 connection: what a response held
/// back by a slow client can occupy, and the largest response head (nginx allows 4 or
/// 8 KiB by default).
const UPSTREAM_H1_MAX_BUF_BYTES: usize = 16 * 1024;

#[derive(Debug)]
pub(super) struct IdleConn {
    sender: H1Sender,
    since: Instant,
}

enum H1Conn {
    Idle(H1Sender),
    New(Slot),
}

impl Endpoint {
    pub(super) async fn send_h1(
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
    pub(super) fn put_idle(&self, sender: H1Sender, sent: &BodySent, link: &Link) {
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

    pub(super) async fn send_h2(
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
    pub(super) async fn connect_tls(
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

    pub(super) async fn connect_tcp(&self) -> Result<TcpStream, ProxyError> {
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
}
