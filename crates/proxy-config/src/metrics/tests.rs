//! Table tests of the metrics section's names.

use super::*;

fn service(namespace: &str, name: &str, version: Option<&str>) -> ServiceRef {
    ServiceRef {
        namespace: namespace.into(),
        service: name.into(),
        version: version.map(Into::into),
    }
}

#[test]
fn service_refs_take_dns_labels_only() {
    let long = "a".repeat(64);
    let cases = [
        // (namespace, service, version, the field refused)
        ("default", "payment", Some("v2"), None),
        ("default", "payment", None, None),
        ("team-a", "cart-2", Some("canary-1"), None),
        ("Default", "payment", None, Some("workload.namespace")),
        ("default", "", None, Some("workload.service")),
        ("default", "pay_ment", None, Some("workload.service")),
        ("default", "payment", Some("-v2"), Some("workload.version")),
        ("default", "payment", Some("v2-"), Some("workload.version")),
        ("default", long.as_str(), None, Some("workload.service")),
        ("default", "pay ment", None, Some("workload.service")),
    ];
    for (namespace, name, version, refused) in cases {
        let result = validate_service_ref(&service(namespace, name, version), "workload");
        assert_eq!(
            result.err().map(|err| err.path),
            refused.map(String::from),
            "{namespace}/{name}/{version:?}"
        );
    }
}
