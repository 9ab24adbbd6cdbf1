//! Table tests of authorization: evaluation order, rule semantics, TCP connections, path normalisation.

use super::*;

const CART: &str = "spiffe://td/ns/default/sa/cart";
const SHIPPING: &str = "spiffe://td/ns/default/sa/shipping";
const OPS: &str = "spiffe://td/ns/ops/sa/debugger";

fn authorizer(json: serde_json::Value) -> Authorizer {
    let config: Authorization = serde_json::from_value(json).unwrap();
    Authorizer::compile(&config)
}

/// Evaluates a request (`target` = "METHOD /path", or "tcp" for a connection);
/// returns (allowed, deciding label, audit policies that matched).
fn decide(authz: &Authorizer, identity: Option<&str>, target: &str) -> (bool, String, Vec<String>) {
    let (method, path) = target.split_once(' ').unwrap_or(("", ""));
    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
    let http = (target != "tcp").then_some(HttpView {
        method: &method,
        path,
    });
    let mut audited = Vec::new();
    let decision = authz.evaluate(&AuthzRequest { identity, http }, |i| {
        audited.push(authz.policy_name(i).unwrap().to_string())
    });
    (
        decision.allowed,
        authz.label(decision.by).to_string(),
        audited,
    )
}

fn check(authz: &Authorizer, cases: &[(Option<&str>, &str, bool, &str)]) {
    for (identity, target, allowed, by) in cases {
        let (got, label, _) = decide(authz, *identity, target);
        assert_eq!(
            (got, label.as_str()),
            (*allowed, *by),
            "{identity:?} {target}"
        );
    }
}

fn payment_callers() -> serde_json::Value {
    serde_json::json!({
        "name": "default/payment-callers",
        "action": "allow",
        "rules": [{
            "sources": [{"identity": CART}, {"identity_prefix": "spiffe://td/ns/ops/sa/"}],
            "to": [{"paths": [{"exact": "/charge"}, {"prefix": "/refunds/"}], "methods": ["POST"]}]
        }]
    })
}

#[test]
fn allow_policies_allow_only_what_they_match() {
    let authz = authorizer(serde_json::json!({"policies": [payment_callers()]}));
    check(
        &authz,
        &[
            (Some(CART), "POST /charge", true, "default/payment-callers"),
            (
                Some(OPS),
                "POST /refunds/7",
                true,
                "default/payment-callers",
            ),
            (Some(CART), "GET /charge", false, "default"),
            (Some(CART), "POST /charge/x", false, "default"),
            (Some(CART), "POST /refunds", false, "default"),
            (Some(SHIPPING), "POST /charge", false, "default"),
            (None, "POST /charge", false, "default"),
            // A prefix of an ID is not the ID; a prefix source ends at a '/'.
            (
                Some("spiffe://td/ns/default/sa/cart2"),
                "POST /charge",
                false,
                "default",
            ),
            (
                Some("spiffe://td/ns/ops2/sa/x"),
                "POST /charge",
                false,
                "default",
            ),
        ],
    );
    let decision = authz.evaluate(
        &AuthzRequest {
            identity: Some(SHIPPING),
            http: Some(HttpView {
                method: &Method::POST,
                path: "/charge",
            }),
        },
        |_| {},
    );
    assert_eq!(decision.by, Decider::NoAllowMatch);
}

#[test]
fn a_matching_deny_rule_refuses_whatever_allow_policies_say() {
    let authz = authorizer(serde_json::json!({"policies": [
        payment_callers(),
        {"name": "default/no-refunds", "action": "deny", "rules": [{"to": [{"paths": [{"prefix": "/refunds/"}]}]}]},
        {"name": "default/block-ops", "action": "deny", "rules": [{"sources": [{"identity_prefix": "spiffe://td/ns/ops/sa/"}], "to": [{"methods": ["DELETE"]}]}]},
    ]}));
    check(
        &authz,
        &[
            (Some(CART), "POST /charge", true, "default/payment-callers"),
            (Some(OPS), "POST /refunds/7", false, "default/no-refunds"),
            (None, "GET /refunds/7", false, "default/no-refunds"),
            (Some(OPS), "DELETE /charge", false, "default/block-ops"),
            (Some(CART), "DELETE /charge", false, "default"),
        ],
    );
}

#[test]
fn audit_policies_only_count() {
    let authz = authorizer(serde_json::json!({"default": "deny", "policies": [
        {"name": "ns/audit-all", "action": "audit", "rules": [{}]},
        {"name": "ns/audit-cart", "action": "audit", "rules": [{"sources": [{"identity": CART}]}]},
        {"name": "ns/audit-none", "action": "audit", "rules": [{"sources": []}]},
        {"name": "ns/deny-shipping", "action": "deny", "rules": [{"sources": [{"identity": SHIPPING}]}]},
    ]}));
    let cases: [(Option<&str>, bool, &str, &[&str]); 3] = [
        (
            Some(CART),
            false,
            "default",
            &["ns/audit-all", "ns/audit-cart"],
        ),
        (None, false, "default", &["ns/audit-all"]),
        // Audit is counted even for a request a deny policy refuses.
        (Some(SHIPPING), false, "ns/deny-shipping", &["ns/audit-all"]),
    ];
    for (identity, allowed, by, audited) in cases {
        let got = decide(&authz, identity, "GET /");
        assert_eq!(
            got,
            (
                allowed,
                by.to_string(),
                audited.iter().map(|s| s.to_string()).collect()
            ),
            "{identity:?}"
        );
    }
    // With only audit policies the default decides.
    let lenient = authorizer(serde_json::json!({"policies": [
        {"name": "ns/audit-all", "action": "audit", "rules": [{}]},
    ]}));
    assert_eq!(
        decide(&lenient, None, "GET /"),
        (
            true,
            "default".to_string(),
            vec!["ns/audit-all".to_string()]
        )
    );
}

#[test]
fn the_default_decides_when_no_policy_does() {
    let cases = [
        ("all_unauthenticated", None, true),
        ("all_unauthenticated", Some(CART), true),
        ("all_authenticated", None, false),
        ("all_authenticated", Some(CART), true),
        ("deny", None, false),
        ("deny", Some(CART), false),
    ];
    for (default, identity, allowed) in cases {
        let authz = authorizer(serde_json::json!({"default": default, "policies": [
            {"name": "ns/deny-shipping", "action": "deny", "rules": [{"sources": [{"identity": SHIPPING}]}]},
        ]}));
        for target in ["GET /", "tcp"] {
            assert_eq!(
                decide(&authz, identity, target),
                (allowed, "default".to_string(), vec![]),
                "{default} {identity:?} {target}"
            );
        }
    }
    // Allow policies replace the default, even a lenient one or a strict one.
    for default in ["all_unauthenticated", "deny"] {
        let authz = authorizer(serde_json::json!({"default": default, "policies": [
            {"name": "ns/any-cart", "action": "allow", "rules": [{"sources": [{"identity": CART}]}]},
        ]}));
        check(
            &authz,
            &[
                (Some(CART), "GET /", true, "ns/any-cart"),
                (None, "GET /", false, "default"),
            ],
        );
    }
}

#[test]
fn absent_and_empty_lists_differ() {
    let cases = [
        // (rule, anonymous GET /, cart GET /)
        (serde_json::json!({}), true, true),
        (serde_json::json!({"sources": []}), false, false),
        (serde_json::json!({"to": []}), false, false),
        (serde_json::json!({"to": [{}]}), true, true),
        (
            serde_json::json!({"to": [{"paths": [], "methods": []}]}),
            true,
            true,
        ),
        (
            serde_json::json!({"sources": [{"identity": CART}]}),
            false,
            true,
        ),
        (
            serde_json::json!({"to": [{"methods": ["POST"]}]}),
            false,
            false,
        ),
        (
            serde_json::json!({"to": [{"paths": [{"prefix": "/"}]}]}),
            true,
            true,
        ),
    ];
    for (rule, anonymous, cart) in cases {
        let authz = authorizer(serde_json::json!({"policies": [
            {"name": "ns/p", "action": "allow", "rules": [rule.clone()]},
        ]}));
        assert_eq!(decide(&authz, None, "GET /").0, anonymous, "{rule}");
        assert_eq!(decide(&authz, Some(CART), "GET /").0, cart, "{rule}");
    }
    // An allow policy without rules allows nothing.
    let empty = authorizer(serde_json::json!({"policies": [{"name": "ns/p", "action": "allow"}]}));
    assert!(!decide(&empty, Some(CART), "GET /").0);
}

#[test]
fn tcp_connections_match_sources_and_fail_closed_on_request_conditions() {
    let authz = authorizer(serde_json::json!({"policies": [
        {"name": "ns/cart-any", "action": "allow", "rules": [{"sources": [{"identity": CART}]}]},
        {"name": "ns/shipping-posts", "action": "allow", "rules": [{"sources": [{"identity": SHIPPING}], "to": [{"methods": ["POST"]}]}]},
        {"name": "ns/ops-paths", "action": "allow", "rules": [{"sources": [{"identity": OPS}], "to": [{"paths": [{"prefix": "/"}]}]}]},
        {"name": "ns/audit-admin", "action": "audit", "rules": [{"to": [{"paths": [{"prefix": "/admin"}]}]}]},
    ]}));
    check(
        &authz,
        &[
            (Some(CART), "tcp", true, "ns/cart-any"),
            // An allow rule with a method or path condition cannot match a connection.
            (Some(SHIPPING), "tcp", false, "default"),
            (Some(OPS), "tcp", false, "default"),
            (None, "tcp", false, "default"),
        ],
    );
    assert!(
        decide(&authz, Some(CART), "tcp").2.is_empty(),
        "audit with conditions"
    );

    let deny = authorizer(serde_json::json!({"policies": [
        {"name": "ns/no-admin", "action": "deny", "rules": [{"sources": [{"identity": SHIPPING}], "to": [{"paths": [{"prefix": "/admin/"}]}]}]},
        {"name": "ns/nothing", "action": "deny", "rules": [{"to": []}]},
    ]}));
    check(
        &deny,
        &[
            // A deny rule with a path condition refuses the whole connection of its sources.
            (Some(SHIPPING), "tcp", false, "ns/no-admin"),
            (Some(CART), "tcp", true, "default"),
            (Some(SHIPPING), "GET /status", true, "default"),
            (Some(SHIPPING), "GET /admin/x", false, "ns/no-admin"),
        ],
    );
}

#[test]
fn the_first_matching_policy_of_an_action_decides() {
    let authz = authorizer(serde_json::json!({"policies": [
        {"name": "ns/a", "action": "allow", "rules": [{"to": [{"paths": [{"prefix": "/a"}]}]}]},
        {"name": "ns/b", "action": "allow", "rules": [{"to": [{"paths": [{"prefix": "/"}]}]}]},
    ]}));
    check(
        &authz,
        &[
            (None, "GET /a", true, "ns/a"),
            (None, "GET /b", true, "ns/b"),
        ],
    );
}

#[test]
fn policy_paths_are_normalised_like_request_paths() {
    let authz = authorizer(serde_json::json!({"policies": [
        {"name": "ns/p", "action": "allow", "rules": [{"to": [{"paths": [
            {"exact": "/%63harge"},
            {"exact": "/a//b/../c"},
            {"prefix": "/files/%2f"},
            {"prefix": "/dot/."},
        ]}]}]},
    ]}));
    for (path, allowed) in [
        ("/charge", true),
        ("/a/c", true),
        ("/files/%2Fx", true),
        ("/dot/.git", true),
        ("/dot/x", false),
        ("/%63harge", false),
    ] {
        assert_eq!(
            decide(&authz, None, &format!("GET {path}")).0,
            allowed,
            "{path}"
        );
    }
}

#[test]
fn a_decision_names_the_rule_that_made_it() {
    let authz = authorizer(serde_json::json!({"policies": [
        {"name": "ns/no-admin", "action": "deny", "rules": [
            {"sources": [{"identity": SHIPPING}]},
            {"to": [{"paths": [{"prefix": "/admin/"}]}]},
        ]},
        {"name": "ns/readers", "action": "allow", "rules": [
            {"to": [{"methods": ["GET"]}]},
        ]},
        {"name": "ns/writers", "action": "allow", "rules": [
            {"sources": [{"identity": OPS}]},
            {"sources": [{"identity": CART}], "to": [{"methods": ["POST"]}]},
        ]},
    ]}));
    let cases = [
        (Some(SHIPPING), "GET /", false, Decider::Policy(0), Some(0)),
        (
            Some(CART),
            "GET /admin/users",
            false,
            Decider::Policy(0),
            Some(1),
        ),
        (None, "GET /items", true, Decider::Policy(1), Some(0)),
        (Some(CART), "POST /items", true, Decider::Policy(2), Some(1)),
        (
            Some(OPS),
            "DELETE /items",
            true,
            Decider::Policy(2),
            Some(0),
        ),
        (
            Some(CART),
            "DELETE /items",
            false,
            Decider::NoAllowMatch,
            None,
        ),
    ];
    for (identity, target, allowed, by, rule) in cases {
        let (method, path) = target.split_once(' ').unwrap();
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let http = Some(HttpView {
            method: &method,
            path,
        });
        let decision = authz.evaluate(&AuthzRequest { identity, http }, |_| {});
        assert_eq!(
            decision,
            Decision { allowed, by, rule },
            "{identity:?} {target}"
        );
    }
    let lenient = authorizer(serde_json::json!({"policies": []}));
    let decision = lenient.evaluate(
        &AuthzRequest {
            identity: None,
            http: None,
        },
        |_| {},
    );
    assert_eq!(decision.rule, None);
}
