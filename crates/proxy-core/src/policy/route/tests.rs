//! Table tests of routing: hosts, Gateway API match semantics and precedence, weights.

use super::*;
use crate::config::VirtualHost;

fn table(json: serde_json::Value) -> RouteTable<String> {
    let vhosts: Vec<VirtualHost> = serde_json::from_value(json).unwrap();
    RouteTable::compile(&vhosts, |name| Some(name.to_string()))
}

/// Routes a request and returns the first backend of the chosen rule.
fn route(
    table: &RouteTable<String>,
    host: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<String, Miss> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            // from_bytes: UTF-8 beyond ASCII (`é`) is a valid, if unusual, field value.
            HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
    }
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let view = RequestView {
        host,
        method: &method,
        path,
        query,
        headers: &map,
    };
    table
        .find(&view)
        .map(|rule| rule.pick(|_| 0).cloned().unwrap_or_default())
}

/// `GET /` on host `h`.
fn get_root(headers: &HeaderMap) -> RequestView<'_> {
    RequestView {
        host: "h",
        method: &Method::GET,
        path: "/",
        query: None,
        headers,
    }
}

fn rule(matches: serde_json::Value, backend: &str) -> serde_json::Value {
    serde_json::json!({"matches": matches, "backends": [{"cluster": backend}]})
}

#[test]
fn hosts_are_matched_without_port_and_case() {
    let t = table(serde_json::json!([
        {"name": "pay", "hosts": ["payment", "payment.default"], "rules": [rule(serde_json::json!([]), "pay")]},
        {"name": "v6", "hosts": ["[::1]"], "rules": [rule(serde_json::json!([]), "v6")]},
    ]));
    let cases = [
        ("payment", Ok("pay")),
        ("payment:8080", Ok("pay")),
        ("Payment.Default", Ok("pay")),
        ("[::1]:80", Ok("v6")),
        ("cart", Err(Miss::NoHost)),
    ];
    for (host, want) in cases {
        assert_eq!(
            route(&t, host, "GET", "/", &[]),
            want.map(str::to_string),
            "{host}"
        );
    }
}

#[test]
fn wildcard_host_catches_the_rest() {
    let t = table(serde_json::json!([
        {"name": "a", "hosts": ["a"], "rules": [rule(serde_json::json!([]), "a")]},
        {"name": "any", "hosts": ["*"], "rules": [rule(serde_json::json!([]), "any")]},
    ]));
    assert_eq!(route(&t, "a", "GET", "/", &[]).unwrap(), "a");
    assert_eq!(route(&t, "zzz", "GET", "/", &[]).unwrap(), "any");
}

#[test]
fn path_prefix_matches_whole_segments() {
    let t = table(serde_json::json!([{"name": "h", "hosts": ["h"], "rules": [
        rule(serde_json::json!([{"path": {"type": "PathPrefix", "value": "/api/"}}]), "api"),
    ]}]));
    let cases = [
        ("/api", Ok("api")),
        ("/api/", Ok("api")),
        ("/api/v1", Ok("api")),
        ("/apiv1", Err(Miss::NoRule)),
        ("/", Err(Miss::NoRule)),
    ];
    for (path, want) in cases {
        assert_eq!(
            route(&t, "h", "GET", path, &[]),
            want.map(str::to_string),
            "{path}"
        );
    }
}

/// Method, target, headers, expected backend.
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn gateway_api_precedence_orders_matches() {
    // Given in the "wrong" order on purpose: precedence, not order, decides.
    let t = table(serde_json::json!([{"name": "h", "hosts": ["h"], "rules": [
        rule(serde_json::json!([{"path": {"type": "PathPrefix", "value": "/"}}]), "root"),
        rule(serde_json::json!([{"path": {"type": "PathPrefix", "value": "/a"}}]), "prefix-a"),
        rule(serde_json::json!([{"path": {"type": "PathPrefix", "value": "/a/b"}}]), "prefix-ab"),
        rule(serde_json::json!([{"path": {"type": "Exact", "value": "/a"}}]), "exact-a"),
        rule(serde_json::json!([{"path": {"type": "PathPrefix", "value": "/a"}, "method": "POST"}]), "post-a"),
        rule(serde_json::json!([{"path": {"type": "PathPrefix", "value": "/a"}, "headers": [{"name": "x-beta", "value": "1"}]}]), "beta-a"),
        rule(serde_json::json!([{"path": {"type": "PathPrefix", "value": "/a"}, "headers": [{"name": "x-beta", "value": "1"}, {"name": "x-user", "value": "u"}]}]), "beta-user-a"),
        rule(serde_json::json!([{"path": {"type": "PathPrefix", "value": "/a"}, "query_params": [{"name": "q", "value": "1"}]}]), "query-a"),
    ]}]));
    let cases: [Case; 9] = [
        ("GET", "/", &[], "root"),
        ("GET", "/a", &[], "exact-a"),
        ("GET", "/a/x", &[], "prefix-a"),
        ("GET", "/a/b/c", &[], "prefix-ab"),
        ("POST", "/a/x", &[("x-beta", "1")], "post-a"),
        ("GET", "/a/x", &[("x-beta", "1")], "beta-a"),
        (
            "GET",
            "/a/x",
            &[("x-beta", "1"), ("x-user", "u")],
            "beta-user-a",
        ),
        ("GET", "/a/x?q=1", &[], "query-a"),
        ("GET", "/a/x", &[("x-beta", "2")], "prefix-a"),
    ];
    for (method, target, headers, want) in cases {
        assert_eq!(
            route(&t, "h", method, target, headers).unwrap(),
            want,
            "{method} {target} {headers:?}"
        );
    }
}

#[test]
fn equal_precedence_keeps_config_order() {
    let t = table(serde_json::json!([{"name": "h", "hosts": ["h"], "rules": [
        rule(serde_json::json!([{"headers": [{"name": "x-a", "value": "1"}]}]), "first"),
        rule(serde_json::json!([{"headers": [{"name": "x-b", "value": "1"}]}]), "second"),
    ]}]));
    assert_eq!(
        route(&t, "h", "GET", "/", &[("x-a", "1"), ("x-b", "1")]).unwrap(),
        "first"
    );
}

#[test]
fn a_rule_matches_if_any_of_its_matches_does() {
    let t = table(serde_json::json!([{"name": "h", "hosts": ["h"], "rules": [
        rule(serde_json::json!([{"path": {"type": "Exact", "value": "/x"}}, {"method": "DELETE"}]), "either"),
    ]}]));
    assert_eq!(route(&t, "h", "GET", "/x", &[]).unwrap(), "either");
    assert_eq!(route(&t, "h", "DELETE", "/y", &[]).unwrap(), "either");
    assert_eq!(route(&t, "h", "GET", "/y", &[]), Err(Miss::NoRule));
}

#[test]
fn header_names_ignore_case_and_values_do_not() {
    let t = table(serde_json::json!([{"name": "h", "hosts": ["h"], "rules": [
        rule(serde_json::json!([{"headers": [{"name": "X-Beta", "value": "Yes"}]}]), "beta"),
    ]}]));
    assert_eq!(
        route(&t, "h", "GET", "/", &[("x-beta", "Yes")]).unwrap(),
        "beta"
    );
    assert_eq!(
        route(&t, "h", "GET", "/", &[("x-beta", "yes")]),
        Err(Miss::NoRule)
    );
}

#[test]
fn weights_split_traffic_and_zero_means_none() {
    let t = table(serde_json::json!([{"name": "h", "hosts": ["h"], "rules": [
        {"backends": [{"cluster": "v1", "weight": 90}, {"cluster": "v2", "weight": 10}, {"cluster": "v3", "weight": 0}]},
    ]}]));
    let headers = HeaderMap::new();
    let view = get_root(&headers);
    let rule = t.find(&view).unwrap();
    let mut counts = HashMap::new();
    for ticket in 0..100 {
        *counts
            .entry(
                rule.pick(|n| {
                    assert_eq!(n, 100);
                    ticket
                })
                .unwrap()
                .clone(),
            )
            .or_insert(0) += 1;
    }
    assert_eq!(counts.get("v1"), Some(&90));
    assert_eq!(counts.get("v2"), Some(&10));
    assert_eq!(counts.get("v3"), None);

    let t = table(serde_json::json!([{"name": "h", "hosts": ["h"], "rules": [
        {"backends": [{"cluster": "v1", "weight": 0}]},
    ]}]));
    assert!(t.find(&view).unwrap().pick(|_| 0).is_none());
}

#[test]
fn rule_timeouts_are_carried() {
    let t = table(serde_json::json!([{"name": "h", "hosts": ["h"], "rules": [
        {"backends": [{"cluster": "a"}], "timeouts": {"request": "250ms"}},
    ]}]));
    let headers = HeaderMap::new();
    let view = get_root(&headers);
    assert_eq!(
        t.find(&view).unwrap().timeout,
        Some(Duration::from_millis(250))
    );
}

/// Target, headers, expected backend or miss.
type RegexCase = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Result<&'static str, Miss>,
);

#[test]
fn regular_expressions_match_the_whole_path_and_value() {
    let t = table(serde_json::json!([{"name": "h", "hosts": ["h"], "rules": [
        rule(serde_json::json!([{"path": {"type": "RegularExpression", "value": "/v[0-9]+/users/[^/]+"}}]), "users"),
        rule(serde_json::json!([{"path": {"type": "RegularExpression", "value": "/[\\w-]+\\.json"}}]), "json"),
        rule(serde_json::json!([{"path": {"type": "Exact", "value": "/h"}, "headers": [{"name": "X-Version", "value": "v[0-9]+", "type": "RegularExpression"}]}]), "header"),
        rule(serde_json::json!([{"path": {"type": "Exact", "value": "/q"}, "query_params": [{"name": "id", "value": "[0-9]{3}", "type": "RegularExpression"}]}]), "query"),
        rule(serde_json::json!([{"path": {"type": "Exact", "value": "/u"}, "headers": [{"name": "x-name", "value": "é+", "type": "RegularExpression"}]}]), "utf8"),
    ]}]));
    let cases: [RegexCase; 16] = [
        ("/v1/users/ann", &[], Ok("users")),
        ("/v12/users/bob", &[], Ok("users")),
        // Anchored: a match inside the path is not enough.
        ("/api/v1/users/ann", &[], Err(Miss::NoRule)),
        ("/v1/users/ann/orders", &[], Err(Miss::NoRule)),
        ("/vx/users/ann", &[], Err(Miss::NoRule)),
        ("/daten-ü.json", &[], Ok("json")),
        ("/a/b.json", &[], Err(Miss::NoRule)),
        ("/h", &[("x-version", "v2")], Ok("header")),
        ("/h", &[("x-version", "v2-beta")], Err(Miss::NoRule)),
        // Any one value of a repeated header may match.
        (
            "/h",
            &[("x-version", "old"), ("x-version", "v3")],
            Ok("header"),
        ),
        ("/h", &[], Err(Miss::NoRule)),
        // UTF-8 beyond ASCII is matched like any text, as an exact condition would.
        ("/u", &[("x-name", "é")], Ok("utf8")),
        ("/u", &[("x-name", "e")], Err(Miss::NoRule)),
        ("/q?id=123", &[], Ok("query")),
        ("/q?a=b&id=1234", &[], Err(Miss::NoRule)),
        ("/q", &[], Err(Miss::NoRule)),
    ];
    for (target, headers, want) in cases {
        assert_eq!(
            route(&t, "h", "GET", target, headers),
            want.map(str::to_string),
            "{target} {headers:?}"
        );
    }
}

#[test]
fn regular_expressions_rank_between_exact_and_prefix() {
    // Exact > RegularExpression > PathPrefix (longest first, "/" included): the spec
    // leaves expressions unranked; below every prefix, a catch-all would hide them all.
    // Among expressions the spec's ties follow: method, header count, query count, order.
    let t = table(serde_json::json!([{"name": "h", "hosts": ["h"], "rules": [
        rule(serde_json::json!([{"path": {"type": "PathPrefix", "value": "/"}}]), "all"),
        rule(serde_json::json!([{"path": {"type": "RegularExpression", "value": "/r/[0-9]+"}}]), "regex-r"),
        rule(serde_json::json!([{"path": {"type": "RegularExpression", "value": "/a/.*"}, "headers": [{"name": "x-beta", "value": "1"}]}]), "regex-beta"),
        rule(serde_json::json!([{"path": {"type": "RegularExpression", "value": "/a/.*"}, "method": "POST"}]), "regex-post"),
        rule(serde_json::json!([{"path": {"type": "PathPrefix", "value": "/a/b"}}]), "prefix-ab"),
        rule(serde_json::json!([{"path": {"type": "Exact", "value": "/a/b/c"}}]), "exact-abc"),
    ]}]));
    let cases: [Case; 8] = [
        ("GET", "/a/b/c", &[("x-beta", "1")], "exact-abc"),
        ("GET", "/a/b/d", &[], "prefix-ab"),
        ("GET", "/a/b/d", &[("x-beta", "1")], "regex-beta"),
        // A method outranks a header match.
        ("POST", "/a/b/d", &[("x-beta", "1")], "regex-post"),
        ("GET", "/r/12", &[], "regex-r"),
        ("GET", "/r/x", &[], "all"),
        ("GET", "/a/x", &[], "all"),
        ("GET", "/z", &[], "all"),
    ];
    for (method, target, headers, want) in cases {
        assert_eq!(
            route(&t, "h", method, target, headers).unwrap(),
            want,
            "{method} {target} {headers:?}"
        );
    }
    // A match without a path is a PathPrefix "/": an expression outranks it.
    let t = table(serde_json::json!([{"name": "h", "hosts": ["h"], "rules": [
        rule(serde_json::json!([{"method": "GET"}]), "any-get"),
        rule(serde_json::json!([{"path": {"type": "RegularExpression", "value": "/x"}}]), "regex"),
    ]}]));
    assert_eq!(route(&t, "h", "GET", "/x", &[]).unwrap(), "regex");
    assert_eq!(route(&t, "h", "GET", "/y", &[]).unwrap(), "any-get");
}

#[test]
fn the_matched_prefix_is_reported_for_rewrites() {
    let t = table(serde_json::json!([{"name": "h", "hosts": ["h"], "rules": [
        rule(serde_json::json!([{"path": {"type": "PathPrefix", "value": "/api/"}}, {"path": {"type": "PathPrefix", "value": "/v1"}}]), "api"),
        rule(serde_json::json!([{"path": {"type": "Exact", "value": "/e"}}]), "exact"),
    ]}]));
    let headers = HeaderMap::new();
    let view = |path| RequestView {
        host: "h",
        method: &Method::GET,
        path,
        query: None,
        headers: &headers,
    };
    assert_eq!(
        t.find_match(&view("/api/x")).unwrap().matched_prefix,
        "/api"
    );
    assert_eq!(t.find_match(&view("/v1/x")).unwrap().matched_prefix, "/v1");
    assert_eq!(t.find_match(&view("/e")).unwrap().matched_prefix, "");
}

#[test]
fn backend_timeouts_and_filters_are_carried() {
    let t = table(serde_json::json!([{"name": "h", "hosts": ["h"], "rules": [
        {"backends": [{"cluster": "a", "filters": {"request_headers": {"set": [{"name": "x-b", "value": "1"}]}}}],
         "timeouts": {"backend_request": "100ms"},
         "filters": {"url_rewrite": {"hostname": "elsewhere"}}},
    ]}]));
    let headers = HeaderMap::new();
    let view = get_root(&headers);
    let rule = t.find(&view).unwrap();
    assert_eq!(rule.timeout, None);
    assert_eq!(rule.backend_timeout, Some(Duration::from_millis(100)));
    let filters = rule.pick_backend(|_| 0).unwrap().filters.as_ref().unwrap();
    assert_eq!(filters.hostname.as_ref().unwrap(), "elsewhere");
    assert_eq!(filters.request.len(), 1);
}

/// The request `METHOD target` with `headers` on host `host`, for trail tests.
fn ask<'a>(
    method: &'a Method,
    host: &'a str,
    target: &'a str,
    headers: &'a HeaderMap,
) -> RequestView<'a> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    RequestView {
        host,
        method,
        path,
        query,
        headers,
    }
}

/// A trail in short: each match tried as (rule, match, failed condition).
type Steps = Vec<(usize, Option<usize>, Option<Condition>)>;

/// Method, target, headers, and the trail.
type TrailCase<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], Steps);

#[test]
fn the_winning_match_says_where_it_is_in_the_config() {
    let t = table(serde_json::json!([
        {"name": "a", "hosts": ["a"], "rules": [rule(serde_json::json!([]), "a")]},
        {"name": "b", "hosts": ["b"], "rules": [
            rule(serde_json::json!([{"path": {"type": "Exact", "value": "/x"}}]), "x"),
            rule(serde_json::json!([{"method": "PUT"}, {"path": {"type": "PathPrefix", "value": "/y"}}]), "y"),
        ]},
    ]));
    let headers = HeaderMap::new();
    let at = |vhost, rule, matched| MatchedAt {
        vhost,
        rule,
        matched,
    };
    let cases = [
        ("a", "GET", "/anything", at(0, 0, None)),
        ("b", "GET", "/x", at(1, 0, Some(0))),
        ("b", "PUT", "/z", at(1, 1, Some(0))),
        ("b", "GET", "/y/1", at(1, 1, Some(1))),
    ];
    for (host, method, path, want) in cases {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let found = t.find_match(&ask(&method, host, path, &headers)).unwrap();
        assert_eq!(found.at, want, "{host} {method} {path}");
    }
}

#[test]
fn a_trail_names_what_failed_in_each_match_tried_before_the_winner() {
    let t = table(serde_json::json!([{"name": "h", "hosts": ["h"], "rules": [
        rule(serde_json::json!([{"path": {"type": "PathPrefix", "value": "/"}}]), "root"),
        rule(serde_json::json!([{"path": {"type": "Exact", "value": "/pay"}, "method": "POST"}]), "post"),
        rule(serde_json::json!([{"path": {"type": "PathPrefix", "value": "/pay"},
            "headers": [{"name": "x-a", "value": "1"}, {"name": "x-b", "value": "2"}],
            "query_params": [{"name": "dry", "value": "1"}]}]), "checked"),
    ]}]));
    let cases: [TrailCase; 5] = [
        (
            "GET",
            "/pay",
            &[],
            vec![
                (1, Some(0), Some(Condition::Method)),
                (2, Some(0), Some(Condition::Header(0))),
                (0, Some(0), None),
            ],
        ),
        ("POST", "/pay", &[], vec![(1, Some(0), None)]),
        (
            "GET",
            "/pay/1",
            &[("x-a", "1")],
            vec![
                (1, Some(0), Some(Condition::Path)),
                (2, Some(0), Some(Condition::Header(1))),
                (0, Some(0), None),
            ],
        ),
        (
            "GET",
            "/pay/1?dry=0",
            &[("x-a", "1"), ("x-b", "2")],
            vec![
                (1, Some(0), Some(Condition::Path)),
                (2, Some(0), Some(Condition::Query(0))),
                (0, Some(0), None),
            ],
        ),
        (
            "GET",
            "/pay/1?dry=1",
            &[("x-a", "1"), ("x-b", "2")],
            vec![(1, Some(0), Some(Condition::Path)), (2, Some(0), None)],
        ),
    ];
    for (method, target, pairs, want) in cases {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let view = ask(&method, "h", target, &headers);
        let trail = t.trail(&view).unwrap();
        let steps: Steps = trail
            .tried
            .iter()
            .map(|tried| (tried.at.rule, tried.at.matched, tried.failed))
            .collect();
        assert_eq!(
            (trail.vhost, steps),
            (0, want),
            "{method} {target} {pairs:?}"
        );
        // The trail ends where routing ends.
        let found = t.find_match(&view).unwrap();
        assert_eq!(trail.tried.last().map(|tried| tried.at), Some(found.at));
    }
}

#[test]
fn a_trail_of_a_miss_tries_every_match_and_an_unserved_host_none() {
    let t = table(serde_json::json!([{"name": "h", "hosts": ["h"], "rules": [
        rule(serde_json::json!([{"path": {"type": "Exact", "value": "/a"}}, {"path": {"type": "Exact", "value": "/b"}}]), "ab"),
    ]}]));
    let headers = HeaderMap::new();
    let view = ask(&Method::GET, "h", "/c", &headers);
    assert_eq!(t.find_match(&view).err(), Some(Miss::NoRule));
    let trail = t.trail(&view).unwrap();
    let failed: Vec<_> = trail.tried.iter().map(|tried| tried.failed).collect();
    assert_eq!(failed, [Some(Condition::Path), Some(Condition::Path)]);
    let view = ask(&Method::GET, "elsewhere", "/a", &headers);
    assert_eq!(t.trail(&view), Err(Miss::NoHost));
}

#[test]
fn a_rule_lists_every_backend_with_its_weight() {
    let t = table(serde_json::json!([{"name": "h", "hosts": ["h"], "rules": [
        {"backends": [{"cluster": "v1", "weight": 90}, {"cluster": "v2", "weight": 10}, {"cluster": "v3", "weight": 0}]},
    ]}]));
    let headers = HeaderMap::new();
    let rule = t.find(&get_root(&headers)).unwrap();
    let listed: Vec<_> = rule
        .backends()
        .iter()
        .map(|b| (b.target.as_str(), b.weight()))
        .collect();
    assert_eq!(listed, [("v1", 90), ("v2", 10), ("v3", 0)]);
    assert_eq!(rule.total_weight(), 100);
}
