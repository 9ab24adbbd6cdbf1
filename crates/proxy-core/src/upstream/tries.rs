//! A request's tries at its cluster: each to an endpoint the balancer picks, within the
//! per-try timeout and the request's deadline, retried as the rule's policy decides.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::request::{Replay, RequestBody};
use crate::error::{ErrorKind, ProxyError};
use crate::policy::retry::{self, Decision, Outcome, RetryPolicy};
use crate::rng;
use crate::telemetry::metrics::edge::{EdgeEvent, EdgeRequests};
use crate::telemetry::trace::context::{self, SpanId};
use crate::telemetry::trace::{Facts, Tracer};
use crate::upstream::cluster::{Cluster, Pick};
use crate::upstream::endpoint::{Endpoint, Lease};

/// The upstream's response (or the failure) of the last try, with the lease on its endpoint.
pub type Sent = Result<(Response<Incoming>, Lease), ProxyError>;

/// How a request's tries are sent: where, for whom, and within what time.
pub struct Tries<'r> {
    pub cluster: &'r Cluster,
    /// The edge the request is counted on, for its retries.
    pub edge: &'r EdgeRequests,
    /// The client's address, for zone-blind hashing on it.
    pub client_ip: IpAddr,
    /// The end of the whole request (every try).
    pub deadline: tokio::time::Instant,
    /// The bound on one try, if the rule sets one.
    pub per_try: Option<Duration>,
}

impl Tries<'_> {
    /// Picks an endpoint and sends `req` once.
    pub async fn send_once(&self, req: Request<RequestBody>) -> Sent {
        let endpoint = self
            .cluster
            .pick(&Pick {
                headers: Some(req.headers()),
                client_ip: Some(self.client_ip),
                avoid: None,
            })
            .ok_or_else(|| ProxyError::new(ErrorKind::NoEndpoints))?;
        self.send_to(endpoint, req).await
    }

    /// Sends `req` once to `endpoint`, within the per-try timeout and the deadline.
    async fn send_to(&self, endpoint: &Arc<Endpoint>, req: Request<RequestBody>) -> Sent {
        // backendRequest bounds one upstream try; request bounds all of them. The
        // endpoint applies the bound itself, so that a timeout counts against it.
        let now = tokio::time::Instant::now();
        let limit = match self.per_try {
            Some(per_try) => self.deadline.min(now + per_try),
            None => self.deadline,
        };
        endpoint
            .send(req, limit.saturating_duration_since(now))
            .await
    }

    /// The retry loop: sends tries until one is not to be retried (see `retry::decide`),
    /// the budget or the time runs out; then the last try's outcome is the answer.
    ///
    /// Traced, each retry is a span of its own (a new span id in its trace headers,
    /// and its attempt number); a try that is retried is recorded as it ends, and
    /// `facts` is left describing the last one.
    pub async fn send_with_retries(
        &self,
        parts: http::request::Parts,
        replay: &Replay,
        policy: &RetryPolicy,
        mut traced: Option<(&Arc<Tracer>, &mut Facts)>,
    ) -> Sent {
        let traffic = self.cluster.traffic();
        let method = parts.method.clone();
        let mut parts = Some(parts);
        let mut retries = 0;
        let mut failed: Option<&Arc<Endpoint>> = None;
        loop {
            // Tries that may be followed by another send copies; the last, the original.
            let last = retries >= policy.attempts;
            // A retry prefers another endpoint than the one that failed (as Envoy's
            // previous-hosts predicate does); the balancer stays the judge of which.
            let endpoint = self
                .cluster
                .pick(&Pick {
                    headers: parts.as_ref().map(|p| &p.headers),
                    client_ip: Some(self.client_ip),
                    avoid: failed.map(|e| &**e),
                })
                .ok_or_else(|| ProxyError::new(ErrorKind::NoEndpoints))?;
            let mut req = match parts.take() {
                Some(original) if last => Request::from_parts(original, replay.body()),
                Some(original) => {
                    let req = copy_request(&original, replay.body());
                    parts = Some(original);
                    req
                }
                // Unreachable: the last try always returns below.
                None => return Err(ProxyError::new(ErrorKind::UpstreamFailed)),
            };
            if let Some((_, facts)) = traced.as_mut() {
                if retries > 0 {
                    // A retry's span starts with it; the first try's, with the request.
                    facts.hop.span_id = SpanId::random(rng::next_u64);
                    facts.retry_attempt = retries;
                    facts.started = Instant::now();
                }
                context::inject(&facts.hop, req.headers_mut());
            }
            let sent = self.send_to(endpoint, req).await;
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
            if tokio::time::Instant::now() + wait >= self.deadline {
                return sent;
            }
            if !traffic.budget.try_withdraw() {
                traffic.retries.budget_exhausted.inc();
                return sent;
            }
            traffic.retries.sent.inc();
            self.edge.count(EdgeEvent::Retry);
            if let Some((tracer, facts)) = traced.as_ref() {
                record_retried_try(tracer, facts, &sent, endpoint.addr());
            }
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
}

/// Records the span of a try that is being retried: its status or failure, and the
/// endpoint it went to; kept as any span is (sampled, or failed).
fn record_retried_try(tracer: &Arc<Tracer>, facts: &Facts, sent: &Sent, endpoint: SocketAddr) {
    let mut done = facts.clone();
    done.endpoint = Some(endpoint);
    match sent {
        Ok((response, _)) => done.status = response.status().as_u16(),
        Err(err) => {
            done.status = err.status().as_u16();
            done.proxy_error = Some(err.reason());
        }
    }
    drop(tracer.open(done));
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
