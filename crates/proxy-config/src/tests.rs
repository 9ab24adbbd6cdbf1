//! Table tests of parsing whole documents: defaults, durations, the bootstrap, and errors that name the field.

use super::*;

/// The error that parsing `json` as a snapshot gives; panics if it parses.
pub(crate) fn err(json: &str) -> ConfigError {
    match parse_snapshot(json) {
        Ok(_) => panic!("expected an error for {json}"),
        Err(e) => e,
    }
}

const CLUSTER: &str = r#"{"name":"backend","endpoints":["127.0.0.1:9000"]}"#;

#[test]
fn minimal_snapshot_gets_defaults() {
    let json = format!(
        r#"{{"listeners":[{{"name":"web","address":"127.0.0.1:0","protocol":"http","cluster":"backend"}}],"clusters":[{CLUSTER}]}}"#
    );
    let snapshot = parse_snapshot(&json).unwrap();
    let listener = &snapshot.listeners[0];
    assert_eq!(listener.proxy_header, ProxyHeader::Via);
    assert_eq!(listener.timeouts.request, Duration::from_secs(15));
    assert_eq!(listener.limits.max_headers, 100);
    let cluster = &snapshot.clusters[0];
    assert_eq!(cluster.lb, LbPolicy::RoundRobin);
    assert_eq!(cluster.protocol, UpstreamProtocol::Http1);
    assert_eq!(cluster.connect_timeout, Duration::from_secs(2));
}

#[test]
fn durations_parse_and_round_trip() {
    let json =
        r#"{"clusters":[{"name":"b","connect_timeout":"250ms","pool":{"idle_timeout":"5m"}}]}"#;
    let snapshot = parse_snapshot(json).unwrap();
    assert_eq!(
        snapshot.clusters[0].connect_timeout,
        Duration::from_millis(250)
    );
    assert_eq!(
        snapshot.clusters[0].pool.idle_timeout,
        Duration::from_secs(300)
    );
    let again = serde_json::to_string(&snapshot).unwrap();
    assert_eq!(parse_snapshot(&again).unwrap(), snapshot);
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (
            r#"{"clusters":[{"name":"b","lb":"random"}]}"#,
            "clusters[0].lb",
            "unknown variant",
        ),
        (
            r#"{"clusters":[{"name":"b","colour":"red"}]}"#,
            "clusters[0].colour",
            "unknown field",
        ),
        (
            r#"{"clusters":[{"name":"b","endpoints":["nowhere"]}]}"#,
            "clusters[0].endpoints[0]",
            "invalid socket address",
        ),
        (
            r#"{"clusters":[{"name":"b","endpoints":["127.0.0.1:0"]}]}"#,
            "clusters[0].endpoints[0]",
            "not a reachable",
        ),
        (
            r#"{"clusters":[{"name":"b","connect_timeout":"soon"}]}"#,
            "clusters[0].connect_timeout",
            "invalid duration",
        ),
        (
            r#"{"clusters":[{"name":"b","connect_timeout":"0s"}]}"#,
            "clusters[0].connect_timeout",
            "longer than zero",
        ),
        (
            r#"{"clusters":[{"name":"B"}]}"#,
            "clusters[0].name",
            "not a valid name",
        ),
        (
            r#"{"clusters":[{"name":"b"},{"name":"b"}]}"#,
            "clusters[1].name",
            "duplicate cluster",
        ),
        (
            r#"{"listeners":[{"name":"web","address":"127.0.0.1:1","protocol":"http","cluster":"nope"}]}"#,
            "listeners[0].cluster",
            "no cluster named",
        ),
        (
            r#"{"listeners":[{"name":"web","address":"127.0.0.1:1","protocol":"udp","cluster":"b"}]}"#,
            "listeners[0].protocol",
            "unknown variant",
        ),
        (
            r#"{"listeners":[{"name":"admin","address":"127.0.0.1:1","protocol":"http","cluster":"b"}],"clusters":[{"name":"b"}]}"#,
            "listeners[0].name",
            "reserved",
        ),
        (
            r#"{"listeners":[{"name":"a","address":"127.0.0.1:1","protocol":"http","cluster":"b"},{"name":"c","address":"127.0.0.1:1","protocol":"tcp","cluster":"b"}],"clusters":[{"name":"b"}]}"#,
            "listeners[1].address",
            "used by another",
        ),
        (
            r#"{"listeners":[{"name":"a","address":"127.0.0.1:1","protocol":"http","cluster":"b","limits":{"max_header_bytes":10}}],"clusters":[{"name":"b"}]}"#,
            "listeners[0].limits.max_header_bytes",
            "between",
        ),
        (r#"{"version":-1}"#, "version", "invalid value"),
    ];
    for (json, path, fragment) in cases {
        let e = err(json);
        assert_eq!(e.path, path, "{json}: {e}");
        assert!(e.message.contains(fragment), "{json}: {e}");
    }
}

#[test]
fn whole_document_errors_have_an_empty_path() {
    let e = err("5");
    assert_eq!(e.path, "");
    let e = err("{");
    assert!(e.message.contains("EOF"), "{e}");
}

#[test]
fn bootstrap_checks_workers() {
    assert_eq!(parse_bootstrap("{}").unwrap(), Bootstrap::default());
    assert_eq!(
        parse_bootstrap(r#"{"workers":0}"#).unwrap_err().path,
        "workers"
    );
    assert_eq!(
        parse_bootstrap(r#"{"admin":"x"}"#).unwrap_err().path,
        "admin"
    );
    assert_eq!(parse_bootstrap(r#"{"extra":1}"#).unwrap_err().path, "extra");
}
