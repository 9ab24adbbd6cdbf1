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
            export("https://collector/v1/traces"),
            "tracing.export[0].endpoint",
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
