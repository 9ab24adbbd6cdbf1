//! Table tests of a cluster's endpoints and balancing fields: defaults, round trips, and errors that name the field.

use super::*;
use crate::{parse_snapshot, Snapshot};

fn cluster(fields: &str) -> Result<Snapshot, ConfigError> {
    parse_snapshot(&format!(
        r#"{{"clusters":[{{"name":"b","endpoints":["127.0.0.1:1"]{fields}}}]}}"#
    ))
}

#[test]
fn every_field_parses_and_round_trips() {
    let json = r#"{"clusters":[{
        "name": "payment.default",
        "endpoints": [{"address": "127.0.0.1:9001", "weight": 2, "zone": "zone-a"}, "127.0.0.1:9002"],
        "lb": "maglev",
        "hash_on": {"cookie": "session"},
        "local_zone": "zone-a",
        "slow_start": {"window": "30s"},
        "outlier_detection": {"consecutive_5xx": 5, "consecutive_gateway_errors": null,
            "interval": "10s", "base_ejection_time": "30s", "max_ejection_percent": 10},
        "circuit_breakers": {"max_connections": 1000, "max_pending_requests": 1000, "max_requests": 1000}
    }]}"#;
    let snapshot = parse_snapshot(json).unwrap();
    let c = &snapshot.clusters[0];
    assert_eq!(c.lb, LbPolicy::Maglev);
    assert_eq!(c.hash_on, Some(HashOn::Cookie("session".into())));
    assert_eq!(c.endpoints[0].zone.as_deref(), Some("zone-a"));
    assert_eq!(c.endpoints[1].zone, None);
    assert_eq!(c.slow_start.unwrap().window, Duration::from_secs(30));
    assert_eq!(c.outlier_detection, Some(OutlierDetection::default()));
    assert_eq!(c.circuit_breakers.unwrap().max_pending_requests, Some(1000));
    let again = serde_json::to_string(&snapshot).unwrap();
    assert_eq!(parse_snapshot(&again).unwrap(), snapshot);
}

#[test]
fn absent_fields_keep_todays_behaviour_and_blocks_get_defaults() {
    let plain = cluster("").unwrap();
    let c = &plain.clusters[0];
    assert_eq!(c.lb, LbPolicy::RoundRobin);
    assert!(c.hash_on.is_none() && c.local_zone.is_none() && c.slow_start.is_none());
    assert!(c.outlier_detection.is_none() && c.circuit_breakers.is_none());
    let blocks = cluster(r#","outlier_detection":{},"circuit_breakers":{}"#).unwrap();
    let c = &blocks.clusters[0];
    let outlier = c.outlier_detection.unwrap();
    assert_eq!(outlier.consecutive_5xx, Some(5));
    assert_eq!(outlier.consecutive_gateway_errors, None);
    assert_eq!(outlier.interval, Duration::from_secs(10));
    assert_eq!(outlier.base_ejection_time, Duration::from_secs(30));
    assert_eq!(outlier.max_ejection_percent, 10);
    assert_eq!(c.circuit_breakers, Some(CircuitBreakers::default()));
    for lb in ["round_robin", "least_request", "peak_ewma"] {
        let parsed = cluster(&format!(r#","lb":"{lb}""#)).unwrap();
        assert_eq!(parsed.clusters[0].lb.name(), lb);
    }
    for hash_on in [r#"{"header":"x-user"}"#, r#"{"source_ip":true}"#] {
        let parsed = cluster(&format!(r#","lb":"ring_hash","hash_on":{hash_on}"#));
        assert!(parsed.is_ok(), "{hash_on}: {parsed:?}");
    }
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (
            r#","lb":"ring_hash""#,
            "clusters[0].hash_on",
            "needs hash_on",
        ),
        (
            r#","lb":"peak_ewma","hash_on":{"header":"x"}"#,
            "clusters[0].hash_on",
            "only ring_hash and maglev",
        ),
        (
            r#","lb":"maglev","hash_on":{"header":"bad header"}"#,
            "clusters[0].hash_on.header",
            "not a header name",
        ),
        (
            r#","lb":"maglev","hash_on":{"cookie":"a;b"}"#,
            "clusters[0].hash_on.cookie",
            "not a cookie name",
        ),
        (
            r#","lb":"maglev","hash_on":{"source_ip":false}"#,
            "clusters[0].hash_on.source_ip",
            "must be true",
        ),
        (
            r#","lb":"maglev","hash_on":{"query":"x"}"#,
            "clusters[0].hash_on",
            "unknown variant",
        ),
        (
            r#","local_zone":"zone a""#,
            "clusters[0].local_zone",
            "not a valid zone",
        ),
        (
            r#","slow_start":{"window":"0s"}"#,
            "clusters[0].slow_start.window",
            "longer than zero",
        ),
        (
            r#","slow_start":{}"#,
            "clusters[0].slow_start",
            "missing field `window`",
        ),
        (
            r#","outlier_detection":{"consecutive_5xx":0}"#,
            "clusters[0].outlier_detection.consecutive_5xx",
            "at least 1",
        ),
        (
            r#","outlier_detection":{"consecutive_5xx":null}"#,
            "clusters[0].outlier_detection.consecutive_5xx",
            "set consecutive_5xx or consecutive_gateway_errors",
        ),
        (
            r#","outlier_detection":{"consecutive_gateway_errors":0}"#,
            "clusters[0].outlier_detection.consecutive_gateway_errors",
            "at least 1",
        ),
        (
            r#","outlier_detection":{"interval":"0s"}"#,
            "clusters[0].outlier_detection.interval",
            "longer than zero",
        ),
        (
            r#","outlier_detection":{"base_ejection_time":"0ms"}"#,
            "clusters[0].outlier_detection.base_ejection_time",
            "longer than zero",
        ),
        (
            r#","outlier_detection":{"max_ejection_percent":101}"#,
            "clusters[0].outlier_detection.max_ejection_percent",
            "between 0 and 100",
        ),
        (
            r#","outlier_detection":{"consecutive_errors":3}"#,
            "clusters[0].outlier_detection.consecutive_errors",
            "unknown field",
        ),
        (
            r#","circuit_breakers":{"max_requests":0}"#,
            "clusters[0].circuit_breakers.max_requests",
            "at least 1",
        ),
        (
            r#","circuit_breakers":{"max_connections":0}"#,
            "clusters[0].circuit_breakers.max_connections",
            "at least 1",
        ),
        (
            r#","circuit_breakers":{"max_pending_requests":-1}"#,
            "clusters[0].circuit_breakers.max_pending_requests",
            "invalid value",
        ),
        (
            r#","circuit_breakers":{"max_retries":3}"#,
            "clusters[0].circuit_breakers.max_retries",
            "unknown field",
        ),
    ];
    for (fields, path, fragment) in cases {
        let e = cluster(fields).unwrap_err();
        assert_eq!(e.path, path, "{fields}: {e}");
        assert!(e.message.contains(fragment), "{fields}: {e}");
    }
    let zone = parse_snapshot(
        r#"{"clusters":[{"name":"b","endpoints":[{"address":"127.0.0.1:1","zone":""}]}]}"#,
    )
    .unwrap_err();
    assert_eq!(zone.path, "clusters[0].endpoints[0].zone");
}

#[test]
fn what_the_python_models_send_parses() {
    // `Cluster.model_dump_json()` writes every optional field, as null when unset.
    let json = r#"{"clusters":[{"name":"b","endpoints":["127.0.0.1:1",
        {"address":"127.0.0.1:2","weight":1,"zone":"zone-a"},{"address":"127.0.0.1:3","weight":2}],
        "lb":"maglev","hash_on":{"cookie":"session"},"local_zone":"zone-a","slow_start":{"window":"30s"},
        "outlier_detection":{"consecutive_5xx":null,"consecutive_gateway_errors":3,"interval":"10s",
            "base_ejection_time":"30s","max_ejection_percent":10},
        "circuit_breakers":{"max_connections":null,"max_pending_requests":null,"max_requests":5},
        "protocol":"http1","connect_timeout":"2s","pool":{"idle_timeout":"1m","max_idle_per_endpoint":64},
        "tls":null}]}"#;
    let snapshot = parse_snapshot(json).unwrap();
    let c = &snapshot.clusters[0];
    let outlier = c.outlier_detection.unwrap();
    assert_eq!(outlier.consecutive_5xx, None);
    assert_eq!(outlier.consecutive_gateway_errors, Some(3));
    assert_eq!(c.circuit_breakers.unwrap().max_connections, None);
    assert_eq!(c.endpoints[2].zone, None);
}

#[test]
fn endpoints_are_strings_or_objects() {
    let json = r#"{"clusters":[{"name":"b","endpoints":["127.0.0.1:1",{"address":"127.0.0.1:2","weight":3}]}]}"#;
    let snapshot = parse_snapshot(json).unwrap();
    let weights: Vec<_> = snapshot.clusters[0]
        .endpoints
        .iter()
        .map(|e| e.weight)
        .collect();
    assert_eq!(weights, vec![1, 3]);
    let again = serde_json::to_string(&snapshot).unwrap();
    assert_eq!(parse_snapshot(&again).unwrap(), snapshot);
}
