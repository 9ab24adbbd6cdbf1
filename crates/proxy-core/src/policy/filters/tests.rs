//! Table tests of filters: ReplacePrefixMatch and ReplaceFullPath as the Gateway API defines them, header edits.

use super::*;

fn prefix(value: &str) -> PathEdit {
    PathEdit::compile(&config::PathRewrite {
        kind: PathRewriteType::ReplacePrefixMatch,
        value: value.to_string(),
    })
}

#[test]
fn replace_prefix_match_follows_the_gateway_api_table() {
    // (request path, PathPrefix that matched, replacement, path sent upstream): the
    // HTTPPathModifier table of the Gateway API spec, and the conformance test cases.
    let cases = [
        ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
        ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
        ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
        ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
        ("/foo", "/foo", "/xyz", "/xyz"),
        ("/foo/", "/foo", "/xyz", "/xyz/"),
        ("/foo/bar", "/foo", "", "/bar"),
        ("/foo/", "/foo", "", "/"),
        ("/foo", "/foo", "", "/"),
        ("/foo/", "/foo", "/", "/"),
        ("/foo", "/foo", "/", "/"),
        ("/prefix/one/two", "/prefix/one", "/one", "/one/two"),
        ("/prefix/one", "/prefix/one", "/one", "/one"),
        ("/strip-prefix/three", "/strip-prefix", "/", "/three"),
        ("/strip-prefix", "/strip-prefix", "/", "/"),
        ("/strip-prefix/", "/strip-prefix", "/", "/"),
        ("/anything", "/", "/api", "/api/anything"),
        ("/", "/", "/api", "/api/"),
    ];
    for (path, matched, replacement, want) in cases {
        // Routing stores the prefix without its trailing slash, "/" as "".
        let matched = matched.trim_end_matches('/');
        assert_eq!(
            prefix(replacement).apply(path, matched),
            want,
            "{path} with prefix {matched:?} replaced by {replacement:?}"
        );
    }
}

#[test]
fn replace_full_path_ignores_the_match() {
    let edit = PathEdit::compile(&config::PathRewrite {
        kind: PathRewriteType::ReplaceFullPath,
        value: "/one".to_string(),
    });
    assert_eq!(edit.apply("/full/one/two", "/full"), "/one");
    assert_eq!(edit.apply("/x", ""), "/one");
}

fn modifier(json: serde_json::Value) -> HeaderEdits {
    HeaderEdits::compile(&serde_json::from_value(json).unwrap())
}

#[test]
fn header_edits_set_add_and_remove_by_case_insensitive_name() {
    let edits = modifier(serde_json::json!({
        "set": [{"name": "X-Set", "value": "new"}],
        "add": [{"name": "X-Add", "value": "two"}],
        "remove": ["X-Gone"],
    }));
    let mut headers = HeaderMap::new();
    headers.append("x-set", HeaderValue::from_static("old-1"));
    headers.append("x-set", HeaderValue::from_static("old-2"));
    headers.append("x-add", HeaderValue::from_static("one"));
    headers.append("x-gone", HeaderValue::from_static("a"));
    headers.append("x-gone", HeaderValue::from_static("b"));
    headers.append("x-kept", HeaderValue::from_static("k"));
    edits.apply(&mut headers);
    let all = |name: &str| -> Vec<&str> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    };
    assert_eq!(all("x-set"), ["new"]);
    assert_eq!(all("x-add"), ["one", "two"]);
    assert!(all("x-gone").is_empty());
    assert_eq!(all("x-kept"), ["k"]);

    // Absent headers: set and add both create them.
    let mut empty = HeaderMap::new();
    edits.apply(&mut empty);
    assert_eq!(empty.get("x-set").unwrap(), "new");
    assert_eq!(empty.get("x-add").unwrap(), "two");
}

#[test]
fn backend_filters_follow_the_rules_and_replace_its_rewrite() {
    let rule: config::RouteFilters = serde_json::from_value(serde_json::json!({
        "request_headers": {"set": [{"name": "x-a", "value": "rule"}]},
        "url_rewrite": {"hostname": "rule.example", "path": {"type": "ReplaceFullPath", "value": "/rule"}},
    }))
    .unwrap();
    let backend: config::RouteFilters = serde_json::from_value(serde_json::json!({
        "request_headers": {"remove": ["x-a"], "set": [{"name": "x-b", "value": "backend"}]},
        "url_rewrite": {"path": {"type": "ReplaceFullPath", "value": "/backend"}},
    }))
    .unwrap();
    assert!(Filters::compile(None, None).is_none());
    let filters = Filters::compile(Some(&rule), Some(&backend)).unwrap();
    let mut headers = HeaderMap::new();
    filters.edit_request_headers(&mut headers);
    assert!(
        headers.get("x-a").is_none(),
        "the backend's remove runs last"
    );
    assert_eq!(headers.get("x-b").unwrap(), "backend");
    assert_eq!(filters.hostname.as_ref().unwrap(), "rule.example");
    assert_eq!(filters.path, Some(PathEdit::Full("/backend".to_string())));
}
