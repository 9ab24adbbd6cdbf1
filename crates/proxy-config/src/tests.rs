//! Table tests of config parsing: every error names the field at fault.

use super::*;

fn err(json: &str) -> ConfigError {
    match parse_snapshot(json) {
        Ok(_) => panic!("expected an error for {json}"),
        Err(e) => e,
    }
}

const CLUSTER: &str = r#"{"name":"backend","endpoints":["127.0.0.1:9000"]}"#;

#[test]
fn minimal_snapshot_gets_defaults() {
    let json = format!(
        r#"{{"listeners":[{{"name":"web","address":"127.0.0.1:0","protocol":"http","cluster":"backend"}}],"clusters":[{CLUSTER}]}}"#
    );
    let snapshot = parse_snapshot(&json).unwrap();
    let listener = &snapshot.listeners[0];
    assert_eq!(listener.proxy_header, ProxyHeader::Via);
    assert_eq!(listener.timeouts.request, Duration::from_secs(15));
    assert_eq!(listener.limits.max_headers, 100);
    let cluster = &snapshot.clusters[0];
    assert_eq!(cluster.lb, LbPolicy::RoundRobin);
    assert_eq!(cluster.protocol, UpstreamProtocol::Http1);
    assert_eq!(cluster.connect_timeout, Duration::from_secs(2));
}

#[test]
fn durations_parse_and_round_trip() {
    let json =
        r#"{"clusters":[{"name":"b","connect_timeout":"250ms","pool":{"idle_timeout":"5m"}}]}"#;
    let snapshot = parse_snapshot(json).unwrap();
    assert_eq!(
        snapshot.clusters[0].connect_timeout,
        Duration::from_millis(250)
    );
    assert_eq!(
        snapshot.clusters[0].pool.idle_timeout,
        Duration::from_secs(300)
    );
    let again = serde_json::to_string(&snapshot).unwrap();
    assert_eq!(parse_snapshot(&again).unwrap(), snapshot);
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (
            r#"{"clusters":[{"name":"b","lb":"random"}]}"#,
            "clusters[0].lb",
            "unknown variant",
        ),
        (
            r#"{"clusters":[{"name":"b","colour":"red"}]}"#,
            "clusters[0].colour",
            "unknown field",
        ),
        (
            r#"{"clusters":[{"name":"b","endpoints":["nowhere"]}]}"#,
            "clusters[0].endpoints[0]",
            "invalid socket address",
        ),
        (
            r#"{"clusters":[{"name":"b","endpoints":["127.0.0.1:0"]}]}"#,
            "clusters[0].endpoints[0]",
            "not a reachable",
        ),
        (
            r#"{"clusters":[{"name":"b","connect_timeout":"soon"}]}"#,
            "clusters[0].connect_timeout",
            "invalid duration",
        ),
        (
            r#"{"clusters":[{"name":"b","connect_timeout":"0s"}]}"#,
            "clusters[0].connect_timeout",
            "longer than zero",
        ),
        (
            r#"{"clusters":[{"name":"B"}]}"#,
            "clusters[0].name",
            "not a valid name",
        ),
        (
            r#"{"clusters":[{"name":"b"},{"name":"b"}]}"#,
            "clusters[1].name",
            "duplicate cluster",
        ),
        (
            r#"{"listeners":[{"name":"web","address":"127.0.0.1:1","protocol":"http","cluster":"nope"}]}"#,
            "listeners[0].cluster",
            "no cluster named",
        ),
        (
            r#"{"listeners":[{"name":"web","address":"127.0.0.1:1","protocol":"udp","cluster":"b"}]}"#,
            "listeners[0].protocol",
            "unknown variant",
        ),
        (
            r#"{"listeners":[{"name":"admin","address":"127.0.0.1:1","protocol":"http","cluster":"b"}],"clusters":[{"name":"b"}]}"#,
            "listeners[0].name",
            "reserved",
        ),
        (
            r#"{"listeners":[{"name":"a","address":"127.0.0.1:1","protocol":"http","cluster":"b"},{"name":"c","address":"127.0.0.1:1","protocol":"tcp","cluster":"b"}],"clusters":[{"name":"b"}]}"#,
            "listeners[1].address",
            "used by another",
        ),
        (
            r#"{"listeners":[{"name":"a","address":"127.0.0.1:1","protocol":"http","cluster":"b","limits":{"max_header_bytes":10}}],"clusters":[{"name":"b"}]}"#,
            "listeners[0].limits.max_header_bytes",
            "between",
        ),
        (r#"{"version":-1}"#, "version", "invalid value"),
    ];
    for (json, path, fragment) in cases {
        let e = err(json);
        assert_eq!(e.path, path, "{json}: {e}");
        assert!(e.message.contains(fragment), "{json}: {e}");
    }
}

#[test]
fn whole_document_errors_have_an_empty_path() {
    let e = err("5");
    assert_eq!(e.path, "");
    let e = err("{");
    assert!(e.message.contains("EOF"), "{e}");
}

#[test]
fn bootstrap_checks_workers() {
    assert_eq!(parse_bootstrap("{}").unwrap(), Bootstrap::default());
    assert_eq!(
        parse_bootstrap(r#"{"workers":0}"#).unwrap_err().path,
        "workers"
    );
    assert_eq!(
        parse_bootstrap(r#"{"admin":"x"}"#).unwrap_err().path,
        "admin"
    );
    assert_eq!(parse_bootstrap(r#"{"extra":1}"#).unwrap_err().path, "extra");
}

#[test]
fn endpoints_are_strings_or_objects() {
    let json = r#"{"clusters":[{"name":"b","endpoints":["127.0.0.1:1",{"address":"127.0.0.1:2","weight":3}]}]}"#;
    let snapshot = parse_snapshot(json).unwrap();
    let weights: Vec<_> = snapshot.clusters[0]
        .endpoints
        .iter()
        .map(|e| e.weight)
        .collect();
    assert_eq!(weights, vec![1, 3]);
    let again = serde_json::to_string(&snapshot).unwrap();
    assert_eq!(parse_snapshot(&again).unwrap(), snapshot);
}

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

#[test]
fn tls_fields_parse_and_round_trip() {
    let json = r#"{"listeners":[
        {"name":"in","address":"127.0.0.1:0","protocol":"http","cluster":"b","tls":{}},
        {"name":"in2","address":"127.0.0.1:0","protocol":"tcp","cluster":"b","tls":{"mode":"permissive"}}],
        "clusters":[{"name":"b","tls":{"identity":"spiffe://td/ns/x/sa/y"}}]}"#;
    let snapshot = parse_snapshot(json).unwrap();
    assert_eq!(snapshot.listeners[0].tls.unwrap().mode, TlsMode::Strict);
    assert_eq!(snapshot.listeners[1].tls.unwrap().mode, TlsMode::Permissive);
    let identity = &snapshot.clusters[0].tls.as_ref().unwrap().identity;
    assert_eq!(identity.as_str(), "spiffe://td/ns/x/sa/y");
    assert!(snapshot.uses_tls());
    let again = serde_json::to_string(&snapshot).unwrap();
    assert_eq!(parse_snapshot(&again).unwrap(), snapshot);
    assert!(!parse_snapshot(r#"{"clusters":[{"name":"b","tls":null}]}"#)
        .unwrap()
        .uses_tls());
}

#[test]
fn tls_errors_name_the_field() {
    let listener = |tls: &str| {
        format!(
            r#"{{"listeners":[{{"name":"in","address":"127.0.0.1:0","protocol":"http","cluster":"b","tls":{tls}}}],"clusters":[{{"name":"b"}}]}}"#
        )
    };
    let cluster = |tls: &str| format!(r#"{{"clusters":[{{"name":"b","tls":{tls}}}]}}"#);
    let cases = [
        (
            listener(r#"{"mode":"optional"}"#),
            "listeners[0].tls.mode",
            "unknown variant",
        ),
        (
            listener(r#"{"mode":"strict","alpn":["h2"]}"#),
            "listeners[0].tls.alpn",
            "unknown field",
        ),
        (cluster("{}"), "clusters[0].tls", "missing field `identity`"),
        (
            cluster(r#"{"identity":"https://td/a"}"#),
            "clusters[0].tls.identity",
            "must start with \"spiffe://\"",
        ),
        (
            cluster(r#"{"identity":"spiffe://td"}"#),
            "clusters[0].tls.identity",
            "has no path",
        ),
        (
            cluster(r#"{"identity":"spiffe://td:1/a"}"#),
            "clusters[0].tls.identity",
            "port",
        ),
        (
            cluster(r#"{"identity":"spiffe://td/a?q"}"#),
            "clusters[0].tls.identity",
            "query",
        ),
    ];
    for (json, path, fragment) in cases {
        let e = err(&json);
        assert_eq!(e.path, path, "{json}: {e}");
        assert!(e.message.contains(fragment), "{json}: {e}");
    }
}

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
