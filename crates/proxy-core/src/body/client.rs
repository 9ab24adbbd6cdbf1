//! The client's request body, which fails when it stalls, and how its failures are told apart.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

use crate::error::{ErrorKind, ProxyError};
use crate::telemetry::tap::SharedBodyCopy;

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
    /// Where its start is copied for a tap that shows bodies.
    copy: Option<SharedBodyCopy>,
}

impl ClientBody {
    /// Wraps the client's `inner` body with a stall limit of `body_progress`.
    pub fn new(inner: Incoming, body_progress: Duration) -> Self {
        Self {
            inner,
            stall: Stall::new(body_progress),
            copy: None,
        }
    }

    /// The body, its start copied to `copy` (if any) as it is read.
    pub fn copied_to(mut self, copy: Option<SharedBodyCopy>) -> Self {
        self.copy = copy;
        self
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
                if let (Some(copy), Some(Ok(frame))) = (&self.copy, &frame) {
                    if let Some(data) = frame.data_ref() {
                        copy.lock().unwrap_or_else(|e| e.into_inner()).keep(data);
                    }
                }
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

#[cfg(test)]
mod tests;
