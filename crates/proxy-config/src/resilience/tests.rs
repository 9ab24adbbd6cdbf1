//! Table tests of retries, mirrors, retry budgets and faults: defaults, round trips, and errors that name the field.

use super::*;
use crate::parse_snapshot;
use crate::tests::err;

#[test]
fn retries_mirrors_budgets_and_faults_parse_with_defaults_and_round_trip() {
    let json = r#"{"listeners":[{"name":"out","address":"127.0.0.1:1","protocol":"http","routes":[
        {"name":"h","hosts":["h"],"rules":[
            {"backends":[{"cluster":"b","filters":{"request_mirror":{"cluster":"shadow","percent":0.5}}}],
             "retry":{"attempts":2,"codes":[500,502,503,504],"backoff":"50ms"},
             "filters":{"request_mirror":{"cluster":"shadow"}}},
            {"backends":[{"cluster":"b"}],"retry":{}}]}]}],
        "clusters":[{"name":"b","retry_budget":{"percent":12.5},
                     "fault":{"delay":{"percent":10,"duration":"2s"},"abort":{"percent":0.1,"status":503}}},
                    {"name":"shadow"}]}"#;
    let snapshot = parse_snapshot(json).unwrap();
    let rules = &snapshot.listeners[0].routes[0].rules;
    let retry = rules[0].retry.as_ref().unwrap();
    assert_eq!(
        (retry.attempts, retry.codes.as_slice(), retry.backoff),
        (2, &[500, 502, 503, 504][..], Duration::from_millis(50))
    );
    let mirror = rules[0].filters.as_ref().unwrap().request_mirror.as_ref();
    assert_eq!(mirror.unwrap().percent, 100.0);
    let backend_mirror = rules[0].backends[0].filters.as_ref().unwrap();
    assert_eq!(backend_mirror.request_mirror.as_ref().unwrap().percent, 0.5);
    // An empty retry: one retry, of connection failures only, 25ms backoff.
    let retry = rules[1].retry.as_ref().unwrap();
    assert_eq!(
        (retry.attempts, retry.codes.is_empty(), retry.backoff),
        (1, true, Duration::from_millis(25))
    );
    let b = &snapshot.clusters[0];
    assert_eq!(b.retry_budget.percent, 12.5);
    assert_eq!(b.retry_budget.min_retries_per_second, 10);
    let fault = b.fault.as_ref().unwrap();
    assert_eq!(fault.delay.unwrap().duration, Duration::from_secs(2));
    assert_eq!(fault.abort.unwrap().status, 503);
    // The budget is always there, with its defaults.
    let shadow = &snapshot.clusters[1];
    assert_eq!(shadow.retry_budget, RetryBudget::default());
    assert_eq!(
        (
            shadow.retry_budget.percent,
            shadow.retry_budget.min_retries_per_second
        ),
        (20.0, 10)
    );
    assert!(shadow.fault.is_none());
    let again = serde_json::to_string(&snapshot).unwrap();
    assert_eq!(parse_snapshot(&again).unwrap(), snapshot);
}

#[test]
fn retry_mirror_budget_and_fault_errors_name_the_field() {
    let route = |rule: &str| {
        format!(
            r#"{{"listeners":[{{"name":"out","address":"127.0.0.1:1","protocol":"http","routes":[{{"name":"h","hosts":["h"],"rules":[{rule}]}}]}}],"clusters":[{{"name":"b"}}]}}"#
        )
    };
    let cluster = |extra: &str| format!(r#"{{"clusters":[{{"name":"a"}},{{"name":"b"{extra}}}]}}"#);
    let rule = "listeners[0].routes[0].rules[0]";
    let cases = [
        (
            route(r#"{"backends":[{"cluster":"b"}],"retry":{"attempts":11}}"#),
            format!("{rule}.retry.attempts"),
            "at most 10",
        ),
        (
            route(r#"{"backends":[{"cluster":"b"}],"retry":{"attempts":-1}}"#),
            format!("{rule}.retry.attempts"),
            "invalid value",
        ),
        (
            route(r#"{"backends":[{"cluster":"b"}],"retry":{"codes":[503,200]}}"#),
            format!("{rule}.retry.codes[1]"),
            "between 400 and 599",
        ),
        (
            route(r#"{"backends":[{"cluster":"b"}],"retry":{"codes":[503,503]}}"#),
            format!("{rule}.retry.codes[1]"),
            "twice",
        ),
        (
            route(r#"{"backends":[{"cluster":"b"}],"retry":{"backoff":"11s"}}"#),
            format!("{rule}.retry.backoff"),
            "at most 10s",
        ),
        (
            route(r#"{"backends":[{"cluster":"b"}],"retry":{"backoff":"0s"}}"#),
            format!("{rule}.retry.backoff"),
            "longer than zero",
        ),
        (
            route(r#"{"backends":[{"cluster":"b"}],"retry":{"backoff":"soon"}}"#),
            format!("{rule}.retry.backoff"),
            "invalid duration",
        ),
        (
            route(r#"{"backends":[{"cluster":"b"}],"retry":{"tries":2}}"#),
            format!("{rule}.retry.tries"),
            "unknown field",
        ),
        (
            route(
                r#"{"backends":[{"cluster":"b"}],"filters":{"request_mirror":{"cluster":"nope"}}}"#,
            ),
            format!("{rule}.filters.request_mirror.cluster"),
            "no cluster named",
        ),
        (
            route(
                r#"{"backends":[{"cluster":"b","filters":{"request_mirror":{"cluster":"b","percent":100.5}}}]}"#,
            ),
            format!("{rule}.backends[0].filters.request_mirror.percent"),
            "between 0 and 100",
        ),
        (
            route(
                r#"{"backends":[{"cluster":"b"}],"filters":{"request_mirror":{"cluster":"b","percent":-1}}}"#,
            ),
            format!("{rule}.filters.request_mirror.percent"),
            "between 0 and 100",
        ),
        (
            route(r#"{"backends":[{"cluster":"b"}],"filters":{"request_mirror":{"percent":5}}}"#),
            format!("{rule}.filters.request_mirror"),
            "missing field `cluster`",
        ),
        (
            cluster(r#","retry_budget":{"percent":120}"#),
            "clusters[1].retry_budget.percent".to_string(),
            "between 0 and 100",
        ),
        (
            cluster(r#","retry_budget":{"min_retries_per_second":1000000}"#),
            "clusters[1].retry_budget.min_retries_per_second".to_string(),
            "at most",
        ),
        (
            cluster(r#","retry_budget":{"ratio":0.2}"#),
            "clusters[1].retry_budget.ratio".to_string(),
            "unknown field",
        ),
        (
            cluster(r#","fault":{}"#),
            "clusters[1].fault".to_string(),
            "delay, abort or both",
        ),
        (
            cluster(r#","fault":{"delay":{"percent":10,"duration":"0s"}}"#),
            "clusters[1].fault.delay.duration".to_string(),
            "longer than zero",
        ),
        (
            cluster(r#","fault":{"delay":{"percent":101,"duration":"1s"}}"#),
            "clusters[1].fault.delay.percent".to_string(),
            "between 0 and 100",
        ),
        (
            cluster(r#","fault":{"delay":{"duration":"1s"}}"#),
            "clusters[1].fault.delay".to_string(),
            "missing field `percent`",
        ),
        (
            cluster(r#","fault":{"abort":{"percent":1,"status":99}}"#),
            "clusters[1].fault.abort.status".to_string(),
            "between 200 and 599",
        ),
        (
            cluster(r#","fault":{"abort":{"percent":200,"status":503}}"#),
            "clusters[1].fault.abort.percent".to_string(),
            "between 0 and 100",
        ),
    ];
    for (json, path, fragment) in cases {
        let e = err(&json);
        assert_eq!(e.path, path, "{json}: {e}");
        assert!(e.message.contains(fragment), "{json}: {e}");
    }
}
