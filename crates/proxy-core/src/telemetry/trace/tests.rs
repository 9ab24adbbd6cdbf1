//! Table tests of which spans are kept, their names and their attributes.

use super::*;
use crate::telemetry::trace::context::{SpanId, TraceId};

#[test]
fn sampled_spans_and_every_failure_are_kept() {
    let cases = [
        (true, 200, None, true),
        (false, 200, None, false),
        (false, 404, None, false),
        (false, 499, None, false),
        (false, 500, None, true),
        (false, 503, None, true),
        (false, 200, Some("client_body"), true),
        (true, 503, Some("no_endpoints"), true),
    ];
    for (sampled, status, error, kept) in cases {
        assert_eq!(
            keep(sampled, status, error),
            kept,
            "{sampled} {status} {error:?}"
        );
    }
}

#[test]
fn span_names_are_the_method_and_the_host_without_its_port() {
    let cases = [
        (Method::GET, "payment", "GET payment"),
        (Method::POST, "payment:8080", "POST payment"),
        (Method::GET, "10.0.0.1:80", "GET 10.0.0.1"),
        (Method::GET, "[::1]:80", "GET [::1]"),
        (Method::GET, "[::1]", "GET [::1]"),
        (Method::PUT, "", "PUT"),
    ];
    for (method, host, name) in cases {
        assert_eq!(span_name(&method, host), name, "{host}");
    }
}

fn facts() -> Facts {
    Facts {
        hop: Hop {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent: None,
            sampled: true,
            b3: None,
            short_b3_trace_id: false,
            keep_tracestate: false,
            seen: Default::default(),
        },
        kind: Kind::Client,
        started: Instant::now(),
        method: Method::POST,
        uri: Uri::from_static("/charge?amount=3"),
        host: Some(HeaderValue::from_static("payment")),
        peer: IpAddr::from([127, 0, 0, 1]),
        status: 200,
        proxy_error: None,
        request_id: Some(HeaderValue::from_static("r-1")),
        source_identity: None,
        cluster: Some(Arc::from("payment")),
        destination_identity: Some(
            SpiffeId::parse("spiffe://meshpy.local/ns/default/sa/payment").unwrap(),
        ),
        endpoint: Some(SocketAddr::from(([127, 0, 0, 1], 9000))),
        mtls: true,
        retry_attempt: 0,
    }
}

fn keys(facts: &Facts) -> Vec<&'static str> {
    attributes(facts).into_iter().map(|(key, _)| key).collect()
}

#[test]
fn attributes_use_the_semantic_conventions_and_say_only_what_is_known() {
    let ok = facts();
    assert_eq!(
        keys(&ok),
        [
            "http.request.method",
            "url.path",
            "server.address",
            "network.peer.address",
            "http.response.status_code",
            "meshpy.request_id",
            "meshpy.destination.service",
            "meshpy.destination.identity",
            "meshpy.endpoint",
            "meshpy.mtls",
        ]
    );
    let attrs = attributes(&ok);
    assert_eq!(
        attrs[1].1,
        Value::Owned("/charge".into()),
        "the path, not the query"
    );
    assert_eq!(attrs[8].1, Value::Owned("127.0.0.1:9000".into()));

    let mut failed = facts();
    failed.status = 503;
    failed.proxy_error = Some("no_endpoints");
    failed.endpoint = None;
    failed.host = None;
    let attrs = attributes(&failed);
    assert!(attrs.contains(&("error.type", Value::Static("no_endpoints"))));
    assert!(attrs.contains(&("meshpy.error", Value::Static("no_endpoints"))));
    assert!(!keys(&failed).contains(&"meshpy.endpoint"));

    let mut retry = facts();
    retry.retry_attempt = 2;
    assert!(attributes(&retry).contains(&("meshpy.retry.attempt", Value::Int(2))));

    let mut upstream_error = facts();
    upstream_error.status = 502;
    assert!(attributes(&upstream_error).contains(&("error.type", Value::Owned("502".into()))));

    let mut inbound = facts();
    inbound.kind = Kind::Server;
    inbound.source_identity =
        Some(SpiffeId::parse("spiffe://meshpy.local/ns/default/sa/cart").unwrap());
    inbound.cluster = None;
    inbound.destination_identity = None;
    assert!(keys(&inbound).contains(&"meshpy.source.identity"));
    assert!(!keys(&inbound).contains(&"meshpy.destination.identity"));
}

#[test]
fn unix_nanos_counts_from_the_epoch() {
    let at = UNIX_EPOCH + std::time::Duration::from_nanos(1_234);
    assert_eq!(unix_nanos(at), 1_234);
    assert_eq!(unix_nanos(UNIX_EPOCH), 0);
}
