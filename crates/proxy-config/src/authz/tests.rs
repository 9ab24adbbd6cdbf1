//! Table tests of authorization config: policies and rules parse and round trip, and errors name the field.

use super::*;
use crate::parse_snapshot;
use crate::tests::err;

fn with_authorization(protocol: &str, authorization: &str) -> String {
    format!(
        r#"{{"listeners":[{{"name":"in","address":"127.0.0.1:0","protocol":"{protocol}","cluster":"b","authorization":{authorization}}}],"clusters":[{{"name":"b"}}]}}"#
    )
}

#[test]
fn authorization_parses_and_round_trips() {
    let json = with_authorization(
        "http",
        r#"{"default":"all_authenticated","policies":[
            {"name":"default/payment-callers","action":"allow","rules":[
                {"sources":[{"identity":"spiffe://td/ns/default/sa/cart"},{"identity_prefix":"spiffe://td/ns/ops/sa/"}],
                 "to":[{"paths":[{"exact":"/charge"},{"prefix":"/refunds/"}],"methods":["POST"]}]},
                {"sources":[]},
                {"to":[]},
                {}]},
            {"name":"default/audit","action":"audit"},
            {"name":"default/deny","action":"deny","rules":[{"to":[{}]}]}]}"#,
    );
    let snapshot = parse_snapshot(&json).unwrap();
    let authz = snapshot.listeners[0].authorization.as_ref().unwrap();
    assert_eq!(authz.default, AuthzDefault::AllAuthenticated);
    let rules = &authz.policies[0].rules;
    assert_eq!(rules[0].sources.as_ref().unwrap().len(), 2);
    assert_eq!(
        rules[0].to.as_ref().unwrap()[0].paths[1],
        AuthzPath::Prefix("/refunds/".to_string())
    );
    // Absent and empty lists are different rules, and stay so.
    assert_eq!(rules[1].sources, Some(vec![]));
    assert_eq!(rules[2].to, Some(vec![]));
    assert_eq!(rules[3], AuthzRule::default());
    assert!(authz.policies[1].rules.is_empty());
    let again = serde_json::to_string(&snapshot).unwrap();
    assert_eq!(parse_snapshot(&again).unwrap(), snapshot);
    // Both fields have defaults, and TCP listeners take it too.
    let empty = parse_snapshot(&with_authorization("tcp", "{}")).unwrap();
    assert_eq!(
        empty.listeners[0].authorization,
        Some(Authorization::default())
    );
    assert_eq!(
        Authorization::default().default,
        AuthzDefault::AllUnauthenticated
    );
}

#[test]
fn authorization_errors_name_the_field() {
    let policy = |rule: &str| {
        with_authorization(
            "http",
            &format!(r#"{{"policies":[{{"name":"ns/p","action":"allow","rules":[{rule}]}}]}}"#),
        )
    };
    let at = "listeners[0].authorization";
    let many = |item: &str, n: usize| vec![item; n].join(",");
    let cases = [
        (
            with_authorization("http", r#"{"default":"allow"}"#),
            format!("{at}.default"),
            "unknown variant",
        ),
        (
            with_authorization("http", r#"{"mode":"x"}"#),
            format!("{at}.mode"),
            "unknown field",
        ),
        (
            with_authorization(
                "http",
                r#"{"policies":[{"name":"ns/p","action":"permit"}]}"#,
            ),
            format!("{at}.policies[0].action"),
            "unknown variant",
        ),
        (
            with_authorization(
                "http",
                r#"{"policies":[{"name":"Bad Name","action":"deny"}]}"#,
            ),
            format!("{at}.policies[0].name"),
            "not a valid policy name",
        ),
        (
            with_authorization(
                "http",
                r#"{"policies":[{"name":"default","action":"deny"}]}"#,
            ),
            format!("{at}.policies[0].name"),
            "reserved",
        ),
        (
            with_authorization(
                "http",
                r#"{"policies":[{"name":"ns/p","action":"deny"},{"name":"ns/p","action":"allow"}]}"#,
            ),
            format!("{at}.policies[1].name"),
            "duplicate policy name",
        ),
        (
            policy(r#"{"sources":[{"identity":"https://td/a"}]}"#),
            format!("{at}.policies[0].rules[0].sources[0].identity"),
            "must start with \"spiffe://\"",
        ),
        (
            policy(
                r#"{"sources":[{"identity":"spiffe://td/a","identity_prefix":"spiffe://td/"}]}"#,
            ),
            format!("{at}.policies[0].rules[0].sources[0]"),
            "",
        ),
        (
            policy(r#"{"sources":[{"principal":"x"}]}"#),
            format!("{at}.policies[0].rules[0].sources[0]"),
            "unknown variant",
        ),
        (
            policy(r#"{"sources":[{"identity_prefix":"spiffe://td"}]}"#),
            format!("{at}.policies[0].rules[0].sources[0].identity_prefix"),
            "must include the '/' after the trust domain",
        ),
        (
            policy(r#"{"sources":[{"identity_prefix":"td/ns/"}]}"#),
            format!("{at}.policies[0].rules[0].sources[0].identity_prefix"),
            "must start with \"spiffe://\"",
        ),
        (
            policy(r#"{"sources":[{"identity_prefix":"spiffe://TD/"}]}"#),
            format!("{at}.policies[0].rules[0].sources[0].identity_prefix"),
            "trust domain",
        ),
        (
            policy(r#"{"sources":[{"identity_prefix":"spiffe://td/a b"}]}"#),
            format!("{at}.policies[0].rules[0].sources[0].identity_prefix"),
            "the path may hold only",
        ),
        (
            policy(r#"{"to":[{"paths":[{"exact":"charge"}]}]}"#),
            format!("{at}.policies[0].rules[0].to[0].paths[0].exact"),
            "must start with '/'",
        ),
        (
            policy(r#"{"to":[{"paths":[{"prefix":"/a%zz"}]}]}"#),
            format!("{at}.policies[0].rules[0].to[0].paths[0].prefix"),
            "malformed percent-encoding",
        ),
        (
            policy(r#"{"to":[{"paths":[{"exact":"/a?b=1"}]}]}"#),
            format!("{at}.policies[0].rules[0].to[0].paths[0].exact"),
            "query",
        ),
        (
            policy(r#"{"to":[{"paths":[{"exact":"/a b"}]}]}"#),
            format!("{at}.policies[0].rules[0].to[0].paths[0].exact"),
            "percent-encode it",
        ),
        (
            policy(r#"{"to":[{"paths":[{"regex":"/a.*"}]}]}"#),
            format!("{at}.policies[0].rules[0].to[0].paths[0]"),
            "unknown variant",
        ),
        (
            policy(r#"{"to":[{"methods":["GE T"]}]}"#),
            format!("{at}.policies[0].rules[0].to[0].methods[0]"),
            "not a valid method",
        ),
        (
            policy(r#"{"to":[{"methods":[""]}]}"#),
            format!("{at}.policies[0].rules[0].to[0].methods[0]"),
            "not a valid method",
        ),
        (
            policy(r#"{"to":[{"ports":[80]}]}"#),
            format!("{at}.policies[0].rules[0].to[0].ports"),
            "unknown field",
        ),
        (
            policy(&format!(
                r#"{{"sources":[{}]}}"#,
                many(r#"{"identity":"spiffe://td/a"}"#, 65)
            )),
            format!("{at}.policies[0].rules[0].sources"),
            "at most 64",
        ),
        (
            policy(&format!(r#"{{"to":[{}]}}"#, many("{}", 17))),
            format!("{at}.policies[0].rules[0].to"),
            "at most 16",
        ),
        (
            policy(&format!(
                r#"{{"to":[{{"paths":[{}]}}]}}"#,
                many(r#"{"exact":"/a"}"#, 65)
            )),
            format!("{at}.policies[0].rules[0].to[0].paths"),
            "at most 64",
        ),
        (
            policy(&format!(
                r#"{{"to":[{{"paths":[{{"exact":"/{}"}}]}}]}}"#,
                "a".repeat(1024)
            )),
            format!("{at}.policies[0].rules[0].to[0].paths[0].exact"),
            "longer than 1024",
        ),
        (
            policy(&format!(
                r#"{{"sources":[{{"identity_prefix":"spiffe://td/{}"}}]}}"#,
                "a".repeat(2048)
            )),
            format!("{at}.policies[0].rules[0].sources[0].identity_prefix"),
            "longer than 2048",
        ),
        (
            policy(&many("{}", 65)),
            format!("{at}.policies[0].rules"),
            "at most 64",
        ),
    ];
    for (json, path, fragment) in cases {
        let e = err(&json);
        assert_eq!(e.path, path, "{e}");
        assert!(e.message.contains(fragment), "{e}");
    }
    let policies: Vec<String> = (0..1025)
        .map(|i| format!(r#"{{"name":"ns/p{i}","action":"deny"}}"#))
        .collect();
    let json = with_authorization(
        "http",
        &format!(r#"{{"policies":[{}]}}"#, policies.join(",")),
    );
    assert_eq!(err(&json).path, format!("{at}.policies"));
}
