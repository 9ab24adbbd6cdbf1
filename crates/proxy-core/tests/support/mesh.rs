//! Proxies wired as a mesh for the mTLS tests: inbound and outbound snapshots, identities, metric checks.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proxy_core::Proxy;

use super::pki::Leaf;

/// Starts a proxy (with an admin listener); returns it and its addresses by name.
pub fn start(snapshot: &str) -> (Proxy, Addresses) {
    let proxy = Proxy::new(r#"{"admin":"127.0.0.1:0"}"#).unwrap();
    proxy.apply(snapshot).unwrap();
    let bound = proxy.start().unwrap();
    (proxy, Addresses(bound))
}

/// Bound addresses by listener name (`admin` included).
pub struct Addresses(Vec<(String, SocketAddr)>);

impl Addresses {
    pub fn get(&self, name: &str) -> SocketAddr {
        self.0.iter().find(|(n, _)| n == name).unwrap().1
    }
}

/// Sets the proxy's identity to `leaf` under `roots`.
pub fn set(proxy: &Proxy, leaf: &Leaf, roots: &str) {
    proxy
        .set_identity(&leaf.chain_pem, &leaf.key_pem, roots)
        .unwrap();
}

/// B: listener `web` terminating mTLS (`mode`) in front of a plain cluster.
pub fn inbound(protocol: &str, mode: &str, backend: SocketAddr) -> String {
    format!(
        r#"{{"listeners":[{{"name":"web","address":"127.0.0.1:0","protocol":"{protocol}","cluster":"app","tls":{{"mode":"{mode}"}}}}],
            "clusters":[{{"name":"app","endpoints":["{backend}"]}}]}}"#
    )
}

/// A: plain listener `web` in front of cluster `b`, reached over mTLS expecting `identity`.
pub fn outbound(protocol: &str, b: SocketAddr, identity: &str) -> String {
    format!(
        r#"{{"listeners":[{{"name":"web","address":"127.0.0.1:0","protocol":"{protocol}","cluster":"b"}}],
            "clusters":[{{"name":"b","endpoints":["{b}"],"tls":{{"identity":"{identity}"}}}}]}}"#
    )
}

/// Requests listener `web` answered, of any status.
pub fn requests_total(proxy: &Proxy) -> u64 {
    let stats = proxy.stats();
    let requests = stats["listeners"]["web"]["requests"].as_object().unwrap();
    requests.values().map(|v| v.as_u64().unwrap()).sum()
}

/// Waits (up to 2 s) for `line` in the proxy's metrics: a server finishes its
/// side of a TLS 1.3 handshake after the client has finished its own.
pub fn assert_metric(proxy: &Proxy, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let metrics = proxy.metrics_text();
        if metrics.contains(line) {
            return;
        }
        assert!(Instant::now() < deadline, "{line}\n{metrics}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a `tls_get` got no HTTP answer.
pub fn refused(answer: &Result<String, String>) -> bool {
    match answer {
        Ok(text) => !text.starts_with("HTTP/1.1"),
        Err(_) => true,
    }
}
