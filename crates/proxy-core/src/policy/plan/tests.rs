//! Table tests of planning: authorization before routing, then cluster, timeouts, retries, mirrors and filters.

use http::{HeaderMap, Method, StatusCode};

use super::*;

const CART: &str = "spiffe://td/ns/default/sa/cart";

/// A listener's policy from its config's `routes` (or `cluster`), `authorization`
/// and a request timeout of 15 s; clusters are their names.
fn policy(json: serde_json::Value) -> ListenerPolicy<String> {
    let mut listener =
        serde_json::json!({"name": "web", "address": "127.0.0.1:0", "protocol": "http"});
    if let (Some(listener), Some(fields)) = (listener.as_object_mut(), json.as_object()) {
        listener.extend(fields.clone());
    }
    let cfg: config::Listener = serde_json::from_value(listener).unwrap();
    ListenerPolicy::compile(&cfg, |name| Some(name.to_string()))
}

/// What a plan says, in a form a table can hold.
#[derive(Debug, PartialEq)]
struct Summary {
    cluster: String,
    timeout_ms: u128,
    backend_timeout_ms: Option<u128>,
    retries: Option<u32>,
    mirrors: Vec<String>,
    filtered: bool,
    matched_prefix: String,
    authz: Option<bool>,
}

fn summary(plan: &Plan<'_, String>) -> Summary {
    Summary {
        cluster: plan.cluster.clone(),
        timeout_ms: plan.timeout.as_millis(),
        backend_timeout_ms: plan.backend_timeout.map(|t| t.as_millis()),
        retries: plan.retry.map(|r| r.attempts),
        mirrors: plan.mirrors.iter().map(|m| m.target.clone()).collect(),
        filtered: plan.filters.is_some(),
        matched_prefix: plan.matched_prefix().to_string(),
        authz: plan.authz.map(|d| d.allowed),
    }
}

/// Plans `METHOD /path` on host `h` from `identity`, with the first backend drawn;
/// returns the plan's summary and the audit policies that matched, by index.
fn ask(
    policy: &ListenerPolicy<String>,
    identity: Option<&str>,
    target: &str,
) -> (Result<Summary, Refusal>, Vec<usize>) {
    let (method, path) = target.split_once(' ').unwrap();
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let headers = HeaderMap::new();
    let ask = Ask {
        request: RequestView {
            host: "h",
            method: &method,
            path,
            query: None,
            headers: &headers,
        },
        identity,
    };
    let mut audited = Vec::new();
    let planned = plan(&ask, policy, |_| 0, |index| audited.push(index));
    (planned.map(|p| summary(&p)), audited)
}

fn plain(cluster: &str, timeout_ms: u128) -> Summary {
    Summary {
        cluster: cluster.to_string(),
        timeout_ms,
        backend_timeout_ms: None,
        retries: None,
        mirrors: vec![],
        filtered: false,
        matched_prefix: String::new(),
        authz: None,
    }
}

#[test]
fn a_listener_with_one_cluster_sends_everything_there_on_its_timeout() {
    let policy = policy(serde_json::json!({"cluster": "app", "timeouts": {"request": "3s"}}));
    for target in ["GET /", "POST /orders", "DELETE /x/y"] {
        assert_eq!(ask(&policy, None, target), (Ok(plain("app", 3000)), vec![]));
    }
}

#[test]
fn rules_set_cluster_timeouts_retries_mirrors_and_filters() {
    let policy = policy(
        serde_json::json!({"routes": [{"name": "r", "hosts": ["h"], "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/api/"}}],
             "backends": [{"cluster": "api"}],
             "timeouts": {"request": "2s", "backend_request": "500ms"},
             "retry": {"attempts": 2, "codes": [503]},
             "filters": {"url_rewrite": {"path": {"type": "ReplacePrefixMatch", "value": "/v2"}}}},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/shadow"}}],
             "backends": [{"cluster": "live"}],
             "filters": {"request_mirror": {"cluster": "copy", "percent": 10}}},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/none"}}],
             "backends": [{"cluster": "once"}],
             "retry": {"attempts": 0}},
            {"backends": [{"cluster": "web"}]},
        ]}]}),
    );
    let api = Summary {
        cluster: "api".into(),
        timeout_ms: 2000,
        backend_timeout_ms: Some(500),
        retries: Some(2),
        filtered: true,
        matched_prefix: "/api".into(),
        ..plain("", 0)
    };
    // A mirror is a filter too (no request edits come of it).
    let shadow = Summary {
        mirrors: vec!["copy".into()],
        filtered: true,
        matched_prefix: "/shadow".into(),
        ..plain("live", 15_000)
    };
    // A rule that allows no retry plans none.
    let once = Summary {
        matched_prefix: "/none".into(),
        ..plain("once", 15_000)
    };
    let cases = [
        ("GET /api/orders", api),
        ("GET /shadow/x", shadow),
        ("POST /none", once),
        ("GET /", plain("web", 15_000)),
    ];
    for (target, want) in cases {
        assert_eq!(ask(&policy, None, target).0, Ok(want), "{target}");
    }
}

#[test]
fn misses_are_refusals_that_say_what_did_not_match() {
    let policy = policy(
        serde_json::json!({"routes": [{"name": "r", "hosts": ["h"], "rules": [
            {"matches": [{"path": {"type": "Exact", "value": "/only"}}], "backends": [{"cluster": "a"}]},
            {"matches": [{"path": {"type": "Exact", "value": "/drained"}}],
             "backends": [{"cluster": "a", "weight": 0}]},
        ]}]}),
    );
    assert_eq!(
        ask(&policy, None, "GET /other").0,
        Err(Refusal::NoRoute(Miss::NoRule))
    );
    assert_eq!(
        ask(&policy, None, "GET /drained").0,
        Err(Refusal::NoBackend(MatchedAt {
            vhost: 0,
            rule: 1,
            matched: Some(0)
        }))
    );
    let headers = HeaderMap::new();
    let view = RequestView {
        host: "h",
        method: &Method::GET,
        path: "/other",
        query: None,
        headers: &headers,
    };
    let cases = [
        (
            Refusal::NoRoute(Miss::NoRule),
            StatusCode::NOT_FOUND,
            "no rule of \"h\" matches GET /other",
        ),
        (
            Refusal::NoRoute(Miss::NoHost),
            StatusCode::NOT_FOUND,
            "no virtual host serves \"h\"",
        ),
        (
            Refusal::NoBackend(MatchedAt {
                vhost: 0,
                rule: 0,
                matched: None,
            }),
            StatusCode::INTERNAL_SERVER_ERROR,
            "",
        ),
    ];
    for (refusal, status, says) in cases {
        let err = refusal.error(&view);
        assert_eq!(err.status(), status, "{refusal:?}");
        assert!(err.to_string().contains(says), "{refusal:?}: {err}");
    }
}

/// Who asks, what, the plan or the refusal, and the audit policies that matched.
type Case<'a> = (
    Option<&'a str>,
    &'a str,
    Result<Summary, &'a str>,
    Vec<usize>,
);

#[test]
fn authorization_decides_before_routing_and_counts_audits() {
    let policy = policy(serde_json::json!({
        "routes": [{"name": "r", "hosts": ["h"], "rules": [
            {"matches": [{"path": {"type": "Exact", "value": "/known"}}], "backends": [{"cluster": "a"}]},
        ]}],
        "authorization": {"policies": [
            {"name": "audit-posts", "action": "audit", "rules": [{"to": [{"methods": ["POST"]}]}]},
            {"name": "cart-only", "action": "allow", "rules": [{"sources": [{"identity": CART}]}]},
        ]},
    }));
    let allowed = Summary {
        authz: Some(true),
        ..plain("a", 15_000)
    };
    // Who is refused never learns whether the route exists.
    let cases: [Case; 4] = [
        (Some(CART), "GET /known", Ok(allowed), vec![]),
        (Some(CART), "POST /elsewhere", Err("no route"), vec![0]),
        (None, "GET /known", Err("unauthorized"), vec![]),
        (None, "POST /elsewhere", Err("unauthorized"), vec![0]),
    ];
    for (identity, target, want, audits) in cases {
        let (got, audited) = ask(&policy, identity, target);
        let got = got.map_err(|refusal| match refusal {
            Refusal::Unauthorized(decision) => {
                assert!(!decision.allowed);
                "unauthorized"
            }
            Refusal::NoRoute(_) => "no route",
            Refusal::NoBackend(_) => "no backend",
        });
        assert_eq!((got, audited), (want, audits), "{identity:?} {target}");
    }
}

#[test]
fn a_plan_says_which_rule_and_match_it_follows() {
    let routes = policy(
        serde_json::json!({"routes": [{"name": "r", "hosts": ["h"], "rules": [
            {"matches": [{"path": {"type": "Exact", "value": "/a"}}, {"path": {"type": "PathPrefix", "value": "/b"}}],
             "backends": [{"cluster": "ab"}]},
            {"backends": [{"cluster": "rest"}]},
        ]}]}),
    );
    let headers = HeaderMap::new();
    let cases = [
        ("/a", "ab", 0, Some(0)),
        ("/b/1", "ab", 0, Some(1)),
        ("/c", "rest", 1, None),
    ];
    for (path, cluster, rule, matched) in cases {
        let ask = Ask {
            request: RequestView {
                host: "h",
                method: &Method::GET,
                path,
                query: None,
                headers: &headers,
            },
            identity: None,
        };
        let plan = plan(&ask, &routes, |_| 0, |_| {}).unwrap();
        let at = plan.route.as_ref().map(|found| found.at);
        assert_eq!(plan.cluster, cluster, "{path}");
        assert_eq!(
            at,
            Some(crate::policy::route::MatchedAt {
                vhost: 0,
                rule,
                matched
            }),
            "{path}"
        );
    }
    let one = policy(serde_json::json!({"cluster": "app"}));
    let ask = Ask {
        request: RequestView {
            host: "h",
            method: &Method::GET,
            path: "/",
            query: None,
            headers: &headers,
        },
        identity: None,
    };
    assert!(plan(&ask, &one, |_| 0, |_| {}).unwrap().route.is_none());
}

#[test]
fn paths_are_normalised_only_where_authorization_looks_at_them() {
    let open = policy(serde_json::json!({"cluster": "app"}));
    let guarded = policy(serde_json::json!({"cluster": "app", "authorization": {"policies": []}}));
    assert_eq!(open.request_path("/a/../b").unwrap(), "/a/../b");
    assert_eq!(guarded.request_path("/a/../b").unwrap(), "/b");
    assert_eq!(guarded.request_path("//%63harge").unwrap(), "/charge");
    let err = guarded.request_path("/ch%zzarge").unwrap_err();
    assert_eq!(
        (err.status(), err.reason()),
        (StatusCode::BAD_REQUEST, "invalid-path")
    );
}
