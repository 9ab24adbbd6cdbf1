//! Table tests of mTLS config: listener and cluster `tls` parse and round trip, and errors name the field.

use super::*;
use crate::parse_snapshot;
use crate::tests::err;

#[test]
fn tls_fields_parse_and_round_trip() {
    let json = r#"{"listeners":[
        {"name":"in","address":"127.0.0.1:0","protocol":"http","cluster":"b","tls":{}},
        {"name":"in2","address":"127.0.0.1:0","protocol":"tcp","cluster":"b","tls":{"mode":"permissive"}}],
        "clusters":[{"name":"b","tls":{"identity":"spiffe://td/ns/x/sa/y"}}]}"#;
    let snapshot = parse_snapshot(json).unwrap();
    assert_eq!(snapshot.listeners[0].tls.unwrap().mode, TlsMode::Strict);
    assert_eq!(snapshot.listeners[1].tls.unwrap().mode, TlsMode::Permissive);
    let identity = &snapshot.clusters[0].tls.as_ref().unwrap().identity;
    assert_eq!(identity.as_str(), "spiffe://td/ns/x/sa/y");
    assert!(snapshot.uses_tls());
    let again = serde_json::to_string(&snapshot).unwrap();
    assert_eq!(parse_snapshot(&again).unwrap(), snapshot);
    assert!(!parse_snapshot(r#"{"clusters":[{"name":"b","tls":null}]}"#)
        .unwrap()
        .uses_tls());
}

#[test]
fn tls_errors_name_the_field() {
    let listener = |tls: &str| {
        format!(
            r#"{{"listeners":[{{"name":"in","address":"127.0.0.1:0","protocol":"http","cluster":"b","tls":{tls}}}],"clusters":[{{"name":"b"}}]}}"#
        )
    };
    let cluster = |tls: &str| format!(r#"{{"clusters":[{{"name":"b","tls":{tls}}}]}}"#);
    let cases = [
        (
            listener(r#"{"mode":"optional"}"#),
            "listeners[0].tls.mode",
            "unknown variant",
        ),
        (
            listener(r#"{"mode":"strict","alpn":["h2"]}"#),
            "listeners[0].tls.alpn",
            "unknown field",
        ),
        (cluster("{}"), "clusters[0].tls", "missing field `identity`"),
        (
            cluster(r#"{"identity":"https://td/a"}"#),
            "clusters[0].tls.identity",
            "must start with \"spiffe://\"",
        ),
        (
            cluster(r#"{"identity":"spiffe://td"}"#),
            "clusters[0].tls.identity",
            "has no path",
        ),
        (
            cluster(r#"{"identity":"spiffe://td:1/a"}"#),
            "clusters[0].tls.identity",
            "port",
        ),
        (
            cluster(r#"{"identity":"spiffe://td/a?q"}"#),
            "clusters[0].tls.identity",
            "query",
        ),
    ];
    for (json, path, fragment) in cases {
        let e = err(&json);
        assert_eq!(e.path, path, "{json}: {e}");
        assert!(e.message.contains(fragment), "{json}: {e}");
    }
}
