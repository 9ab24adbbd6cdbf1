//! Table tests of route config: matches, filters, regexes and timeouts round trip, and errors name the field.

use super::*;
use crate::parse_snapshot;
use crate::tests::err;

#[test]
fn route_errors_name_the_field() {
    let listener = |extra: &str| {
        format!(
            r#"{{"listeners":[{{"name":"out","address":"127.0.0.1:1","protocol":"http"{extra}}}],"clusters":[{{"name":"b"}}]}}"#
        )
    };
    let route = |rule: &str| {
        listener(&format!(
            r#","routes":[{{"name":"h","hosts":["h"],"rules":[{rule}]}}]"#
        ))
    };
    let cases = [
        (listener(""), "listeners[0].cluster", "missing field"),
        (
            listener(r#","cluster":"b","routes":[{"name":"h","hosts":["h"],"rules":[]}]"#),
            "listeners[0].routes",
            "not both",
        ),
        (
            route(r#"{"backends":[{"cluster":"nope"}]}"#),
            "listeners[0].routes[0].rules[0].backends[0].cluster",
            "no cluster named",
        ),
        (
            route(r#"{"backends":[]}"#),
            "listeners[0].routes[0].rules[0].backends",
            "at least one",
        ),
        (
            route(r#"{"backends":[{"cluster":"b","weight":2000000}]}"#),
            "listeners[0].routes[0].rules[0].backends[0].weight",
            "at most",
        ),
        (
            route(
                r#"{"matches":[{"path":{"type":"PathPrefix","value":"api"}}],"backends":[{"cluster":"b"}]}"#,
            ),
            "listeners[0].routes[0].rules[0].matches[0].path.value",
            "start with",
        ),
        (
            route(
                r#"{"matches":[{"path":{"type":"Regex","value":"/"}}],"backends":[{"cluster":"b"}]}"#,
            ),
            "listeners[0].routes[0].rules[0].matches[0].path.type",
            "unknown variant",
        ),
        (
            route(
                r#"{"matches":[{"headers":[{"name":"bad header","value":"1"}]}],"backends":[{"cluster":"b"}]}"#,
            ),
            "listeners[0].routes[0].rules[0].matches[0].headers[0].name",
            "not a valid header",
        ),
        (
            route(
                r#"{"matches":[{"path":{"type":"RegularExpression","value":"/a(["}}],"backends":[{"cluster":"b"}]}"#,
            ),
            "listeners[0].routes[0].rules[0].matches[0].path",
            "invalid regular expression \"/a([\": unclosed character class",
        ),
        (
            route(
                r#"{"matches":[{"path":{"type":"RegularExpression","value":"a)|(b"}}],"backends":[{"cluster":"b"}]}"#,
            ),
            "listeners[0].routes[0].rules[0].matches[0].path",
            "unopened group",
        ),
        (
            route(
                r#"{"matches":[{"path":{"type":"RegularExpression","value":"(\\w{100}){100}"}}],"backends":[{"cluster":"b"}]}"#,
            ),
            "listeners[0].routes[0].rules[0].matches[0].path",
            "too large",
        ),
        (
            route(&format!(
                r#"{{"matches":[{{"path":{{"type":"RegularExpression","value":"{}"}}}}],"backends":[{{"cluster":"b"}}]}}"#,
                "a".repeat(MAX_REGEX_LEN + 1)
            )),
            "listeners[0].routes[0].rules[0].matches[0].path",
            "longer than",
        ),
        (
            route(
                r#"{"matches":[{"headers":[{"name":"x-v","value":"v[","type":"RegularExpression"}]}],"backends":[{"cluster":"b"}]}"#,
            ),
            "listeners[0].routes[0].rules[0].matches[0].headers[0]",
            "invalid regular expression",
        ),
        (
            route(
                r#"{"matches":[{"query_params":[{"name":"q","value":"*","type":"RegularExpression"}]}],"backends":[{"cluster":"b"}]}"#,
            ),
            "listeners[0].routes[0].rules[0].matches[0].query_params[0]",
            "invalid regular expression",
        ),
        (
            route(
                r#"{"backends":[{"cluster":"b"}],"filters":{"request_headers":{"set":[{"name":"X-A","value":"1"}],"remove":["x-a"]}}}"#,
            ),
            "listeners[0].routes[0].rules[0].filters.request_headers.remove[0]",
            "already has an action",
        ),
        (
            route(
                r#"{"backends":[{"cluster":"b","filters":{"response_headers":{"add":[{"name":"bad name","value":"1"}]}}}]}"#,
            ),
            "listeners[0].routes[0].rules[0].backends[0].filters.response_headers.add[0].name",
            "not a valid header name",
        ),
        (
            route(
                r#"{"matches":[{"path":{"type":"Exact","value":"/a"}}],"backends":[{"cluster":"b"}],"filters":{"url_rewrite":{"path":{"type":"ReplacePrefixMatch","value":"/b"}}}}"#,
            ),
            "listeners[0].routes[0].rules[0].filters.url_rewrite.path.type",
            "PathPrefix",
        ),
        (
            route(
                r#"{"backends":[{"cluster":"b"}],"filters":{"url_rewrite":{"path":{"type":"ReplaceFullPath","value":"b"}}}}"#,
            ),
            "listeners[0].routes[0].rules[0].filters.url_rewrite.path.value",
            "absolute path",
        ),
        (
            route(r#"{"backends":[{"cluster":"b"}],"filters":{"url_rewrite":{"hostname":"a b"}}}"#),
            "listeners[0].routes[0].rules[0].filters.url_rewrite.hostname",
            "not a host name",
        ),
        (
            route(r#"{"backends":[{"cluster":"b"}],"filters":{"mirror":{}}}"#),
            "listeners[0].routes[0].rules[0].filters.mirror",
            "unknown field",
        ),
        (
            route(
                r#"{"backends":[{"cluster":"b"}],"timeouts":{"request":"1s","backend_request":"2s"}}"#,
            ),
            "listeners[0].routes[0].rules[0].timeouts.backend_request",
            "not be longer",
        ),
        (
            route(r#"{"backends":[{"cluster":"b"}],"timeouts":{"backend_request":"0s"}}"#),
            "listeners[0].routes[0].rules[0].timeouts.backend_request",
            "longer than zero",
        ),
        (
            listener(r#","routes":[{"name":"h","hosts":["h:80"],"rules":[]}]"#),
            "listeners[0].routes[0].hosts[0]",
            "no port",
        ),
        (
            listener(
                r#","routes":[{"name":"h","hosts":["h"],"rules":[]},{"name":"i","hosts":["H"],"rules":[]}]"#,
            ),
            "listeners[0].routes[1].hosts[0]",
            "already routed",
        ),
        (
            r#"{"clusters":[{"name":"b","endpoints":[{"address":"127.0.0.1:1","weight":0}]}]}"#
                .to_string(),
            "clusters[0].endpoints[0].weight",
            "between",
        ),
        (
            r#"{"clusters":[{"name":"b","endpoints":[{"address":"127.0.0.1:1","region":"a"}]}]}"#
                .to_string(),
            "clusters[0].endpoints[0].region",
            "unknown field",
        ),
        (
            r#"{"clusters":[{"name":"b","endpoints":["127.0.0.1:1","127.0.0.1:1"]}]}"#.to_string(),
            "clusters[0].endpoints[1]",
            "listed twice",
        ),
    ];
    for (json, path, fragment) in cases {
        let e = err(&json);
        assert_eq!(e.path, path, "{json}: {e}");
        assert!(e.message.contains(fragment), "{json}: {e}");
    }
    let tcp = r#"{"listeners":[{"name":"t","address":"127.0.0.1:1","protocol":"tcp","routes":[{"name":"h","hosts":["h"],"rules":[]}]}],"clusters":[]}"#;
    assert_eq!(err(tcp).path, "listeners[0].routes");
}

#[test]
fn route_filters_regexes_and_timeouts_round_trip() {
    let json = r#"{"listeners":[{"name":"out","address":"127.0.0.1:1","protocol":"http","routes":[
        {"name":"h","hosts":["h"],"rules":[{
            "matches":[{"path":{"type":"RegularExpression","value":"/v[0-9]+/.*"},
                        "headers":[{"name":"x-a","value":"a.*","type":"RegularExpression"},{"name":"x-b","value":"b"}]},
                       {"path":{"type":"PathPrefix","value":"/p"}}],
            "filters":{"request_headers":{"set":[{"name":"x-s","value":"1"}],"add":[{"name":"x-d","value":"2"}],"remove":["x-r"]},
                       "response_headers":{"remove":["server"]},
                       "url_rewrite":{"hostname":"other","path":{"type":"ReplaceFullPath","value":"/new"}}},
            "backends":[{"cluster":"b","filters":{"request_headers":{"set":[{"name":"x-backend","value":"b"}]}}}],
            "timeouts":{"request":"10s","backend_request":"2s"}}]}]}],
        "clusters":[{"name":"b"}]}"#;
    let snapshot = parse_snapshot(json).unwrap();
    let rule = &snapshot.listeners[0].routes[0].rules[0];
    let timeouts = rule.timeouts.unwrap();
    assert_eq!(timeouts.request, Some(Duration::from_secs(10)));
    assert_eq!(timeouts.backend_request, Some(Duration::from_secs(2)));
    assert!(rule.matches[0].path.as_ref().unwrap().regex.is_some());
    assert!(rule.matches[0].headers[0].regex.is_some());
    assert!(rule.matches[0].headers[1].regex.is_none());
    let again = serde_json::to_string(&snapshot).unwrap();
    assert!(!again.contains(r#""type":"Exact""#), "{again}");
    assert_eq!(parse_snapshot(&again).unwrap(), snapshot);
    // Either timeout alone is fine.
    let only_backend = json.replace(r#""request":"10s","#, "");
    let parsed = parse_snapshot(&only_backend).unwrap();
    let timeouts = parsed.listeners[0].routes[0].rules[0].timeouts.unwrap();
    assert_eq!(timeouts.request, None);
    let null = json.replace(r#""request":"10s""#, r#""request":null"#);
    let parsed = parse_snapshot(&null).unwrap();
    assert_eq!(
        parsed.listeners[0].routes[0].rules[0]
            .timeouts
            .unwrap()
            .request,
        None
    );
}
