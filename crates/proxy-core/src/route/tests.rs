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
            HeaderValue::from_str(value).unwrap(),
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
