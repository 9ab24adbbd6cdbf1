//! Table tests of the `tracing` section: defaults, round trips, and errors that name the field.

use crate::parse_snapshot;

#[test]
fn tracing_is_absent_unless_configured_and_defaults_to_one_percent() {
    assert_eq!(parse_snapshot("{}").unwrap().tracing, None);
    let snapshot = parse_snapshot(r#"{"tracing":{}}"#).unwrap();
    assert_eq!(snapshot.tracing.unwrap().sample_percent, 1.0);
    let snapshot = parse_snapshot(r#"{"tracing":{"sample_percent":12.5}}"#).unwrap();
    assert_eq!(snapshot.tracing.unwrap().sample_percent, 12.5);
    let again = parse_snapshot(&serde_json::to_string(&snapshot).unwrap()).unwrap();
    assert_eq!(again, snapshot);
}

#[test]
fn bad_tracing_sections_name_the_field() {
    for (json, path) in [
        (
            r#"{"tracing":{"sample_percent":100.5}}"#,
            "tracing.sample_percent",
        ),
        (
            r#"{"tracing":{"sample_percent":-1}}"#,
            "tracing.sample_percent",
        ),
        (
            r#"{"tracing":{"sample_percent":"all"}}"#,
            "tracing.sample_percent",
        ),
        (r#"{"tracing":{"ratio":1}}"#, "tracing.ratio"),
    ] {
        let err = parse_snapshot(json).unwrap_err();
        assert_eq!(err.path, path, "{json}: {err}");
    }
}
