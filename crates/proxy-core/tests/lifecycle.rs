//! Proxy lifecycle on real sockets: hot reload under load, rejected snapshots, graceful drain.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

#[test]
fn reload_under_load_moves_traffic_without_errors() {
    let rt = client_runtime();
    let (a, b) = rt.block_on(async { (http_backend("a").await, http_backend("b").await) });
    let (proxy, web) = start_proxy(&snapshot("http", &[a], "", ""));
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let seen_b = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, failures, seen_b) = (stop.clone(), failures.clone(), seen_b.clone());
        rt.spawn(async move {
            let mut sent = 0usize;
            // Long-lived keep-alive connections must survive every reload.
            let mut clients = Vec::new();
            for _ in 0..4 {
                clients.push(H1Client::connect(web).await);
            }
            while !stop.load(Ordering::Relaxed) {
                for client in &mut clients {
                    match client.send(get("/")).await {
                        Ok(got) if got.status == 200 => {
                            if got.body == "b" {
                                seen_b.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        _ => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    sent += 1;
                }
            }
            sent
        })
    };
    for round in 0..20 {
        std::thread::sleep(Duration::from_millis(25));
        let endpoints = if round % 2 == 0 { [b] } else { [a] };
        proxy.apply(&snapshot("http", &endpoints, "", "")).unwrap();
    }
    proxy.apply(&snapshot("http", &[b], "", "")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let sent = rt.block_on(load).unwrap();
    assert!(sent > 200, "only {sent} requests");
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    assert!(seen_b.load(Ordering::Relaxed) > 0);
    assert_eq!(proxy.stats()["version"], 22);
}

#[test]
fn a_rejected_snapshot_changes_nothing() {
    let rt = client_runtime();
    let a = rt.block_on(http_backend("a"));
    let (proxy, web) = start_proxy(&snapshot("http", &[a], "", ""));
    let bad = r#"{"listeners":[{"name":"web","address":"127.0.0.1:0","protocol":"http","cluster":"gone"}],"clusters":[]}"#;
    let err = proxy.apply(bad).unwrap_err();
    assert!(
        err.to_string().starts_with("listeners[0].cluster: "),
        "{err}"
    );
    assert_eq!(proxy.stats()["version"], 1);
    let got = rt.block_on(async { H1Client::connect(web).await.get("/").await });
    assert_eq!(got.body, "a");
    assert!(proxy
        .metrics_text()
        .contains(r#"meshpy_config_reloads_total{result="rejected"} 1"#));
}

#[test]
fn listeners_added_and_removed_by_reload() {
    let rt = client_runtime();
    let a = rt.block_on(http_backend("a"));
    let (proxy, web) = start_proxy(&snapshot("http", &[a], "", ""));
    let two = format!(
        r#"{{"listeners":[
            {{"name":"web","address":"{web}","protocol":"http","cluster":"backend"}},
            {{"name":"extra","address":"127.0.0.1:0","protocol":"http","cluster":"backend"}}],
            "clusters":[{{"name":"backend","endpoints":["{a}"]}}]}}"#
    );
    // Same name, but the configured address changed from port 0 to the bound one: rebinding
    // it would clash with itself, so apply must fail cleanly and keep serving.
    let err = proxy.apply(&two).unwrap_err();
    assert!(err.to_string().contains("cannot bind"), "{err}");
    let two = two.replace(
        &format!(r#""address":"{web}""#),
        r#""address":"127.0.0.1:0""#,
    );
    proxy.apply(&two).unwrap();
    let extra = proxy
        .addresses()
        .into_iter()
        .find(|(n, _)| n == "extra")
        .unwrap()
        .1;
    rt.block_on(async {
        assert_eq!(H1Client::connect(extra).await.get("/").await.body, "a");
        assert_eq!(H1Client::connect(web).await.get("/").await.body, "a");
    });
    proxy.apply(&snapshot("http", &[a], "", "")).unwrap();
    // The removed listener's accept loop stops on its own task, soon after apply returns.
    wait_until("the removed listener to refuse connections", || {
        rt.block_on(async { tokio::net::TcpStream::connect(extra).await.is_err() })
    });
}

#[test]
fn shutdown_drains_in_flight_requests() {
    let rt = client_runtime();
    let a = rt.block_on(http_backend("a"));
    let (proxy, web) = start_proxy(&snapshot("http", &[a], "", ""));
    let slow = rt.spawn(async move { H1Client::connect(web).await.get("/sleep/500").await });
    wait_until("the request to reach the backend", || {
        in_flight(&proxy, "backend") == 1
    });
    let started = Instant::now();
    proxy.shutdown(Duration::from_secs(5));
    let waited = started.elapsed();
    let got = rt.block_on(slow).unwrap();
    assert_eq!(got.status, 200);
    assert!(
        waited >= Duration::from_millis(250),
        "shutdown returned after {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "shutdown took {waited:?}");
    let refused = rt.block_on(async { tokio::net::TcpStream::connect(web).await.is_err() });
    assert!(refused, "listener still open after shutdown");
}

#[test]
fn shutdown_deadline_cuts_slow_requests() {
    let rt = client_runtime();
    let a = rt.block_on(http_backend("a"));
    let (proxy, web) = start_proxy(&snapshot("http", &[a], "", ""));
    let slow = rt.spawn(async move {
        let mut client = H1Client::connect(web).await;
        client.send(get("/sleep/5000")).await.is_err()
    });
    wait_until("the request to reach the backend", || {
        in_flight(&proxy, "backend") == 1
    });
    let started = Instant::now();
    proxy.shutdown(Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        rt.block_on(slow).unwrap(),
        "slow request should have been cut"
    );
}

#[test]
fn start_twice_and_apply_after_shutdown_are_state_errors() {
    let (proxy, _) = start_proxy(&snapshot("http", &[], "", ""));
    assert!(matches!(proxy.start(), Err(proxy_core::Error::State(_))));
    proxy.shutdown(Duration::ZERO);
    assert!(matches!(
        proxy.apply(&snapshot("http", &[], "", "")),
        Err(proxy_core::Error::State(_))
    ));
}

#[test]
fn admin_reports_ready_only_with_a_snapshot() {
    let proxy = proxy_core::Proxy::new(r#"{"admin":"127.0.0.1:0"}"#).unwrap();
    let admin = proxy.start().unwrap()[0].1;
    let rt = client_runtime();
    let ready = |rt: &tokio::runtime::Runtime| {
        rt.block_on(async { H1Client::connect(admin).await.get("/ready").await.status })
    };
    assert_eq!(ready(&rt), 503);
    proxy.apply(&snapshot("http", &[], "", "")).unwrap();
    assert_eq!(ready(&rt), 200);
    let metrics = rt.block_on(async { H1Client::connect(admin).await.get("/metrics").await });
    assert!(
        metrics.body.contains("meshpy_config_version 1"),
        "{}",
        metrics.body
    );
    let stats = rt.block_on(async { H1Client::connect(admin).await.get("/stats").await });
    assert!(stats.body.contains(r#""ready":true"#), "{}", stats.body);
}

#[test]
fn several_workers_serve_and_shut_down_too() {
    let rt = client_runtime();
    let a = rt.block_on(http_backend("a"));
    let proxy = proxy_core::Proxy::new(r#"{"workers":3}"#).unwrap();
    proxy.apply(&snapshot("http", &[a], "", "")).unwrap();
    let web = proxy.start().unwrap()[0].1;
    let bodies = rt.block_on(async move {
        let mut tasks = Vec::new();
        for _ in 0..6 {
            tasks.push(tokio::spawn(async move {
                H1Client::connect(web).await.get("/").await.body
            }));
        }
        let mut bodies = Vec::new();
        for task in tasks {
            bodies.push(task.await.unwrap());
        }
        bodies
    });
    assert!(bodies.iter().all(|b| b == "a"), "{bodies:?}");
    let started = Instant::now();
    proxy.shutdown(Duration::from_secs(2));
    assert!(started.elapsed() < Duration::from_secs(2));
}
