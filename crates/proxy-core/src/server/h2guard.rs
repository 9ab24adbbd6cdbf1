//! A budget on the HTTP/2 control frames a client sends: a connection that floods them is closed.
//!
//! hyper's HTTP/2 server answers every PING and SETTINGS frame and applies every
//! WINDOW_UPDATE and PRIORITY, and none of it is a request: a client sending
//! millions of them keeps a worker busy and slows every other connection on it,
//! while no stream or reset limit of the h2 crate ever trips. The guard reads the
//! frame headers of what the client sends (the bytes are passed on untouched) and
//! charges each control frame to a token bucket that refills with time and with
//! the data sent to the client (whose WINDOW_UPDATEs are earned by it). Like
//! nginx's flood detection, it then ends the connection.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::clock;

/// The client connection preface, before the first frame.
const PREFACE_LEN: usize = 24;
const FRAME_HEADER_LEN: usize = 9;

const DATA: u8 = 0x0;
const PRIORITY: u8 = 0x2;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const WINDOW_UPDATE: u8 = 0x8;
/// The END_STREAM flag of DATA and HEADERS frames.
const END_STREAM: u8 = 0x1;

/// Control frames a client may send in a burst.
pub const BURST: u32 = 2_000;
/// Control frames a client earns per second.
pub const PER_SECOND: u32 = 200;
/// Bytes sent to the client that earn one more control frame: a client reading a
/// download sends about one WINDOW_UPDATE per 16 KiB per stream and connection.
pub const SENT_BYTES_PER_FRAME: u64 = 1024;

/// Whether a frame of `kind`, `flags` and `len` payload bytes is a control frame the
/// budget charges: PING, SETTINGS, PRIORITY and WINDOW_UPDATE, and empty DATA frames
/// that do not end their stream (which the h2 crate limits too, but cost as much; an
/// empty DATA frame with END_STREAM is how many clients end a request body).
pub fn is_control_frame(kind: u8, flags: u8, len: u32) -> bool {
    matches!(kind, PRIORITY | SETTINGS | PING | WINDOW_UPDATE)
        || (kind == DATA && len == 0 && flags & END_STREAM == 0)
}

/// A token bucket of control frames: starts full at [`BURST`], refills by
/// [`PER_SECOND`] and by the bytes sent to the client, and never holds more than
/// [`BURST`].
#[derive(Debug, Clone)]
pub struct Budget {
    tokens: u64,
    /// Milliseconds of refill already credited.
    credited_ms: u64,
    /// Bytes sent already credited.
    credited_sent: u64,
}

impl Budget {
    /// A full bucket at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Self {
            tokens: u64::from(BURST),
            credited_ms: now_ms,
            credited_sent: 0,
        }
    }

    /// Charges one control frame at `now_ms`, after `sent` bytes in all have been
    /// sent to the client; false when the bucket is empty (a flood).
    pub fn charge(&mut self, now_ms: u64, sent: u64) -> bool {
        let by_time = now_ms.saturating_sub(self.credited_ms) * u64::from(PER_SECOND) / 1000;
        if by_time > 0 {
            // Only whole frames are credited; the remainder stays for later.
            self.credited_ms += by_time * 1000 / u64::from(PER_SECOND);
        }
        let by_sent = sent.saturating_sub(self.credited_sent) / SENT_BYTES_PER_FRAME;
        self.credited_sent += by_sent * SENT_BYTES_PER_FRAME;
        self.tokens = (self.tokens + by_time + by_sent).min(u64::from(BURST));
        match self.tokens.checked_sub(1) {
            Some(left) => {
                self.tokens = left;
                true
            }
            None => false,
        }
    }
}

/// Finds frame headers in a client's byte stream, chunk by chunk, wherever the
/// chunks split them.
#[derive(Debug, Clone)]
pub struct FrameScanner {
    /// Preface bytes still to skip.
    preface_left: usize,
    /// Payload bytes of the current frame still to skip.
    payload_left: u64,
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
}

impl Default for FrameScanner {
    fn default() -> Self {
        Self {
            preface_left: PREFACE_LEN,
            payload_left: 0,
            header: [0; FRAME_HEADER_LEN],
            header_len: 0,
        }
    }
}

impl FrameScanner {
    /// Scans `bytes`, calling `on_frame(kind, flags, len)` for each complete frame
    /// header; stops early, returning false, when `on_frame` does.
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        mut on_frame: impl FnMut(u8, u8, u32) -> bool,
    ) -> bool {
        while !bytes.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len());
                self.preface_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            if self.payload_left > 0 {
                let n = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.payload_left -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let n = (FRAME_HEADER_LEN - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
            self.header_len += n;
            bytes = &bytes[n..];
            if self.header_len == FRAME_HEADER_LEN {
                self.header_len = 0;
                let [a, b, c, kind, flags, ..] = self.header;
                let len = u32::from_be_bytes([0, a, b, c]);
                self.payload_left = u64::from(len);
                if !on_frame(kind, flags, len) {
                    return false;
                }
            }
        }
        true
    }
}

/// An HTTP/2 client connection with a control-frame budget; reads fail once the
/// client floods, which ends the connection.
#[derive(Debug)]
pub struct H2Guard<S> {
    inner: S,
    scanner: FrameScanner,
    budget: Budget,
    sent: u64,
}

impl<S> H2Guard<S> {
    /// Guards `inner`, whose first bytes are the client connection preface.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            scanner: FrameScanner::default(),
            budget: Budget::new(clock::now_ms()),
            sent: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for H2Guard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let this = &mut *self;
        let (budget, sent) = (&mut this.budget, this.sent);
        let mut now_ms = None;
        let within = this
            .scanner
            .feed(&buf.filled()[before..], |kind, flags, len| {
                if !is_control_frame(kind, flags, len) {
                    return true;
                }
                let now = *now_ms.get_or_insert_with(clock::now_ms);
                budget.charge(now, sent)
            });
        if !within {
            tracing::debug!("HTTP/2 control frame flood: closing the connection");
            return Poll::Ready(Err(io::Error::other("HTTP/2 control frame flood")));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for H2Guard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.sent += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs))?;
        self.sent += n as u64;
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
