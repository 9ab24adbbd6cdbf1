//! Tests of the OTLP form of spans: ids, kinds, times, status and attributes survive encoding.

use prost::Message;

use super::*;

fn record(error: bool, parent: Option<SpanId>) -> Record {
    Record {
        trace_id: TraceId([7; 16]),
        span_id: SpanId([1; 8]),
        parent,
        kind: Kind::Client,
        name: "GET payment".into(),
        start_unix_nanos: 1_000,
        end_unix_nanos: 3_500,
        error,
        attributes: vec![
            ("http.request.method", Value::Static("GET")),
            ("http.response.status_code", Value::Int(503)),
            ("meshpy.mtls", Value::Bool(true)),
            (
                "meshpy.destination.service",
                Value::Shared(Arc::from("payment")),
            ),
            ("url.path", Value::Owned("/charge".into())),
        ],
    }
}

#[test]
fn spans_encode_to_otlp_and_back() {
    let resource = [("service.name".to_string(), "cart".to_string())];
    let spans = [record(true, Some(SpanId([2; 8]))), record(false, None)];
    let bytes = export_request(&resource, spans.into_iter()).encode_to_vec();
    let decoded = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
    let resource_spans = &decoded.resource_spans[0];
    let attribute = &resource_spans.resource.as_ref().unwrap().attributes[0];
    assert_eq!(attribute.key, "service.name");
    let scope = &resource_spans.scope_spans[0];
    assert_eq!(scope.scope.as_ref().unwrap().name, SCOPE);
    let [failed, ok] = scope.spans.as_slice() else {
        panic!("two spans expected")
    };
    assert_eq!(failed.trace_id, vec![7; 16]);
    assert_eq!(failed.span_id, vec![1; 8]);
    assert_eq!(failed.parent_span_id, vec![2; 8]);
    assert!(ok.parent_span_id.is_empty(), "a root has no parent");
    assert_eq!(failed.kind, span::SpanKind::Client as i32);
    assert_eq!(
        (failed.start_time_unix_nano, failed.end_time_unix_nano),
        (1_000, 3_500)
    );
    assert_eq!(
        failed.status.as_ref().unwrap().code,
        status::StatusCode::Error as i32
    );
    assert_eq!(
        ok.status.as_ref().unwrap().code,
        status::StatusCode::Unset as i32
    );
    let values: Vec<(&str, Option<any_value::Value>)> = failed
        .attributes
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone().and_then(|v| v.value)))
        .collect();
    assert_eq!(
        values,
        [
            (
                "http.request.method",
                Some(any_value::Value::StringValue("GET".into()))
            ),
            (
                "http.response.status_code",
                Some(any_value::Value::IntValue(503))
            ),
            ("meshpy.mtls", Some(any_value::Value::BoolValue(true))),
            (
                "meshpy.destination.service",
                Some(any_value::Value::StringValue("payment".into()))
            ),
            (
                "url.path",
                Some(any_value::Value::StringValue("/charge".into()))
            ),
        ]
    );
}

#[test]
fn an_end_before_the_start_is_clamped() {
    let mut early = record(false, None);
    early.end_unix_nanos = 10;
    assert_eq!(otlp_span(early).end_time_unix_nano, 1_000);
}
