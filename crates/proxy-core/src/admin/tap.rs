//! `GET /tap` on the admin listener: an open tap's events as NDJSON, one request a line,
//! until its duration ends (a last `{"type":"end",...}` line) or the client goes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use serde_json::json;
use tokio::time::{Interval, MissedTickBehavior, Sleep};

use crate::server::http::forward::local_response;
use crate::server::response_body::ProxyBody;
use crate::state::Shared;
use crate::telemetry::tap::{Tap, TapSpec, MAX_TAPS};

/// A line is written this often when no event comes, so that a client that went away
/// is noticed (the write fails) and its tap closed.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Bytes of events sent in one frame, at most (beyond one event).
const FRAME_BYTES: usize = 64 * 1024;

/// An admin response's body: a page, or a tap's stream.
#[derive(Debug)]
pub enum AdminBody {
    /// A complete page.
    Page(ProxyBody),
    /// `GET /tap`'s events.
    Tap(Box<TapBody>),
}

/// Opens a tap as the query asks: 400 for a bad parameter, 429 when too many are open.
pub fn respond(req: &Request<Incoming>, shared: &Shared) -> Response<AdminBody> {
    let spec = match TapSpec::parse(req.uri().query()) {
        Ok(spec) => spec,
        Err(why) => {
            return local_response(StatusCode::BAD_REQUEST, format!("{why}\n")).map(AdminBody::Page)
        }
    };
    let Ok(tap) = shared.tap.open(&spec) else {
        return local_response(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{MAX_TAPS} taps are open on this proxy already\n"),
        )
        .map(AdminBody::Page);
    };
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let body = TapBody {
        tap,
        deadline: Box::pin(tokio::time::sleep(spec.duration)),
        heartbeat,
        done: false,
    };
    let mut response = Response::new(AdminBody::Tap(Box::new(body)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A tap's events, each a JSON line; empty lines are heartbeats.
#[derive(Debug)]
pub struct TapBody {
    tap: Tap,
    deadline: Pin<Box<Sleep>>,
    heartbeat: Interval,
    done: bool,
}

impl TapBody {
    fn end_line(&self) -> Bytes {
        let (limited, dropped) = self.tap.lost();
        let mut line = json!({"type": "end", "limited": limited, "dropped": dropped}).to_string();
        line.push('\n');
        Bytes::from(line)
    }
}

impl Body for TapBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.done = true;
            return Poll::Ready(Some(Ok(Frame::data(this.end_line()))));
        }
        match this.tap.poll_event(cx) {
            Poll::Ready(Some(event)) => {
                let mut out = BytesMut::new();
                let mut next = Some(event);
                while let Some(event) = next.take() {
                    out.put_slice(event.to_json().to_string().as_bytes());
                    out.put_u8(b'\n');
                    if out.len() < FRAME_BYTES {
                        next = this.tap.try_event();
                    }
                }
                return Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
            }
            Poll::Ready(None) => {
                this.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if this.heartbeat.poll_tick(cx).is_ready() {
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"\n")))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Body for AdminBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Self::Page(page) => Pin::new(page).poll_frame(cx),
            Self::Tap(tap) => Pin::new(tap.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Page(page) => page.is_end_stream(),
            Self::Tap(tap) => tap.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Page(page) => page.size_hint(),
            Self::Tap(tap) => tap.size_hint(),
        }
    }
}
