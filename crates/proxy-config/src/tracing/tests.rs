//! Table tests of the `tracing` section: defaults, round trips, and errors that name the field.

use crate::parse_snapshot;

#[test]
fn tracing_is_absent_unless_configured_and_has_defaults() {
    assert_eq!(parse_snapshot("{}").unwrap().tracing, None);
    let tracing = parse_snapshot(r#"{"tracing":{}}"#)
        .unwrap()
        .tracing
        .unwrap();
    assert_eq!(
        (
            tracing.sample_percent,
            tracing.service.as_str(),
            tracing.export.len()
        ),
        (1.0, "meshpy-proxy", 0)
    );
    let snapshot = parse_snapshot(
        r#"{"tracing":{"sample_percent":12.5,"service":"cart","resource":{"service.version":"v2"},
            "export":[{"endpoint":"http://127.0.0.1:4318/v1/traces","headers":{"authorization":"Bearer x"}},
                      {"endpoint":"http://collector"}]}}"#,
    )
    .unwrap();
    let tracing = snapshot.tracing.as_ref().unwrap();
    assert_eq!(tracing.sample_percent, 12.5);
    assert_eq!(tracing.export[0].headers["authorization"], "Bearer x");
    let again = parse_snapshot(&serde_json::to_string(&snapshot).unwrap()).unwrap();
    assert_eq!(again, snapshot);
}

/// A self-signed certificate for "collector.test": any will do, the test only parses it.
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBUjCB+aADAgECAhRSb9IJ+iR9sboOC4Rq1htiSTrBxjAKBggqhkjOPQQDAjAZ
MRcwFQYDVQQDDA5jb2xsZWN0b3IudGVzdDAgFw0yNjAxMDEwMDAwMDBaGA8yMTI2
MDEwMTAwMDAwMFowGTEXMBUGA1UEAwwOY29sbGVjdG9yLnRlc3QwWTATBgcqhkjO
PQIBBggqhkjOPQMBBwNCAASL9FQs9xrUPx4We1GoJW9vtnmhAur+9UL2GNMZY0mm
+sXEeeROxfT/9FosSA/D9KNUl5dzZqDnt6xE0wcLULPiox0wGzAZBgNVHREEEjAQ
gg5jb2xsZWN0b3IudGVzdDAKBggqhkjOPQQDAgNIADBFAiBfsVTYKrMgyhWdhcE4
KpeydT5wxwnbywrZZ/nosY6rcAIhAPOh4aXsuGYomctFtY452BL+YLTHogidaLYo
NU6swl7Q
-----END CERTIFICATE-----
";

#[test]
fn an_https_receiver_may_name_the_certificates_it_trusts() {
    let json = serde_json::json!({"tracing": {"export": [
        {"endpoint": "https://collector.test:4318/v1/traces", "ca": CA_PEM},
        {"endpoint": "https://api.honeycomb.io/v1/traces"},
    ]}});
    let snapshot = parse_snapshot(&json.to_string()).unwrap();
    let export = &snapshot.tracing.as_ref().unwrap().export;
    assert_eq!(export[0].ca.as_deref(), Some(CA_PEM));
    assert_eq!(crate::ca_certificates(CA_PEM).unwrap().len(), 1);
    assert_eq!(export[1].ca, None);
}

#[test]
fn bad_tracing_sections_name_the_field() {
    let export =
        |endpoint: &str| format!(r#"{{"tracing":{{"export":[{{"endpoint":"{endpoint}"}}]}}}}"#);
    let cases = [
        (
            r#"{"tracing":{"sample_percent":100.5}}"#.to_string(),
            "tracing.sample_percent",
        ),
        (
            r#"{"tracing":{"sample_percent":-1}}"#.into(),
            "tracing.sample_percent",
        ),
        (
            r#"{"tracing":{"sample_percent":"all"}}"#.into(),
            "tracing.sample_percent",
        ),
        (r#"{"tracing":{"ratio":1}}"#.into(), "tracing.ratio"),
        (r#"{"tracing":{"service":""}}"#.into(), "tracing.service"),
        (
            export("ftp://collector/v1/traces"),
            "tracing.export[0].endpoint",
        ),
        (
            r#"{"tracing":{"export":[{"endpoint":"http://c","ca":"x"}]}}"#.into(),
            "tracing.export[0].ca",
        ),
        (
            r#"{"tracing":{"export":[{"endpoint":"https://c","ca":"no certificate"}]}}"#.into(),
            "tracing.export[0].ca",
        ),
        (
            r#"{"tracing":{"export":[{"endpoint":"https://c","ca":"-----BEGIN CERTIFICATE-----\n@@@\n-----END CERTIFICATE-----\n"}]}}"#.into(),
            "tracing.export[0].ca",
        ),
        (export("collector:4318"), "tracing.export[0].endpoint"),
        (export("http://"), "tracing.export[0].endpoint"),
        (
            export("http://user@collector/"),
            "tracing.export[0].endpoint",
        ),
        (
            export("http://collector/v1/traces?x=1"),
            "tracing.export[0].endpoint",
        ),
        (
            r#"{"tracing":{"export":[{"endpoint":"http://c","headers":{"bad name":"x"}}]}}"#.into(),
            "tracing.export[0].headers",
        ),
        (
            r#"{"tracing":{"export":[{"endpoint":"http://c","headers":{"a":"line\nbreak"}}]}}"#
                .into(),
            "tracing.export[0].headers",
        ),
        (
            format!(
                r#"{{"tracing":{{"export":[{}]}}}}"#,
                [r#"{"endpoint":"http://c"}"#; 5].join(",")
            ),
            "tracing.export",
        ),
    ];
    for (json, path) in cases {
        let err = parse_snapshot(&json).unwrap_err();
        assert_eq!(err.path, path, "{json}: {err}");
    }
}
