//! Tests of a compiled cluster: reloads that keep or replace endpoints, and `pick` with zones, ejections, hash keys and slow start.

use super::*;
use http::header::COOKIE;

fn cfg(endpoints: &[&str]) -> config::Cluster {
    let json = serde_json::json!({"name": "b", "endpoints": endpoints});
    serde_json::from_value(json).unwrap()
}

fn compile(cfg: &config::Cluster, reuse: &EndpointReuse) -> Cluster {
    let identity = Arc::new(IdentityStore::default());
    let metrics = Metrics::new();
    let mirror_gate = Arc::default();
    Cluster::compile(
        cfg,
        reuse,
        Context {
            identity: &identity,
            metrics: &metrics,
            mirror_gate: &mirror_gate,
            workload: None,
        },
    )
}

#[test]
fn reload_reuses_endpoints_with_the_same_settings() {
    let old = Arc::new(compile(
        &cfg(&["127.0.0.1:1", "127.0.0.1:2"]),
        &EndpointReuse::new(),
    ));
    let reuse = endpoints_by_key([&old]);
    let new = compile(&cfg(&["127.0.0.1:2", "127.0.0.1:3"]), &reuse);
    assert!(Arc::ptr_eq(&new.endpoints()[0], &old.endpoints()[1]));
    assert_eq!(new.endpoints()[1].addr().port(), 3);
}

#[test]
fn a_tls_identity_change_makes_new_endpoints() {
    let tls = |id: &str| {
        let json =
            serde_json::json!({"name": "b", "endpoints": ["127.0.0.1:1"], "tls": {"identity": id}});
        serde_json::from_value::<config::Cluster>(json).unwrap()
    };
    let old = Arc::new(compile(&tls("spiffe://td/a"), &EndpointReuse::new()));
    assert_eq!(old.protocol(), UpstreamProtocol::Http2);
    let reuse = endpoints_by_key([&old]);
    let same = compile(&tls("spiffe://td/a"), &reuse);
    assert!(Arc::ptr_eq(&same.endpoints()[0], &old.endpoints()[0]));
    let other = compile(&tls("spiffe://td/b"), &reuse);
    assert!(!Arc::ptr_eq(&other.endpoints()[0], &old.endpoints()[0]));
    let plain = compile(&cfg(&["127.0.0.1:1"]), &reuse);
    assert!(!Arc::ptr_eq(&plain.endpoints()[0], &old.endpoints()[0]));
}

#[test]
fn empty_cluster_picks_nothing() {
    let cluster = compile(&cfg(&[]), &EndpointReuse::new());
    assert!(cluster.pick(&Pick::default()).is_none());
}

fn json_cluster(json: serde_json::Value) -> config::Cluster {
    serde_json::from_value(json).unwrap()
}

/// How often each endpoint (by port) is picked for `request`.
fn spread(cluster: &Cluster, request: &Pick<'_>, rounds: usize) -> HashMap<u16, usize> {
    let mut seen = HashMap::new();
    for _ in 0..rounds {
        let endpoint = cluster.pick(request).unwrap();
        *seen.entry(endpoint.addr().port()).or_default() += 1;
    }
    seen
}

/// Fails `endpoint` until outlier detection acts on it.
fn fail(cluster: &Cluster, index: usize, times: usize) {
    let endpoint = &cluster.endpoints()[index];
    for _ in 0..times {
        endpoint.record(&cluster.link, outlier::Outcome::Response(500));
    }
}

#[test]
fn the_local_zone_is_preferred_until_none_of_it_is_available() {
    let cluster = compile(
        &json_cluster(serde_json::json!({
            "name": "b",
            "local_zone": "zone-a",
            "lb": "least_request",
            "endpoints": [
                {"address": "127.0.0.1:1", "zone": "zone-a"},
                {"address": "127.0.0.1:2", "zone": "zone-b"},
                {"address": "127.0.0.1:3", "zone": "zone-a"},
            ],
            "outlier_detection": {"consecutive_5xx": 2, "max_ejection_percent": 100},
        })),
        &EndpointReuse::new(),
    );
    let seen = spread(&cluster, &Pick::default(), 300);
    assert_eq!(seen.get(&2), None, "{seen:?}");
    assert!(seen[&1] > 100 && seen[&3] > 100, "{seen:?}");
    // A retry avoiding one local endpoint goes to the other local one.
    let first = Arc::clone(&cluster.endpoints()[0]);
    let avoiding = Pick {
        avoid: Some(&first),
        ..Pick::default()
    };
    assert_eq!(spread(&cluster, &avoiding, 50).get(&3), Some(&50));
    fail(&cluster, 0, 2);
    assert!(cluster.is_ejected(0));
    assert_eq!(spread(&cluster, &Pick::default(), 50).get(&3), Some(&50));
    // No local endpoint left: every zone is used.
    fail(&cluster, 2, 2);
    assert_eq!(spread(&cluster, &Pick::default(), 50).get(&2), Some(&50));
    // Nothing left at all: panic mode uses every endpoint.
    fail(&cluster, 1, 2);
    assert!((0..3).all(|i| cluster.is_ejected(i)));
    assert_eq!(spread(&cluster, &Pick::default(), 300).len(), 3);
}

#[test]
fn ejected_endpoints_are_skipped_by_every_balancer_within_max_percent() {
    for lb in [
        "round_robin",
        "least_request",
        "peak_ewma",
        "ring_hash",
        "maglev",
    ] {
        let mut json = serde_json::json!({
            "name": "b",
            "lb": lb,
            "endpoints": ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"],
            "outlier_detection": {"consecutive_5xx": 3, "max_ejection_percent": 25},
        });
        if lb == "ring_hash" || lb == "maglev" {
            json["hash_on"] = serde_json::json!({"header": "x-user"});
        }
        let metrics = Metrics::new();
        let identity = Arc::new(IdentityStore::default());
        let mirror_gate = Arc::default();
        let ctx = Context {
            identity: &identity,
            metrics: &metrics,
            mirror_gate: &mirror_gate,
            workload: None,
        };
        let cluster = Cluster::compile(&json_cluster(json), &EndpointReuse::new(), ctx);
        fail(&cluster, 1, 2);
        assert!(!cluster.is_ejected(1), "{lb}: below the threshold");
        fail(&cluster, 1, 1);
        assert!(cluster.is_ejected(1), "{lb}");
        // 25% of 4 is one endpoint: the next one stays in.
        fail(&cluster, 2, 10);
        assert!(!cluster.is_ejected(2), "{lb}");
        let mut headers = HeaderMap::new();
        for user in 0..200 {
            headers.insert("x-user", user.to_string().parse().unwrap());
            let request = Pick {
                headers: Some(&headers),
                ..Pick::default()
            };
            let seen = spread(&cluster, &request, 2);
            assert_eq!(seen.get(&2), None, "{lb}: {seen:?}");
        }
        let text = metrics.render();
        assert!(
            text.contains(r#"meshpy_outlier_ejections_total{cluster="b"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"meshpy_outlier_ejected_endpoints{cluster="b"} 1"#),
            "{text}"
        );
    }
}

#[test]
fn a_hashing_cluster_keeps_a_key_on_one_endpoint_and_a_keyless_request_is_spread() {
    let cluster = compile(
        &json_cluster(serde_json::json!({
            "name": "b",
            "lb": "ring_hash",
            "hash_on": {"cookie": "session"},
            "endpoints": ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"],
        })),
        &EndpointReuse::new(),
    );
    let mut used = HashMap::new();
    for session in 0..100 {
        let mut headers = HeaderMap::new();
        let cookie = format!("theme=dark; session={session}");
        headers.insert(COOKIE, cookie.parse().unwrap());
        let request = Pick {
            headers: Some(&headers),
            ..Pick::default()
        };
        let seen = spread(&cluster, &request, 10);
        assert_eq!(seen.len(), 1, "{seen:?}");
        for port in seen.keys() {
            *used.entry(*port).or_insert(0) += 1;
        }
    }
    assert_eq!(used.len(), 3, "{used:?}");
    assert_eq!(spread(&cluster, &Pick::default(), 300).len(), 3);
}

#[test]
fn source_ip_hashing_keeps_a_client_on_one_endpoint() {
    let cluster = compile(
        &json_cluster(serde_json::json!({
            "name": "b",
            "lb": "maglev",
            "hash_on": {"source_ip": true},
            "endpoints": ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"],
        })),
        &EndpointReuse::new(),
    );
    let v4: IpAddr = "192.0.2.7".parse().unwrap();
    let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
    let at = |ip| {
        let request = Pick {
            client_ip: Some(ip),
            ..Pick::default()
        };
        let seen = spread(&cluster, &request, 20);
        assert_eq!(seen.len(), 1, "{seen:?}");
        seen.into_keys().next().unwrap()
    };
    assert_eq!(at(v4), at(mapped));
}

#[test]
fn cookies_are_found_among_others() {
    let mut headers = HeaderMap::new();
    headers.append(COOKIE, "a=1; sessionx=no".parse().unwrap());
    headers.append(COOKIE, "session = yes ;b=2".parse().unwrap());
    assert_eq!(cookie_value(&headers, "session"), Some(&b"yes"[..]));
    assert_eq!(cookie_value(&headers, "a"), Some(&b"1"[..]));
    assert_eq!(cookie_value(&headers, "c"), None);
    assert_eq!(cookie_value(&HeaderMap::new(), "a"), None);
}

#[test]
fn an_endpoint_joining_a_serving_cluster_starts_slow() {
    let slow = |endpoints: &[&str]| {
        json_cluster(serde_json::json!({
            "name": "b",
            "endpoints": endpoints,
            "slow_start": {"window": "60s"},
        }))
    };
    // Endpoints of a new cluster are all there from the start: no ramp.
    let first = Arc::new(compile(&slow(&["127.0.0.1:1"]), &EndpointReuse::new()));
    assert_eq!(first.ramp_until_ms, 0);
    let reuse = endpoints_by_key([&first]);
    let second = compile(&slow(&["127.0.0.1:1", "127.0.0.1:2"]), &reuse);
    assert!(second.ramp_until_ms > 0);
    // By effective weight: 100 to 10 at the start of the ramp.
    let seen = spread(&second, &Pick::default(), 1100);
    assert!((50..=160).contains(&seen[&2]), "{seen:?}");
    // The joining endpoint keeps its start through a further reload.
    let second = Arc::new(second);
    let third = compile(
        &slow(&["127.0.0.1:1", "127.0.0.1:2"]),
        &endpoints_by_key([&second]),
    );
    assert_eq!(third.ramp_until_ms, second.ramp_until_ms);
}

#[test]
fn counts_and_ejections_carry_over_a_reload() {
    let json = serde_json::json!({
        "name": "b",
        "endpoints": ["127.0.0.1:1", "127.0.0.1:2"],
        "outlier_detection": {"consecutive_5xx": 1, "max_ejection_percent": 50},
        "circuit_breakers": {"max_requests": 5},
    });
    let old = Arc::new(compile(&json_cluster(json.clone()), &EndpointReuse::new()));
    fail(&old, 0, 1);
    let new = compile(&json_cluster(json), &endpoints_by_key([&old]));
    assert!(Arc::ptr_eq(&old.link.counters, &new.link.counters));
    assert!(new.is_ejected(0));
    assert_eq!(new.link.metrics.ejected.get(), 1);
    assert_eq!(spread(&new, &Pick::default(), 10).get(&2), Some(&10));
}
