//! The admin listener: `GET /ready`, `GET /stats` (JSON), `GET /metrics` (Prometheus text)
//! and `GET /tap` (a live stream of requests, NDJSON).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::server::http::forward::local_response;
use crate::server::response_body::ProxyBody;
use crate::state::Shared;

mod tap;

use tap::AdminBody;

/// Serves admin requests until `stop`.
pub async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(%err, "cannot register admin listener");
            return;
        }
    };
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = Arc::clone(&shared);
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let response = match req.uri().path() {
                    "/tap" if req.method() == Method::GET => tap::respond(&req, &shared),
                    _ => respond(&req, &shared).map(AdminBody::Page),
                };
                async move { Ok::<_, Infallible>(response) }
            });
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = served => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

/// Answers one admin request.
fn respond(req: &Request<Incoming>, shared: &Shared) -> Response<ProxyBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return local_response(StatusCode::METHOD_NOT_ALLOWED, "only GET is allowed\n");
    }
    match req.uri().path() {
        "/ready" => match shared.not_ready_reason() {
            None => local_response(StatusCode::OK, "ready\n"),
            Some(reason) => local_response(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            ),
        },
        "/stats" => {
            let mut response = local_response(StatusCode::OK, shared.stats().to_string());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        "/metrics" => {
            let mut response = local_response(StatusCode::OK, shared.metrics.render());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        _ => local_response(
            StatusCode::NOT_FOUND,
            "not found: try /ready, /stats, /metrics or /tap\n",
        ),
    }
}
