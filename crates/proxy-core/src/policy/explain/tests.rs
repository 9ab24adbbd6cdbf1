//! Table tests of explanations: the route, backends, authorization and refusals a listener of a snapshot gives a request.

use serde_json::json;

use super::*;
use crate::config::parse_snapshot;

const CART: &str = "spiffe://td/ns/default/sa/cart";
const SHIPPING: &str = "spiffe://td/ns/default/sa/shipping";

/// An outbound listener routing `payment`, and an inbound one guarded by two policies.
fn snapshot() -> Snapshot {
    let doc = json!({
        "listeners": [
            {"name": "outbound", "address": "127.0.0.1:0", "protocol": "http", "routes": [
                {"name": "payment.default", "hosts": ["payment", "payment.default"], "rules": [
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/charge"}, "headers": [{"name": "x-beta", "value": "1"}]}],
                     "backends": [{"cluster": "payment-v2"}]},
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/charge"}}],
                     "backends": [{"cluster": "payment-v1", "weight": 90}, {"cluster": "payment-v2", "weight": 10}],
                     "timeouts": {"request": "2s", "backend_request": "500ms"},
                     "retry": {"attempts": 2, "codes": [503], "backoff": "25ms"},
                     "filters": {"request_mirror": {"cluster": "shadow", "percent": 5}}},
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
                     "backends": [{"cluster": "payment-v1", "filters": {"url_rewrite": {"hostname": "payment-v1", "path": {"type": "ReplacePrefixMatch", "value": "/new"}}}}]},
                    {"matches": [{"path": {"type": "Exact", "value": "/drained"}}],
                     "backends": [{"cluster": "payment-v1", "weight": 0}]},
                ]},
            ]},
            {"name": "inbound", "address": "127.0.0.1:0", "protocol": "http", "cluster": "local-app",
             "timeouts": {"request": "3s"},
             "authorization": {"default": "all_authenticated", "policies": [
                {"name": "default/audit-posts", "action": "audit", "rules": [{"to": [{"methods": ["POST"]}]}]},
                {"name": "default/no-shipping", "action": "deny", "rules": [{"sources": [{"identity": SHIPPING}]}]},
                {"name": "default/callers", "action": "allow", "rules": [
                    {"sources": [{"identity": CART}], "to": [{"paths": [{"exact": "/charge"}], "methods": ["POST"]}]},
                    {"to": [{"paths": [{"prefix": "/public/"}]}]},
                ]},
             ]}},
            {"name": "db", "address": "127.0.0.1:0", "protocol": "tcp", "cluster": "local-app"},
        ],
        "clusters": [
            {"name": "payment-v1", "endpoints": ["127.0.0.1:1"]},
            {"name": "payment-v2", "endpoints": ["127.0.0.1:2"]},
            {"name": "shadow", "endpoints": []},
            {"name": "local-app", "endpoints": ["127.0.0.1:3"]},
        ],
    });
    parse_snapshot(&doc.to_string()).unwrap()
}

/// Explains `METHOD target` on `listener` for host `payment`.
fn ask(
    listener: &str,
    identity: Option<&str>,
    request: &str,
    headers: &[(&str, &str)],
) -> Result<Value, BadQuestion> {
    let (method, target) = request.split_once(' ').unwrap();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let question = Question {
        host: "payment",
        method,
        target,
        headers: &headers,
        identity,
    };
    explain(&snapshot(), listener, &question)
}

/// The clusters and weights of an answer's backends.
fn backends(answer: &Value) -> Vec<(String, u64)> {
    answer["backends"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|b| {
                    (
                        b["cluster"].as_str().unwrap().to_string(),
                        b["weight"].as_u64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_outbound_request_gets_its_rule_its_backends_and_why() {
    // (request, headers, rule and match that won, matches failed before it, backends)
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        Value,
        Value,
        Vec<(&'a str, u64)>,
    );
    let cases: [Case; 4] = [
        (
            "GET /charge",
            &[("x-beta", "1")],
            json!({"rule": 0, "match": 0}),
            // Exact paths come first in precedence.
            json!([{"rule": 3, "match": 0, "failed": {"condition": "path"}}]),
            vec![("payment-v2", 1)],
        ),
        (
            "GET /charge/7",
            &[("x-beta", "2")],
            json!({"rule": 1, "match": 0}),
            json!([
                {"rule": 3, "match": 0, "failed": {"condition": "path"}},
                {"rule": 0, "match": 0, "failed": {"condition": "header", "index": 0}},
            ]),
            vec![("payment-v1", 90), ("payment-v2", 10)],
        ),
        (
            "POST /old/x?y=1",
            &[],
            json!({"rule": 2, "match": 0}),
            json!([
                {"rule": 3, "match": 0, "failed": {"condition": "path"}},
                {"rule": 0, "match": 0, "failed": {"condition": "path"}},
                {"rule": 1, "match": 0, "failed": {"condition": "path"}},
            ]),
            vec![("payment-v1", 1)],
        ),
        (
            "GET /drained",
            &[],
            json!({"rule": 3, "match": 0}),
            json!([]),
            vec![],
        ),
    ];
    for (request, headers, matched, failed_before, want) in cases {
        let answer = ask("outbound", None, request, headers).unwrap();
        let route = &answer["route"];
        assert_eq!(route["virtual_host"], "payment.default", "{request}");
        assert_eq!(route["matched"], matched, "{request}");
        let tried = route["tried"].as_array().unwrap();
        assert_eq!(tried.last().map(|t| t["failed"].clone()), Some(Value::Null));
        assert_eq!(json!(tried[..tried.len() - 1]), failed_before, "{request}");
        let want: Vec<(String, u64)> = want.into_iter().map(|(c, w)| (c.into(), w)).collect();
        assert_eq!(backends(&answer), want, "{request}");
        assert_eq!(answer["authorization"], Value::Null);
    }
}

#[test]
fn a_request_that_goes_on_carries_its_timeouts_retries_mirrors_and_rewrites() {
    let split = ask("outbound", None, "GET /charge", &[]).unwrap();
    assert_eq!(split["refused"], Value::Null);
    assert_eq!(split["timeout_ms"], 2000);
    assert_eq!(split["backend_timeout_ms"], 500);
    assert_eq!(
        split["retry"],
        json!({"attempts": 2, "codes": [503], "backoff_ms": 25})
    );
    for backend in split["backends"].as_array().unwrap() {
        assert_eq!(
            backend["mirrors"],
            json!([{"cluster": "shadow", "percent": 5.0}])
        );
        assert_eq!(backend["path"], "/charge");
    }
    let rewritten = ask("outbound", None, "GET /old/x?y=1", &[]).unwrap();
    assert_eq!(rewritten["timeout_ms"], 15_000);
    assert_eq!(rewritten["retry"], Value::Null);
    assert_eq!(rewritten["backends"][0]["path"], "/new/x");
    assert_eq!(rewritten["backends"][0]["host"], "payment-v1");
}

#[test]
fn refusals_carry_the_status_and_reason_the_client_gets() {
    let cases = [
        ("outbound", "GET /nothing", 404, "no_route"),
        ("outbound", "GET /drained", 500, "no_backend"),
        ("inbound", "GET /ch%zzarge", 400, "invalid-path"),
        ("inbound", "GET /charge", 403, "unauthorized"),
    ];
    for (listener, request, status, reason) in cases {
        let answer = ask(listener, Some(CART), request, &[]).unwrap();
        assert_eq!(answer["refused"]["status"], status, "{request}");
        assert_eq!(answer["refused"]["reason"], reason, "{request}");
        assert_eq!(answer.get("backends"), None, "{request}");
    }
    let unserved = Question {
        host: "cart",
        method: "GET",
        target: "/",
        headers: &[],
        identity: None,
    };
    let answer = explain(&snapshot(), "outbound", &unserved).unwrap();
    assert_eq!(answer["refused"]["status"], 404);
    assert_eq!(answer["route"]["virtual_host"], Value::Null);
    assert!(answer["refused"]["detail"]
        .as_str()
        .unwrap()
        .contains("no virtual host serves \"cart\""));
}

#[test]
fn an_inbound_request_gets_its_authorization_and_the_policy_rule_behind_it() {
    // (caller, request, allowed, by, policy, rule, audited)
    type Case<'a> = (Option<&'a str>, &'a str, bool, &'a str, Value, Value, Value);
    let cases: [Case; 6] = [
        (
            Some(CART),
            "POST /charge",
            true,
            "policy",
            json!("default/callers"),
            json!(0),
            json!(["default/audit-posts"]),
        ),
        // The path is normalised before the policies see it.
        (
            Some(CART),
            "POST //x/../charge",
            true,
            "policy",
            json!("default/callers"),
            json!(0),
            json!(["default/audit-posts"]),
        ),
        (
            None,
            "GET /public/logo",
            true,
            "policy",
            json!("default/callers"),
            json!(1),
            json!([]),
        ),
        (
            Some(SHIPPING),
            "GET /public/logo",
            false,
            "policy",
            json!("default/no-shipping"),
            json!(0),
            json!([]),
        ),
        (
            Some(CART),
            "GET /charge",
            false,
            "no_allow_match",
            Value::Null,
            Value::Null,
            json!([]),
        ),
        (
            None,
            "POST /charge",
            false,
            "no_allow_match",
            Value::Null,
            Value::Null,
            json!(["default/audit-posts"]),
        ),
    ];
    for (identity, request, allowed, by, policy, rule, audited) in cases {
        let answer = ask("inbound", identity, request, &[]).unwrap();
        let authz = &answer["authorization"];
        assert_eq!(authz["default"], "all_authenticated");
        assert_eq!(
            authz["decision"],
            json!({"allowed": allowed, "by": by, "policy": policy, "rule": rule}),
            "{identity:?} {request}"
        );
        assert_eq!(authz["audited"], audited, "{identity:?} {request}");
        if allowed {
            assert_eq!(answer["route"], json!({"cluster": "local-app"}));
            assert_eq!(backends(&answer), [("local-app".to_string(), 1)]);
            assert_eq!(answer["backends"][0]["path"], answer["path"]);
            assert_eq!(answer["timeout_ms"], 3000);
        } else {
            assert_eq!(answer["refused"]["status"], 403, "{identity:?} {request}");
        }
    }
    assert_eq!(
        ask("inbound", Some(CART), "POST //x/../charge", &[]).unwrap()["path"],
        "/charge"
    );
}

/// Listener, request, headers, and what the refusal says.
type BadCase<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

#[test]
fn a_question_that_is_no_request_is_refused_with_what_is_wrong() {
    let cases: [BadCase; 6] = [
        ("nowhere", "GET /", &[], "no listener \"nowhere\""),
        ("db", "GET /", &[], "TCP listener"),
        ("outbound", "G\u{e9}T /", &[], "not an HTTP method"),
        ("outbound", "GET charge", &[], "not a request path"),
        (
            "outbound",
            "GET /",
            &[("bad name", "1")],
            "not a header name",
        ),
        (
            "outbound",
            "GET /",
            &[("host", "payment")],
            "host is given apart",
        ),
    ];
    for (listener, request, headers, says) in cases {
        let err = ask(listener, None, request, headers).unwrap_err();
        assert!(err.to_string().contains(says), "{request}: {err}");
    }
}
