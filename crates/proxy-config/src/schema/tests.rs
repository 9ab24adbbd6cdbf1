//! Tests of the config file's JSON Schema: its top-level keys, and unknown ones refused.

use super::*;

#[test]
fn the_schema_describes_the_whole_file_and_refuses_unknown_keys() {
    let schema = config_file_schema();
    let properties = schema["properties"].as_object().unwrap();
    let mut keys: Vec<&str> = properties.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "access_log",
            "admin",
            "clusters",
            "identity",
            "istio_metrics",
            "listeners",
            "max_connections",
            "metrics",
            "tracing",
            "version",
            "workers"
        ]
    );
    assert_eq!(schema["additionalProperties"], false);
}
