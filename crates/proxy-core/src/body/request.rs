//! The bodies of requests the proxy sends upstream: the client's streamed through, or buffered so that a retry or a mirror can send it again; and the tracking that tells a pool when one was sent whole.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::body::client::{BodyError, ClientBody};

/// Largest request body buffered so that it can be sent more than once.
pub const MAX_REPLAY_BYTES: usize = 64 * 1024;

/// A request body that was read whole, and can be sent again.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    data: Bytes,
    trailers: Option<HeaderMap>,
}

impl Replay {
    /// A body to send (again); cloning shares the bytes.
    pub fn body(&self) -> RequestBody {
        RequestBody::Replay {
            data: (!self.data.is_empty()).then(|| self.data.clone()),
            trailers: self.trailers.clone(),
        }
    }
}

/// What reading a request body ahead came to.
#[derive(Debug)]
pub enum Prepared {
    /// The whole body, small enough to keep.
    Replay(Replay),
    /// Too large (or of unknown length, and found too large): sent once, streamed.
    Once(RequestBody),
}

/// A request body sent upstream.
#[derive(Debug)]
pub enum RequestBody {
    /// The client's body, streamed frame by frame (trailers included), never buffered.
    Streaming(ClientBody),
    /// A buffered body, from a [`Replay`].
    Replay {
        /// The data not sent yet.
        data: Option<Bytes>,
        /// The trailers not sent yet.
        trailers: Option<HeaderMap>,
    },
    /// What was read ahead before the body turned out too large, then the rest streamed.
    Prefixed {
        /// The data read ahead, not sent yet.
        head: Option<Bytes>,
        /// The rest of the client's body.
        rest: ClientBody,
    },
}

impl RequestBody {
    /// Reads `body` ahead so it can be sent more than once, if it is at most `limit`
    /// bytes. The length the client announced decides without reading when it is
    /// over; a body of unknown length is read until it passes `limit`, and then what
    /// was read goes first and the rest streams.
    pub async fn read_ahead(mut body: ClientBody, limit: usize) -> Result<Prepared, BodyError> {
        if body.is_end_stream() {
            return Ok(Prepared::Replay(Replay::default()));
        }
        let announced = body.size_hint().lower();
        if usize::try_from(announced).map_or(true, |n| n > limit) {
            return Ok(Prepared::Once(Self::Streaming(body)));
        }
        // One chunk (the common case for small bodies) is kept as it came, unjoined.
        let mut first: Option<Bytes> = None;
        let mut joined: Option<BytesMut> = None;
        let mut total = 0usize;
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            let frame = match frame?.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    if let Ok(map) = frame.into_trailers() {
                        trailers = Some(map);
                    }
                    continue;
                }
            };
            total += frame.len();
            match (&mut first, &mut joined) {
                (None, _) => first = Some(frame),
                (Some(head), None) => {
                    let mut buf = BytesMut::with_capacity(total.min(limit));
                    buf.extend_from_slice(head);
                    buf.extend_from_slice(&frame);
                    joined = Some(buf);
                }
                (Some(_), Some(buf)) => buf.extend_from_slice(&frame),
            }
            if total > limit {
                let head = match joined {
                    Some(buf) => buf.freeze(),
                    None => first.unwrap_or_default(),
                };
                return Ok(Prepared::Once(Self::Prefixed {
                    head: Some(head),
                    rest: body,
                }));
            }
        }
        let data = match joined {
            Some(buf) => buf.freeze(),
            None => first.unwrap_or_default(),
        };
        Ok(Prepared::Replay(Replay { data, trailers }))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut *self {
            Self::Streaming(inner) => Pin::new(inner).poll_frame(cx),
            Self::Replay { data, trailers } => Poll::Ready(match data.take() {
                Some(data) => Some(Ok(Frame::data(data))),
                None => trailers.take().map(|t| Ok(Frame::trailers(t))),
            }),
            Self::Prefixed { head, rest } => match head.take() {
                Some(head) => Poll::Ready(Some(Ok(Frame::data(head)))),
                None => Pin::new(rest).poll_frame(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Streaming(inner) => inner.is_end_stream(),
            Self::Replay { data, trailers } => data.is_none() && trailers.is_none(),
            Self::Prefixed { head, rest } => head.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Streaming(inner) => inner.size_hint(),
            Self::Replay { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Self::Prefixed { head, rest } => {
                let head = head.as_ref().map_or(0, |h| h.len() as u64);
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(head));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(head));
                }
                hint
            }
        }
    }
}

/// A request body on its way upstream, which records when it has been handed to the
/// connection whole: only then may an HTTP/1 connection carry another request (an
/// upstream can answer before it has read the body; RFC 9112 §9.3), and only then is
/// a timeout surely the upstream's doing.
#[derive(Debug)]
pub struct TrackedBody {
    inner: RequestBody,
    /// Set once the last frame is out; `None` when the body was empty from the start.
    sent: Option<Arc<AtomicBool>>,
}

/// Whether an [`TrackedBody`] has been sent whole.
#[derive(Debug, Clone, Default)]
pub struct BodySent(Option<Arc<AtomicBool>>);

impl BodySent {
    /// True once the body's last frame has gone to the connection.
    pub fn is_sent(&self) -> bool {
        self.0
            .as_ref()
            .is_none_or(|sent| sent.load(Ordering::Acquire))
    }
}

impl TrackedBody {
    /// Wraps `inner`, and returns the flag that tells when it is sent. An empty body
    /// (most requests) needs no flag, and allocates nothing.
    pub fn new(inner: RequestBody) -> (Self, BodySent) {
        let sent = (!inner.is_end_stream()).then(|| Arc::new(AtomicBool::new(false)));
        let flag = BodySent(sent.clone());
        (Self { inner, sent }, flag)
    }

    fn mark_sent(&self) {
        if let Some(sent) = &self.sent {
            sent.store(true, Ordering::Release);
        }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.mark_sent(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.mark_sent(),
            _ => {}
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
