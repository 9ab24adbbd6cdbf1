//! The HTTP listener: serves HTTP/1.1 and h2c on a connection and forwards each request to its cluster.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpStream;

use crate::body::client::{client_body_failed, ClientBody};
use crate::body::request::{Prepared, Replay, RequestBody, MAX_REPLAY_BYTES};
use crate::config::{ListenerLimits, ListenerProtocol, ListenerTimeouts};
use crate::error::{ErrorKind, ProxyError};
use crate::identity::tls::ALPN_H2;
use crate::policy::authz::{self, AuthzRequest, Decider, HttpView};
use crate::policy::filters::Filters;
use crate::policy::headers::{self, ClientHeaders, X_MESHPY_ERROR, X_MESHPY_OVERFLOW};
use crate::policy::retry::{self, Decision, Outcome, RetryPolicy};
use crate::policy::route::{Mirror, Miss, RequestView};
use crate::rng;
use crate::server::h2guard::H2Guard;
use crate::server::inbound::{self, PeerIdentity};
use crate::server::io::{self, ClientStream, Detected};
use crate::server::listener::{ListenerAuthz, ListenerRoute, ListenerShared, Shutdown, Target};
use crate::server::response_body::ProxyBody;
use crate::server::slow::{GatedBody, HeadTimer, Progress, WriteGate};
use crate::telemetry::metrics::Wire;
use crate::upstream::cluster::{Cluster, Pick};
use crate::upstream::endpoint::{Endpoint, Lease};
use crate::upstream::mirror;

/// `x-meshpy-fault: abort`, on responses of an injected abort.
static X_MESHPY_FAULT: http::HeaderName = http::HeaderName::from_static("x-meshpy-fault");

/// Per-connection context every request on it shares.
struct Connection {
    shared: Arc<ListenerShared>,
    client: ClientHeaders,
    /// How the connection arrived, on a listener with `tls` (for metrics).
    wire: Option<Wire>,
    /// The client's verified SPIFFE ID, on an mTLS connection.
    peer: Option<PeerIdentity>,
    /// Requests started on this connection, for HTTP/2 idle detection.
    started: AtomicU64,
    /// Requests whose response headers are not sent yet.
    active: AtomicUsize,
}

impl Connection {
    fn new(
        shared: &Arc<ListenerShared>,
        addr: SocketAddr,
        wire: Option<Wire>,
        peer: Option<PeerIdentity>,
    ) -> Arc<Self> {
        let client = match &peer {
            Some(PeerIdentity(id)) => ClientHeaders::mtls(addr.ip(), id.as_str()),
            None => ClientHeaders::new(addr.ip()),
        };
        Arc::new(Self {
            shared: Arc::clone(shared),
            client,
            wire,
            peer,
            started: AtomicU64::new(0),
            active: AtomicUsize::new(0),
        })
    }

    /// Resolves once no request has started or been active for a whole `idle` period.
    async fn idle(&self, idle: Duration) {
        let mut last = self.started.load(Ordering::Relaxed);
        loop {
            tokio::time::sleep(idle).await;
            let now = self.started.load(Ordering::Relaxed);
            if now == last && self.active.load(Ordering::Relaxed) == 0 {
                return;
            }
            last = now;
        }
    }
}

/// Counts a request active until its handler finishes or is dropped (client reset).
struct ActiveRequest<'a>(&'a Connection);

impl<'a> ActiveRequest<'a> {
    fn new(conn: &'a Connection) -> Self {
        conn.started.fetch_add(1, Ordering::Relaxed);
        conn.active.fetch_add(1, Ordering::Relaxed);
        Self(conn)
    }
}

impl Drop for ActiveRequest<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one downstream connection until it closes, drains or is stopped.
pub async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    route: Arc<ListenerRoute>,
    shared: &Arc<ListenerShared>,
    shutdown: Shutdown,
) {
    let _ = stream.set_nodelay(true);
    let idle = route.timeouts.idle;
    let send = route.timeouts.send;
    let progress = Progress::default();
    let gate = WriteGate::default();
    let metrics = &shared.metrics;
    let wire = match route.tls {
        None => None,
        Some(mode) => match inbound::classify(&stream, mode, idle, shared, &shutdown).await {
            None => return,
            Some(Wire::Mtls) => {
                let io = ClientStream::new(
                    stream,
                    Bytes::new(),
                    metrics.bytes_received.clone(),
                    metrics.bytes_sent.clone(),
                )
                .with_progress(progress.clone())
                .with_send_timeout(send)
                .with_write_gate(gate.clone());
                let accepted =
                    inbound::handshake(io, shared, ListenerProtocol::Http, &shutdown).await;
                let Some((tls, peer_id)) = accepted else {
                    return;
                };
                // Over TLS the version is what ALPN agreed (RFC 9113 §3.2), no sniffing.
                let detected = match tls.get_ref().1.alpn_protocol() {
                    Some(ALPN_H2) => Detected::Http2,
                    _ => Detected::Http1,
                };
                let conn = Connection::new(shared, peer, Some(Wire::Mtls), Some(peer_id));
                serve_io(tls, detected, conn, progress, gate, &route, &shutdown).await;
                return;
            }
            Some(Wire::Plaintext) => Some(Wire::Plaintext),
        },
    };
    // A client that connects and says nothing is closed after the idle timeout.
    let (detected, prefix) = tokio::select! {
        sniffed = tokio::time::timeout(idle, io::sniff(&mut stream)) => match sniffed {
            Ok(Ok(sniffed)) => sniffed,
            _ => return,
        },
        _ = shutdown.drain.cancelled() => return,
    };
    let io = ClientStream::new(
        stream,
        prefix,
        metrics.bytes_received.clone(),
        metrics.bytes_sent.clone(),
    )
    .with_progress(progress.clone())
    .with_send_timeout(send)
    .with_write_gate(gate.clone());
    let conn = Connection::new(shared, peer, wire, None);
    serve_io(io, detected, conn, progress, gate, &route, &shutdown).await;
}

/// Largest read buffer of an HTTP/1 connection, beyond what the request head needs
/// (hyper's write buffer has the same limit, but holds one response chunk at a
/// time: see [`WriteGate`]).
const H1_MAX_BUF_BYTES: usize = 16 * 1024;
/// HTTP/2 flow-control windows: at most this much of a request body is buffered
/// per stream, and per connection, when the upstream is slow to take it.
const H2_STREAM_WINDOW: u32 = 256 * 1024;
const H2_CONNECTION_WINDOW: u32 = 1024 * 1024;
/// Response bytes buffered per HTTP/2 stream for a client that grants no window.
const H2_MAX_SEND_BUF_BYTES: usize = 16 * 1024;
/// Streams at once per HTTP/2 connection (nginx allows 128, Go 250).
const H2_MAX_CONCURRENT_STREAMS: u32 = 128;

/// Serves HTTP of the `detected` version on `io` with the listener's limits.
/// `progress` counts the bytes `io` delivers, for the request-head timeout, and
/// `gate` is opened by its flushes, to pace HTTP/1 response bodies; an HTTP/2
/// client's control frames are metered by an [`H2Guard`].
async fn serve_io<I>(
    io: I,
    detected: Detected,
    conn: Arc<Connection>,
    progress: Progress,
    gate: WriteGate,
    route: &ListenerRoute,
    shutdown: &Shutdown,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let idle = route.timeouts.idle;
    let limits = route.limits;
    let watched = Arc::clone(&conn);
    let gate = matches!(detected, Detected::Http1).then_some(gate);
    let service = service_fn(move |req| {
        let conn = Arc::clone(&conn);
        let gate = gate.clone();
        async move {
            let response = handle(req, &conn).await;
            Ok::<_, Infallible>(response.map(|body| GatedBody::new(body, gate)))
        }
    });
    match detected {
        Detected::Http1 => {
            let served = http1_server(progress, &route.timeouts, &limits)
                .serve_connection(TokioIo::new(io), service);
            // hyper closes idle HTTP/1 connections itself (header read timeout).
            drive(served, shutdown, std::future::pending()).await;
        }
        Detected::Http2 => {
            let header_list = u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX);
            let served = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_header_list_size(header_list)
                .initial_stream_window_size(H2_STREAM_WINDOW)
                .initial_connection_window_size(H2_CONNECTION_WINDOW)
                .max_send_buf_size(H2_MAX_SEND_BUF_BYTES)
                .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
                .serve_connection(TokioIo::new(H2Guard::new(io)), service);
            // An HTTP/2 connection with no request for a whole idle period gets GOAWAY.
            drive(served, shutdown, watched.idle(idle)).await;
        }
    }
}

/// The HTTP/1 server of a connection, with the listener's timeouts and limits.
pub(crate) fn http1_server(
    progress: Progress,
    timeouts: &ListenerTimeouts,
    limits: &ListenerLimits,
) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        // The header read timeout is the idle one until the head's first byte
        // comes, then `request_head` (see `slow::HeadTimer`).
        .timer(HeadTimer::new(progress, timeouts.request_head))
        .header_read_timeout(timeouts.idle)
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(H1_MAX_BUF_BYTES.max(limits.max_header_bytes + 1))
        // Body chunks are queued, not copied into a write buffer that would
        // grow to their size and stay so for the connection's life. A queued
        // chunk pins the upstream read buffer it came from, but only until it
        // is flushed: the `WriteGate` lets no other chunk in, and the upstream
        // is not read meanwhile.
        .writev(true);
    builder
}

/// Serves a connection until it ends; on drain, or once `idle` resolves, shuts it down
/// gracefully (HTTP/1: after the current response; HTTP/2: GOAWAY); on stop, drops it.
async fn drive(
    served: impl GracefulConnection,
    shutdown: &Shutdown,
    idle: impl std::future::Future<Output = ()>,
) {
    let mut served = pin!(served);
    tokio::select! {
        _ = served.as_mut() => return,
        _ = shutdown.drain.cancelled() => served.as_mut().graceful_shutdown(),
        _ = idle => served.as_mut().graceful_shutdown(),
        _ = shutdown.stop.cancelled() => return,
    }
    tokio::select! {
        _ = served => {}
        _ = shutdown.stop.cancelled() => {}
    }
}

/// Proxies one request and records its outcome.
async fn handle(mut req: Request<Incoming>, conn: &Connection) -> Response<ProxyBody> {
    let started = Instant::now();
    let _active = ActiveRequest::new(conn);
    let route = conn.shared.route.load_full();
    let metrics = &conn.shared.metrics;
    if let Some(wire) = conn.wire {
        metrics.tls().request(wire);
    }
    if let Some(peer) = &conn.peer {
        req.extensions_mut().insert(peer.clone());
    }
    let response = match forward(req, &route, conn).await {
        Ok(response) => response,
        Err(err) => {
            metrics.error(err.reason());
            tracing::debug!(listener = %conn.shared.name, %err, "request failed");
            error_response(&err)
        }
    };
    metrics.request(response.status().as_u16());
    metrics.duration.observe(started.elapsed().as_secs_f64());
    response
}

/// Authorizes the request, then sends it to an endpoint of the route's cluster and streams the response back.
async fn forward(
    mut req: Request<Incoming>,
    route: &ListenerRoute,
    conn: &Connection,
) -> Result<Response<ProxyBody>, ProxyError> {
    if let Err(reason) = headers::check_http1_target(&mut req) {
        // The client's framing of what it wants is in doubt: answer, then close.
        let mut response = local_response(StatusCode::BAD_REQUEST, format!("{reason}\n"));
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(response);
    }
    // HTTP/1 header counts are enforced by the parser; HTTP/2 ones here.
    if req.headers().len() > route.limits.max_headers {
        return Ok(local_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "too many request headers\n",
        ));
    }
    if let Some(authz) = &route.authz {
        authorize(&mut req, authz, conn)?;
    }
    let client = &conn.client;
    let chosen = choose_cluster(&req, route)?;
    let cluster = chosen.cluster;
    if let Some(filters) = chosen.filters {
        // Before prepare_request: a rewritten host becomes the upstream's target
        // authority, and no filter can put back a header the proxy strips or owns.
        apply_request_filters(&mut req, filters, chosen.matched_prefix)?;
    }
    headers::prepare_request(
        &mut req,
        client,
        route.proxy_header,
        cluster.protocol(),
        headers::new_request_id,
    );
    if cluster.tls_identity().is_some() {
        headers::use_https(&mut req);
    }
    let traffic = cluster.traffic();
    if let Some(fault) = &traffic.fault {
        // Before the request timeout starts, as the delay stands for a slow network
        // ahead of the upstream, not a slow upstream.
        let (delay, abort) = fault.roll();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if let Some(status) = abort {
            let mut response = local_response(status, "fault injected\n");
            response
                .headers_mut()
                .insert(X_MESHPY_FAULT.clone(), HeaderValue::from_static("abort"));
            return Ok(response);
        }
    }
    // Every request to the cluster earns its retry budget a share of a retry.
    traffic.budget.deposit();
    let deadline = tokio::time::Instant::now() + chosen.timeout;
    // Mirrors are rolled first: a copy needs the body read ahead.
    let mirrored = roll_mirrors(chosen.mirrors);
    let retries = chosen.retry.filter(|policy| policy.attempts > 0);
    let (parts, incoming) = req.into_parts();
    let incoming = ClientBody::new(incoming, route.timeouts.body_progress);
    if retries.is_none() && mirrored == 0 {
        // The common case: one try, the body streamed as it comes.
        let req = Request::from_parts(parts, RequestBody::Streaming(incoming));
        let sent = send_once(cluster, req, client.ip, deadline, chosen.backend_timeout).await;
        return respond(sent, route, &chosen);
    }
    let read = tokio::time::timeout_at(
        deadline,
        RequestBody::read_ahead(incoming, MAX_REPLAY_BYTES),
    );
    let prepared = match read.await {
        Err(_) => return Err(ProxyError::new(ErrorKind::RequestTimeout)),
        Ok(Err(err)) => return Err(client_body_failed(err)),
        Ok(Ok(prepared)) => prepared,
    };
    for (i, mirror) in chosen.mirrors.iter().enumerate() {
        if mirrored & (1 << i) == 0 {
            continue;
        }
        match &prepared {
            Prepared::Replay(body) => mirror::spawn(&mirror.target, &parts, body, chosen.timeout),
            // A streamed body cannot be copied without holding the original back.
            Prepared::Once(_) => {
                mirror.target.traffic().mirrors.dropped.inc();
            }
        }
    }
    let (replay, policy) = match (prepared, retries) {
        (Prepared::Replay(replay), Some(policy)) => (replay, policy),
        (Prepared::Replay(replay), None) => {
            let req = Request::from_parts(parts, replay.body());
            let sent = send_once(cluster, req, client.ip, deadline, chosen.backend_timeout).await;
            return respond(sent, route, &chosen);
        }
        // Too large to keep: sent once, never retried.
        (Prepared::Once(body), _) => {
            let req = Request::from_parts(parts, body);
            let sent = send_once(cluster, req, client.ip, deadline, chosen.backend_timeout).await;
            return respond(sent, route, &chosen);
        }
    };
    let sent = send_with_retries(
        cluster, parts, &replay, policy, client.ip, deadline, &chosen,
    )
    .await;
    respond(sent, route, &chosen)
}

/// The upstream's response (or the failure) of the last try, with the lease on its endpoint.
type Sent = Result<(Response<Incoming>, Lease), ProxyError>;

/// Picks an endpoint and sends `req` once, within the per-try timeout and the deadline.
async fn send_once(
    cluster: &Cluster,
    req: Request<RequestBody>,
    client_ip: IpAddr,
    deadline: tokio::time::Instant,
    per_try: Option<Duration>,
) -> Sent {
    let endpoint = cluster
        .pick(&Pick {
            headers: Some(req.headers()),
            client_ip: Some(client_ip),
            avoid: None,
        })
        .ok_or_else(|| ProxyError::new(ErrorKind::NoEndpoints))?;
    send_to(endpoint, req, deadline, per_try).await
}

/// Sends `req` once to `endpoint`, within the per-try timeout and the deadline.
async fn send_to(
    endpoint: &Arc<Endpoint>,
    req: Request<RequestBody>,
    deadline: tokio::time::Instant,
    per_try: Option<Duration>,
) -> Sent {
    // backendRequest bounds one upstream try; request bounds all of them. The
    // endpoint applies the bound itself, so that a timeout counts against it.
    let now = tokio::time::Instant::now();
    let limit = match per_try {
        Some(per_try) => deadline.min(now + per_try),
        None => deadline,
    };
    endpoint
        .send(req, limit.saturating_duration_since(now))
        .await
}

/// The retry loop: sends tries until one is not to be retried (see `retry::decide`),
/// the budget or the time runs out; then the last try's outcome is the answer.
async fn send_with_retries(
    cluster: &Cluster,
    parts: http::request::Parts,
    replay: &Replay,
    policy: &RetryPolicy,
    client_ip: IpAddr,
    deadline: tokio::time::Instant,
    chosen: &Chosen<'_>,
) -> Sent {
    let traffic = cluster.traffic();
    let method = parts.method.clone();
    let mut parts = Some(parts);
    let mut retries = 0;
    let mut failed: Option<&Arc<Endpoint>> = None;
    loop {
        // Tries that may be followed by another send copies; the last, the original.
        let last = retries >= policy.attempts;
        // A retry prefers another endpoint than the one that failed (as Envoy's
        // previous-hosts predicate does); the balancer stays the judge of which.
        let endpoint = cluster
            .pick(&Pick {
                headers: parts.as_ref().map(|p| &p.headers),
                client_ip: Some(client_ip),
                avoid: failed.map(|e| &**e),
            })
            .ok_or_else(|| ProxyError::new(ErrorKind::NoEndpoints))?;
        let req = match parts.take() {
            Some(original) if last => Request::from_parts(original, replay.body()),
            Some(original) => {
                let req = copy_request(&original, replay.body());
                parts = Some(original);
                req
            }
            // Unreachable: the last try always returns below.
            None => return Err(ProxyError::new(ErrorKind::UpstreamFailed)),
        };
        let sent = send_to(endpoint, req, deadline, chosen.backend_timeout).await;
        let outcome = match &sent {
            Ok((response, _)) => Outcome::Status(response.status().as_u16()),
            Err(err) => Outcome::of_error(err),
        };
        if retry::decide(policy, &method, outcome, retries) == Decision::Return {
            return sent;
        }
        let wait = retry::backoff(policy.backoff, retries + 1, |n| {
            rng::below(usize::try_from(n).unwrap_or(usize::MAX)) as u64
        });
        if tokio::time::Instant::now() + wait >= deadline {
            return sent;
        }
        if !traffic.budget.try_withdraw() {
            traffic.retries.budget_exhausted.inc();
            return sent;
        }
        traffic.retries.sent.inc();
        if let Ok((response, mut lease)) = sent {
            // A body already ended leaves the connection reusable; otherwise it closes.
            if http_body::Body::is_end_stream(response.body()) {
                lease.complete();
            }
        }
        tokio::time::sleep(wait).await;
        failed = Some(endpoint);
        retries += 1;
    }
}

/// A request with the same head as `parts` and `body`, for one try of several.
fn copy_request(parts: &http::request::Parts, body: RequestBody) -> Request<RequestBody> {
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    req
}

/// Which mirrors get a copy of this request, as a bit per mirror.
fn roll_mirrors(mirrors: &[Mirror<Arc<Cluster>>]) -> u64 {
    mirrors
        .iter()
        .take(64)
        .enumerate()
        .filter(|(_, mirror)| mirror.chance.roll())
        .fold(0, |mask, (i, _)| mask | (1 << i))
}

/// The upstream's response made ready for the client: proxy headers and response filters.
fn respond(
    sent: Sent,
    route: &ListenerRoute,
    chosen: &Chosen<'_>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (response, lease) = sent?;
    let (mut parts, body) = response.into_parts();
    headers::prepare_response(&mut parts.headers, route.proxy_header);
    if let Some(filters) = chosen.filters {
        filters.edit_response_headers(&mut parts.headers);
    }
    Ok(Response::from_parts(
        parts,
        ProxyBody::upstream(body, lease),
    ))
}

/// Normalises the request's path (what routing, authorization and the app all
/// see from then on), then lets the listener's policies decide.
fn authorize(
    req: &mut Request<Incoming>,
    authz: &ListenerAuthz,
    conn: &Connection,
) -> Result<(), ProxyError> {
    let normalized = match authz::normalize_path(req.uri().path()) {
        Ok(Cow::Borrowed(_)) => None,
        Ok(Cow::Owned(path)) => Some(path),
        Err(err) => return Err(ProxyError::with_source(ErrorKind::InvalidPath, err)),
    };
    if let Some(path) = normalized {
        set_path(req, path)?;
    }
    let identity = conn.peer.as_ref().map(|PeerIdentity(id)| id.as_str());
    let decision = authz.decide(&AuthzRequest {
        identity,
        http: Some(HttpView {
            method: req.method(),
            path: req.uri().path(),
        }),
    });
    if decision.allowed {
        return Ok(());
    }
    tracing::debug!(
        listener = %conn.shared.name,
        client = identity.unwrap_or("(unauthenticated)"),
        method = %req.method(),
        path = req.uri().path(),
        policy = authz.policies.label(decision.by),
        no_allow_match = decision.by == Decider::NoAllowMatch,
        "request refused by authorization"
    );
    // The body says no more than "unauthorized": policy names stay with the operator.
    Err(ProxyError::new(ErrorKind::Unauthorized))
}

/// Replaces the request's path, keeping its query exactly as it came.
fn set_path(req: &mut Request<Incoming>, path: String) -> Result<(), ProxyError> {
    let target = match req.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(
        PathAndQuery::try_from(target)
            .map_err(|err| ProxyError::with_source(ErrorKind::InvalidPath, err))?,
    );
    *req.uri_mut() = Uri::from_parts(parts)
        .map_err(|err| ProxyError::with_source(ErrorKind::InvalidPath, err))?;
    Ok(())
}

/// Applies a backend's request filters: URL rewrite (host, path), then header modifiers.
fn apply_request_filters(
    req: &mut Request<Incoming>,
    filters: &Filters,
    matched_prefix: &str,
) -> Result<(), ProxyError> {
    if let Some(path) = &filters.path {
        let rewritten = path.apply(req.uri().path(), matched_prefix);
        set_path(req, rewritten)?;
    }
    if let Some(host) = &filters.hostname {
        req.headers_mut().insert(header::HOST, host.clone());
    }
    filters.edit_request_headers(req.headers_mut());
    Ok(())
}

/// Where a request goes and how: what routing chose for it.
struct Chosen<'r> {
    cluster: &'r Arc<Cluster>,
    /// Bound on the whole request.
    timeout: Duration,
    /// Bound on one upstream attempt, if the rule sets one.
    backend_timeout: Option<Duration>,
    filters: Option<&'r Filters>,
    matched_prefix: &'r str,
    /// The rule's retries.
    retry: Option<&'r RetryPolicy>,
    /// Where copies go.
    mirrors: &'r [Mirror<Arc<Cluster>>],
}

/// The cluster a request goes to, its timeouts and filters.
fn choose_cluster<'r>(
    req: &Request<Incoming>,
    route: &'r ListenerRoute,
) -> Result<Chosen<'r>, ProxyError> {
    let table = match &route.target {
        Target::Cluster(cluster) => {
            return Ok(Chosen {
                cluster,
                timeout: route.timeouts.request,
                backend_timeout: None,
                filters: None,
                matched_prefix: "",
                retry: None,
                mirrors: &[],
            })
        }
        Target::Routes(table) => table,
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    let view = RequestView {
        host,
        method: req.method(),
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req.headers(),
    };
    let found = table.find_match(&view).map_err(|miss| {
        let why = match miss {
            Miss::NoHost => format!("no virtual host serves {host:?}"),
            Miss::NoRule => format!(
                "no rule of {host:?} matches {} {}",
                req.method(),
                req.uri().path()
            ),
        };
        ProxyError::with_source(ErrorKind::NoRoute, why)
    })?;
    let rule = found.rule;
    let backend = rule
        .pick_backend(rng::below)
        .ok_or_else(|| ProxyError::new(ErrorKind::NoBackend))?;
    Ok(Chosen {
        cluster: &backend.target,
        timeout: rule.timeout.unwrap_or(route.timeouts.request),
        backend_timeout: rule.backend_timeout,
        filters: backend.filters.as_ref(),
        matched_prefix: found.matched_prefix,
        retry: rule.retry.as_ref(),
        mirrors: &backend.mirrors,
    })
}

/// The response a client gets when the proxy could not get one from upstream.
fn error_response(err: &ProxyError) -> Response<ProxyBody> {
    let mut response = local_response(err.status(), err.body());
    response.headers_mut().insert(
        X_MESHPY_ERROR.clone(),
        HeaderValue::from_static(err.reason()),
    );
    if let Some(limit) = err.overflow() {
        response.headers_mut().insert(
            X_MESHPY_OVERFLOW.clone(),
            HeaderValue::from_static(limit.name()),
        );
    }
    response
}

/// A short plain-text response made by the proxy.
pub fn local_response(status: StatusCode, text: impl Into<bytes::Bytes>) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::local(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
