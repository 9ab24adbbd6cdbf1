//! The HTTP proxy on real loopback sockets: balancing, errors, limits, header rules, h2c, TCP.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::*;

#[test]
fn round_robin_spreads_evenly_over_endpoints() {
    let rt = client_runtime();
    let backends = rt.block_on(async {
        vec![
            http_backend("a").await,
            http_backend("b").await,
            http_backend("c").await,
        ]
    });
    let (proxy, web) = start_proxy(&snapshot("http", &backends, "", ""));
    let counts = rt.block_on(async {
        let mut client = H1Client::connect(web).await;
        let mut counts: HashMap<String, usize> = HashMap::new();
        for _ in 0..30 {
            let got = client.get("/").await;
            assert_eq!(got.status, 200);
            *counts.entry(got.body).or_default() += 1;
        }
        counts
    });
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|&n| n == 10), "{counts:?}");
    // Sequential keep-alive requests reuse pooled upstream connections.
    let stats = proxy.stats();
    for endpoint in stats["clusters"]["backend"]["endpoints"]
        .as_array()
        .unwrap()
    {
        assert_eq!(endpoint["idle_connections"], 1, "{stats}");
    }
    assert_eq!(stats["listeners"]["web"]["requests"]["2xx"], 30);
}

#[test]
fn no_endpoints_is_503_and_a_dead_endpoint_is_502() {
    let rt = client_runtime();
    let closed = rt.block_on(closed_port());
    let (empty, web_empty) = start_proxy(&snapshot("http", &[], "", ""));
    let (dead, web_dead) = start_proxy(&snapshot("http", &[closed], "", ""));
    rt.block_on(async {
        let got = H1Client::connect(web_empty).await.get("/").await;
        assert_eq!(got.status, 503);
        assert_eq!(got.header("x-meshpy-error"), "no_endpoints");
        assert!(got.body.starts_with("no endpoints"), "{}", got.body);
        let got = H1Client::connect(web_dead).await.get("/").await;
        assert_eq!(got.status, 502);
        assert_eq!(got.header("x-meshpy-error"), "connect_failed");
        assert!(got.body.contains("refused"), "{}", got.body);
    });
    let metrics = dead.metrics_text();
    assert!(
        metrics.contains(r#"meshpy_proxy_errors_total{listener="web",reason="connect_failed"} 1"#),
        "{metrics}"
    );
    drop(empty);
}

#[test]
fn slow_upstream_is_504_after_the_request_timeout() {
    let rt = client_runtime();
    let backend = rt.block_on(http_backend("slow"));
    let (_proxy, web) = start_proxy(&snapshot(
        "http",
        &[backend],
        r#","timeouts":{"request":"200ms"}"#,
        "",
    ));
    rt.block_on(async {
        let mut client = H1Client::connect(web).await;
        let started = std::time::Instant::now();
        let got = client.get("/sleep/2000").await;
        assert_eq!(got.status, 504);
        assert!(started.elapsed() < Duration::from_millis(1500));
        // The connection to the client survives the timeout.
        assert_eq!(client.get("/").await.status, 200);
    });
}

#[test]
fn hop_by_hop_headers_stop_at_the_proxy() {
    let rt = client_runtime();
    let backend = rt.block_on(http_backend("b"));
    let (_proxy, web) = start_proxy(&snapshot("http", &[backend], "", ""));
    rt.block_on(async {
        let req = http::Request::builder()
            .uri("/")
            .header("host", "svc")
            .header("connection", "keep-alive, x-private")
            .header("x-private", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-connection", "keep-alive")
            .header("te", "gzip")
            .header("x-forwarded-for", "192.0.2.1")
            .header("x-kept", "yes")
            .body(Default::default())
            .unwrap();
        let got = H1Client::connect(web).await.send(req).await.unwrap();
        assert_eq!(got.status, 200);
        let seen = got.header("x-seen-headers");
        for gone in [
            "connection",
            "x-private",
            "keep-alive",
            "proxy-connection",
            "te",
        ] {
            assert!(
                !seen.split(',').any(|h| h == gone),
                "{gone} reached the backend: {seen}"
            );
        }
        for kept in ["x-kept", "x-forwarded-for", "x-request-id", "via", "host"] {
            assert!(seen.split(',').any(|h| h == kept), "{kept} missing: {seen}");
        }
        assert_eq!(got.header("x-seen-forwarded-for"), "192.0.2.1, 127.0.0.1");
        assert_eq!(got.header("x-seen-host"), "svc");
        // The backend's hop-by-hop response headers do not reach the client.
        assert_eq!(got.header("keep-alive"), "");
        assert_eq!(got.header("via"), "1.1 meshpy");
    });
}

#[test]
fn oversize_headers_get_431_and_the_proxy_keeps_serving() {
    let rt = client_runtime();
    let backend = rt.block_on(http_backend("b"));
    let (_proxy, web) = start_proxy(&snapshot(
        "http",
        &[backend],
        r#","limits":{"max_header_bytes":4096,"max_headers":20}"#,
        "",
    ));
    rt.block_on(async {
        let big = format!(
            "GET / HTTP/1.1\r\nhost: svc\r\nx-big: {}\r\n\r\n",
            "a".repeat(8000)
        );
        let reply = raw_exchange(web, big.as_bytes(), 4096).await;
        assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
        let many: String = (0..40).map(|i| format!("x-h{i}: v\r\n")).collect();
        let reply = raw_exchange(
            web,
            format!("GET / HTTP/1.1\r\nhost: svc\r\n{many}\r\n").as_bytes(),
            4096,
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
        assert_eq!(H1Client::connect(web).await.get("/").await.status, 200);
    });
}

#[test]
fn h2c_clients_reach_http1_and_http2_upstreams() {
    let rt = client_runtime();
    let backend = rt.block_on(http_backend("b"));
    let (_h1_proxy, web1) = start_proxy(&snapshot("http", &[backend], "", ""));
    let (_h2_proxy, web2) =
        start_proxy(&snapshot("http", &[backend], "", r#","protocol":"http2""#));
    rt.block_on(async {
        let got = H2Client::connect(web1).await.get("svc.local", "/x").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("x-seen-version"), "HTTP/1.1");
        assert_eq!(got.header("x-seen-host"), "svc.local");
        let got = H1Client::connect(web2).await.get("/x").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("x-seen-version"), "HTTP/2.0");
        assert_eq!(got.header("x-seen-host"), "svc");
        let mut h2 = H2Client::connect(web2).await;
        for _ in 0..5 {
            assert_eq!(h2.get("svc", "/").await.status, 200);
        }
    });
}

#[test]
fn request_bodies_are_forwarded() {
    let rt = client_runtime();
    let backend = rt.block_on(http_backend("b"));
    let (_proxy, web) = start_proxy(&snapshot("http", &[backend], "", ""));
    rt.block_on(async {
        let req = http::Request::builder()
            .method("POST")
            .uri("/")
            .header("host", "svc")
            .body(http_body_util::Full::new(bytes::Bytes::from("hello")))
            .unwrap();
        let got = H1Client::connect(web).await.send(req).await.unwrap();
        assert_eq!(got.body, "b:hello");
    });
}

#[test]
fn tcp_listener_relays_bytes_both_ways() {
    let rt = client_runtime();
    let backend = rt.block_on(echo_backend());
    let (proxy, web) = start_proxy(&snapshot("tcp", &[backend], "", ""));
    rt.block_on(async {
        let reply = raw_exchange(web, b"ping over tcp", 13).await;
        assert_eq!(reply, "ping over tcp");
    });
    let stats = proxy.stats();
    assert_eq!(stats["listeners"]["web"]["protocol"], "tcp");
    assert_eq!(stats["listeners"]["web"]["bytes_received"], 13, "{stats}");
}

#[test]
fn idle_connections_are_closed_for_http1_http2_and_tcp() {
    let rt = client_runtime();
    let (backend, echo) = rt.block_on(async { (http_backend("b").await, echo_backend().await) });
    let idle = r#","timeouts":{"idle":"300ms"}"#;
    let (_http, web) = start_proxy(&snapshot("http", &[backend], idle, ""));
    let (_tcp, tcp) = start_proxy(&snapshot("tcp", &[echo], idle, ""));
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // HTTP/1: a keep-alive connection left idle is closed by the proxy.
        let mut h1 = tokio::net::TcpStream::connect(web).await.unwrap();
        h1.write_all(b"GET / HTTP/1.1\r\nhost: svc\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        assert!(h1.read(&mut buf).await.unwrap() > 0);
        let closed = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                if h1.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
            }
        });
        assert!(closed.await.is_ok(), "idle HTTP/1 connection not closed");
        // HTTP/2: an idle connection gets GOAWAY, then new requests on it fail.
        let mut h2 = H2Client::connect(web).await;
        assert_eq!(h2.get("svc", "/").await.status, 200);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(
            h2.try_get("svc", "/").await.is_err(),
            "idle HTTP/2 connection not closed"
        );
        // TCP: a silent relay is closed within two idle periods.
        let mut stream = tokio::net::TcpStream::connect(tcp).await.unwrap();
        stream.write_all(b"x").await.unwrap();
        assert_eq!(stream.read(&mut buf).await.unwrap(), 1);
        let closed = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "idle TCP relay not closed: {closed:?}"
        );
    });
}

#[test]
fn routes_send_by_host_and_rules_with_weights() {
    let rt = client_runtime();
    let (v1, v2, cart) = rt.block_on(async {
        (
            http_backend("v1").await,
            http_backend("v2").await,
            http_backend("cart").await,
        )
    });
    let snapshot = format!(
        r#"{{"listeners":[{{"name":"web","address":"127.0.0.1:0","protocol":"http","routes":[
              {{"name":"payment","hosts":["payment","payment.default"],"rules":[
                  {{"matches":[{{"headers":[{{"name":"x-beta","value":"1"}}]}}],"backends":[{{"cluster":"v2"}}]}},
                  {{"matches":[{{"path":{{"type":"PathPrefix","value":"/charge"}}}}],
                    "backends":[{{"cluster":"v1","weight":3}},{{"cluster":"v2","weight":1}}]}},
                  {{"matches":[{{"path":{{"type":"Exact","value":"/off"}}}}],"backends":[{{"cluster":"v1","weight":0}}]}}]}},
              {{"name":"cart","hosts":["cart"],"rules":[{{"backends":[{{"cluster":"cart"}}]}}]}}]}}],
            "clusters":[{{"name":"v1","endpoints":["{v1}"]}},{{"name":"v2","endpoints":["{v2}"]}},{{"name":"cart","endpoints":["{cart}"]}}]}}"#
    );
    let (proxy, web) = start_proxy(&snapshot);
    rt.block_on(async {
        let mut client = H1Client::connect(web).await;
        let mut split: HashMap<String, usize> = HashMap::new();
        for _ in 0..400 {
            let req = http::Request::builder()
                .uri("/charge/1")
                .header("host", "payment:80")
                .body(Default::default())
                .unwrap();
            *split
                .entry(client.send(req).await.unwrap().body)
                .or_default() += 1;
        }
        let v1 = split.get("v1").copied().unwrap_or(0);
        assert!((250..=350).contains(&v1), "3:1 split gave {split:?}");
        let beta = http::Request::builder()
            .uri("/anything")
            .header("host", "payment")
            .header("x-beta", "1")
            .body(Default::default())
            .unwrap();
        assert_eq!(client.send(beta).await.unwrap().body, "v2");
        let cart_req = http::Request::builder()
            .uri("/")
            .header("host", "cart")
            .body(Default::default())
            .unwrap();
        assert_eq!(client.send(cart_req).await.unwrap().body, "cart");
        // GAMMA: the host is served but no rule matches → 404 with a reason.
        let unmatched = http::Request::builder()
            .uri("/refund")
            .header("host", "payment")
            .body(Default::default())
            .unwrap();
        let got = client.send(unmatched).await.unwrap();
        assert_eq!(
            (got.status.as_u16(), got.header("x-meshpy-error")),
            (404, "no_route")
        );
        assert!(got.body.contains("no rule"), "{}", got.body);
        let unknown = http::Request::builder()
            .uri("/")
            .header("host", "nobody")
            .body(Default::default())
            .unwrap();
        let got = client.send(unknown).await.unwrap();
        assert_eq!(got.status, 404);
        assert!(got.body.contains("no virtual host"), "{}", got.body);
        let off = http::Request::builder()
            .uri("/off")
            .header("host", "payment")
            .body(Default::default())
            .unwrap();
        let got = client.send(off).await.unwrap();
        assert_eq!(
            (got.status.as_u16(), got.header("x-meshpy-error")),
            (500, "no_backend")
        );
        // h2c clients are routed by :authority.
        assert_eq!(
            H2Client::connect(web).await.get("cart", "/").await.body,
            "cart"
        );
    });
    assert!(proxy.stats()["listeners"]["web"]["cluster"].is_null());
}

#[test]
fn weighted_endpoints_share_traffic_in_proportion() {
    let rt = client_runtime();
    let (a, b) = rt.block_on(async { (http_backend("a").await, http_backend("b").await) });
    let extra = format!(r#"{{"address":"{b}","weight":3}}"#);
    let snapshot =
        snapshot("http", &[a], "", "").replace(&format!(r#""{a}""#), &format!(r#""{a}",{extra}"#));
    let (_proxy, web) = start_proxy(&snapshot);
    let counts = rt.block_on(async {
        let mut client = H1Client::connect(web).await;
        let mut counts: HashMap<String, usize> = HashMap::new();
        for _ in 0..40 {
            *counts.entry(client.get("/").await.body).or_default() += 1;
        }
        counts
    });
    assert_eq!((counts["a"], counts["b"]), (10, 30), "{counts:?}");
}

#[test]
fn filters_rewrite_and_regex_routes_reach_the_backend() {
    let rt = client_runtime();
    let (api, other) =
        rt.block_on(async { (http_backend("api").await, http_backend("other").await) });
    let snapshot = format!(
        r#"{{"listeners":[{{"name":"web","address":"127.0.0.1:0","protocol":"http","routes":[
              {{"name":"svc","hosts":["svc"],"rules":[
                  {{"matches":[{{"path":{{"type":"RegularExpression","value":"/v[0-9]+/items/[0-9]+"}}}}],
                    "backends":[{{"cluster":"other"}}]}},
                  {{"matches":[{{"headers":[{{"name":"x-t-tier","value":"gold|platinum","type":"RegularExpression"}}]}}],
                    "backends":[{{"cluster":"other"}}]}},
                  {{"matches":[{{"path":{{"type":"PathPrefix","value":"/api/"}}}}],
                    "filters":{{"request_headers":{{"set":[{{"name":"X-T-Set","value":"by-proxy"}}],
                                                   "add":[{{"name":"x-t-add","value":"two"}}],
                                                   "remove":["x-t-secret"]}},
                               "response_headers":{{"set":[{{"name":"x-seen-version","value":"hidden"}}],
                                                    "add":[{{"name":"x-resp-added","value":"yes"}}],
                                                    "remove":["x-seen-forwarded-for"]}},
                               "url_rewrite":{{"hostname":"api.internal","path":{{"type":"ReplacePrefixMatch","value":"/v2"}}}}}},
                    "backends":[{{"cluster":"api"}}]}},
                  {{"matches":[{{"path":{{"type":"Exact","value":"/old"}}}}],
                    "backends":[{{"cluster":"api","filters":{{"url_rewrite":{{"path":{{"type":"ReplaceFullPath","value":"/new"}}}}}}}}]}}]}}]}}],
            "clusters":[{{"name":"api","endpoints":["{api}"]}},{{"name":"other","endpoints":["{other}"]}}]}}"#
    );
    let (_proxy, web) = start_proxy(&snapshot);
    rt.block_on(async {
        let mut client = H1Client::connect(web).await;
        let send = |path: &str, headers: &[(&str, &str)]| {
            let mut req = http::Request::builder().uri(path).header("host", "svc");
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            req.body(Default::default()).unwrap()
        };
        // Request headers: set replaces, add keeps the old value, remove drops; the
        // prefix is rewritten with the query kept, and the host is the rewritten one.
        let got = client
            .send(send(
                "/api/orders/7?full=1",
                &[
                    ("x-t-set", "from-client"),
                    ("x-t-add", "one"),
                    ("x-t-secret", "s"),
                ],
            ))
            .await
            .unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(got.body, "api");
        assert_eq!(got.header("x-seen-path"), "/v2/orders/7?full=1");
        assert_eq!(got.header("x-seen-host"), "api.internal");
        assert_eq!(got.header("x-seen-t-set"), "by-proxy");
        assert_eq!(got.header("x-seen-t-add"), "one|two");
        assert!(
            got.headers.get("x-seen-t-secret").is_none(),
            "{:?}",
            got.headers
        );
        // Response headers, on the way back.
        assert_eq!(got.header("x-seen-version"), "hidden");
        assert_eq!(got.header("x-resp-added"), "yes");
        assert!(got.headers.get("x-seen-forwarded-for").is_none());
        // The prefix itself becomes the replacement.
        let got = client.send(send("/api", &[])).await.unwrap();
        assert_eq!(got.header("x-seen-path"), "/v2");
        // A backend's own filter.
        let got = client.send(send("/old?q=1", &[])).await.unwrap();
        assert_eq!(
            (got.body.as_str(), got.header("x-seen-path")),
            ("api", "/new?q=1")
        );
        // Regular expressions route on the whole path and on header values.
        let got = client.send(send("/v3/items/42", &[])).await.unwrap();
        assert_eq!(got.body, "other");
        assert_eq!(got.header("x-seen-path"), "/v3/items/42");
        let got = client.send(send("/v3/items/42/x", &[])).await.unwrap();
        assert_eq!(got.status, 404);
        let got = client
            .send(send("/any", &[("x-t-tier", "gold")]))
            .await
            .unwrap();
        assert_eq!(got.body, "other");
        let got = client
            .send(send("/any", &[("x-t-tier", "golden")]))
            .await
            .unwrap();
        assert_eq!(got.status, 404);
        // No filters on that rule: nothing is rewritten.
        assert_eq!(got.header("x-meshpy-error"), "no_route");
    });
}

#[test]
fn backend_request_timeout_bounds_the_upstream_request() {
    let rt = client_runtime();
    let backend = rt.block_on(http_backend("slow"));
    let snapshot = format!(
        r#"{{"listeners":[{{"name":"web","address":"127.0.0.1:0","protocol":"http","routes":[
              {{"name":"svc","hosts":["svc"],"rules":[
                  {{"backends":[{{"cluster":"b"}}],"timeouts":{{"request":"10s","backend_request":"200ms"}}}}]}}]}}],
            "clusters":[{{"name":"b","endpoints":["{backend}"]}}]}}"#
    );
    let (_proxy, web) = start_proxy(&snapshot);
    rt.block_on(async {
        let mut client = H1Client::connect(web).await;
        let started = std::time::Instant::now();
        let got = client.get("/sleep/3000").await;
        assert_eq!(got.status, 504);
        assert_eq!(got.header("x-meshpy-error"), "request_timeout");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let got = H1Client::connect(web).await.get("/sleep/10").await;
        assert_eq!(got.status, 200);
    });
}

/// Requests are counted by the route and rule that matched them, and the service
/// they went to; those no rule matched, with empty ones.
#[test]
fn requests_are_counted_by_route_and_rule() {
    let rt = client_runtime();
    let (v1, v2, cart) = rt.block_on(async {
        (
            http_backend("v1").await,
            http_backend("v2").await,
            http_backend("cart").await,
        )
    });
    let service = |name: &str, version: &str| {
        format!(r#""service":{{"namespace":"default","service":"{name}","version":"{version}"}}"#)
    };
    let snapshot = format!(
        r#"{{"metrics":{{"workload":{{"namespace":"default","service":"shop"}}}},
            "listeners":[{{"name":"web","address":"127.0.0.1:0","protocol":"http","direction":"outbound","routes":[
              {{"name":"payment","hosts":["payment"],"rules":[
                  {{"matches":[{{"path":{{"type":"PathPrefix","value":"/charge"}}}}],"backends":[{{"cluster":"v1"}}]}},
                  {{"matches":[{{"path":{{"type":"Exact","value":"/off"}}}}],"backends":[{{"cluster":"v1","weight":0}}]}},
                  {{"backends":[{{"cluster":"v2"}}]}}]}},
              {{"name":"cart","hosts":["cart"],"rules":[{{"backends":[{{"cluster":"cart"}}]}}]}}]}}],
            "clusters":[{{"name":"v1","endpoints":["{v1}"],{}}},{{"name":"v2","endpoints":["{v2}"],{}}},
                        {{"name":"cart","endpoints":["{cart}"],{}}}]}}"#,
        service("payment", "v1"),
        service("payment", "v2"),
        service("cart", "v1"),
    );
    let (proxy, web) = start_proxy(&snapshot);
    rt.block_on(async {
        let mut client = H1Client::connect(web).await;
        for (host, path, times, status) in [
            ("payment", "/charge/1", 3, 200),
            ("payment", "/refund", 2, 200),
            // Matched, but with no backend to send to: sent to no service.
            ("payment", "/off", 1, 500),
            ("cart", "/", 1, 200),
            ("nowhere", "/", 2, 404),
        ] {
            for _ in 0..times {
                let req = http::Request::builder()
                    .uri(path)
                    .header("host", host)
                    .body(Default::default())
                    .unwrap();
                assert_eq!(
                    client.send(req).await.unwrap().status,
                    status,
                    "{host}{path}"
                );
            }
        }
    });
    let text = proxy.metrics_text();
    for (labels, count) in [
        (
            r#"destination_service="payment",route="payment",rule="0",http_response_status_code="200""#,
            3,
        ),
        (
            r#"destination_service="payment",route="payment",rule="2",http_response_status_code="200""#,
            2,
        ),
        (
            r#"destination_service="unknown",route="payment",rule="1",http_response_status_code="500""#,
            1,
        ),
        (
            r#"destination_service="cart",route="cart",rule="0",http_response_status_code="200""#,
            1,
        ),
        (
            r#"destination_service="unknown",route="",rule="",http_response_status_code="404""#,
            2,
        ),
    ] {
        let line =
            format!("meshpy_route_requests_total{{direction=\"outbound\",{labels}}} {count}\n");
        assert!(text.contains(&line), "missing {line}\nin:\n{text}");
    }
    assert_eq!(
        text.matches("meshpy_route_requests_total{").count(),
        5,
        "{text}"
    );
}
