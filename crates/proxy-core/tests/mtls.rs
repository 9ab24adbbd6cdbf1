//! Mutual TLS with SPIFFE identities on real sockets: proxy A (outbound) to proxy B (inbound) to a plain backend.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use proxy_core::Error;
use support::mesh::*;
use support::pki::{Ca, Leaf};
use support::tls::{presented, tls_connect, tls_get, TlsH1Client};
use support::*;

const A_ID: &str = "spiffe://test.local/ns/default/sa/a";
const B_ID: &str = "spiffe://test.local/ns/default/sa/b";
const C_ID: &str = "spiffe://test.local/ns/default/sa/c";

/// One trust domain: a root, an intermediate, and the leaves of A and B under it.
struct Pki {
    root: Ca,
    inter: Ca,
    a: Leaf,
    b: Leaf,
}

fn pki() -> Pki {
    let root = Ca::root("test root");
    let inter = root.intermediate("test intermediate");
    let a = inter.leaf(A_ID, 0xa1);
    let b = inter.leaf(B_ID, 0xb1);
    Pki { root, inter, a, b }
}

#[test]
fn a_to_b_over_mtls_is_http2_and_carries_the_client_identity() {
    let pki = pki();
    let rt = client_runtime();
    let backend = rt.block_on(http_backend("app"));
    let (b, b_addr) = start(&inbound("http", "strict", backend));
    set(&b, &pki.b, &pki.root.pem);
    let (a, a_addr) = start(&outbound("http", b_addr.get("web"), B_ID));
    set(&a, &pki.a, &pki.root.pem);
    assert!(a.is_ready() && b.is_ready());
    rt.block_on(async {
        let mut client = H1Client::connect(a_addr.get("web")).await;
        let got = client.get("/").await;
        assert_eq!(got.status, 200, "{}", got.body);
        assert_eq!(got.body, "app");
        assert_eq!(got.header("x-seen-client-id"), A_ID);
        // A client cannot claim an identity: its header is replaced.
        let spoofed = http::Request::builder()
            .uri("/")
            .header("host", "svc")
            .header("x-meshpy-client-id", "spiffe://evil.example/x")
            .body(Default::default())
            .unwrap();
        let got = client.send(spoofed).await.unwrap();
        assert_eq!(got.header("x-seen-client-id"), A_ID);
        // Concurrent requests share one multiplexed HTTP/2 connection from A to B.
        let mut slow = Vec::new();
        for _ in 0..4 {
            let a_web = a_addr.get("web");
            slow.push(tokio::spawn(async move {
                H1Client::connect(a_web)
                    .await
                    .get("/sleep/200")
                    .await
                    .status
            }));
        }
        for handle in slow {
            assert_eq!(handle.await.unwrap(), 200);
        }
        // B offers h2 and http/1.1 by ALPN.
        let direct = tls_connect(b_addr.get("web"), Some(&pki.a), &[b"h2", b"http/1.1"])
            .await
            .unwrap();
        assert_eq!(direct.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        assert_eq!(presented(&direct), ("b1".to_string(), B_ID.to_string()));
    });
    let b_stats = b.stats();
    // One from A, one direct.
    assert_eq!(
        b_stats["listeners"]["web"]["connections_total"], 2,
        "{b_stats}"
    );
    assert_eq!(b_stats["listeners"]["web"]["tls"], "strict");
    assert_eq!(b_stats["identity"]["identity"], B_ID);
    assert_eq!(a.stats()["clusters"]["b"]["tls"], B_ID);
    for line in [
        r#"meshpy_tls_handshakes_total{listener="web",result="ok"} 2"#,
        r#"meshpy_tls_requests_total{listener="web",tls="mtls"} 6"#,
        r#"meshpy_tls_connections_total{listener="web",tls="mtls"} 2"#,
    ] {
        assert_metric(&b, line);
    }
    let a_metrics = a.metrics_text();
    assert!(
        a_metrics.contains(r#"meshpy_upstream_tls_handshakes_total{cluster="b",result="ok"} 1"#),
        "{a_metrics}"
    );
    assert!(
        a_metrics.contains("meshpy_identity_cert_expiration_timestamp_seconds "),
        "{a_metrics}"
    );
    // A plaintext listener shows no TLS series.
    assert!(
        !a_metrics.contains("meshpy_tls_handshakes_total{"),
        "{a_metrics}"
    );
}

#[test]
fn bad_client_certificates_fail_the_handshake() {
    let pki = pki();
    let other = Ca::root("another root");
    let rt = client_runtime();
    let backend = rt.block_on(http_backend("app"));
    let (b, addr) = start(&inbound("http", "strict", backend));
    set(&b, &pki.b, &pki.root.pem);
    let web = addr.get("web");
    let bad = [
        ("another CA", Some(other.leaf(A_ID, 2))),
        ("expired", Some(pki.inter.expired_leaf(A_ID))),
        ("not yet valid", Some(pki.inter.future_leaf(A_ID))),
        ("no URI SAN", Some(pki.inter.leaf_with(&[], 3, |_| {}))),
        (
            "two URI SANs",
            Some(pki.inter.leaf_with(&[A_ID, C_ID], 4, |_| {})),
        ),
        (
            "not a SPIFFE URI",
            Some(pki.inter.leaf_with(&["https://a.example/"], 5, |_| {})),
        ),
        ("no certificate", None),
    ];
    rt.block_on(async {
        for (what, leaf) in &bad {
            let answer = tls_get(web, leaf.as_ref()).await;
            assert!(refused(&answer), "{what}: {answer:?}");
        }
        let good = tls_get(web, Some(&pki.a)).await.unwrap();
        assert!(good.starts_with("HTTP/1.1 200"), "{good}");
        assert!(
            good.contains(&format!("x-seen-client-id: {A_ID}")),
            "{good}"
        );
    });
    let failed = format!(
        r#"meshpy_tls_handshakes_total{{listener="web",result="failed"}} {}"#,
        bad.len()
    );
    assert_metric(&b, &failed);
    assert_eq!(requests_total(&b), 1);
}

#[test]
fn a_server_with_another_identity_gets_502_and_no_request() {
    let pki = pki();
    let rt = client_runtime();
    let backend = rt.block_on(http_backend("app"));
    let (b, b_addr) = start(&inbound("http", "strict", backend));
    set(&b, &pki.b, &pki.root.pem);
    let (a, a_addr) = start(&outbound("http", b_addr.get("web"), C_ID));
    set(&a, &pki.a, &pki.root.pem);
    rt.block_on(async {
        let got = H1Client::connect(a_addr.get("web")).await.get("/").await;
        assert_eq!(got.status, 502);
        assert_eq!(got.header("x-meshpy-error"), "upstream-identity-mismatch");
        assert!(
            got.body.contains(&format!(
                "expected {C_ID} but the upstream presented {B_ID}"
            )),
            "{}",
            got.body
        );
    });
    assert_eq!(requests_total(&b), 0);
    let metrics = a.metrics_text();
    assert!(
        metrics.contains(
            r#"meshpy_proxy_errors_total{listener="web",reason="upstream-identity-mismatch"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"meshpy_upstream_tls_handshakes_total{cluster="b",result="failed"} 1"#),
        "{metrics}"
    );
}

#[test]
fn a_server_refuses_a_client_certificate_it_does_not_trust() {
    let pki = pki();
    let other = Ca::root("another root");
    let rt = client_runtime();
    let backend = rt.block_on(http_backend("app"));
    let (b, b_addr) = start(&inbound("http", "strict", backend));
    set(&b, &pki.b, &pki.root.pem);
    let (a, a_addr) = start(&outbound("http", b_addr.get("web"), B_ID));
    // A trusts B, but B does not trust A's issuer.
    let bundle = format!("{}{}", pki.root.pem, other.pem);
    set(&a, &other.leaf(A_ID, 6), &bundle);
    rt.block_on(async {
        // With TLS 1.3 the refusal reaches A after its side of the handshake,
        // as an alert that ends the HTTP/2 connection.
        let got = H1Client::connect(a_addr.get("web")).await.get("/").await;
        assert_eq!(got.status, 502, "{}", got.body);
    });
    assert_eq!(requests_total(&b), 0);
    assert_metric(
        &b,
        r#"meshpy_tls_handshakes_total{listener="web",result="failed"} 1"#,
    );
}

#[test]
fn strict_refuses_plaintext_and_permissive_serves_both() {
    let pki = pki();
    let rt = client_runtime();
    let backend = rt.block_on(http_backend("app"));
    let (strict, strict_addr) = start(&inbound("http", "strict", backend));
    set(&strict, &pki.b, &pki.root.pem);
    let (permissive, permissive_addr) = start(&inbound("http", "permissive", backend));
    set(&permissive, &pki.b, &pki.root.pem);
    let (a, a_addr) = start(&outbound("http", permissive_addr.get("web"), B_ID));
    set(&a, &pki.a, &pki.root.pem);
    let request =
        b"GET / HTTP/1.1\r\nhost: svc\r\nconnection: close\r\nx-meshpy-client-id: spiffe://evil.example/x\r\n\r\n";
    rt.block_on(async {
        let answer = raw_exchange(strict_addr.get("web"), request, 4096).await;
        assert!(!answer.starts_with("HTTP/"), "{answer:?}");

        let answer = raw_exchange(permissive_addr.get("web"), request, 4096).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // Plaintext carries no identity, and a claimed one is removed.
        assert!(answer.contains("x-seen-client-id: \r\n"), "{answer}");
        let got = H1Client::connect(a_addr.get("web")).await.get("/").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("x-seen-client-id"), A_ID);
    });
    assert_eq!(requests_total(&strict), 0);
    for line in [
        r#"meshpy_tls_connections_total{listener="web",tls="plaintext"} 1"#,
        r#"meshpy_tls_connections_total{listener="web",tls="mtls"} 1"#,
        r#"meshpy_tls_requests_total{listener="web",tls="plaintext"} 1"#,
        r#"meshpy_tls_requests_total{listener="web",tls="mtls"} 1"#,
    ] {
        assert_metric(&permissive, line);
    }
    assert_metric(
        &strict,
        r#"meshpy_tls_handshakes_total{listener="web",result="failed"} 1"#,
    );
}

#[test]
fn without_an_identity_tls_is_not_ready_and_fails_fast() {
    let pki = pki();
    let rt = client_runtime();
    let backend = rt.block_on(http_backend("app"));
    let (b, b_addr) = start(&inbound("http", "permissive", backend));
    let (a, a_addr) = start(&outbound("http", b_addr.get("web"), B_ID));
    assert!(!a.is_ready() && !b.is_ready());
    assert!(b.not_ready_reason().unwrap().contains("no identity"));
    assert_eq!(b.stats()["identity"], serde_json::Value::Null);
    rt.block_on(async {
        let ready = H1Client::connect(b_addr.get("admin"))
            .await
            .get("/ready")
            .await;
        assert_eq!(ready.status, 503);
        assert!(ready.body.contains("no identity"), "{}", ready.body);
        let got = H1Client::connect(a_addr.get("web")).await.get("/").await;
        assert_eq!(got.status, 503);
        assert_eq!(got.header("x-meshpy-error"), "no-identity");
        // B refuses handshakes, but still serves plaintext in permissive mode.
        assert!(refused(&tls_get(b_addr.get("web"), Some(&pki.a)).await));
        let plain = H1Client::connect(b_addr.get("web")).await.get("/").await;
        assert_eq!(plain.status, 200);
    });
    set(&b, &pki.b, &pki.root.pem);
    set(&a, &pki.a, &pki.root.pem);
    assert!(a.is_ready() && b.is_ready());
    rt.block_on(async {
        let ready = H1Client::connect(b_addr.get("admin"))
            .await
            .get("/ready")
            .await;
        assert_eq!(ready.status, 200);
        let got = H1Client::connect(a_addr.get("web")).await.get("/").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("x-seen-client-id"), A_ID);
    });
}

#[test]
fn a_new_identity_applies_to_new_handshakes_only() {
    let pki = pki();
    let rt = client_runtime();
    let backend = rt.block_on(http_backend("app"));
    let (b, addr) = start(&inbound("http", "strict", backend));
    let info = b
        .set_identity(&pki.b.chain_pem, &pki.b.key_pem, &pki.root.pem)
        .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(info.identity.as_ref().unwrap().as_str(), B_ID);
    assert_eq!(info.serial, "b1");
    assert!(info.not_before <= now && now < info.not_after);
    assert!(info.issuer.contains("test intermediate"), "{}", info.issuer);
    let web = addr.get("web");
    rt.block_on(async {
        let mut before = TlsH1Client::connect(web, &pki.a).await;
        assert_eq!(before.serial, "b1");
        assert_eq!(before.get("/").await.status, 200);

        let renewed = pki.inter.leaf(B_ID, 0xb2);
        b.set_identity(&renewed.chain_pem, &renewed.key_pem, &pki.root.pem)
            .unwrap();
        // The connection opened before the swap keeps working.
        assert_eq!(before.get("/").await.status, 200);
        let after = TlsH1Client::connect(web, &pki.a).await;
        assert_eq!(after.serial, "b2");
        assert_eq!(after.server_id, B_ID);
    });
    assert_eq!(b.identity().unwrap().serial, "b2");
}

#[test]
fn a_refused_identity_leaves_the_old_one_in_place() {
    let pki = pki();
    let other = Ca::root("another root");
    let rt = client_runtime();
    let backend = rt.block_on(http_backend("app"));
    let (b, addr) = start(&inbound("http", "strict", backend));
    set(&b, &pki.b, &pki.root.pem);
    let roots = pki.root.pem.as_str();
    let expired = pki.inter.expired_leaf(B_ID);
    let future = pki.inter.future_leaf(B_ID);
    let foreign = other.leaf(B_ID, 7);
    let two = pki.inter.leaf_with(&[B_ID, C_ID], 8, |_| {});
    let none = pki.inter.leaf_with(&[], 9, |_| {});
    let cases: [(&str, &str, &str, &str); 8] = [
        (&expired.chain_pem, &expired.key_pem, roots, "expired"),
        (&future.chain_pem, &future.key_pem, roots, "not valid yet"),
        (&pki.b.chain_pem, &pki.a.key_pem, roots, "does not match"),
        (
            &foreign.chain_pem,
            &foreign.key_pem,
            roots,
            "does not chain",
        ),
        (&two.chain_pem, &two.key_pem, roots, "2 URI SANs"),
        (&none.chain_pem, &none.key_pem, roots, "no URI SAN"),
        (&pki.b.chain_pem, "not a key", roots, "no private key"),
        (
            &pki.b.chain_pem,
            &pki.b.key_pem,
            "",
            "roots holds no CERTIFICATE",
        ),
    ];
    for (chain, key, roots, fragment) in cases {
        match b.set_identity(chain, key, roots) {
            Err(Error::Identity(err)) => {
                assert!(err.to_string().contains(fragment), "{fragment}: {err}")
            }
            other => panic!("{fragment}: expected an identity error, got {other:?}"),
        }
        assert_eq!(b.identity().unwrap().serial, "b1", "{fragment}");
    }
    rt.block_on(async {
        let client = TlsH1Client::connect(addr.get("web"), &pki.a).await;
        assert_eq!(client.serial, "b1");
    });
}

#[test]
fn every_root_of_the_bundle_is_trusted() {
    let old = pki();
    let new_root = Ca::root("rotated root");
    let stranger = Ca::root("stranger root");
    let rt = client_runtime();
    let backend = rt.block_on(http_backend("app"));
    let (b, addr) = start(&inbound("http", "strict", backend));
    let bundle = format!("{}{}", old.root.pem, new_root.pem);
    set(&b, &old.b, &bundle);
    let web = addr.get("web");
    rt.block_on(async {
        let from_old = tls_get(web, Some(&old.a)).await.unwrap();
        assert!(from_old.starts_with("HTTP/1.1 200"), "{from_old}");
        let from_new = tls_get(web, Some(&new_root.leaf(A_ID, 3))).await.unwrap();
        assert!(from_new.starts_with("HTTP/1.1 200"), "{from_new}");
        assert!(refused(&tls_get(web, Some(&stranger.leaf(A_ID, 4))).await));
    });
    // A leaf straight under a root (no intermediate) is accepted as the proxy's own.
    let direct = new_root.leaf(B_ID, 5);
    set(&b, &direct, &bundle);
}

#[test]
fn tcp_relays_over_mtls_on_both_hops() {
    let pki = pki();
    let rt = client_runtime();
    let echo = rt.block_on(echo_backend());
    let (b, b_addr) = start(&inbound("tcp", "strict", echo));
    set(&b, &pki.b, &pki.root.pem);
    let (a, a_addr) = start(&outbound("tcp", b_addr.get("web"), B_ID));
    set(&a, &pki.a, &pki.root.pem);
    rt.block_on(async {
        let answer = raw_exchange(a_addr.get("web"), b"ping over mtls", 14).await;
        assert_eq!(answer, "ping over mtls");
    });
    assert_metric(
        &b,
        r#"meshpy_tls_handshakes_total{listener="web",result="ok"} 1"#,
    );
}

/// Counts the connections of a TCP edge A → B on both ends, and their bytes as the
/// client sent and got them: TLS, between A and B, is not counted.
#[test]
fn tcp_connections_and_bytes_are_counted_on_each_end_of_their_edge() {
    let pki = pki();
    let rt = client_runtime();
    let echo = rt.block_on(echo_backend());
    let workload = |service: &str| {
        format!(
            r#"{{"metrics":{{"workload":{{"namespace":"default","service":"{service}"}}}},"listeners""#
        )
    };
    let (b, b_addr) =
        start(&inbound("tcp", "strict", echo).replacen(r#"{"listeners""#, &workload("b"), 1));
    set(&b, &pki.b, &pki.root.pem);
    let a_config = outbound("tcp", b_addr.get("web"), B_ID)
        .replacen(r#"{"listeners""#, &workload("a"), 1)
        .replacen(
            r#""protocol":"tcp","#,
            r#""protocol":"tcp","direction":"outbound","#,
            1,
        )
        .replacen(
            r#""tls":{"identity""#,
            r#""service":{"namespace":"default","service":"b"},"tls":{"identity""#,
            1,
        );
    let (a, a_addr) = start(&a_config);
    set(&a, &pki.a, &pki.root.pem);
    rt.block_on(async {
        for message in ["ping over mtls", "and a second, longer one"] {
            let answer = raw_exchange(a_addr.get("web"), message.as_bytes(), message.len()).await;
            assert_eq!(answer, message);
        }
    });
    let outbound = "direction=\"outbound\",source_namespace=\"default\",source_service=\"a\",\
        source_version=\"unknown\",source_identity=\"\",destination_namespace=\"default\",\
        destination_service=\"b\",destination_version=\"unknown\",mtls=\"true\"";
    let inbound = format!(
        "direction=\"inbound\",source_namespace=\"default\",source_service=\"a\",\
        source_version=\"unknown\",source_identity=\"{A_ID}\",destination_namespace=\"default\",\
        destination_service=\"b\",destination_version=\"unknown\",mtls=\"true\""
    );
    // 14 + 24 bytes each way, over two connections, both closed.
    for (proxy, labels) in [(&a, outbound), (&b, inbound.as_str())] {
        for (name, value) in [
            ("meshpy_tcp_open_total", 2),
            ("meshpy_tcp_close_total", 2),
            ("meshpy_tcp_connections_open", 0),
            ("meshpy_tcp_read_bytes_total", 38),
            ("meshpy_tcp_write_bytes_total", 38),
        ] {
            assert_metric(proxy, &format!("{name}{{{labels}}} {value}\n"));
        }
    }
}

/// Counts requests on both ends of the edge A → B: A's outbound edge names its own
/// workload and B's service; B's inbound edge names A by its verified identity.
#[test]
fn each_request_is_counted_once_on_each_end_of_its_edge() {
    let pki = pki();
    let rt = client_runtime();
    let backend = rt.block_on(http_backend("app"));
    let b_config = inbound("http", "strict", backend).replacen(
        r#"{"listeners""#,
        r#"{"metrics":{"workload":{"namespace":"default","service":"b","version":"v2"}},"listeners""#,
        1,
    );
    let (b, b_addr) = start(&b_config);
    set(&b, &pki.b, &pki.root.pem);
    let a_config = outbound("http", b_addr.get("web"), B_ID)
        .replacen(
            r#"{"listeners""#,
            r#"{"metrics":{"workload":{"namespace":"default","service":"a","version":"v1"}},"listeners""#,
            1,
        )
        .replacen(r#""protocol":"http","#, r#""protocol":"http","direction":"outbound","#, 1)
        .replacen(
            r#""tls":{"identity""#,
            r#""service":{"namespace":"default","service":"b","version":"v2"},"tls":{"identity""#,
            1,
        );
    let (a, a_addr) = start(&a_config);
    set(&a, &pki.a, &pki.root.pem);
    rt.block_on(async {
        let mut client = H1Client::connect(a_addr.get("web")).await;
        for _ in 0..5 {
            assert_eq!(client.get("/").await.status, 200);
        }
        for _ in 0..3 {
            let post = http::Request::builder()
                .method("POST")
                .uri("/")
                .header("host", "svc")
                .body(Default::default())
                .unwrap();
            assert_eq!(client.send(post).await.unwrap().status, 200);
        }
    });
    let outbound = "direction=\"outbound\",source_namespace=\"default\",source_service=\"a\",\
        source_version=\"v1\",source_identity=\"\",destination_namespace=\"default\",\
        destination_service=\"b\",destination_version=\"v2\",mtls=\"true\"";
    let inbound = format!(
        "direction=\"inbound\",source_namespace=\"default\",source_service=\"a\",\
        source_version=\"unknown\",source_identity=\"{A_ID}\",destination_namespace=\"default\",\
        destination_service=\"b\",destination_version=\"v2\",mtls=\"true\""
    );
    for (method, count) in [("GET", 5), ("POST", 3)] {
        let labels = format!("http_request_method=\"{method}\",http_response_status_code=\"200\"");
        assert_metric(
            &a,
            &format!("http_client_request_duration_seconds_count{{{outbound},{labels}}} {count}"),
        );
        assert_metric(
            &b,
            &format!("http_server_request_duration_seconds_count{{{inbound},{labels}}} {count}"),
        );
    }
    // B's connection from A is on the edge too; A's outbound HTTP connections are
    // not on one, each of their requests picks its own.
    assert_metric(&b, &format!("meshpy_tcp_open_total{{{inbound}}} 1\n"));
    assert_metric(&b, &format!("meshpy_tcp_connections_open{{{inbound}}} 1\n"));
    assert!(!a.metrics_text().contains("meshpy_tcp_open_total{"));
    // Each request is on one edge only: A has no server series, B no client one.
    assert!(!a
        .metrics_text()
        .contains("http_server_request_duration_seconds_count{"));
    assert!(!b
        .metrics_text()
        .contains("http_client_request_duration_seconds_count{"));
}
