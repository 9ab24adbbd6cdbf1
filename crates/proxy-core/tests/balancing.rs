//! Balancing and cluster protection on real loopback sockets: outlier detection, circuit breakers, peak EWMA, ring hash.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use support::*;

/// An HTTP backend answering `name` after `delay`, with 500 while `failing` is set.
async fn controlled_backend(
    name: &'static str,
    delay: Duration,
    failing: Arc<AtomicBool>,
) -> SocketAddr {
    serve_http(move |_req| {
        let failing = failing.load(Ordering::SeqCst);
        async move {
            tokio::time::sleep(delay).await;
            let status = if failing {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            };
            let mut response = Response::new(Full::new(Bytes::from(name)));
            *response.status_mut() = status;
            Ok::<_, Infallible>(response)
        }
    })
    .await
}

/// The labels of an edge between ends the snapshot does not name, after its direction.
const UNKNOWN_ENDS: &str = "source_namespace=\"unknown\",source_service=\"unknown\",\
     source_version=\"unknown\",source_identity=\"\",destination_namespace=\"unknown\",\
     destination_service=\"unknown\",destination_version=\"unknown\",mtls=\"false\"";

fn endpoint_stats(proxy: &proxy_core::Proxy, addr: SocketAddr) -> serde_json::Value {
    let stats = proxy.stats();
    stats["clusters"]["backend"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == addr.to_string())
        .cloned()
        .unwrap()
}

#[test]
fn outlier_detection_ejects_a_failing_backend_and_takes_it_back_once_healed() {
    let rt = client_runtime();
    let failing = Arc::new(AtomicBool::new(true));
    let (good, bad) = rt.block_on(async {
        (
            controlled_backend("good", Duration::ZERO, Arc::default()).await,
            controlled_backend("bad", Duration::ZERO, Arc::clone(&failing)).await,
        )
    });
    let (proxy, web) = start_proxy(&snapshot(
        "http",
        &[good, bad],
        "",
        r#","outlier_detection":{"consecutive_5xx":3,"base_ejection_time":"1s","max_ejection_percent":50}"#,
    ));
    assert_eq!(proxy.stats()["clusters"]["backend"]["lb"], "round_robin");
    rt.block_on(async {
        let mut client = H1Client::connect(web).await;
        // Round robin: the bad backend's third 500 comes within six requests.
        let mut errors = 0;
        for _ in 0..10 {
            if client.get("/").await.status == 500 {
                errors += 1;
            }
        }
        assert_eq!(errors, 3);
        assert_eq!(endpoint_stats(&proxy, bad)["ejected"], true);
        assert_eq!(endpoint_stats(&proxy, good)["ejected"], false);
        for _ in 0..10 {
            let got = client.get("/").await;
            assert_eq!((got.status.as_u16(), got.body.as_str()), (200, "good"));
        }
        let metrics = proxy.metrics_text();
        assert!(
            metrics.contains(r#"meshpy_outlier_ejections_total{cluster="backend"} 1"#),
            "{metrics}"
        );
        assert!(
            metrics.contains(r#"meshpy_outlier_ejected_endpoints{cluster="backend"} 1"#),
            "{metrics}"
        );
        // And on the edge to the cluster, of a service the snapshot does not name.
        let edge =
            format!("meshpy_edge_ejections_total{{direction=\"outbound\",{UNKNOWN_ENDS}}} 1\n");
        assert!(metrics.contains(&edge), "{metrics}");
        // Healed, and the ejection time over: it gets traffic again.
        failing.store(false, Ordering::SeqCst);
        wait_until_async("the ejection to end", || {
            endpoint_stats(&proxy, bad)["ejected"] == false
        })
        .await;
        let mut seen: HashMap<String, usize> = HashMap::new();
        for _ in 0..10 {
            let got = client.get("/").await;
            assert_eq!(got.status, 200);
            *seen.entry(got.body).or_default() += 1;
        }
        assert_eq!(seen.get("bad"), Some(&5), "{seen:?}");
        assert_eq!(endpoint_stats(&proxy, bad)["ejected"], false);
        let metrics = proxy.metrics_text();
        assert!(
            metrics.contains(r#"meshpy_outlier_ejected_endpoints{cluster="backend"} 0"#),
            "{metrics}"
        );
    });
}

#[test]
fn max_requests_fails_fast_with_503_overflow() {
    let rt = client_runtime();
    let slow = rt.block_on(controlled_backend(
        "slow",
        Duration::from_millis(600),
        Arc::default(),
    ));
    let (proxy, web) = start_proxy(&snapshot(
        "http",
        &[slow],
        "",
        r#","circuit_breakers":{"max_requests":2}"#,
    ));
    rt.block_on(async {
        let busy: Vec<_> = (0..2)
            .map(|_| tokio::spawn(async move { H1Client::connect(web).await.get("/").await }))
            .collect();
        wait_until_async("both requests to be in flight", || {
            in_flight(&proxy, "backend") == 2
        })
        .await;
        let started = std::time::Instant::now();
        let got = H1Client::connect(web).await.get("/").await;
        assert!(started.elapsed() < Duration::from_millis(300));
        assert_eq!(got.status, 503);
        assert_eq!(got.header("x-meshpy-error"), "overflow");
        assert_eq!(got.header("x-meshpy-overflow"), "max_requests");
        for handle in busy {
            assert_eq!(handle.await.unwrap().status, 200);
        }
        // The slots came back with the responses.
        assert_eq!(H1Client::connect(web).await.get("/").await.status, 200);
    });
    let metrics = proxy.metrics_text();
    assert!(
        metrics.contains(r#"meshpy_proxy_errors_total{listener="web",reason="overflow"} 1"#),
        "{metrics}"
    );
    // On the edge of the request: from an unknown caller, into an unnamed workload.
    let edge = format!("meshpy_edge_overflows_total{{direction=\"inbound\",{UNKNOWN_ENDS}}} 1\n");
    assert!(metrics.contains(&edge), "{metrics}");
}

#[test]
fn at_max_connections_a_request_waits_as_pending_and_one_more_overflows() {
    let rt = client_runtime();
    let slow = rt.block_on(controlled_backend(
        "slow",
        Duration::from_millis(400),
        Arc::default(),
    ));
    let (proxy, web) = start_proxy(&snapshot(
        "http",
        &[slow],
        "",
        r#","circuit_breakers":{"max_connections":1,"max_pending_requests":1}"#,
    ));
    rt.block_on(async {
        let first = tokio::spawn(async move { H1Client::connect(web).await.get("/").await });
        wait_until_async("the first request to be in flight", || {
            in_flight(&proxy, "backend") == 1
        })
        .await;
        // Waits for the one connection to come back to the pool.
        let pending = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let got = H1Client::connect(web).await.get("/").await;
            (got, started.elapsed())
        });
        // A pending request holds its lease while it waits for a connection.
        wait_until_async("the second request to be pending", || {
            in_flight(&proxy, "backend") == 2
        })
        .await;
        let got = H1Client::connect(web).await.get("/").await;
        assert_eq!(got.status, 503);
        assert_eq!(got.header("x-meshpy-overflow"), "max_pending_requests");
        assert_eq!(first.await.unwrap().status, 200);
        let (got, waited) = pending.await.unwrap();
        assert_eq!(got.status, 200);
        assert!(waited >= Duration::from_millis(500), "{waited:?}");
    });
}

#[test]
fn peak_ewma_sends_most_traffic_to_the_faster_backend() {
    let rt = client_runtime();
    let (fast, slow) = rt.block_on(async {
        (
            controlled_backend("fast", Duration::ZERO, Arc::default()).await,
            controlled_backend("slow", Duration::from_millis(60), Arc::default()).await,
        )
    });
    let (proxy, web) = start_proxy(&snapshot("http", &[fast, slow], "", r#","lb":"peak_ewma""#));
    assert_eq!(proxy.stats()["clusters"]["backend"]["lb"], "peak_ewma");
    let seen = rt.block_on(async {
        let mut client = H1Client::connect(web).await;
        let mut seen: HashMap<String, usize> = HashMap::new();
        for _ in 0..60 {
            let got = client.get("/").await;
            assert_eq!(got.status, 200);
            *seen.entry(got.body).or_default() += 1;
        }
        seen
    });
    assert!(seen.get("fast").copied().unwrap_or(0) >= 50, "{seen:?}");
}

#[test]
fn ring_hash_on_a_header_keeps_each_key_on_one_backend() {
    let rt = client_runtime();
    let backends = rt.block_on(async {
        vec![
            http_backend("a").await,
            http_backend("b").await,
            http_backend("c").await,
        ]
    });
    let (_proxy, web) = start_proxy(&snapshot(
        "http",
        &backends,
        "",
        r#","lb":"ring_hash","hash_on":{"header":"x-user"}"#,
    ));
    let used = rt.block_on(async {
        let mut client = H1Client::connect(web).await;
        let mut used: HashMap<String, usize> = HashMap::new();
        for user in 0..12 {
            let mut bodies = Vec::new();
            for _ in 0..8 {
                let req = http::Request::builder()
                    .uri("/")
                    .header("host", "svc")
                    .header("x-user", format!("user-{user}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                bodies.push(client.send(req).await.unwrap().body);
            }
            assert!(
                bodies.iter().all(|b| b == &bodies[0]),
                "user {user}: {bodies:?}"
            );
            *used.entry(bodies[0].clone()).or_default() += 1;
        }
        used
    });
    assert!(used.len() >= 2, "{used:?}");
}
