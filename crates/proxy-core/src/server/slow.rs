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
mod tests {
    use bytes::Bytes;

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

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Wakes(AtomicU64);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A body of `left` chunks, each ready at once, that counts the ones taken.
    struct Chunks {
        left: usize,
        taken: Arc<AtomicU64>,
    }

    /// What [`Chunks`] hands out: as large as an upstream read.
    static CHUNK: [u8; 16 * 1024] = [b'x'; 16 * 1024];

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            self.left -= 1;
            self.taken.fetch_add(1, Ordering::SeqCst);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK)))))
        }
    }

    #[test]
    fn gated_body_hands_over_a_chunk_per_flush() {
        let wakes = Arc::new(Wakes::default());
        let waker = std::task::Waker::from(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        let gate = WriteGate::default();
        let taken = Arc::new(AtomicU64::new(0));
        let chunks = Chunks {
            left: 2,
            taken: Arc::clone(&taken),
        };
        let mut body = std::pin::pin!(GatedBody::new(chunks, Some(gate.clone())));

        assert!(body.as_mut().poll_frame(&mut cx).is_ready());
        // Until the stream is flushed, however often it is polled.
        assert!(body.as_mut().poll_frame(&mut cx).is_pending());
        assert!(body.as_mut().poll_frame(&mut cx).is_pending());
        assert_eq!(taken.load(Ordering::SeqCst), 1);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);

        // The flush wakes the waiting body once; a second flush has nobody to wake.
        gate.flushed();
        gate.flushed();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert!(body.as_mut().poll_frame(&mut cx).is_ready());
        assert_eq!(taken.load(Ordering::SeqCst), 2);

        // The end of the body hands nothing over: the gate stays open for the next
        // response on the connection, with no flush in between.
        gate.flushed();
        assert!(matches!(
            body.as_mut().poll_frame(&mut cx),
            Poll::Ready(None)
        ));
        let next = Chunks {
            left: 1,
            taken: Arc::clone(&taken),
        };
        let mut next = std::pin::pin!(GatedBody::new(next, Some(gate.clone())));
        assert!(next.as_mut().poll_frame(&mut cx).is_ready());

        // Without a gate (HTTP/2) nothing waits for a flush.
        let ungated = Chunks {
            left: 2,
            taken: Arc::clone(&taken),
        };
        let mut ungated = std::pin::pin!(GatedBody::new(ungated, None));
        assert!(ungated.as_mut().poll_frame(&mut cx).is_ready());
        assert!(ungated.as_mut().poll_frame(&mut cx).is_ready());
    }

    /// How many 16 KiB chunks of an endless response the HTTP/1 server takes from
    /// its body for a client that sends a request and never reads.
    async fn chunks_taken_by_a_client_that_never_reads(gated: bool) -> u64 {
        use http_body_util::BodyExt;
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;
        use prometheus_client::metrics::counter::Counter;
        use tokio::io::AsyncWriteExt;

        use crate::config::{ListenerLimits, ListenerTimeouts};
        use crate::server::io::ClientStream;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpSocket::new_v4().unwrap();
        client.set_recv_buffer_size(1024).unwrap();
        let mut client = client
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        socket2::SockRef::from(&server_side)
            .set_send_buffer_size(4096)
            .unwrap();

        let gate = WriteGate::default();
        let io = ClientStream::new(
            server_side,
            Bytes::new(),
            Counter::default(),
            Counter::default(),
        )
        .with_write_gate(gate.clone());
        let taken = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&taken);
        let service = service_fn(move |_req| {
            let endless = Chunks {
                left: usize::MAX,
                taken: Arc::clone(&counted),
            };
            let body = GatedBody::new(endless, gated.then(|| gate.clone())).boxed();
            async move { Ok::<_, std::convert::Infallible>(http::Response::new(body)) }
        });
        let timeouts = ListenerTimeouts::default();
        let limits = ListenerLimits::default();
        let server = tokio::spawn(
            crate::server::http::http1_server(Progress::default(), &timeouts, &limits)
                .serve_connection(TokioIo::new(io), service),
        );
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
            .await
            .unwrap();
        // Until the count has not moved for 200 ms (within 5 s).
        let mut last = u64::MAX;
        for _ in 0..25 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = taken.load(Ordering::SeqCst);
            if now == last {
                break;
            }
            last = now;
        }
        server.abort();
        last
    }

    #[tokio::test]
    async fn a_client_that_never_reads_holds_one_chunk_of_its_response() {
        // Paced: the first chunk fills the socket buffers and waits for a flush.
        let gated = chunks_taken_by_a_client_that_never_reads(true).await;
        assert!(gated <= 2, "took {gated} chunks");
        // Unpaced, hyper fills its write buffer up to the request-head limit (64 KiB).
        let ungated = chunks_taken_by_a_client_that_never_reads(false).await;
        assert!(ungated >= 4, "took {ungated} chunks without the gate");
    }
}
