//! Tests of Istio's metrics: label values as Istio's, the response flags, gRPC
//! statuses from trailers, and TCP counters shared with the edge metrics.

use super::*;
use crate::config::ServiceRef;
use crate::spiffe::SpiffeId;
use crate::telemetry::metrics::Metrics;

fn service(namespace: &str, name: &str, version: Option<&str>) -> ServiceRef {
    ServiceRef {
        namespace: namespace.into(),
        service: name.into(),
        version: version.map(Into::into),
    }
}

/// The lines of `text` for `family` (a series name prefix) that carry every one of `labels`.
fn lines<'a>(text: &'a str, family: &str, labels: &[&str]) -> Vec<&'a str> {
    text.lines()
        .filter(|line| line.starts_with(family) && labels.iter().all(|l| line.contains(l)))
        .collect()
}

fn value(line: &str) -> f64 {
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn proxy_errors_map_to_envoy_s_response_flags() {
    let cases = [
        (None, "-"),
        (Some("no_route"), "NR"),
        (Some("no_backend"), "NR"),
        (Some("no_endpoints"), "UH"),
        (Some("connect_failed"), "UF"),
        (Some("connect_timeout"), "UF"),
        (Some("upstream-tls-failed"), "UF"),
        (Some("upstream-identity-mismatch"), "UF"),
        (Some("no-identity"), "UF"),
        (Some("upstream_failed"), "UC"),
        (Some("request_timeout"), "UT"),
        (Some("overflow"), "UO"),
        (Some("client_body"), "DPE"),
        (Some("invalid-path"), "DPE"),
        (Some("client_body_timeout"), "DT"),
        (Some("unauthorized"), "-"),
        (Some("anything else"), "-"),
    ];
    for (reason, flags) in cases {
        assert_eq!(response_flags(reason), flags, "{reason:?}");
    }
}

#[test]
fn every_proxy_error_reason_has_a_deliberate_flag() {
    // A new reason must be placed in the table above (or knowingly left at "-").
    let flagged_none = ["unauthorized"];
    for reason in crate::telemetry::metrics::ERROR_REASONS {
        let flags = response_flags(Some(reason));
        assert!(
            flags != "-" || flagged_none.contains(&reason),
            "{reason} has no response flag"
        );
    }
}

#[test]
fn off_by_default_and_on_when_asked() {
    let off = Metrics::new();
    let edge = off.edges.outbound(None, None, false);
    assert!(edge.istio_request(200, 0.001, None).is_none());
    assert!(!off.render().contains("istio_"));
    let on = Metrics::with_istio(true);
    let edge = on.edges.outbound(None, None, false);
    assert!(edge.istio_request(200, 0.001, None).is_some());
}

#[test]
fn an_inbound_request_carries_istio_s_labels_and_milliseconds() {
    let metrics = Metrics::with_istio(true);
    let payment = service("shop", "payment", Some("v2"));
    let edges = metrics.edges.inbound(Some(&payment));
    let cart = SpiffeId::parse("spiffe://mesh.local/ns/shop/sa/cart").unwrap();
    let edge = edges.of_caller(Some(&cart));
    drop(edge.istio_request(200, 0.003, None));
    drop(edge.istio_request(200, 0.003, None));
    drop(edge.istio_request(503, 0.020, Some("no_endpoints")));
    let text = metrics.render();
    let expected = [
        "reporter=\"destination\"",
        "source_workload=\"cart\"",
        "source_workload_namespace=\"shop\"",
        "source_principal=\"spiffe://mesh.local/ns/shop/sa/cart\"",
        "source_canonical_revision=\"latest\"",
        "destination_workload=\"payment\"",
        "destination_version=\"v2\"",
        "destination_service=\"payment.shop.svc\"",
        "destination_service_name=\"payment\"",
        "destination_service_namespace=\"shop\"",
        "destination_canonical_revision=\"v2\"",
        "connection_security_policy=\"mutual_tls\"",
        "request_protocol=\"http\"",
    ];
    let ok = lines(&text, "istio_requests_total{", &expected);
    let ok: Vec<_> = ok
        .into_iter()
        .filter(|l| l.contains("response_code=\"200\""))
        .collect();
    assert_eq!(ok.len(), 1, "{text}");
    assert_eq!(value(ok[0]), 2.0);
    assert!(ok[0].contains("response_flags=\"-\""));
    let failed = lines(
        &text,
        "istio_requests_total{",
        &["response_code=\"503\"", "response_flags=\"UH\""],
    );
    assert_eq!(failed.len(), 1, "{text}");
    // 3 ms is within Istio's (1, 5] ms bucket; 20 ms within (10, 25].
    let le5 = lines(
        &text,
        "istio_request_duration_milliseconds_bucket{",
        &["response_code=\"200\"", "le=\"5.0\""],
    );
    assert_eq!(value(le5[0]), 2.0, "{text}");
    let le1 = lines(
        &text,
        "istio_request_duration_milliseconds_bucket{",
        &["response_code=\"200\"", "le=\"1.0\""],
    );
    assert_eq!(value(le1[0]), 0.0, "{text}");
    let sum = lines(
        &text,
        "istio_request_duration_milliseconds_sum{",
        &["response_code=\"503\""],
    );
    assert!((value(sum[0]) - 20.0).abs() < 1e-9, "{text}");
}

#[test]
fn outbound_requests_are_reported_by_the_source() {
    let metrics = Metrics::with_istio(true);
    let cart = service("shop", "cart", Some("v1"));
    let payment = service("shop", "payment", None);
    let edge = metrics.edges.outbound(Some(&cart), Some(&payment), true);
    drop(edge.istio_request(404, 0.001, None));
    let text = metrics.render();
    let line = lines(
        &text,
        "istio_requests_total{",
        &[
            "reporter=\"source\"",
            "source_workload=\"cart\"",
            "source_version=\"v1\"",
            "destination_workload=\"payment\"",
            "destination_version=\"unknown\"",
            "connection_security_policy=\"unknown\"",
            "response_code=\"404\"",
        ],
    );
    assert_eq!(line.len(), 1, "{text}");
}

#[test]
fn a_grpc_request_is_counted_with_its_status_once_it_ends() {
    let metrics = Metrics::with_istio(true);
    let edge = metrics.edges.outbound(None, None, false);
    let mut from_trailers = edge.istio_request(200, 0.001, None).unwrap();
    from_trailers.grpc();
    let mut reset = edge.istio_request(200, 0.001, None).unwrap();
    reset.grpc();
    assert!(
        lines(&metrics.render(), "istio_requests_total{", &[]).is_empty(),
        "counted before the end"
    );
    from_trailers.grpc_status(5);
    drop(from_trailers);
    drop(reset);
    let mut odd = edge.istio_request(200, 0.001, None).unwrap();
    odd.grpc_status(99);
    drop(odd);
    let text = metrics.render();
    let not_found = lines(
        &text,
        "istio_requests_total{",
        &["request_protocol=\"grpc\"", "grpc_response_status=\"5\""],
    );
    assert_eq!(not_found.len(), 1, "{text}");
    let unknown = lines(
        &text,
        "istio_requests_total{",
        &["request_protocol=\"grpc\"", "grpc_response_status=\"\""],
    );
    assert_eq!(unknown.len(), 1, "{text}");
    let other = lines(
        &text,
        "istio_requests_total{",
        &["grpc_response_status=\"other\""],
    );
    assert_eq!(other.len(), 1, "{text}");
}

#[test]
fn tcp_listener_connections_share_the_edge_s_counters() {
    let metrics = Metrics::with_istio(true);
    let cart = service("shop", "cart", None);
    let db = service("shop", "db", None);
    let edge = metrics.edges.outbound(Some(&cart), Some(&db), true);
    {
        let connection = edge.tcp_stream_opened();
        connection.read.inc_by(100);
        connection.written.inc_by(2500);
    }
    let _open = edge.tcp_stream_opened();
    // An HTTP connection on another edge is not Istio's TCP traffic.
    let other = metrics.edges.outbound(Some(&cart), None, false);
    let _http = other.tcp_opened();
    let text = metrics.render();
    let one = |family: &str| {
        let found = lines(&text, family, &["destination_service_name=\"db\""]);
        assert_eq!(found.len(), 1, "{family}: {text}");
        assert!(found[0].contains("request_protocol=\"tcp\""));
        value(found[0])
    };
    assert_eq!(one("istio_tcp_received_bytes_total{"), 100.0);
    assert_eq!(one("istio_tcp_sent_bytes_total{"), 2500.0);
    assert_eq!(one("istio_tcp_connections_opened_total{"), 2.0);
    assert_eq!(one("istio_tcp_connections_closed_total{"), 1.0);
    assert_eq!(
        lines(&text, "istio_tcp_connections_opened_total{", &[]).len(),
        1
    );
}
