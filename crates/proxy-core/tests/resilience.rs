//! Retries, retry budgets, request mirrors, fault injection and request trailers, on real loopback sockets.

// Test helpers outside #[test] functions fail loudly too.
#![allow(clippy::unwrap_used)]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

use support::*;

/// What a scripted backend saw.
#[derive(Clone, Default)]
struct Seen {
    hits: Arc<AtomicUsize>,
    hosts: Arc<Mutex<Vec<String>>>,
}

impl Seen {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A backend whose `script(hit number)` gives each answer's status and delay in ms.
async fn scripted_backend(
    script: impl Fn(usize) -> (u16, u64) + Send + Sync + 'static,
) -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let script = Arc::new(script);
    let record = seen.clone();
    let addr = serve_http(move |req: Request<Incoming>| {
        let n = record.hits.fetch_add(1, Ordering::SeqCst);
        let host = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default();
        record.hosts.lock().unwrap().push(host);
        let (status, delay) = script(n);
        async move {
            let _ = req.into_body().collect().await;
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let mut response = Response::new(Full::new(Bytes::from(status.to_string())));
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            Ok::<_, Infallible>(response)
        }
    })
    .await;
    (addr, seen)
}

/// A listener `web` with one virtual host `svc` and one rule (`rule_extra` added to it),
/// to cluster `b`; `clusters` are more cluster objects, `b_extra` goes into `b`.
fn one_rule(b: &[SocketAddr], rule_extra: &str, b_extra: &str, clusters: &str) -> String {
    let endpoints: Vec<String> = b.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        r#"{{"listeners":[{{"name":"web","address":"127.0.0.1:0","protocol":"http","routes":[
              {{"name":"svc","hosts":["svc"],"rules":[{{"backends":[{{"cluster":"b"}}]{rule_extra}}}]}}]}}],
            "clusters":[{{"name":"b","endpoints":[{}]{b_extra}}}{clusters}]}}"#,
        endpoints.join(",")
    )
}

/// Sends `total` requests made by `make` over `clients` connections at once; returns the answers.
async fn load(
    web: SocketAddr,
    clients: usize,
    total: usize,
    make: fn() -> Request<Full<Bytes>>,
) -> Vec<(Got, Duration)> {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let share = total / clients + usize::from(c < total % clients);
        tasks.push(tokio::spawn(async move {
            let mut client = H1Client::connect(web).await;
            let mut got = Vec::with_capacity(share);
            for _ in 0..share {
                let started = Instant::now();
                let answer = client.send(make()).await.unwrap();
                got.push((answer, started.elapsed()));
            }
            got
        }));
    }
    let mut all = Vec::with_capacity(total);
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// The value of the metric series `line` (labels included), 0 if absent.
fn metric(proxy: &proxy_core::Proxy, series: &str) -> u64 {
    let text = proxy.metrics_text();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn retries_hide_a_backend_failing_half_the_time() {
    let rt = client_runtime();
    // Half the answers, scattered, are 503: three tries fail together 1 time in 8.
    let (backend, seen) = rt.block_on(scripted_backend(|n| {
        let failing = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 63 == 1;
        (if failing { 503 } else { 200 }, 0)
    }));
    let retry = r#","retry":{"attempts":2,"codes":[503],"backoff":"5ms"}"#;
    let (proxy, web) = start_proxy(&one_rule(&[backend], retry, "", ""));
    let answers = rt.block_on(load(web, 4, 160, || get("/")));
    let ok = answers.iter().filter(|(g, _)| g.status == 200).count();
    // Without retries 80 would succeed; with two, 140 on average.
    assert!(ok >= 125, "{ok} of 160 succeeded");
    let sent = metric(&proxy, r#"meshpy_retries_total{cluster="b",result="sent"}"#);
    assert!((80..=140).contains(&sent), "{sent} retries");
    assert_eq!(seen.hits() as u64, 160 + sent);
    // The same retries, on the edge of the requests: from an unknown caller into a
    // workload the snapshot does not name.
    let edge = "meshpy_edge_retries_total{direction=\"inbound\",source_namespace=\"unknown\",source_service=\"unknown\",\
     source_version=\"unknown\",source_identity=\"\",destination_namespace=\"unknown\",\
     destination_service=\"unknown\",destination_version=\"unknown\",mtls=\"false\"}";
    assert_eq!(metric(&proxy, edge), sent);

    // Half the endpoints failing: a retry picks again and gets the good one.
    let (bad, _) = rt.block_on(scripted_backend(|_| (503, 0)));
    let good = rt.block_on(http_backend("good"));
    let (_proxy, web) = start_proxy(&one_rule(&[bad, good], retry, "", ""));
    let answers = rt.block_on(load(web, 4, 160, || get("/")));
    let ok = answers.iter().filter(|(g, _)| g.status == 200).count();
    assert_eq!(ok, 160);
}

#[test]
fn the_budget_bounds_retries_when_every_try_fails() {
    let rt = client_runtime();
    let (backend, seen) = rt.block_on(scripted_backend(|_| (503, 0)));
    let snapshot = one_rule(
        &[backend],
        r#","retry":{"attempts":2,"codes":[503],"backoff":"1ms"}"#,
        r#","retry_budget":{"percent":20,"min_retries_per_second":1}"#,
        "",
    );
    let (proxy, web) = start_proxy(&snapshot);
    let started = Instant::now();
    let answers = rt.block_on(load(web, 4, 300, || get("/")));
    // The last try's own answer comes back, not an error of the proxy.
    assert!(answers
        .iter()
        .all(|(g, _)| g.status == 503 && g.header("x-meshpy-error").is_empty()));
    // 20% of 300 plus the reserve (1/s over 10 s, once more per extra window), not 3 × 300.
    let windows = 1 + started.elapsed().as_secs() as usize / 10;
    let hits = seen.hits();
    assert!(
        (300 + 50..=300 + 60 + 10 * windows + 8).contains(&hits),
        "{hits} backend hits for 300 requests"
    );
    let sent = metric(&proxy, r#"meshpy_retries_total{cluster="b",result="sent"}"#);
    let exhausted = metric(
        &proxy,
        r#"meshpy_retries_total{cluster="b",result="budget_exhausted"}"#,
    );
    assert_eq!(sent as usize, hits - 300);
    assert!(exhausted >= 200, "{exhausted} retries refused");
}

#[test]
fn a_post_is_retried_only_when_it_never_reached_the_upstream() {
    let rt = client_runtime();
    let (failing, seen) = rt.block_on(scripted_backend(|_| (503, 0)));
    let (live, closed) = rt.block_on(async { (http_backend("live").await, closed_port().await) });
    let snapshot = format!(
        r#"{{"listeners":[{{"name":"web","address":"127.0.0.1:0","protocol":"http","routes":[
              {{"name":"failing","hosts":["failing"],"rules":[{{"backends":[{{"cluster":"failing"}}],
                 "retry":{{"attempts":2,"codes":[503]}}}}]}},
              {{"name":"half","hosts":["half"],"rules":[{{"backends":[{{"cluster":"half"}}],
                 "retry":{{"attempts":1}}}}]}}]}}],
            "clusters":[{{"name":"failing","endpoints":["{failing}"]}},
                        {{"name":"half","endpoints":["{closed}","{live}"]}}]}}"#
    );
    let (_proxy, web) = start_proxy(&snapshot);
    rt.block_on(async {
        let mut client = H1Client::connect(web).await;
        let send = |method: &str, host: &str| {
            Request::builder()
                .method(method)
                .uri("/")
                .header("host", host)
                .body(Full::new(Bytes::from("order-7")))
                .unwrap()
        };
        let got = client.send(send("POST", "failing")).await.unwrap();
        assert_eq!(got.status, 503);
        assert_eq!(seen.hits(), 1, "a POST answered 503 was retried");
        let got = client.send(send("PUT", "failing")).await.unwrap();
        assert_eq!(got.status, 503);
        assert_eq!(seen.hits(), 4, "a PUT is retried twice");
        // Round robin sends every other first try to the closed port; the retry
        // goes to the live endpoint, with the whole body.
        for _ in 0..4 {
            let got = client.send(send("POST", "half")).await.unwrap();
            assert_eq!(
                (got.status.as_u16(), got.body.as_str()),
                (200, "live:order-7")
            );
        }
    });
}

#[test]
fn the_per_try_timeout_retries_and_the_request_timeout_bounds_all_tries() {
    let rt = client_runtime();
    let backend = rt.block_on(http_backend("slow"));
    let snapshot = one_rule(
        &[backend],
        r#","timeouts":{"request":"1s","backend_request":"200ms"},"retry":{"attempts":2,"backoff":"10ms"}"#,
        "",
        "",
    );
    let (proxy, web) = start_proxy(&snapshot);
    rt.block_on(async {
        let mut client = H1Client::connect(web).await;
        let started = Instant::now();
        let got = client.get("/sleep/2000").await;
        let took = started.elapsed();
        assert_eq!(got.status, 504);
        assert_eq!(got.header("x-meshpy-error"), "request_timeout");
        // Three tries of 200 ms, well before the backend's 2 s or the request's 1 s.
        assert!(
            (Duration::from_millis(580)..Duration::from_millis(950)).contains(&took),
            "{took:?}"
        );
        assert_eq!(client.get("/sleep/1").await.status, 200);
    });
    assert_eq!(
        metric(&proxy, r#"meshpy_retries_total{cluster="b",result="sent"}"#),
        2
    );
    // Without backend_request, the request timeout ends the first try: no retry.
    let snapshot = one_rule(
        &[backend],
        r#","timeouts":{"request":"300ms"},"retry":{"attempts":2}"#,
        "",
        "",
    );
    let (proxy, web) = start_proxy(&snapshot);
    rt.block_on(async {
        let started = Instant::now();
        let got = H1Client::connect(web).await.get("/sleep/2000").await;
        assert_eq!(got.status, 504);
        assert!(started.elapsed() < Duration::from_millis(800));
    });
    assert_eq!(
        metric(&proxy, r#"meshpy_retries_total{cluster="b",result="sent"}"#),
        0
    );
}

#[test]
fn mirrors_get_their_share_and_the_client_never_waits_for_them() {
    let rt = client_runtime();
    let (main, main_seen) = rt.block_on(scripted_backend(|_| (200, 0)));
    // The shadow answers 500, after 2 s.
    let (shadow, shadow_seen) = rt.block_on(scripted_backend(|_| (500, 2000)));
    let snapshot = one_rule(
        &[main],
        r#","filters":{"request_mirror":{"cluster":"shadow","percent":25}}"#,
        "",
        &format!(r#",{{"name":"shadow","endpoints":["{shadow}"]}}"#),
    );
    let (proxy, web) = start_proxy(&snapshot);
    let started = Instant::now();
    let answers = rt.block_on(load(web, 4, 400, || {
        Request::builder()
            .method("POST")
            .uri("/pay")
            .header("host", "svc:8080")
            .body(Full::new(Bytes::from("body")))
            .unwrap()
    }));
    assert!(answers.iter().all(|(g, _)| g.status == 200));
    let slowest = answers.iter().map(|(_, took)| *took).max().unwrap();
    assert!(slowest < Duration::from_millis(1500), "{slowest:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(main_seen.hits(), 400);
    // Each copy holds its lease on the shadow's endpoint until answered, 2 s later.
    wait_until("every copy to reach the shadow", || {
        let seen = shadow_seen.hits();
        seen > 0 && seen as u64 == in_flight(&proxy, "shadow")
    });
    let copies = shadow_seen.hits();
    assert!(
        (60..=140).contains(&copies),
        "{copies} copies of 400 at 25%"
    );
    assert!(shadow_seen
        .hosts
        .lock()
        .unwrap()
        .iter()
        .all(|h| h == "svc-shadow:8080"));
    // Their answers arrive 2 s later and are counted, not forwarded.
    let deadline = Instant::now() + Duration::from_secs(5);
    let series = r#"meshpy_mirror_requests_total{cluster="shadow",result="sent"}"#;
    while metric(&proxy, series) < copies as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(&proxy, series), copies as u64);
}

#[test]
fn mirrors_over_the_in_flight_limit_are_dropped() {
    let rt = client_runtime();
    let main = rt.block_on(http_backend("main"));
    let (shadow, shadow_seen) = rt.block_on(scripted_backend(|_| (200, 4000)));
    let snapshot = one_rule(
        &[main],
        r#","filters":{"request_mirror":{"cluster":"shadow"}}"#,
        "",
        &format!(r#",{{"name":"shadow","endpoints":["{shadow}"]}}"#),
    );
    let (proxy, web) = start_proxy(&snapshot);
    let started = Instant::now();
    let answers = rt.block_on(load(web, 8, 400, || get("/")));
    assert!(answers.iter().all(|(g, _)| g.status == 200));
    let dropped = metric(
        &proxy,
        r#"meshpy_mirror_requests_total{cluster="shadow",result="dropped"}"#,
    );
    // Only meaningful while every copy is still held by the shadow.
    if started.elapsed() < Duration::from_secs(3) {
        assert!(dropped >= 400 - 256, "{dropped} dropped");
        assert!(
            shadow_seen.hits() <= 256,
            "{} in flight",
            shadow_seen.hits()
        );
    }
}

#[test]
fn faults_abort_and_delay_their_share_of_requests() {
    let rt = client_runtime();
    let (backend, seen) = rt.block_on(scripted_backend(|_| (200, 0)));
    let snapshot = one_rule(
        &[backend],
        "",
        r#","fault":{"abort":{"percent":30,"status":418}}"#,
        "",
    );
    let (_proxy, web) = start_proxy(&snapshot);
    let answers = rt.block_on(load(web, 4, 400, || get("/")));
    let aborted: Vec<&Got> = answers
        .iter()
        .map(|(g, _)| g)
        .filter(|g| g.status == 418)
        .collect();
    assert!(
        (80..=160).contains(&aborted.len()),
        "{} aborted",
        aborted.len()
    );
    assert!(aborted
        .iter()
        .all(|g| g.header("x-meshpy-fault") == "abort" && g.body == "fault injected\n"));
    assert_eq!(seen.hits(), 400 - aborted.len());

    let snapshot = one_rule(
        &[backend],
        "",
        r#","fault":{"delay":{"percent":50,"duration":"150ms"},"abort":{"percent":0,"status":503}}"#,
        "",
    );
    let (_proxy, web) = start_proxy(&snapshot);
    let answers = rt.block_on(load(web, 8, 80, || get("/")));
    assert!(answers.iter().all(|(g, _)| g.status == 200));
    let delayed = answers
        .iter()
        .filter(|(_, took)| *took >= Duration::from_millis(150))
        .count();
    assert!((20..=60).contains(&delayed), "{delayed} of 80 delayed");
}

/// A body of one data frame then trailers.
struct Trailing {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for Trailing {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(match self.data.take() {
            Some(data) => Some(Ok(Frame::data(data))),
            None => self.trailers.take().map(|t| Ok(Frame::trailers(t))),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

/// An h2c backend, gRPC-like: echoes the request body, and its `x-req` trailer in
/// the response trailers with `grpc-status: 0`.
async fn trailer_echo_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: Request<Incoming>| async move {
                    let collected = req.into_body().collect().await.unwrap();
                    let seen = collected
                        .trailers()
                        .and_then(|t| t.get("x-req").cloned())
                        .unwrap_or_else(|| HeaderValue::from_static("none"));
                    let mut trailers = HeaderMap::new();
                    trailers.insert("grpc-status", HeaderValue::from_static("0"));
                    trailers.insert("x-echo", seen);
                    Ok::<_, Infallible>(Response::new(Trailing {
                        data: Some(collected.to_bytes()),
                        trailers: Some(trailers),
                    }))
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[test]
fn http2_request_and_response_trailers_pass_with_and_without_retries() {
    let rt = client_runtime();
    let backend = rt.block_on(trailer_echo_backend());
    let snapshot = format!(
        r#"{{"listeners":[{{"name":"web","address":"127.0.0.1:0","protocol":"http","routes":[
              {{"name":"svc","hosts":["svc"],"rules":[
                  {{"matches":[{{"path":{{"type":"PathPrefix","value":"/streamed"}}}}],"backends":[{{"cluster":"grpc"}}]}},
                  {{"matches":[{{"path":{{"type":"PathPrefix","value":"/retried"}}}}],"backends":[{{"cluster":"grpc"}}],
                    "retry":{{"attempts":2,"codes":[503]}}}}]}}]}}],
            "clusters":[{{"name":"grpc","protocol":"http2","endpoints":["{backend}"]}}]}}"#
    );
    let (_proxy, web) = start_proxy(&snapshot);
    rt.block_on(async {
        let stream = TcpStream::connect(web).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        for path in ["/streamed/Call", "/retried/Call"] {
            let mut trailers = HeaderMap::new();
            trailers.insert("x-req", HeaderValue::from_static("t-1"));
            let req = Request::builder()
                .method("POST")
                .uri(format!("http://svc{path}"))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(Trailing {
                    data: Some(Bytes::from_static(b"\0\0\0\0\x02hi")),
                    trailers: Some(trailers),
                })
                .unwrap();
            sender.ready().await.unwrap();
            let response = sender.send_request(req).await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let collected = response.into_body().collect().await.unwrap();
            let trailers = collected.trailers().cloned().unwrap_or_default();
            assert_eq!(trailers.get("grpc-status").unwrap(), "0", "{path}");
            assert_eq!(trailers.get("x-echo").unwrap(), "t-1", "{path}");
            assert_eq!(&collected.to_bytes()[..], b"\0\0\0\0\x02hi", "{path}");
        }
    });
}

/// An h2c gRPC-like backend: `/NotFound` answers a message then `grpc-status: 5` in
/// the trailers; any other path a trailers-only response, `grpc-status: 0` in the
/// headers.
async fn grpc_status_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: Request<Incoming>| async move {
                    let not_found = req.uri().path() == "/NotFound";
                    let _ = req.into_body().collect().await;
                    let response = Response::builder().header("content-type", "application/grpc");
                    let response = if not_found {
                        let mut trailers = HeaderMap::new();
                        trailers.insert("grpc-status", HeaderValue::from_static("5"));
                        response.body(Trailing {
                            data: Some(Bytes::from_static(b"\0\0\0\0\0")),
                            trailers: Some(trailers),
                        })
                    } else {
                        response.header("grpc-status", "0").body(Trailing {
                            data: None,
                            trailers: None,
                        })
                    };
                    Ok::<_, Infallible>(response.unwrap())
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A gRPC status is counted when its response ends, on both ends of the edge A → B:
/// from the trailers, or from the headers of a trailers-only response.
#[test]
fn grpc_statuses_are_counted_per_edge_from_trailers_and_trailers_only_headers() {
    let rt = client_runtime();
    let backend = rt.block_on(grpc_status_backend());
    let workload = |service: &str| {
        format!(r#""metrics":{{"workload":{{"namespace":"default","service":"{service}"}}}}"#)
    };
    let b_config = format!(
        r#"{{{},"listeners":[{{"name":"web","address":"127.0.0.1:0","protocol":"http","cluster":"app"}}],
            "clusters":[{{"name":"app","protocol":"http2","endpoints":["{backend}"]}}]}}"#,
        workload("b")
    );
    let (b, b_web) = start_proxy(&b_config);
    let a_config = format!(
        r#"{{{},"listeners":[{{"name":"web","address":"127.0.0.1:0","protocol":"http","direction":"outbound","cluster":"b"}}],
            "clusters":[{{"name":"b","protocol":"http2","endpoints":["{b_web}"],
                          "service":{{"namespace":"default","service":"b"}}}}]}}"#,
        workload("a")
    );
    let (a, a_web) = start_proxy(&a_config);
    rt.block_on(async {
        let stream = TcpStream::connect(a_web).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        for (path, times, status) in [("/NotFound", 3, "5"), ("/Ok", 2, "0")] {
            for _ in 0..times {
                let req = Request::builder()
                    .method("POST")
                    .uri(format!("http://b{path}"))
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
                    .unwrap();
                sender.ready().await.unwrap();
                let response = sender.send_request(req).await.unwrap();
                assert_eq!(response.status(), 200, "{path}");
                let in_headers = response.headers().get("grpc-status").cloned();
                let collected = response.into_body().collect().await.unwrap();
                let in_trailers = collected
                    .trailers()
                    .and_then(|t| t.get("grpc-status").cloned());
                assert_eq!(in_headers.or(in_trailers).unwrap(), status, "{path}");
            }
        }
    });
    let edge = |direction: &str, source: &str| {
        format!(
            "direction=\"{direction}\",source_namespace=\"{source}\",source_service=\"{}\",\
             source_version=\"unknown\",source_identity=\"\",destination_namespace=\"default\",\
             destination_service=\"b\",destination_version=\"unknown\",mtls=\"false\"",
            if source == "default" { "a" } else { "unknown" }
        )
    };
    let outbound = edge("outbound", "default");
    let inbound = edge("inbound", "unknown");
    for (proxy, labels) in [(&a, &outbound), (&b, &inbound)] {
        for (status, count) in [("5", 3), ("0", 2)] {
            let series =
                format!("meshpy_grpc_responses_total{{{labels},grpc_status=\"{status}\"}}");
            // The trailers are counted as the proxy passes them on, a moment after
            // the client may have read them.
            wait_until(&series, || metric(proxy, &series) == count);
        }
        let requests = format!(
            "_request_duration_seconds_count{{{labels},http_request_method=\"POST\",\
             http_response_status_code=\"200\"}}"
        );
        let text = proxy.metrics_text();
        assert!(
            text.contains(&format!("{requests} 5")),
            "{requests}\n{text}"
        );
        assert_eq!(
            text.matches("meshpy_grpc_responses_total{").count(),
            2,
            "{text}"
        );
    }
}
