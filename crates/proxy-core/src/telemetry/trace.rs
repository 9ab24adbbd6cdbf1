//! Distributed tracing: the trace context a request carries, continued or started at
//! each hop, and the spans the proxy records and exports.
//!
//! A [`Tracer`] is made from the snapshot's `tracing` section and shared by every
//! listener. Each request starts a hop from its headers ([`Tracer::start`]); when it
//! is answered, [`Tracer::open`] decides whether its span is kept (sampled, or failed)
//! and the returned [`OpenSpan`] is finished, and exported, once the response's body
//! is done with.

pub mod context;
pub mod export;
pub mod span;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::header::HeaderMap;
use http::{HeaderValue, Method, Uri};

use self::context::Hop;
use self::export::{Exporter, Receiver};
use self::span::{Kind, Record, Value};
use crate::config::{self, SpiffeId};
use crate::rng::{self, Chance};
use crate::telemetry::metrics::TraceCounters;

/// The snapshot's tracing, compiled: the sampling chance and the span exporter.
#[derive(Debug)]
pub struct Tracer {
    /// The section it was made from; an unchanged section keeps its tracer.
    pub config: config::Tracing,
    /// The service the spans belong to, shared by the server spans that name it.
    pub service: Arc<str>,
    sample: Chance,
    exporter: Option<Exporter>,
}

impl Tracer {
    /// A tracer for `config`, exporting (if it names receivers) from a task on `runtime`.
    pub fn new(
        config: &config::Tracing,
        counters: &TraceCounters,
        runtime: &tokio::runtime::Handle,
    ) -> Self {
        let receivers: Vec<Receiver> = config
            .export
            .iter()
            .filter_map(|export| Receiver::new(export).ok())
            .collect();
        let exporter = (!receivers.is_empty()).then(|| {
            let mut resource = vec![("service.name".to_string(), config.service.clone())];
            resource.extend(
                config
                    .resource
                    .iter()
                    .filter(|(key, _)| key.as_str() != "service.name")
                    .map(|(key, value)| (key.clone(), value.clone())),
            );
            Exporter::start(receivers, resource, counters.clone(), runtime)
        });
        Self {
            config: config.clone(),
            service: Arc::from(config.service.as_str()),
            sample: Chance::percent(config.sample_percent),
            exporter,
        }
    }

    /// This hop's span of a request with `headers`: its trace continued, or started.
    pub fn start(&self, headers: &HeaderMap) -> Hop {
        context::start(context::read(headers), self.sample, rng::next_u64)
    }

    /// The span of a finished request, if it is to be kept: sampled, or failed (5xx
    /// or a proxy error), and with somewhere to send it.
    pub fn open(self: &Arc<Self>, facts: Facts) -> Option<OpenSpan> {
        self.exporter.as_ref()?;
        keep(facts.hop.sampled, facts.status, facts.proxy_error).then(|| OpenSpan {
            tracer: Arc::clone(self),
            facts,
        })
    }
}

/// Whether a request's span is kept: every sampled one, and every failure whatever
/// the sampling said.
pub fn keep(sampled: bool, status: u16, proxy_error: Option<&str>) -> bool {
    sampled || status >= 500 || proxy_error.is_some()
}

/// What the proxy knows of a request by the time it is answered.
#[derive(Debug, Clone)]
pub struct Facts {
    /// This hop's span in the trace.
    pub hop: Hop,
    /// Server (inbound listener) or client (outbound listener).
    pub kind: Kind,
    /// When it arrived. The span's wall-clock start is worked out from its length when
    /// it is recorded, which spares most requests, whose spans are not kept, a clock read.
    pub started: Instant,
    /// Its method.
    pub method: Method,
    /// Its target as it arrived (a cheap clone; only its path is recorded).
    pub uri: Uri,
    /// The host it was sent to (`Host`, else the target's authority).
    pub host: Option<HeaderValue>,
    /// The client's address.
    pub peer: IpAddr,
    /// The status it was answered with.
    pub status: u16,
    /// `x-meshpy-error`'s reason when the proxy failed it.
    pub proxy_error: Option<&'static str>,
    /// The request id (`x-request-id`) as forwarded.
    pub request_id: Option<HeaderValue>,
    /// The client's SPIFFE ID, on an mTLS listener.
    pub source_identity: Option<SpiffeId>,
    /// The service called: on a client span the cluster it went to, if it was routed;
    /// on a server span the proxy's own service.
    pub cluster: Option<Arc<str>>,
    /// The SPIFFE ID that cluster's endpoints must present, over mTLS.
    pub destination_identity: Option<SpiffeId>,
    /// The endpoint that answered.
    pub endpoint: Option<SocketAddr>,
    /// The connection from the client is mTLS (inbound) or the one to the endpoint is (outbound).
    pub mtls: bool,
    /// Which retry of the request this span is (0: the first try).
    pub retry_attempt: u32,
}

/// The span's name: the method and the host, low in cardinality (no path).
pub fn span_name(method: &Method, host: &str) -> String {
    let host = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') {
            name
        } else {
            host
        }
    });
    if host.is_empty() {
        method.as_str().to_string()
    } else {
        format!("{} {host}", method.as_str())
    }
}

/// The host a request was sent to: `Host`, else its target's authority.
fn host(facts: &Facts) -> &str {
    facts
        .host
        .as_ref()
        .and_then(|host| host.to_str().ok())
        .or_else(|| facts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("")
}

/// The span's attributes: OpenTelemetry's HTTP semantic conventions, then meshpy's.
pub fn attributes(facts: &Facts) -> Vec<(&'static str, Value)> {
    let mut out = Vec::with_capacity(16);
    out.extend([
        (
            "http.request.method",
            Value::Owned(facts.method.to_string()),
        ),
        ("url.path", Value::Owned(facts.uri.path().to_string())),
        ("server.address", Value::Owned(host(facts).to_string())),
        ("network.peer.address", Value::Owned(facts.peer.to_string())),
        (
            "http.response.status_code",
            Value::Int(i64::from(facts.status)),
        ),
    ]);
    match (facts.proxy_error, facts.status) {
        (Some(reason), _) => out.push(("error.type", Value::Static(reason))),
        (None, status) if status >= 500 => {
            out.push(("error.type", Value::Owned(status.to_string())))
        }
        _ => {}
    }
    if let Some(reason) = facts.proxy_error {
        out.push(("meshpy.error", Value::Static(reason)));
    }
    if let Some(id) = facts.request_id.as_ref().and_then(|v| v.to_str().ok()) {
        out.push(("meshpy.request_id", Value::Owned(id.to_string())));
    }
    if let Some(identity) = &facts.source_identity {
        out.push((
            "meshpy.source.identity",
            Value::Owned(identity.as_str().to_string()),
        ));
    }
    if let Some(cluster) = &facts.cluster {
        out.push((
            "meshpy.destination.service",
            Value::Shared(Arc::clone(cluster)),
        ));
    }
    if let Some(identity) = &facts.destination_identity {
        out.push((
            "meshpy.destination.identity",
            Value::Owned(identity.as_str().to_string()),
        ));
    }
    if let Some(endpoint) = facts.endpoint {
        out.push(("meshpy.endpoint", Value::Owned(endpoint.to_string())));
    }
    if facts.retry_attempt > 0 {
        out.push((
            "meshpy.retry.attempt",
            Value::Int(i64::from(facts.retry_attempt)),
        ));
    }
    out.push(("meshpy.mtls", Value::Bool(facts.mtls)));
    out
}

/// A kept span waiting for its response to be done: finished and exported when dropped.
#[derive(Debug)]
pub struct OpenSpan {
    tracer: Arc<Tracer>,
    facts: Facts,
}

impl Drop for OpenSpan {
    fn drop(&mut self) {
        let Some(exporter) = &self.tracer.exporter else {
            return;
        };
        let facts = &self.facts;
        let end = unix_nanos(SystemTime::now());
        let length = u64::try_from(facts.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let start = end.saturating_sub(length);
        exporter.record(Record {
            trace_id: facts.hop.trace_id,
            span_id: facts.hop.span_id,
            parent: facts.hop.parent,
            kind: facts.kind,
            name: span_name(&facts.method, host(facts)),
            start_unix_nanos: start,
            end_unix_nanos: end,
            error: facts.status >= 500 || facts.proxy_error.is_some(),
            attributes: attributes(facts),
        });
    }
}

/// Nanoseconds since the Unix epoch (0 for a clock set before it).
pub fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    })
}

#[cfg(test)]
mod tests;
