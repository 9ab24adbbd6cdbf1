//! A finished span of one request as the proxy saw it, and the OTLP message that carries spans.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};

use super::context::{SpanId, TraceId};

/// The instrumentation scope named on every span.
pub const SCOPE: &str = "meshpy-proxy";

/// Which side of a call a span stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The callee's side: a request the service received (inbound).
    Server,
    /// The caller's side: a request the service sent (outbound).
    Client,
}

/// An attribute value. Route, cluster and identity names are shared with the config
/// (`Shared`), so that a span copies no string it does not have to.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A name known when the code was written, such as an error reason.
    Static(&'static str),
    /// A name from the config, shared.
    Shared(Arc<str>),
    /// Text of this request.
    Owned(String),
    /// A number.
    Int(i64),
    /// A flag.
    Bool(bool),
}

/// One request's span, finished: what the exporter sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// Its own id.
    pub span_id: SpanId,
    /// The caller's span, if the trace came from one.
    pub parent: Option<SpanId>,
    /// Server (inbound) or client (outbound).
    pub kind: Kind,
    /// A short, low-cardinality name: the method and the host called.
    pub name: String,
    /// When the request arrived, Unix nanoseconds.
    pub start_unix_nanos: u64,
    /// When its response's last byte was handed over, Unix nanoseconds.
    pub end_unix_nanos: u64,
    /// It failed: a 5xx status or a failure of the proxy.
    pub error: bool,
    /// Its attributes, OpenTelemetry semantic-convention names first.
    pub attributes: Vec<(&'static str, Value)>,
}

/// The spans of one export (moved in), under the resource that names the proxy's service.
pub fn export_request(
    resource: &[(String, String)],
    spans: impl Iterator<Item = Record>,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource
                    .iter()
                    .map(|(key, value)| key_value(key, Value::Owned(value.clone())))
                    .collect(),
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SCOPE.to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    ..InstrumentationScope::default()
                }),
                spans: spans.map(otlp_span).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// One record as an OTLP span; its strings move over.
pub fn otlp_span(record: Record) -> Span {
    let kind = match record.kind {
        Kind::Server => span::SpanKind::Server,
        Kind::Client => span::SpanKind::Client,
    };
    let code = if record.error {
        status::StatusCode::Error
    } else {
        status::StatusCode::Unset
    };
    Span {
        trace_id: record.trace_id.0.to_vec(),
        span_id: record.span_id.0.to_vec(),
        parent_span_id: record.parent.map(|p| p.0.to_vec()).unwrap_or_default(),
        name: record.name,
        kind: kind as i32,
        start_time_unix_nano: record.start_unix_nanos,
        end_time_unix_nano: record.end_unix_nanos.max(record.start_unix_nanos),
        attributes: record
            .attributes
            .into_iter()
            .map(|(key, value)| key_value(key, value))
            .collect(),
        status: Some(Status {
            code: code as i32,
            message: String::new(),
        }),
        ..Span::default()
    }
}

fn key_value(key: &str, value: Value) -> KeyValue {
    let value = match value {
        Value::Static(text) => any_value::Value::StringValue(text.to_string()),
        Value::Shared(text) => any_value::Value::StringValue(text.to_string()),
        Value::Owned(text) => any_value::Value::StringValue(text),
        Value::Int(n) => any_value::Value::IntValue(n),
        Value::Bool(b) => any_value::Value::BoolValue(b),
    };
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

#[cfg(test)]
mod tests;
