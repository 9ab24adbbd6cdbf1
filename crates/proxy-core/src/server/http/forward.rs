//! One request on an HTTP listener: plan it (authorization, route), execute the plan
//! (filters, proxy headers, faults, mirrors, tries), and answer, or answer the failure.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;

use super::{ActiveRequest, Connection};
use crate::body::client::{client_body_failed, ClientBody};
use crate::body::request::{Prepared, RequestBody, MAX_REPLAY_BYTES};
use crate::error::{ErrorKind, ProxyError};
use crate::policy::authz::Decider;
use crate::policy::filters::Filters;
use crate::policy::headers::{self, X_MESHPY_ERROR, X_MESHPY_OVERFLOW};
use crate::policy::plan::{self, Ask, Plan, Refusal};
use crate::policy::route::{MatchedAt, RequestView};
use crate::rng;
use crate::server::inbound::PeerIdentity;
use crate::server::listener::{ListenerEdges, ListenerRoute};
use crate::server::response_body::{BodyEnd, ProxyBody, GRPC_STATUS};
use crate::spiffe::SpiffeId;
use crate::telemetry::metrics::edge::{self, EdgeEvent, EdgeRequests};
use crate::telemetry::metrics::istio::IstioRequest;
use crate::telemetry::tap::{self, PendingTap, Tapping};
use crate::telemetry::trace::span::Kind;
use crate::telemetry::trace::{context, Facts, Tracer};
use crate::upstream::cluster::Cluster;
use crate::upstream::mirror;
use crate::upstream::tries::{Sent, Tries};

/// `x-meshpy-fault: abort`, on responses of an injected abort.
static X_MESHPY_FAULT: http::HeaderName = http::HeaderName::from_static("x-meshpy-fault");

/// Proxies one request and records its outcome; also returns what ends with the
/// response's body: its span (with tracing, if it is kept) and its tap event (when a
/// tap shows bodies).
pub(super) async fn handle(
    mut req: Request<Incoming>,
    conn: &Connection,
) -> (Response<ProxyBody>, BodyEnd) {
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
    let mut facts = route
        .tracer
        .as_ref()
        .map(|tracer| arrival(tracer, &req, conn, route.span_kind, started));
    let method = edge::method_index(req.method());
    let mut tapping = conn
        .shared
        .tap
        .arrival(&req, tap_direction(route.span_kind));
    let mut sent_to = None;
    let mut matched = None;
    let mut failed = None;
    let mut error_reason = None;
    let forwarded = forward(
        req,
        &route,
        conn,
        facts.as_mut(),
        &mut sent_to,
        &mut matched,
        tapping.as_deref_mut(),
    );
    let response = match forwarded.await {
        Ok(response) => response,
        Err(err) => {
            error_reason = Some(err.reason());
            metrics.error(err.reason());
            failed = EdgeEvent::of_error(err.kind());
            tracing::debug!(listener = %conn.shared.name, %err, "request failed");
            if let Some(facts) = &mut facts {
                facts.proxy_error = Some(err.reason());
            }
            error_response(&err)
        }
    };
    let status = response.status().as_u16();
    metrics.request(status);
    let edge = edge_of(&route, conn, sent_to);
    let seconds = started.elapsed().as_secs_f64();
    edge.observe(method, status, seconds);
    let istio = edge.istio_request(status, seconds, error_reason);
    if let Some(event) = failed {
        edge.count(event);
    }
    if let Some(routes) = &route.route_requests {
        routes.count(matched, edge.destination_service(), status);
    }
    let tap =
        tapping.and_then(|tapping| tap_ended(tapping, conn, route.span_kind, status, error_reason));
    let mut response = response;
    watch_grpc_status(&mut response, edge, istio);
    let span = route
        .tracer
        .as_ref()
        .zip(facts)
        .and_then(|(tracer, mut facts)| {
            facts.status = response.status().as_u16();
            tracer.open(facts)
        });
    (response, BodyEnd { span, tap })
}

/// Counts a gRPC response's status on `edge` when the response ends: now, if its
/// headers carry it (a trailers-only response), else when its trailers come. Other
/// responses cost a header lookup. The request's Istio count (if any) is made then
/// too, with the status; for any other response, now.
fn watch_grpc_status(
    response: &mut Response<ProxyBody>,
    edge: &Arc<EdgeRequests>,
    mut istio: Option<IstioRequest>,
) {
    if let Some(status) = response.headers().get(&GRPC_STATUS) {
        let index = edge::grpc_status_index(status.as_bytes());
        edge.grpc_status(index);
        if let Some(istio) = &mut istio {
            istio.grpc_status(index);
        }
    } else if is_grpc(response.headers()) {
        if let Some(istio) = &mut istio {
            istio.grpc();
        }
        response.body_mut().count_grpc_status(edge, istio);
    }
}

/// Whether a response's content type is gRPC's (`application/grpc`, with or
/// without a `+format` suffix).
fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// The edge a request is counted on: inbound, the one from the connection's client;
/// outbound, the one to the cluster it was `sent_to`, if any.
fn edge_of<'r>(
    route: &'r ListenerRoute,
    conn: &'r Connection,
    sent_to: Option<&'r Arc<EdgeRequests>>,
) -> &'r Arc<EdgeRequests> {
    match &route.edges {
        ListenerEdges::Inbound(edges) => conn
            .inbound_edge
            .get_or_init(|| edges.of_caller(conn.peer.as_ref().map(|PeerIdentity(id)| id))),
        ListenerEdges::Outbound { unrouted } => sent_to.unwrap_or(unrouted),
    }
}

/// Which way a listener's requests go, as taps say it.
fn tap_direction(kind: Kind) -> tap::Direction {
    match kind {
        Kind::Server => tap::Direction::Inbound,
        Kind::Client => tap::Direction::Outbound,
    }
}

/// Offers a tapped request's event to the taps: its source is the verified client
/// inbound, and the proxy's own identity (once it has one) outbound. A tap that
/// shows bodies gets it once the response body ends: then it is returned pending.
#[cold]
fn tap_ended(
    tapping: Box<Tapping>,
    conn: &Connection,
    kind: Kind,
    status: u16,
    error: Option<&'static str>,
) -> Option<PendingTap> {
    let source_identity = match kind {
        Kind::Server => conn.peer.as_ref().map(|PeerIdentity(id)| id.clone()),
        Kind::Client => own_identity(conn),
    };
    let ended = tap::Ended {
        listener: Arc::clone(&conn.shared.tap_name),
        status,
        error,
        source_identity,
        client: conn.client.ip,
        responded: Instant::now(),
    };
    conn.shared.tap.offer(tapping, ended)
}

/// What a span needs to know of a request as it arrives: this hop in its trace,
/// when, what was asked and by whom. Cheap clones only: most spans are not kept.
fn arrival(
    tracer: &Tracer,
    req: &Request<Incoming>,
    conn: &Connection,
    kind: Kind,
    started: Instant,
) -> Facts {
    let peer = conn.peer.as_ref().map(|PeerIdentity(id)| id.clone());
    // Inbound over mTLS, the proxy's own identity is the callee's.
    let own = match (kind, &peer) {
        (Kind::Server, Some(_)) => own_identity(conn),
        _ => None,
    };
    Facts {
        hop: tracer.start(req.headers()),
        kind,
        started,
        method: req.method().clone(),
        uri: req.uri().clone(),
        host: req.headers().get(header::HOST).cloned(),
        peer: conn.client.ip,
        status: 0,
        proxy_error: None,
        request_id: None,
        // Inbound, the client's identity; outbound, whether the hop out is mTLS is
        // known once the cluster is.
        mtls: peer.is_some(),
        source_identity: peer,
        // A server span is a call to this proxy's service; a client span names the
        // cluster it is routed to.
        cluster: (kind == Kind::Server).then(|| Arc::clone(&tracer.service)),
        destination_identity: own,
        endpoint: None,
        retry_attempt: 0,
    }
}

/// The SPIFFE ID this proxy presents in mTLS handshakes, once it has one.
fn own_identity(conn: &Connection) -> Option<SpiffeId> {
    conn.shared
        .identity
        .current()
        .map(|credentials| credentials.identity().clone())
}

/// Plans the request (authorization, route), then executes the plan: sends it to an
/// endpoint of the planned cluster, with retries and mirrors, and streams the response back.
async fn forward<'r>(
    mut req: Request<Incoming>,
    route: &'r ListenerRoute,
    conn: &Connection,
    mut facts: Option<&mut Facts>,
    sent_to: &mut Option<&'r Arc<EdgeRequests>>,
    matched: &mut Option<MatchedAt>,
    mut tapping: Option<&mut Tapping>,
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
    // What authorization, routing and the app all see from then on.
    match route.policy.request_path(req.uri().path())? {
        Cow::Borrowed(_) => {}
        Cow::Owned(path) => set_path(&mut req, path)?,
    }
    let plan = plan_request(&req, route, conn, matched)?;
    let cluster = plan.cluster;
    *sent_to = Some(cluster.edge());
    if let Some(tapping) = tapping.as_deref_mut() {
        tapping.route = plan.route.as_ref().map(|found| found.at);
        tapping.cluster = Some(Arc::clone(cluster.shared_name()));
    }
    if let Some(filters) = plan.filters {
        // Before prepare_request: a rewritten host becomes the upstream's target
        // authority, and no filter can put back a header the proxy strips or owns.
        apply_request_filters(&mut req, filters, plan.matched_prefix())?;
    }
    headers::prepare_request(
        &mut req,
        &conn.client,
        route.proxy_header,
        cluster.protocol(),
        headers::new_request_id,
    );
    if cluster.tls_identity().is_some() {
        headers::use_https(&mut req);
    }
    if let Some(facts) = facts.as_deref_mut() {
        context::inject(&facts.hop, req.headers_mut());
        facts.request_id = req.headers().get(&headers::X_REQUEST_ID).cloned();
        if let Some(tapping) = tapping.as_deref_mut() {
            tapping.trace_id = Some(facts.hop.trace_id);
        }
        if route.span_kind == Kind::Client {
            facts.cluster = Some(Arc::clone(cluster.shared_name()));
            facts.destination_identity = cluster.tls_identity().cloned();
            facts.mtls = facts.destination_identity.is_some();
            // Outbound over mTLS, the proxy's own identity is the caller's.
            if facts.mtls {
                facts.source_identity = own_identity(conn);
            }
        }
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
    let tries = Tries {
        cluster,
        edge: edge_of(route, conn, Some(cluster.edge())),
        client_ip: conn.client.ip,
        deadline: tokio::time::Instant::now() + plan.timeout,
        per_try: plan.backend_timeout,
    };
    // Mirrors are rolled first: a copy needs the body read ahead.
    let mirrored = mirror::roll(plan.mirrors);
    let (parts, incoming) = req.into_parts();
    let copy = tapping.as_deref().and_then(Tapping::request_body);
    let incoming = ClientBody::new(incoming, route.timeouts.body_progress).copied_to(copy);
    let sent = if plan.retry.is_none() && mirrored == 0 {
        // The common case: one try, the body streamed as it comes.
        let req = Request::from_parts(parts, RequestBody::Streaming(incoming));
        tries.send_once(req).await
    } else {
        let read = tokio::time::timeout_at(
            tries.deadline,
            RequestBody::read_ahead(incoming, MAX_REPLAY_BYTES),
        );
        let prepared = match read.await {
            Err(_) => return Err(ProxyError::new(ErrorKind::RequestTimeout)),
            Ok(Err(err)) => return Err(client_body_failed(err)),
            Ok(Ok(prepared)) => prepared,
        };
        mirror::send_rolled(plan.mirrors, mirrored, plan.timeout, &parts, &prepared);
        match (prepared, plan.retry) {
            (Prepared::Replay(replay), Some(policy)) => {
                let traced = route.tracer.as_ref().zip(facts.as_deref_mut());
                tries
                    .send_with_retries(parts, &replay, policy, traced)
                    .await
            }
            (Prepared::Replay(replay), None) => {
                tries
                    .send_once(Request::from_parts(parts, replay.body()))
                    .await
            }
            // Too large to keep: sent once, never retried.
            (Prepared::Once(body), _) => tries.send_once(Request::from_parts(parts, body)).await,
        }
    };
    if let (Some(facts), Ok((_, lease))) = (facts, &sent) {
        facts.endpoint = Some(lease.endpoint().addr());
    }
    if let (Some(tapping), Ok((_, lease))) = (tapping, &sent) {
        tapping.endpoint = Some(lease.endpoint().addr());
    }
    respond(sent, route, plan.filters)
}

/// The request's plan on this listener, with authorization counted (and a refusal
/// logged); where the rule it `matched` is, if one did.
fn plan_request<'r>(
    req: &Request<Incoming>,
    route: &'r ListenerRoute,
    conn: &Connection,
    matched: &mut Option<MatchedAt>,
) -> Result<Plan<'r, Arc<Cluster>>, ProxyError> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    let ask = Ask {
        request: RequestView {
            host,
            method: req.method(),
            path: req.uri().path(),
            query: req.uri().query(),
            headers: req.headers(),
        },
        identity: conn.peer.as_ref().map(|PeerIdentity(id)| id.as_str()),
    };
    let planned = plan::plan(&ask, &route.policy, rng::below, |index| {
        route.count_audit(index)
    });
    *matched = match &planned {
        Ok(plan) => plan.route.as_ref().map(|found| found.at),
        Err(Refusal::NoBackend(at)) => Some(*at),
        Err(_) => None,
    };
    match &planned {
        Ok(Plan {
            authz: Some(decision),
            ..
        }) => route.count_decision(decision),
        Err(Refusal::Unauthorized(decision)) => {
            route.count_decision(decision);
            tracing::debug!(
                listener = %conn.shared.name,
                client = ask.identity.unwrap_or("(unauthenticated)"),
                method = %req.method(),
                path = req.uri().path(),
                policy = route.decided_by(decision),
                no_allow_match = decision.by == Decider::NoAllowMatch,
                "request refused by authorization"
            );
        }
        _ => {}
    }
    // A refusal's body says no more than its reason: policy names stay with the operator.
    planned.map_err(|refusal| refusal.error(&ask.request))
}

/// The upstream's response made ready for the client: proxy headers and response filters.
fn respond(
    sent: Sent,
    route: &ListenerRoute,
    filters: Option<&Filters>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (response, lease) = sent?;
    let (mut parts, body) = response.into_parts();
    headers::prepare_response(&mut parts.headers, route.proxy_header);
    if let Some(filters) = filters {
        filters.edit_response_headers(&mut parts.headers);
    }
    Ok(Response::from_parts(
        parts,
        ProxyBody::upstream(body, lease),
    ))
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
