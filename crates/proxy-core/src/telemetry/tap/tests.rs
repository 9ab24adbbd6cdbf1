//! Table tests of taps: filters, redaction, the token bucket, query parsing, and the hub's queue and rate.

use super::*;

use http::HeaderValue;

#[test]
fn filters_match_by_prefix_segment_method_and_direction() {
    let get = Method::GET;
    let post = Method::POST;
    let filter = |path: Option<&str>, method: Option<Method>, direction| TapFilter {
        path_prefix: path.map(str::to_string),
        method,
        direction,
    };
    let cases: &[(TapFilter, &Method, &str, Direction, bool)] = &[
        (TapFilter::default(), &get, "/", Direction::Inbound, true),
        (
            filter(Some("/"), None, None),
            &get,
            "/x",
            Direction::Inbound,
            true,
        ),
        (
            filter(Some("/api"), None, None),
            &get,
            "/api",
            Direction::Inbound,
            true,
        ),
        (
            filter(Some("/api"), None, None),
            &get,
            "/api/v1",
            Direction::Inbound,
            true,
        ),
        (
            filter(Some("/api"), None, None),
            &get,
            "/apix",
            Direction::Inbound,
            false,
        ),
        (
            filter(Some("/api"), None, None),
            &get,
            "/ap",
            Direction::Inbound,
            false,
        ),
        (
            filter(Some("/api/"), None, None),
            &get,
            "/api/x",
            Direction::Inbound,
            true,
        ),
        (
            filter(Some("/api/"), None, None),
            &get,
            "/api",
            Direction::Inbound,
            false,
        ),
        (
            filter(None, Some(Method::POST), None),
            &get,
            "/",
            Direction::Inbound,
            false,
        ),
        (
            filter(None, Some(Method::POST), None),
            &post,
            "/",
            Direction::Inbound,
            true,
        ),
        (
            filter(None, None, Some(Direction::Outbound)),
            &get,
            "/",
            Direction::Inbound,
            false,
        ),
        (
            filter(None, None, Some(Direction::Outbound)),
            &get,
            "/",
            Direction::Outbound,
            true,
        ),
        (
            filter(Some("/pay"), Some(Method::POST), Some(Direction::Inbound)),
            &post,
            "/pay/1",
            Direction::Inbound,
            true,
        ),
    ];
    for (filter, method, path, direction, expected) in cases {
        assert_eq!(
            filter.matches(method, path, *direction),
            *expected,
            "{filter:?} on {method} {path} {direction:?}"
        );
    }
}

#[test]
fn credentials_are_sensitive_and_ordinary_headers_are_not() {
    for name in [
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-apikey",
        "x-auth-token",
        "x-csrf-token",
        "x-session-id",
        "x-db-password",
        "x-client-secret",
        "x-hub-signature-256",
        "x-forwarded-client-cert",
        "x-amz-security-token",
    ] {
        assert!(is_sensitive(name), "{name} must be redacted");
    }
    for name in [
        "user-agent",
        "accept",
        "content-type",
        "x-request-id",
        "traceparent",
        "x-visible",
        "host",
    ] {
        assert!(!is_sensitive(name), "{name} may be shown");
    }
}

#[test]
fn shown_headers_redact_values_and_are_bounded() {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_static("Bearer secret-xyz"),
    );
    headers.insert("cookie", HeaderValue::from_static("sid=secret-xyz"));
    headers.insert("x-visible", HeaderValue::from_static("plain-value"));
    let shown = shown_headers(&headers);
    assert!(shown.contains(&("authorization".into(), REDACTED.into())));
    assert!(shown.contains(&("cookie".into(), REDACTED.into())));
    assert!(shown.contains(&("x-visible".into(), "plain-value".into())));
    assert!(!format!("{shown:?}").contains("secret-xyz"));

    let mut big = HeaderMap::new();
    let value = HeaderValue::from_str(&"v".repeat(1000)).unwrap();
    for i in 0..10 {
        big.insert(
            http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
            value.clone(),
        );
    }
    let shown = shown_headers(&big);
    let bytes: usize = shown.iter().map(|(n, v)| n.len() + v.len()).sum();
    assert!(bytes <= MAX_HEADER_BYTES + 64, "{bytes} bytes kept");
    assert_eq!(shown.last().map(|(n, _)| n.as_str()), Some("…"));
}

#[test]
fn token_bucket_allows_a_burst_then_the_rate() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut bucket = TokenBucket::new(5, t0);
    let burst = (0..100).filter(|_| bucket.take(t0)).count();
    assert_eq!(burst, 5);
    assert!(!bucket.take(at(100)), "half a token after 100 ms");
    assert!(bucket.take(at(200)), "one token after 200 ms");
    assert!(!bucket.take(at(200)));
    // Two seconds of a flood: the burst refills to at most 5, then 5 a second.
    let mut bucket = TokenBucket::new(5, t0);
    let taken = (0..2000).filter(|i| bucket.take(at(*i))).count();
    assert!((14..=15).contains(&taken), "{taken} taken in 2 s");
    // A clock that goes back takes nothing from the bucket.
    let mut bucket = TokenBucket::new(1, at(1000));
    assert!(bucket.take(at(1000)));
    assert!(!bucket.take(at(0)));
    // A rate of 0 is one a second.
    let mut bucket = TokenBucket::new(0, t0);
    assert!(bucket.take(t0));
    assert!(!bucket.take(t0));
}

#[test]
fn specs_parse_from_queries() {
    let spec = TapSpec::parse(Some(
        "path=%2Fapi%2Fv1&method=POST&max_rps=5&headers=1&bodies=true&duration=30s&direction=inbound",
    ))
    .unwrap();
    assert_eq!(
        spec,
        TapSpec {
            filter: TapFilter {
                path_prefix: Some("/api/v1".into()),
                method: Some(Method::POST),
                direction: Some(Direction::Inbound),
            },
            max_rps: 5,
            headers: true,
            bodies: true,
            duration: Duration::from_secs(30),
        }
    );
    assert_eq!(TapSpec::parse(None).unwrap(), TapSpec::default());
    assert_eq!(TapSpec::parse(Some("")).unwrap(), TapSpec::default());
    assert_eq!(
        TapSpec::parse(Some("duration=600")).unwrap().duration,
        MAX_DURATION
    );
    let bad = [
        ("path=api", "path"),
        ("method=get", "method"),
        ("method=G%20T", "method"),
        ("max_rps=0", "max_rps"),
        ("max_rps=1001", "max_rps"),
        ("max_rps=x", "max_rps"),
        ("headers=yes", "headers"),
        ("bodies=2", "bodies"),
        ("duration=0", "duration"),
        ("duration=601", "duration"),
        ("direction=sideways", "direction"),
        ("path=%2", "path"),
        ("path=%ff", "path"),
        ("body=1", "body"),
    ];
    for (query, key) in bad {
        let err = TapSpec::parse(Some(query)).unwrap_err();
        assert!(err.starts_with(key), "{query}: {err}");
    }
}

#[test]
fn percent_decoding() {
    let cases = [
        ("", Some("")),
        ("a+b", Some("a b")),
        ("%2F%2f", Some("//")),
        ("%", None),
        ("%4", None),
        ("%zz", None),
        ("%C3%A9", Some("é")),
        ("%C3", None),
    ];
    for (raw, expected) in cases {
        assert_eq!(percent_decode(raw).as_deref(), expected, "{raw}");
    }
}

fn request(method: Method, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "cart")
        .header("authorization", "Bearer secret-xyz")
        .header("x-visible", "plain-value")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(())
        .unwrap()
}

fn ended(status: u16) -> Ended {
    Ended {
        listener: "inbound".into(),
        status,
        error: None,
        source_identity: None,
        client: IpAddr::from([127, 0, 0, 1]),
        responded: Instant::now(),
    }
}

#[test]
fn no_tap_no_capture_and_a_closed_tap_stops_capturing() {
    let hub = Arc::new(TapHub::default());
    let req = request(Method::GET, "/x");
    assert!(hub.arrival(&req, Direction::Inbound).is_none());
    let tap = hub.open(&TapSpec::default()).unwrap();
    assert_eq!(hub.open_taps(), 1);
    assert!(hub.arrival(&req, Direction::Inbound).is_some());
    drop(tap);
    assert_eq!(hub.open_taps(), 0);
    assert!(hub.arrival(&req, Direction::Inbound).is_none());
}

#[test]
fn events_are_filtered_rate_limited_and_headers_only_when_asked() {
    let hub = Arc::new(TapHub::default());
    let spec = TapSpec {
        filter: TapFilter {
            path_prefix: Some("/api".into()),
            ..TapFilter::default()
        },
        max_rps: 3,
        ..TapSpec::default()
    };
    let mut plain = hub.open(&spec).unwrap();
    let mut with_headers = hub
        .open(&TapSpec {
            headers: true,
            max_rps: 100,
            ..TapSpec::default()
        })
        .unwrap();
    assert!(hub
        .arrival(&request(Method::GET, "/other"), Direction::Inbound)
        .is_some());
    for _ in 0..10 {
        let req = request(Method::GET, "/api/items");
        let tapping = hub.arrival(&req, Direction::Inbound).unwrap();
        assert!(hub.offer(tapping, ended(200)).is_none());
    }
    let mut seen = 0;
    while let Some(event) = plain.try_event() {
        assert_eq!(event.path, "/api/items");
        assert!(event.headers.is_none());
        seen += 1;
    }
    assert_eq!(seen, 3);
    assert_eq!(plain.lost(), (7, 0));
    let event = with_headers.try_event().unwrap();
    let json = event.to_json().to_string();
    assert!(json.contains("plain-value"), "{json}");
    assert!(json.contains(REDACTED), "{json}");
    assert!(!json.contains("secret-xyz"), "{json}");
    assert!(json.contains("4bf92f3577b34da6a3ce929d0e0e4736"), "{json}");
    assert_eq!(event.to_json()["authority"], "cart");
    assert_eq!(event.to_json()["status"], 200);
}

#[test]
fn a_full_queue_drops_and_counts_and_taps_are_bounded() {
    let hub = Arc::new(TapHub::default());
    let tap = hub
        .open(&TapSpec {
            max_rps: MAX_RPS,
            ..TapSpec::default()
        })
        .unwrap();
    for _ in 0..QUEUE + 10 {
        let tapping = hub
            .arrival(&request(Method::GET, "/"), Direction::Outbound)
            .unwrap();
        assert!(hub.offer(tapping, ended(503)).is_none());
    }
    assert_eq!(tap.lost(), (0, 10));
    let mut more: Vec<Tap> = (1..MAX_TAPS)
        .map(|_| hub.open(&TapSpec::default()).unwrap())
        .collect();
    assert_eq!(hub.open(&TapSpec::default()).unwrap_err(), TooManyTaps);
    more.pop();
    assert!(hub.open(&TapSpec::default()).is_ok());
}

#[test]
fn a_body_copy_keeps_its_start_and_counts_the_rest() {
    let mut copy = BodyCopy::default();
    copy.keep(b"hello ");
    assert_eq!(
        copy.to_json(),
        serde_json::json!({"text": "hello ", "bytes": 6, "truncated": false})
    );
    copy.keep(&vec![b'x'; MAX_BODY_BYTES]);
    copy.keep(b"more");
    let shown = copy.to_json();
    assert_eq!(shown["text"].as_str().unwrap().len(), MAX_BODY_BYTES);
    assert!(shown["text"].as_str().unwrap().starts_with("hello xx"));
    assert_eq!(shown["bytes"], 6 + MAX_BODY_BYTES as u64 + 4);
    assert_eq!(shown["truncated"], true);
    let mut binary = BodyCopy::default();
    binary.keep(&[0xff, b'a']);
    assert_eq!(binary.to_json()["text"], "\u{fffd}a");
}

#[test]
fn bodies_wait_for_the_response_and_only_their_taps_see_them() {
    let hub = Arc::new(TapHub::default());
    let mut plain = hub.open(&TapSpec::default()).unwrap();
    let mut with_bodies = hub
        .open(&TapSpec {
            bodies: true,
            ..TapSpec::default()
        })
        .unwrap();
    let req = request(Method::POST, "/charge");
    let tapping = hub.arrival(&req, Direction::Inbound).unwrap();
    let request_body = tapping.request_body().expect("a tap shows bodies");
    request_body.lock().unwrap().keep(b"{\"amount\": 5}");
    let mut pending = hub
        .offer(tapping, ended(200))
        .expect("the event waits for the response body");
    assert!(
        with_bodies.try_event().is_none(),
        "offered before the body ended"
    );
    pending.keep(b"{\"ok\": ");
    pending.keep(b"true}");
    drop(pending);
    let event = with_bodies.try_event().unwrap().to_json();
    assert_eq!(event["request_body"]["text"], "{\"amount\": 5}");
    assert_eq!(event["response_body"]["text"], "{\"ok\": true}");
    assert_eq!(event["response_body"]["bytes"], 12);
    let event = plain.try_event().unwrap().to_json();
    assert!(event.get("request_body").is_none(), "{event}");
    assert!(event.get("response_body").is_none(), "{event}");
}

#[test]
fn body_copies_are_bounded_and_given_back() {
    let hub = Arc::new(TapHub::default());
    let _tap = hub
        .open(&TapSpec {
            bodies: true,
            ..TapSpec::default()
        })
        .unwrap();
    let req = request(Method::GET, "/x");
    let mut copying: Vec<_> = (0..MAX_BODY_COPIES)
        .map(|_| hub.arrival(&req, Direction::Inbound).unwrap())
        .collect();
    assert!(copying.iter().all(|t| t.request_body().is_some()));
    let over = hub.arrival(&req, Direction::Inbound).unwrap();
    assert!(over.request_body().is_none(), "shown without its bodies");
    assert!(hub.offer(over, ended(200)).is_none(), "offered at once");
    // A request that ends (here, is abandoned) gives its copy back.
    copying.pop();
    let next = hub.arrival(&req, Direction::Inbound).unwrap();
    assert!(next.request_body().is_some());
    let pending = hub.offer(next, ended(200)).unwrap();
    drop(pending);
    assert!(hub
        .arrival(&req, Direction::Inbound)
        .unwrap()
        .request_body()
        .is_some());
}
