//! The downstream socket as the HTTP server sees it: bytes read while sniffing the protocol replayed first, traffic counted, blocked writes bounded.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::server::slow::{Progress, SendWatch, WriteGate};

/// The HTTP/2 connection preface a prior-knowledge client opens with.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Which HTTP version a client speaks, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// Anything that does not open with the HTTP/2 preface.
    Http1,
    /// The HTTP/2 preface: h2c with prior knowledge.
    Http2,
}

/// Decides from the bytes seen so far; `None` means "need more".
pub fn detect(seen: &[u8]) -> Option<Detected> {
    let n = seen.len().min(H2_PREFACE.len());
    if seen[..n] != H2_PREFACE[..n] {
        Some(Detected::Http1)
    } else if n == H2_PREFACE.len() {
        Some(Detected::Http2)
    } else {
        None
    }
}

/// Reads until the protocol is known; returns it with the bytes read so far.
/// A client that closes first is treated as HTTP/1 (the server then sees EOF).
pub async fn sniff(stream: &mut TcpStream) -> io::Result<(Detected, Bytes)> {
    let mut seen = BytesMut::with_capacity(4096);
    loop {
        if stream.read_buf(&mut seen).await? == 0 {
            return Ok((Detected::Http1, seen.freeze()));
        }
        if let Some(detected) = detect(&seen) {
            return Ok((detected, seen.freeze()));
        }
    }
}

/// A client connection: replays `prefix`, then reads the socket; counts bytes both ways.
#[derive(Debug)]
pub struct ClientStream {
    prefix: Bytes,
    stream: TcpStream,
    received: Counter,
    sent: Counter,
    activity: Option<Counter>,
    /// Bytes handed to the reader (the prefix included), for the request-head timeout.
    progress: Option<Progress>,
    /// The send timeout: a write blocked for longer fails.
    send: Option<SendWatch>,
    /// Opened on every completed flush.
    gate: Option<WriteGate>,
}

impl ClientStream {
    /// Wraps `stream`, whose first bytes `prefix` were already read.
    pub fn new(stream: TcpStream, prefix: Bytes, received: Counter, sent: Counter) -> Self {
        received.inc_by(prefix.len() as u64);
        Self {
            prefix,
            stream,
            received,
            sent,
            activity: None,
            progress: None,
            send: None,
            gate: None,
        }
    }

    /// Also counts the bytes handed to the reader into `progress`.
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Fails a write that stays blocked (the client not reading) for `limit`.
    pub fn with_send_timeout(mut self, limit: std::time::Duration) -> Self {
        self.send = Some(SendWatch::new(limit));
        self
    }

    /// Opens `gate` on every completed flush, for the response bodies it paces.
    pub fn with_write_gate(mut self, gate: WriteGate) -> Self {
        self.gate = Some(gate);
        self
    }

    fn watch_send<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let Some(watch) = &mut self.send else {
            return polled;
        };
        let polled = watch.check(cx, polled);
        if matches!(&polled, Poll::Ready(Err(err)) if err.kind() == io::ErrorKind::TimedOut) {
            self.reset_on_close();
        }
        polled
    }

    /// Makes closing this connection reset it. A client cut for not reading still has
    /// up to a send buffer of bytes queued in the kernel (megabytes on loopback, where
    /// the segments are large); a graceful close would keep them there, and the socket
    /// in FIN-WAIT-1, for as long as the kernel probes the client's zero window. A reset
    /// frees them at once, as nginx's `reset_timedout_connection` does.
    fn reset_on_close(&self) {
        // Best effort: if it fails, the close is graceful and the kernel frees the
        // bytes later.
        let _ = socket2::SockRef::from(&self.stream).set_linger(Some(std::time::Duration::ZERO));
    }

    /// Also counts every byte, both ways, into `activity` (for idle detection).
    pub fn with_activity(mut self, activity: Counter) -> Self {
        self.activity = Some(activity);
        self
    }

    fn moved(&self, counter: &Counter, n: usize) {
        counter.inc_by(n as u64);
        if let Some(activity) = &self.activity {
            activity.inc_by(n as u64);
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if let Some(progress) = &self.progress {
                progress.advance(n);
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stream).poll_read(cx, buf))?;
        let n = buf.filled().len() - before;
        self.moved(&self.received, n);
        if let Some(progress) = &self.progress {
            progress.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        let n = ready!(self.watch_send(cx, polled))?;
        self.moved(&self.sent, n);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        let n = ready!(self.watch_send(cx, polled))?;
        self.moved(&self.sent, n);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.stream).poll_flush(cx))?;
        if let Some(gate) = &self.gate {
            gate.flushed();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
