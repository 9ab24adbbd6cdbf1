//! Authorization on inbound listeners, on real sockets with mTLS: who gets through, the 403, normalised paths, TCP connections.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::mesh::*;
use support::pki::{Ca, Leaf};
use support::tls::{tls_connect, tls_exchange};
use support::*;

const PAYMENT_ID: &str = "spiffe://test.local/ns/default/sa/payment";
const CART_ID: &str = "spiffe://test.local/ns/default/sa/cart";
const SHIPPING_ID: &str = "spiffe://test.local/ns/default/sa/shipping";

struct Pki {
    root: Ca,
    payment: Leaf,
    cart: Leaf,
    shipping: Leaf,
}

fn pki() -> Pki {
    let root = Ca::root("test root");
    let inter = root.intermediate("test intermediate");
    Pki {
        payment: inter.leaf(PAYMENT_ID, 0x10),
        cart: inter.leaf(CART_ID, 0x20),
        shipping: inter.leaf(SHIPPING_ID, 0x30),
        root,
    }
}

/// Listener `web` terminating mTLS (`mode`) in front of `backend`, with `authorization` (JSON, or none).
fn inbound_with(protocol: &str, mode: &str, backend: SocketAddr, authorization: &str) -> String {
    let authorization = if authorization.is_empty() {
        String::new()
    } else {
        format!(r#","authorization":{authorization}"#)
    };
    format!(
        r#"{{"listeners":[{{"name":"web","address":"127.0.0.1:0","protocol":"{protocol}","cluster":"app","tls":{{"mode":"{mode}"}}{authorization}}}],
            "clusters":[{{"name":"app","endpoints":["{backend}"]}}]}}"#
    )
}

/// Only cart may POST /charge.
const CART_CHARGES: &str = r#"{"policies":[{"name":"default/payment-callers","action":"allow","rules":[
    {"sources":[{"identity":"spiffe://test.local/ns/default/sa/cart"}],
     "to":[{"paths":[{"exact":"/charge"}],"methods":["POST"]}]}]}]}"#;

/// One request on its own mTLS connection as `leaf`; the raw answer.
async fn call(addr: SocketAddr, leaf: &Leaf, method: &str, target: &str) -> String {
    let request = format!(
        "{method} {target} HTTP/1.1\r\nhost: payment\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    tls_exchange(addr, Some(leaf), request.as_bytes())
        .await
        .unwrap_or_else(|err| format!("transport error: {err}"))
}

fn status(answer: &str) -> &str {
    answer.get(9..12).unwrap_or(answer)
}

/// The labels of the edge into `web` (a workload the snapshot does not name) from the
/// caller `identity` of service `service`.
fn edge_from(service: &str, identity: &str) -> String {
    format!(
        "direction=\"inbound\",source_namespace=\"default\",source_service=\"{service}\",\
         source_version=\"unknown\",source_identity=\"{identity}\",\
         destination_namespace=\"unknown\",destination_service=\"unknown\",\
         destination_version=\"unknown\",mtls=\"true\""
    )
}

fn seen(backend: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    let requests = backend.lock();
    requests
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

#[test]
fn only_the_allowed_identity_gets_through_and_others_get_403() {
    let pki = pki();
    let rt = client_runtime();
    let (backend, requests) = rt.block_on(recording_backend("payment-app"));
    let (b, addr) = start(&inbound_with("http", "strict", backend, CART_CHARGES));
    set(&b, &pki.payment, &pki.root.pem);
    let web = addr.get("web");
    rt.block_on(async {
        let ok = call(web, &pki.cart, "POST", "/charge").await;
        assert_eq!(status(&ok), "200", "{ok}");
        assert!(ok.ends_with("payment-app"), "{ok}");

        for (leaf, method) in [(&pki.cart, "GET"), (&pki.shipping, "POST")] {
            let refused = call(web, leaf, method, "/charge").await;
            assert_eq!(status(&refused), "403", "{refused}");
            assert!(
                refused.contains("x-meshpy-error: unauthorized\r\n"),
                "{refused}"
            );
            assert!(refused.ends_with("unauthorized: the caller may not make this request\n"));
        }
    });
    // Nothing refused reached the app.
    assert_eq!(seen(&requests), ["POST /charge"]);
    for line in [
        r#"meshpy_authz_requests_total{listener="web",decision="allow",policy="default/payment-callers"} 1"#,
        r#"meshpy_authz_requests_total{listener="web",decision="deny",policy="default"} 2"#,
        r#"meshpy_authz_requests_total{listener="web",decision="allow",policy="default"} 0"#,
        r#"meshpy_proxy_errors_total{listener="web",reason="unauthorized"} 2"#,
    ] {
        assert_metric(&b, line);
    }
    // The refusals, on the edge from each caller refused.
    for (service, identity) in [("cart", CART_ID), ("shipping", SHIPPING_ID)] {
        let edge = edge_from(service, identity);
        assert_metric(&b, &format!("meshpy_edge_authz_denied_total{{{edge}}} 1\n"));
    }
    assert_eq!(b.stats()["listeners"]["web"]["requests"]["4xx"], 2);

    // A snapshot without authorization lets everyone in again, on the same socket.
    b.apply(&inbound_with("http", "strict", backend, ""))
        .unwrap();
    rt.block_on(async {
        let ok = call(web, &pki.shipping, "POST", "/charge").await;
        assert_eq!(status(&ok), "200", "{ok}");
    });
}

#[test]
fn deny_policies_win_and_normalised_paths_close_bypasses() {
    let pki = pki();
    let rt = client_runtime();
    let (backend, requests) = rt.block_on(recording_backend("payment-app"));
    let authorization = r#"{"policies":[
        {"name":"default/cart-calls","action":"allow","rules":[{"sources":[{"identity":"spiffe://test.local/ns/default/sa/cart"}]}]},
        {"name":"default/no-admin","action":"deny","rules":[{"to":[{"paths":[{"prefix":"/admin/"}]}]}]}]}"#;
    let (b, b_addr) = start(&inbound_with("http", "strict", backend, authorization));
    set(&b, &pki.payment, &pki.root.pem);
    // A (cart's sidecar) forwards paths as they come, over HTTP/2 to B.
    let (a, a_addr) = start(&outbound("http", b_addr.get("web"), PAYMENT_ID));
    set(&a, &pki.cart, &pki.root.pem);
    let web = b_addr.get("web");
    let bypasses = [
        "/admin/keys",
        "//admin/keys",
        "/admin//keys",
        "/./admin/keys",
        "/charge/../admin/keys",
        "/x/..//admin/keys",
        "/%61dmin/keys",
        "/%2e%2e/admin/keys",
        "/charge/%2E%2E/admin/keys",
        "/charge/..%2fadmin/../../admin/keys",
    ];
    rt.block_on(async {
        for path in bypasses {
            let answer = call(web, &pki.cart, "GET", path).await;
            assert_eq!(status(&answer), "403", "{path}: {answer}");
            assert!(
                answer.contains("x-meshpy-error: unauthorized\r\n"),
                "{answer}"
            );
        }
        // The path forwarded is the normalised one; the query is kept as it came.
        let ok = call(
            web,
            &pki.cart,
            "GET",
            "/x/../charge//now?q=%2e%2e&next=//a/../b",
        )
        .await;
        assert_eq!(status(&ok), "200", "{ok}");
        let malformed = call(web, &pki.cart, "GET", "/ch%zzarge").await;
        assert_eq!(status(&malformed), "400", "{malformed}");
        assert!(
            malformed.contains("x-meshpy-error: invalid-path\r\n"),
            "{malformed}"
        );

        // The same over HTTP/2 from a sidecar: the 403 and its reason come back through it.
        let mut client = H1Client::connect(a_addr.get("web")).await;
        let refused = client.get("/charge/../admin/keys").await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert_eq!(refused.header("x-meshpy-error"), "unauthorized");
        let ok = client.get("/a/./b/../charge").await;
        assert_eq!(ok.status, 200, "{}", ok.body);
    });
    assert_eq!(
        seen(&requests),
        ["GET /charge/now?q=%2e%2e&next=//a/../b", "GET /a/charge"]
    );
    assert_metric(
        &b,
        &format!(
            r#"meshpy_authz_requests_total{{listener="web",decision="deny",policy="default/no-admin"}} {}"#,
            bypasses.len() + 1
        ),
    );
    assert_metric(
        &b,
        r#"meshpy_proxy_errors_total{listener="web",reason="invalid-path"} 1"#,
    );
}

#[test]
fn permissive_plaintext_callers_are_unauthenticated() {
    let pki = pki();
    let rt = client_runtime();
    let (backend, requests) = rt.block_on(recording_backend("payment-app"));
    let authorization = r#"{"default":"all_authenticated","policies":[
        {"name":"default/audit-all","action":"audit","rules":[{}]}]}"#;
    let (b, addr) = start(&inbound_with("http", "permissive", backend, authorization));
    set(&b, &pki.payment, &pki.root.pem);
    let web = addr.get("web");
    rt.block_on(async {
        let plain = raw_exchange(
            web,
            b"GET /charge HTTP/1.1\r\nhost: payment\r\nconnection: close\r\nx-meshpy-client-id: spiffe://test.local/ns/default/sa/cart\r\n\r\n",
            4096,
        )
        .await;
        assert!(plain.starts_with("HTTP/1.1 403"), "{plain}");
        assert!(plain.contains("x-meshpy-error: unauthorized\r\n"), "{plain}");
        let mtls = call(web, &pki.shipping, "GET", "/charge").await;
        assert_eq!(status(&mtls), "200", "{mtls}");
    });
    assert_eq!(seen(&requests), ["GET /charge"]);
    for line in [
        r#"meshpy_authz_audit_total{listener="web",policy="default/audit-all"} 2"#,
        r#"meshpy_authz_requests_total{listener="web",decision="deny",policy="default"} 1"#,
        r#"meshpy_authz_requests_total{listener="web",decision="allow",policy="default"} 1"#,
    ] {
        assert_metric(&b, line);
    }
}

/// Writes `ping` on an mTLS connection as `leaf` and reads the echo; `None` if closed first.
async fn ping(addr: SocketAddr, leaf: &Leaf) -> Option<String> {
    let mut stream = tls_connect(addr, Some(leaf), &[]).await.ok()?;
    stream.write_all(b"ping").await.ok()?;
    let mut echo = [0u8; 4];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echo)).await;
    match read {
        Ok(Ok(_)) => Some(String::from_utf8_lossy(&echo).into_owned()),
        _ => None,
    }
}

#[test]
fn tcp_listeners_decide_once_per_connection() {
    let pki = pki();
    let rt = client_runtime();
    let echo = rt.block_on(echo_backend());
    // Shipping's rule has a method condition: it cannot match a connection.
    let allow = r#"{"policies":[{"name":"default/db-clients","action":"allow","rules":[
        {"sources":[{"identity":"spiffe://test.local/ns/default/sa/cart"}]},
        {"sources":[{"identity":"spiffe://test.local/ns/default/sa/shipping"}],"to":[{"methods":["GET"]}]}]}]}"#;
    let (b, addr) = start(&inbound_with("tcp", "strict", echo, allow));
    set(&b, &pki.payment, &pki.root.pem);
    let web = addr.get("web");
    rt.block_on(async {
        assert_eq!(ping(web, &pki.cart).await.as_deref(), Some("ping"));
        assert_eq!(ping(web, &pki.shipping).await, None);
    });
    for line in [
        r#"meshpy_authz_requests_total{listener="web",decision="allow",policy="default/db-clients"} 1"#,
        r#"meshpy_authz_requests_total{listener="web",decision="deny",policy="default"} 1"#,
    ] {
        assert_metric(&b, line);
    }

    // A deny rule with a path condition refuses the whole connection (fail closed).
    let deny = r#"{"policies":[{"name":"default/no-admin","action":"deny","rules":[
        {"sources":[{"identity":"spiffe://test.local/ns/default/sa/cart"}],"to":[{"paths":[{"prefix":"/admin/"}]}]}]}]}"#;
    b.apply(&inbound_with("tcp", "strict", echo, deny)).unwrap();
    rt.block_on(async {
        assert_eq!(ping(web, &pki.cart).await, None);
        assert_eq!(ping(web, &pki.shipping).await.as_deref(), Some("ping"));
    });
    assert_metric(
        &b,
        r#"meshpy_authz_requests_total{listener="web",decision="deny",policy="default/no-admin"} 1"#,
    );
    // Each caller was refused one connection, under one snapshot or the other; only
    // connections let through are counted open.
    for (service, identity) in [("cart", CART_ID), ("shipping", SHIPPING_ID)] {
        let edge = edge_from(service, identity);
        assert_metric(&b, &format!("meshpy_edge_authz_denied_total{{{edge}}} 1\n"));
        assert_metric(&b, &format!("meshpy_tcp_open_total{{{edge}}} 1\n"));
    }
}
