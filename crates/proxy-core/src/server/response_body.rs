//! The bodies of responses the proxy sends downstream: an upstream body streamed through under its lease, or a short local one, and the span that ends with them.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::telemetry::metrics::edge::{grpc_status_index, EdgeRequests};
use crate::telemetry::metrics::istio::IstioRequest;
use crate::telemetry::tap::PendingTap;
use crate::telemetry::trace::OpenSpan;
use crate::upstream::endpoint::Lease;

/// Where a gRPC response's status is counted when its trailers bring it.
#[derive(Debug)]
pub struct GrpcWatch {
    edge: Arc<EdgeRequests>,
    /// Its Istio count, made when this is dropped (with the status, if it came).
    istio: Option<IstioRequest>,
}

impl GrpcWatch {
    /// Counts the status at `index` (see [`grpc_status_index`]).
    fn ended(self, index: usize) {
        self.edge.grpc_status(index);
        if let Some(mut istio) = self.istio {
            istio.grpc_status(index);
        }
    }
}

/// A downstream response body.
#[derive(Debug)]
pub enum ProxyBody {
    /// Streamed from the upstream, frame by frame, never buffered whole.
    Upstream {
        /// The upstream's body.
        inner: Incoming,
        /// Hold on the endpoint; completed when the body ends cleanly.
        lease: Option<Lease>,
        /// Of a gRPC response: where its trailers' `grpc-status` is counted.
        grpc: Option<GrpcWatch>,
    },
    /// A body made by the proxy itself (errors, admin pages).
    Local(Option<Bytes>),
}

impl ProxyBody {
    /// A body streamed from the upstream under `lease`.
    pub fn upstream(inner: Incoming, lease: Lease) -> Self {
        let mut body = Self::Upstream {
            inner,
            lease: Some(lease),
            grpc: None,
        };
        body.complete_if_ended();
        body
    }

    /// Counts the `grpc-status` of this body's trailers, when they come, on `edge`
    /// and in `istio`'s request (counted when the body ends, with or without them).
    /// A local body has no trailers: nothing to count.
    pub fn count_grpc_status(&mut self, edge: &Arc<EdgeRequests>, istio: Option<IstioRequest>) {
        if let Self::Upstream { grpc, .. } = self {
            *grpc = Some(GrpcWatch {
                edge: Arc::clone(edge),
                istio,
            });
        }
    }

    /// This body, carrying what ends with it until its last frame is handed over.
    pub fn ending_with(self, end: BodyEnd) -> SpannedBody {
        SpannedBody { inner: self, end }
    }

    /// A complete body of `bytes`.
    pub fn local(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self::Local((!bytes.is_empty()).then_some(bytes))
    }

    /// Hands the upstream connection back as soon as the body has ended,
    /// without waiting for the server to poll once more.
    fn complete_if_ended(&mut self) {
        if let Self::Upstream { inner, lease, .. } = self {
            if inner.is_end_stream() {
                if let Some(mut lease) = lease.take() {
                    lease.complete();
                }
            }
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut *self {
            Self::Upstream { inner, .. } => {
                let polled = Pin::new(inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(None) => {
                        if let Self::Upstream { lease, .. } = &mut *self {
                            if let Some(mut lease) = lease.take() {
                                lease.complete();
                            }
                        }
                    }
                    Poll::Ready(Some(Ok(frame))) => {
                        if let (Some(trailers), Self::Upstream { grpc, .. }) =
                            (frame.trailers_ref(), &mut *self)
                        {
                            if let (Some(watch), Some(status)) =
                                (grpc.take(), trailers.get(&GRPC_STATUS))
                            {
                                watch.ended(grpc_status_index(status.as_bytes()));
                            }
                        }
                        self.complete_if_ended();
                    }
                    // An upstream error drops the lease and with it the connection.
                    Poll::Ready(Some(Err(_))) => {
                        if let Self::Upstream { lease, .. } = &mut *self {
                            lease.take();
                        }
                    }
                    Poll::Pending => {}
                }
                polled
            }
            Self::Local(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Upstream { inner, .. } => inner.is_end_stream(),
            Self::Local(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Upstream { inner, .. } => inner.size_hint(),
            Self::Local(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

/// The header, or trailer, a gRPC response ends with.
pub static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// What ends with a response's body: its request's span, finished (and exported)
/// then, and its tap event, when a tap shows bodies (it copies the body's start).
#[derive(Debug, Default)]
pub struct BodyEnd {
    /// The request's span, if it is kept.
    pub span: Option<OpenSpan>,
    /// The request's tap event, waiting for the body.
    pub tap: Option<PendingTap>,
}

impl BodyEnd {
    /// Ends both now: the span is finished, the tap event offered.
    fn finish(&mut self) {
        drop(self.span.take());
        drop(self.tap.take());
    }
}

/// A response body and what ends with it ([`BodyEnd`]): when the body's last frame has
/// been taken, or when the body is dropped before that.
#[derive(Debug)]
pub struct SpannedBody {
    inner: ProxyBody,
    end: BodyEnd,
}

impl Body for SpannedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let (Some(tap), Poll::Ready(Some(Ok(frame)))) = (&mut self.end.tap, &polled) {
            if let Some(data) = frame.data_ref() {
                tap.keep(data);
            }
        }
        let ended = match &polled {
            Poll::Ready(None | Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            Poll::Pending => false,
        };
        if ended {
            self.end.finish();
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
