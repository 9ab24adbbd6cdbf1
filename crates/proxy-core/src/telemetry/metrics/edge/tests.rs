//! Tests of edge metrics: label values from the snapshot and identities only, bounded
//! methods and callers, and counts landing on the right series.

use super::*;
use crate::telemetry::metrics::Metrics;

fn service(namespace: &str, name: &str, version: Option<&str>) -> ServiceRef {
    ServiceRef {
        namespace: namespace.into(),
        service: name.into(),
        version: version.map(Into::into),
    }
}

fn id(text: &str) -> SpiffeId {
    SpiffeId::parse(text).unwrap()
}

#[test]
fn methods_outside_http_s_own_share_one_label() {
    let cases = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PATCH, "PATCH"),
        (Method::from_bytes(b"PURGE").unwrap(), "_OTHER"),
        (Method::from_bytes(b"X-ANYTHING").unwrap(), "_OTHER"),
    ];
    for (method, label) in cases {
        assert_eq!(METHODS[method_index(&method)], label, "{method}");
    }
}

#[test]
fn a_callers_identity_names_its_namespace_and_service() {
    let cases = [
        ("spiffe://mesh.local/ns/shop/sa/cart", ("shop", "cart")),
        ("spiffe://td/ns/default/sa/payment", ("default", "payment")),
        // Not the mesh CA's shape: the caller is unknown, its identity still shown.
        ("spiffe://td/workload/cart", (UNKNOWN, UNKNOWN)),
        (
            "spiffe://td/ns/default/sa/payment/extra",
            (UNKNOWN, UNKNOWN),
        ),
    ];
    for (text, (namespace, name)) in cases {
        let end = End::of_identity(&id(text));
        assert_eq!(
            (&*end.namespace, &*end.service),
            (namespace, name),
            "{text}"
        );
        assert_eq!(&*end.version, UNKNOWN);
    }
}

#[test]
fn requests_land_on_their_edge_method_and_code() {
    let metrics = Metrics::new();
    let cart = service("shop", "cart", Some("v1"));
    let payment = service("shop", "payment", Some("v2"));
    let out = metrics.edges.outbound(Some(&cart), Some(&payment), true);
    out.observe(method_index(&Method::GET), 200, 0.002);
    out.observe(method_index(&Method::GET), 200, 0.004);
    out.observe(method_index(&Method::POST), 503, 0.1);
    // A code without a slot of its own is counted all the same.
    out.observe(method_index(&Method::GET), 299, 0.001);
    let inbound = metrics.edges.inbound(Some(&payment));
    let caller = id("spiffe://mesh.local/ns/shop/sa/cart");
    inbound
        .of_caller(Some(&caller))
        .observe(method_index(&Method::GET), 200, 0.001);
    inbound
        .of_caller(None)
        .observe(method_index(&Method::DELETE), 404, 0.001);
    let text = metrics.render();
    let outbound = "direction=\"outbound\",source_namespace=\"shop\",source_service=\"cart\",\
         source_version=\"v1\",source_identity=\"\",destination_namespace=\"shop\",\
         destination_service=\"payment\",destination_version=\"v2\",mtls=\"true\"";
    let expected = [
        format!(
            "http_client_request_duration_seconds_count{{{outbound},http_request_method=\"GET\",http_response_status_code=\"200\"}} 2"
        ),
        format!(
            "http_client_request_duration_seconds_count{{{outbound},http_request_method=\"POST\",http_response_status_code=\"503\"}} 1"
        ),
        format!(
            "http_client_request_duration_seconds_count{{{outbound},http_request_method=\"GET\",http_response_status_code=\"299\"}} 1"
        ),
        "http_server_request_duration_seconds_count{direction=\"inbound\",source_namespace=\"shop\",\
         source_service=\"cart\",source_version=\"unknown\",\
         source_identity=\"spiffe://mesh.local/ns/shop/sa/cart\",destination_namespace=\"shop\",\
         destination_service=\"payment\",destination_version=\"v2\",mtls=\"true\",\
         http_request_method=\"GET\",http_response_status_code=\"200\"} 1"
            .to_string(),
        "http_server_request_duration_seconds_count{direction=\"inbound\",source_namespace=\"unknown\",\
         source_service=\"unknown\",source_version=\"unknown\",source_identity=\"\",\
         destination_namespace=\"shop\",destination_service=\"payment\",destination_version=\"v2\",\
         mtls=\"false\",http_request_method=\"DELETE\",http_response_status_code=\"404\"} 1"
            .to_string(),
    ];
    for line in expected {
        assert!(text.contains(&line), "missing {line}\nin:\n{text}");
    }
}

#[test]
fn callers_past_the_limit_are_counted_as_unknown() {
    let metrics = Metrics::new();
    let inbound = metrics.edges.inbound(None);
    for i in 0..MAX_PEERS {
        let caller = id(&format!("spiffe://td/ns/default/sa/caller-{i}"));
        inbound.of_caller(Some(&caller)).observe(0, 200, 0.001);
    }
    let late = id("spiffe://td/ns/default/sa/one-too-many");
    let edge = inbound.of_caller(Some(&late));
    assert!(Arc::ptr_eq(&edge, &inbound.of_caller(None)));
    // A caller already seen keeps its edge.
    let first = id("spiffe://td/ns/default/sa/caller-0");
    assert!(!Arc::ptr_eq(&inbound.of_caller(Some(&first)), &edge));
    assert!(!metrics.render().contains("one-too-many"));
}

#[test]
fn without_a_workload_the_proxys_end_is_unknown() {
    let metrics = Metrics::new();
    metrics
        .edges
        .outbound(None, None, false)
        .observe(0, 200, 0.001);
    assert!(metrics.render().contains(
        "http_client_request_duration_seconds_count{direction=\"outbound\",source_namespace=\"unknown\",\
         source_service=\"unknown\",source_version=\"unknown\",source_identity=\"\",\
         destination_namespace=\"unknown\",destination_service=\"unknown\",\
         destination_version=\"unknown\",mtls=\"false\",http_request_method=\"GET\",\
         http_response_status_code=\"200\"} 1"
    ));
}

#[test]
fn an_edge_makes_its_table_of_handles_on_its_first_request() {
    let metrics = Metrics::new();
    let edge = metrics.edges.outbound(None, None, false);
    assert!(
        edge.slots.get().is_none(),
        "a cluster never called costs no table"
    );
    edge.observe(0, 200, 0.001);
    assert_eq!(
        edge.slots.get().map(|slots| slots.len()),
        Some(METHODS.len() * CODES.len())
    );
}

#[test]
fn grpc_statuses_are_grpcs_codes_or_other() {
    let cases: [(&[u8], &str); 12] = [
        (b"0", "0"),
        (b"5", "5"),
        (b"14", "14"),
        (b"16", "16"),
        (b"05", "5"),
        (b"17", "other"),
        (b"99", "other"),
        (b"100", "other"),
        (b"", "other"),
        (b"-1", "other"),
        (b" 5", "other"),
        (b"OK", "other"),
    ];
    for (value, label) in cases {
        assert_eq!(
            GRPC_STATUSES[grpc_status_index(value)],
            label,
            "{:?}",
            String::from_utf8_lossy(value)
        );
    }
}

#[test]
fn grpc_statuses_are_counted_on_their_edge() {
    let metrics = Metrics::new();
    let cart = service("shop", "cart", None);
    let edge = metrics.edges.outbound(None, Some(&cart), false);
    assert!(edge.grpc_slots.get().is_none(), "no gRPC yet, no table");
    edge.grpc_status(grpc_status_index(b"5"));
    edge.grpc_status(grpc_status_index(b"5"));
    edge.grpc_status(grpc_status_index(b"0"));
    edge.grpc_status(grpc_status_index(b"42"));
    // Out of range indexes are `other` too, never a panic.
    edge.grpc_status(usize::MAX);
    let text = metrics.render();
    let labels = "direction=\"outbound\",source_namespace=\"unknown\",source_service=\"unknown\",\
         source_version=\"unknown\",source_identity=\"\",destination_namespace=\"shop\",\
         destination_service=\"cart\",destination_version=\"unknown\",mtls=\"false\"";
    for (status, count) in [("5", 2), ("0", 1), ("other", 2)] {
        let line =
            format!("meshpy_grpc_responses_total{{{labels},grpc_status=\"{status}\"}} {count}");
        assert!(text.contains(&line), "missing {line}\nin:\n{text}");
    }
    assert!(!text.contains("grpc_status=\"1\""), "{text}");
}

#[test]
fn only_overflows_and_refusals_are_failures_counted_on_an_edge() {
    use crate::error::Limit;
    let cases = [
        (
            ErrorKind::Overflow(Limit::Requests),
            Some(EdgeEvent::Overflow),
        ),
        (
            ErrorKind::Overflow(Limit::PendingRequests),
            Some(EdgeEvent::Overflow),
        ),
        (ErrorKind::Unauthorized, Some(EdgeEvent::AuthzDenied)),
        (ErrorKind::NoRoute, None),
        (ErrorKind::ConnectFailed, None),
        (ErrorKind::UpstreamIdentityMismatch, None),
    ];
    for (kind, event) in cases {
        assert_eq!(EdgeEvent::of_error(kind), event, "{kind:?}");
    }
}

#[test]
fn events_are_counted_on_their_edge_each_in_its_family() {
    let metrics = Metrics::new();
    let edge = metrics.edges.outbound(None, None, false);
    edge.count(EdgeEvent::Retry);
    edge.count(EdgeEvent::Retry);
    edge.count(EdgeEvent::Ejection);
    edge.count(EdgeEvent::Overflow);
    let text = metrics.render();
    let labels = "direction=\"outbound\",source_namespace=\"unknown\",source_service=\"unknown\",\
         source_version=\"unknown\",source_identity=\"\",destination_namespace=\"unknown\",\
         destination_service=\"unknown\",destination_version=\"unknown\",mtls=\"false\"";
    for (name, count) in [
        ("meshpy_edge_retries_total", 2),
        ("meshpy_edge_ejections_total", 1),
        ("meshpy_edge_overflows_total", 1),
    ] {
        let line = format!("{name}{{{labels}}} {count}\n");
        assert!(text.contains(&line), "missing {line}\nin:\n{text}");
    }
    // Not counted, not shown.
    assert!(!text.contains("meshpy_edge_authz_denied_total{"), "{text}");
}
