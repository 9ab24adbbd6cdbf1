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
//!   without a frame while the upstream is waiting for it ([`ClientBody`]);
//! - **send**: a write to the client may stay blocked at most `timeouts.send`
//!   ([`SendWatch`], in the client stream).

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::error::{ErrorKind, ProxyError};

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

/// A wait that may last at most `limit`: armed when the wait starts, disarmed by
/// progress. Its sleep is made on the first wait and reused after.
#[derive(Debug)]
pub struct Stall {
    limit: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl Stall {
    /// A stall limit of `limit`.
    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            sleep: None,
            armed: false,
        }
    }

    /// Progress was made: the next wait starts afresh.
    pub fn progressed(&mut self) {
        self.armed = false;
    }

    /// Called when the operation is pending: true once it has waited `limit`
    /// (otherwise `cx` is woken when it will have).
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = tokio::time::Instant::now() + self.limit;
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if !self.armed {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.armed = true;
        sleep.as_mut().poll(cx).is_ready()
    }
}

/// Why a client's request body could not be forwarded.
#[derive(Debug)]
pub enum BodyError {
    /// Reading it failed (the client reset or sent a malformed body).
    Read(hyper::Error),
    /// No frame came for `timeouts.body_progress`.
    Stalled(Duration),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(err) => write!(f, "reading the request body failed: {err}"),
            Self::Stalled(limit) => {
                write!(f, "the request body made no progress for {limit:?}")
            }
        }
    }
}

impl StdError for BodyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Read(err) => Some(err),
            Self::Stalled(_) => None,
        }
    }
}

/// The client's fault, when `err` (or an error it was caused by) is its request body
/// failing: a malformed or reset body, or one that stalled. Such a failure says
/// nothing about the upstream, and must not count against it.
pub fn client_body_fault(err: &(dyn StdError + 'static)) -> Option<ErrorKind> {
    let mut current = Some(err);
    while let Some(err) = current {
        match err.downcast_ref::<BodyError>() {
            Some(BodyError::Stalled(_)) => return Some(ErrorKind::ClientBodyTimeout),
            Some(BodyError::Read(_)) => return Some(ErrorKind::ClientBody),
            None => current = err.source(),
        }
    }
    None
}

/// The failure a request gets when its body could not be read: 408 when it stalled.
pub fn client_body_failed(err: BodyError) -> ProxyError {
    let kind = match err {
        BodyError::Stalled(_) => ErrorKind::ClientBodyTimeout,
        BodyError::Read(_) => ErrorKind::ClientBody,
    };
    ProxyError::with_source(kind, err)
}

/// The client's request body, which fails when it goes `body_progress` without a
/// frame while it is being waited for.
#[derive(Debug)]
pub struct ClientBody {
    inner: Incoming,
    stall: Stall,
}

impl ClientBody {
    /// Wraps the client's `inner` body with a stall limit of `body_progress`.
    pub fn new(inner: Incoming, body_progress: Duration) -> Self {
        Self {
            inner,
            stall: Stall::new(body_progress),
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.stall.progressed();
                Poll::Ready(frame.map(|f| f.map_err(BodyError::Read)))
            }
            Poll::Pending => {
                if self.stall.poll_expired(cx) {
                    let limit = self.stall.limit;
                    return Poll::Ready(Some(Err(BodyError::Stalled(limit))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_deadline_is_idle_until_a_byte_then_request_head() {
        let t0 = Instant::now();
        let idle = t0 + Duration::from_secs(300);
        let head = Duration::from_secs(10);
        // (first byte after t0, expected deadline after t0)
        let cases = [
            (None, Duration::from_secs(300)),
            (Some(Duration::ZERO), Duration::from_secs(10)),
            (Some(Duration::from_secs(100)), Duration::from_secs(110)),
            // Never later than the idle deadline.
            (Some(Duration::from_secs(295)), Duration::from_secs(300)),
        ];
        for (first, want) in cases {
            let got = head_deadline(idle, first.map(|d| t0 + d), head);
            assert_eq!(got, t0 + want, "first byte at {first:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stall_expires_only_after_a_whole_limit_without_progress() {
        let mut stall = Stall::new(Duration::from_secs(2));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(!stall.poll_expired(&mut cx));
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert!(!stall.poll_expired(&mut cx));
        // Progress re-arms from now: 1.5 s more is not enough.
        stall.progressed();
        assert!(!stall.poll_expired(&mut cx));
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert!(!stall.poll_expired(&mut cx));
        tokio::time::advance(Duration::from_millis(600)).await;
        assert!(stall.poll_expired(&mut cx));
    }

    #[test]
    fn client_body_faults_are_found_through_sources() {
        #[derive(Debug)]
        struct Wrapper(BodyError);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl StdError for Wrapper {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let stalled = Wrapper(BodyError::Stalled(Duration::from_secs(1)));
        assert_eq!(
            client_body_fault(&stalled),
            Some(ErrorKind::ClientBodyTimeout)
        );
        let other = std::io::Error::other("reset");
        assert_eq!(client_body_fault(&other), None);
    }
}
