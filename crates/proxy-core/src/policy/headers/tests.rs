//! Table tests of header rewriting, without sockets.

use super::*;

fn request(version: Version, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::builder().version(version).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap()
}

fn client() -> ClientHeaders {
    ClientHeaders::new("10.1.2.3".parse().unwrap())
}

fn fixed_id() -> HeaderValue {
    HeaderValue::from_static("id-1")
}

fn names(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<_> = headers.keys().map(|k| k.to_string()).collect();
    names.sort();
    names
}

#[test]
fn hop_by_hop_headers_are_removed() {
    let mut req = request(
        Version::HTTP_11,
        "/",
        &[
            ("host", "svc"),
            ("connection", "keep-alive, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip"),
            ("upgrade", "h2c"),
            ("transfer-encoding", "chunked"),
            ("x-end-to-end", "kept"),
        ],
    );
    prepare_request(
        &mut req,
        &client(),
        ProxyHeader::None,
        UpstreamProtocol::Http1,
        fixed_id,
    );
    assert_eq!(
        names(req.headers()),
        vec!["host", "x-end-to-end", "x-forwarded-for", "x-request-id"]
    );
}

#[test]
fn connection_cannot_remove_host() {
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static("svc"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("host"));
    strip_hop_by_hop(&mut headers);
    assert_eq!(headers.get(header::HOST).unwrap(), "svc");
}

#[test]
fn te_trailers_is_kept_for_grpc() {
    let mut headers = HeaderMap::new();
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    strip_hop_by_hop(&mut headers);
    assert_eq!(headers.get(header::TE).unwrap(), "trailers");
}

#[test]
fn forwarded_for_is_appended() {
    let cases = [
        (None, "10.1.2.3"),
        (Some("1.1.1.1"), "1.1.1.1, 10.1.2.3"),
        (Some("1.1.1.1, 2.2.2.2"), "1.1.1.1, 2.2.2.2, 10.1.2.3"),
    ];
    for (existing, expected) in cases {
        let headers: Vec<_> = existing
            .map(|v| ("x-forwarded-for", v))
            .into_iter()
            .collect();
        let mut req = request(Version::HTTP_11, "/", &headers);
        prepare_request(
            &mut req,
            &client(),
            ProxyHeader::None,
            UpstreamProtocol::Http1,
            fixed_id,
        );
        assert_eq!(req.headers()[&X_FORWARDED_FOR], expected);
    }
}

#[test]
fn request_id_is_set_only_when_absent() {
    let mut req = request(Version::HTTP_11, "/", &[("x-request-id", "mine")]);
    prepare_request(
        &mut req,
        &client(),
        ProxyHeader::None,
        UpstreamProtocol::Http1,
        fixed_id,
    );
    assert_eq!(req.headers()[&X_REQUEST_ID], "mine");
    let mut req = request(Version::HTTP_11, "/", &[]);
    prepare_request(
        &mut req,
        &client(),
        ProxyHeader::None,
        UpstreamProtocol::Http1,
        fixed_id,
    );
    assert_eq!(req.headers()[&X_REQUEST_ID], "id-1");
}

#[test]
fn via_or_forwarded_as_configured() {
    let mut req = request(Version::HTTP_11, "/", &[("via", "1.0 other")]);
    prepare_request(
        &mut req,
        &client(),
        ProxyHeader::Via,
        UpstreamProtocol::Http1,
        fixed_id,
    );
    let via: Vec<_> = req.headers().get_all(header::VIA).iter().collect();
    assert_eq!(via, vec!["1.0 other", "1.1 meshpy"]);
    assert!(!req.headers().contains_key(header::FORWARDED));

    let mut req = request(Version::HTTP_11, "/", &[]);
    prepare_request(
        &mut req,
        &client(),
        ProxyHeader::Forwarded,
        UpstreamProtocol::Http1,
        fixed_id,
    );
    assert_eq!(req.headers()[header::FORWARDED], "for=10.1.2.3;proto=http");
    assert!(!req.headers().contains_key(header::VIA));

    let v6 = ClientHeaders::new("::1".parse().unwrap());
    assert_eq!(v6.forwarded, "for=\"[::1]\";proto=http");
}

#[test]
fn h2_downstream_to_h1_upstream_gets_host_and_origin_form() {
    let mut req = request(Version::HTTP_2, "http://cart.local:8080/a?b=1", &[]);
    prepare_request(
        &mut req,
        &client(),
        ProxyHeader::None,
        UpstreamProtocol::Http1,
        fixed_id,
    );
    assert_eq!(req.version(), Version::HTTP_11);
    assert_eq!(req.uri(), "/a?b=1");
    assert_eq!(req.headers()[header::HOST], "cart.local:8080");
}

#[test]
fn h1_downstream_to_h2_upstream_moves_host_to_authority() {
    let mut req = request(Version::HTTP_11, "/a?b=1", &[("host", "cart")]);
    prepare_request(
        &mut req,
        &client(),
        ProxyHeader::None,
        UpstreamProtocol::Http2,
        fixed_id,
    );
    assert_eq!(req.version(), Version::HTTP_2);
    assert_eq!(req.uri(), "http://cart/a?b=1");
    assert!(!req.headers().contains_key(header::HOST));
}

#[test]
fn absolute_form_h1_request_keeps_its_host_header() {
    let mut req = request(
        Version::HTTP_11,
        "http://payment/charge",
        &[("host", "payment")],
    );
    prepare_request(
        &mut req,
        &client(),
        ProxyHeader::None,
        UpstreamProtocol::Http1,
        fixed_id,
    );
    assert_eq!(req.uri(), "/charge");
    assert_eq!(req.headers()[header::HOST], "payment");
}

#[test]
fn response_loses_hop_by_hop_and_gains_via() {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(KEEP_ALIVE.clone(), HeaderValue::from_static("timeout=5"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
    prepare_response(&mut headers, ProxyHeader::Via);
    assert_eq!(names(&headers), vec!["content-length", "via"]);
}

#[test]
fn request_ids_are_32_hex_digits_and_differ() {
    let a = new_request_id();
    let b = new_request_id();
    assert_eq!(a.len(), 32);
    assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit));
    assert_ne!(a, b);
}

#[test]
fn bodies_of_unknown_length_on_get_and_head_are_sent_chunked() {
    // (method, body empty, exact length, chunked framing set by the proxy)
    let cases = [
        (Method::GET, false, None, true),
        (Method::HEAD, false, None, true),
        (Method::GET, false, Some(5), false), // content-length frames it
        (Method::GET, true, None, false),     // no body: nothing to frame
        (Method::GET, true, Some(0), false),
        (Method::POST, false, None, false), // hyper chunks it already
        (Method::DELETE, false, None, false),
        (Method::OPTIONS, false, None, false),
        (Method::PUT, false, Some(3), false),
    ];
    for (method, empty, exact, want) in cases {
        assert_eq!(
            needs_chunked_framing(&method, empty, exact),
            want,
            "{method} empty={empty} exact={exact:?}"
        );
    }
}

/// A body of one chunk whose length is not known ahead, like a chunked upload.
struct Unsized(Option<bytes::Bytes>);

impl Body for Unsized {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.take().map(|data| Ok(http_body::Frame::data(data))))
    }
}

#[test]
fn frame_h1_body_sets_transfer_encoding_only_when_needed() {
    let hi = || Unsized(Some(bytes::Bytes::from_static(b"hi")));
    let mut get = Request::get("/").body(hi()).unwrap();
    frame_h1_body(&mut get);
    assert_eq!(get.headers()[header::TRANSFER_ENCODING], "chunked");

    let sized = http_body_util::Full::new(bytes::Bytes::from_static(b"hi"));
    let mut sized = Request::get("/").body(sized).unwrap();
    frame_h1_body(&mut sized);
    assert!(!sized.headers().contains_key(header::TRANSFER_ENCODING));

    let mut post = Request::post("/").body(hi()).unwrap();
    frame_h1_body(&mut post);
    assert!(!post.headers().contains_key(header::TRANSFER_ENCODING));
}

#[test]
fn host_values() {
    let valid: &[&[u8]] = &[
        b"x",
        b"payment.default.svc",
        b"x:8080",
        b"127.0.0.1:80",
        b"[::1]",
        b"[::1]:443",
        b"a-b_c~d",
        b"x:",
    ];
    let invalid: &[&[u8]] = &[
        b"", b"x y", b"u@x", b"x/y", b"x:y", b"x:65536", b"x:1:2", b"[::1", b"[]", b"[::1]x",
        b"[zz]", b"x\ty", b":80",
    ];
    for value in valid {
        assert!(is_valid_host(value), "{:?}", String::from_utf8_lossy(value));
    }
    for value in invalid {
        assert!(
            !is_valid_host(value),
            "{:?}",
            String::from_utf8_lossy(value)
        );
    }
}

#[test]
fn http1_targets_and_hosts() {
    // (method, version, target, Host values, outcome, Host forwarded)
    type Case = (
        Method,
        Version,
        &'static str,
        &'static [&'static str],
        Result<(), &'static str>,
        Option<&'static str>,
    );
    let cases: &[Case] = &[
        (
            Method::GET,
            Version::HTTP_11,
            "/a",
            &["x"],
            Ok(()),
            Some("x"),
        ),
        (
            Method::GET,
            Version::HTTP_11,
            "/a",
            &[],
            Err("missing Host header"),
            None,
        ),
        (
            Method::GET,
            Version::HTTP_10,
            "/a",
            &[],
            Err("missing Host header"),
            None,
        ),
        (
            Method::GET,
            Version::HTTP_11,
            "/a",
            &["x", "y"],
            Err("more than one Host header"),
            None,
        ),
        (
            Method::GET,
            Version::HTTP_11,
            "/a",
            &["u@x"],
            Err("invalid Host header"),
            None,
        ),
        // Absolute form: the target's authority wins over Host.
        (
            Method::POST,
            Version::HTTP_11,
            "http://x/a",
            &["y"],
            Ok(()),
            Some("x"),
        ),
        (
            Method::GET,
            Version::HTTP_10,
            "http://x:81/a",
            &[],
            Ok(()),
            Some("x:81"),
        ),
        (
            Method::OPTIONS,
            Version::HTTP_11,
            "*",
            &["x"],
            Ok(()),
            Some("x"),
        ),
        (
            Method::GET,
            Version::HTTP_11,
            "*",
            &["x"],
            Err("only OPTIONS may have the target *"),
            None,
        ),
        (
            Method::POST,
            Version::HTTP_11,
            "case-1",
            &["x"],
            Err("the request target must be a path or a URL"),
            None,
        ),
        (
            Method::CONNECT,
            Version::HTTP_11,
            "x:443",
            &["x"],
            Err("CONNECT is not supported"),
            None,
        ),
        // HTTP/2 has :authority; nothing to check here.
        (
            Method::GET,
            Version::HTTP_2,
            "http://x/a",
            &[],
            Ok(()),
            None,
        ),
    ];
    for (method, version, target, hosts, want, forwarded) in cases {
        let mut req = Request::builder()
            .method(method.clone())
            .version(*version)
            .uri(*target)
            .body(())
            .unwrap();
        for host in *hosts {
            req.headers_mut()
                .append(header::HOST, HeaderValue::from_static(host));
        }
        let got = check_http1_target(&mut req);
        assert_eq!(got, *want, "{method} {target} {hosts:?}");
        if got.is_ok() {
            assert_eq!(
                req.headers().get(header::HOST).map(|h| h.to_str().unwrap()),
                *forwarded,
                "{method} {target} {hosts:?}"
            );
        }
    }
}
