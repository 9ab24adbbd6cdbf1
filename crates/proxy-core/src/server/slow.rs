//! Limits on slow clients: the request-head deadline, body progress and blocked writes.
//!
//! A client that sends its request head a byte at a time, uploads a body at a
//! crawl, or stops reading its response holds a connection (and the memory
//! behind it) for as long as it likes unless each wait has a limit:
//! - **request head**: once the first byte of a head has arrived, the whole head
//!   must follow within `timeouts.request_head`. Before that byte the connection
//!   is merely idle, bounded by `timeouts.idle` (hyper's header read timeout
//!   covers both waits; [`HeadTimer`] tells them apart);
//! - **body progress**: a request body may go at most `timeouts.body_progress`
//!   without a frame while the upstream is waiting for it (`ClientBody`, in
//!   `crate::body::client`);
//! - **send**: a write to the client may stay blocked at most `timeouts.send`
//!   ([`SendWatch`], in the client stream);
//! - **buffered response**: an HTTP/1 response body is handed over a chunk at a
//!   time, the next once the last is in the socket ([`WriteGate`], [`GatedBody`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::body::client::Stall;

/// Bytes a connection has handed to the HTTP server so far, shared with its [`HeadTimer`].
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    /// Counts `n` more bytes delivered.
    pub fn advance(&self, n: usize) {
        self.0.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Bytes delivered so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// When a head being read must be complete: `idle_deadline` while no byte of it has
/// come, and `request_head` after the first byte (never later than `idle_deadline`).
pub fn head_deadline(
    idle_deadline: Instant,
    first_byte_at: Option<Instant>,
    request_head: Duration,
) -> Instant {
    match first_byte_at {
        None => idle_deadline,
        Some(at) => idle_deadline.min(at + request_head),
    }
}

/// hyper's timer for one HTTP/1 server connection. hyper starts its header read
/// timeout (set to the idle timeout) when it begins to wait for a head; the sleeps
/// made here shorten it to `request_head` from the moment bytes of the head arrive.
#[derive(Debug, Clone)]
pub struct HeadTimer {
    progress: Progress,
    request_head: Duration,
}

impl HeadTimer {
    /// A timer that watches `progress` (the connection's delivered bytes).
    pub fn new(progress: Progress, request_head: Duration) -> Self {
        Self {
            progress,
            request_head,
        }
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HeadSleep {
            sleep: tokio::time::sleep_until(deadline.into()),
            idle_deadline: deadline,
            baseline: self.progress.get(),
            progress: self.progress.clone(),
            request_head: self.request_head,
            head_started: false,
        })
    }
}

pin_project! {
    /// The sleep behind one header read timeout; see [`HeadTimer`].
    struct HeadSleep {
        #[pin]
        sleep: Sleep,
        idle_deadline: Instant,
        baseline: u64,
        progress: Progress,
        request_head: Duration,
        head_started: bool,
    }
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        // hyper polls this after every read that did not complete the head, so the
        // first byte is seen as it arrives.
        if !*this.head_started && this.progress.get() != *this.baseline {
            *this.head_started = true;
            let deadline = head_deadline(
                *this.idle_deadline,
                Some(Instant::now()),
                *this.request_head,
            );
            this.sleep.as_mut().reset(deadline.into());
        }
        this.sleep.poll(cx)
    }
}

impl hyper::rt::Sleep for HeadSleep {}

/// The send limit of a client stream: a write may stay blocked at most `limit`.
#[derive(Debug)]
pub struct SendWatch(Stall);

impl SendWatch {
    /// A send limit of `limit`.
    pub fn new(limit: Duration) -> Self {
        Self(Stall::new(limit))
    }

    /// Passes a write's outcome through; a write pending for longer than the limit
    /// becomes a `TimedOut` error, which closes the connection.
    pub fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match polled {
            Poll::Pending if self.0.poll_expired(cx) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client did not read for the send timeout",
            ))),
            Poll::Pending => Poll::Pending,
            ready => {
                self.0.progressed();
                ready
            }
        }
    }
}

/// Paces an HTTP/1 response body to its client: one chunk at a time, the next only
/// once the stream has flushed the last one to the socket. Shared by the client
/// stream (which opens it on every completed flush) and the connection's response
/// bodies (each non-empty chunk closes it).
///
/// hyper pulls response chunks into its write buffer for as long as the buffer is
/// below its maximum, whether or not the client reads, and that maximum must also
/// hold the largest request head (64 KiB by default): a client that stops reading
/// would pin that much, in an allocation grown to 128 KiB. Paced, such a client
/// holds one chunk (the kernel's socket buffer keeps a reading client busy in the
/// meantime). hyper flushes the stream only once its buffer is empty, and under TLS
/// the stream is flushed only once the TLS buffer is too.
#[derive(Clone, Debug, Default)]
pub struct WriteGate(Arc<GateState>);

#[derive(Debug, Default)]
struct GateState {
    /// A chunk was handed over, and the stream has not been flushed since.
    unflushed: AtomicBool,
    waker: AtomicWaker,
}

impl WriteGate {
    /// The stream was flushed: whatever was handed over is in the socket.
    pub fn flushed(&self) {
        if self.0.unflushed.swap(false, Ordering::AcqRel) {
            self.0.waker.wake();
        }
    }

    /// Ready, and closed for the next one, when a chunk may be handed over;
    /// otherwise wakes `cx` once the stream is flushed.
    fn poll_take(&self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.0.unflushed.swap(true, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        self.0.waker.register(cx.waker());
        // Flushed between the swap and the registration: that wake may be lost.
        if !self.0.unflushed.swap(true, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Undoes a take that handed nothing over (no frame, or an empty one): no flush
    /// would follow to open the gate again.
    fn give_back(&self) {
        self.0.unflushed.store(false, Ordering::Release);
    }
}

pin_project! {
    /// A response body paced by its client's [`WriteGate`]. HTTP/2 streams take no
    /// gate: flow control and a per-stream send buffer bound them, and one
    /// connection-wide waker could not wake each of them.
    #[derive(Debug)]
    pub struct GatedBody<B> {
        #[pin]
        inner: B,
        gate: Option<WriteGate>,
    }
}

impl<B> GatedBody<B> {
    /// Wraps `inner`; with no gate it is passed through as it is.
    pub fn new(inner: B, gate: Option<WriteGate>) -> Self {
        Self { inner, gate }
    }
}

impl<B: Body> Body for GatedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let Some(gate) = this.gate else {
            return this.inner.poll_frame(cx);
        };
        std::task::ready!(gate.poll_take(cx));
        let polled = this.inner.poll_frame(cx);
        let handed_over = matches!(
            &polled,
            Poll::Ready(Some(Ok(frame))) if frame.data_ref().is_some_and(Buf::has_remaining)
        );
        if !handed_over {
            gate.give_back();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
