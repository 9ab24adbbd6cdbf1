//! Tests of the slow-client limits: the head deadline, the gated response body, a client that never reads.

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
