//! Table tests of SPIFFE ID syntax: workload IDs that parse, malformed ones refused with a reason.

use super::*;

#[test]
fn workload_ids_parse() {
    for ok in [
        "spiffe://example.org/ns/default/sa/web",
        "spiffe://cluster.local/a",
        "spiffe://x_y-z.0/A.b-c_D",
    ] {
        assert_eq!(SpiffeId::parse(ok).unwrap().as_str(), ok);
    }
}

#[test]
fn malformed_ids_are_refused_with_a_reason() {
    let cases = [
        ("https://example.org/a", "must start with"),
        ("SPIFFE://example.org/a", "must start with"),
        ("spiffe:///a", "no trust domain"),
        ("spiffe://example.org", "has no path"),
        ("spiffe://example.org/", "must not be empty"),
        ("spiffe://example.org/a/", "must not be empty"),
        ("spiffe://example.org/a//b", "must not be empty"),
        ("spiffe://example.org/a/../b", "must not be empty"),
        ("spiffe://example.org:8443/a", "port"),
        ("spiffe://user@example.org/a", "user info"),
        ("spiffe://Example.org/a", "lowercase"),
        ("spiffe://example.org/a?x=1", "query"),
        ("spiffe://example.org/a#f", "fragment"),
        ("spiffe://example.org/a b", "path segments may hold"),
        ("spiffe://example.org/%41", "path segments may hold"),
    ];
    for (text, fragment) in cases {
        let err = SpiffeId::parse(text).unwrap_err();
        assert!(err.contains(fragment), "{text}: {err}");
    }
    let long = format!("spiffe://example.org/{}", "a".repeat(MAX_LEN));
    assert!(SpiffeId::parse(&long).is_err());
}
