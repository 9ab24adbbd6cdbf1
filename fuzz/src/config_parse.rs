//! Bootstrap and snapshot documents: parsed, validated, written back and compiled as the proxy does on `apply`.
//!
//! Both are JSON (the proxy reads no other format). Refusing a document is
//! fine; panicking is not, and neither is accepting a document that then does
//! not survive its own serialisation (the control plane stores and diffs what
//! it sends) or that the proxy cannot compile.

use proxy_core::config::{parse_bootstrap, parse_snapshot, validate_snapshot, ListenerProtocol};
use proxy_core::policy::authz::Authorizer;
use proxy_core::policy::route::RouteTable;
use proxy_core::{Bootstrap, Proxy, Snapshot};

pub fn run(data: &[u8]) {
    let text = crate::text(data);
    if let Ok(bootstrap) = parse_bootstrap(&text) {
        let json = to_json(&bootstrap);
        let again: Bootstrap = parse_bootstrap(&json)
            .unwrap_or_else(|err| panic!("{text:?} -> {json}: refused ({err})"));
        assert_eq!(again, bootstrap, "{text:?} -> {json}: changed");
    }
    let Ok(snapshot) = parse_snapshot(&text) else {
        return;
    };
    if let Err(err) = validate_snapshot(&snapshot) {
        panic!("{text:?}: parsed, then refused by validation ({err})");
    }
    let json = to_json(&snapshot);
    let again: Snapshot =
        parse_snapshot(&json).unwrap_or_else(|err| panic!("{text:?} -> {json}: refused ({err})"));
    assert_eq!(again, snapshot, "{text:?} -> {json}: changed");
    compile(&snapshot);
    apply(&text);
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|err| panic!("{err}"))
}

/// What a reload compiles per listener: its routes and its policies.
fn compile(snapshot: &Snapshot) {
    for listener in &snapshot.listeners {
        if listener.protocol == ListenerProtocol::Http && listener.cluster.is_none() {
            let known = |name: &str| snapshot.clusters.iter().position(|c| c.name == name);
            let _ = RouteTable::compile(&listener.routes, known);
        }
        if let Some(authorization) = &listener.authorization {
            let _ = Authorizer::compile(authorization);
        }
    }
}

/// The whole reload on a proxy that is never started (so nothing binds):
/// clusters, balancers, listeners' routes and stats. A fresh proxy each time,
/// as metrics keep a series per listener and cluster name for a proxy's life.
fn apply(text: &str) {
    let proxy = Proxy::new("{}").unwrap_or_else(|err| panic!("proxy: {err}"));
    if let Err(err) = proxy.apply(text) {
        panic!("{text:?}: parsed, then refused by apply ({err})");
    }
    let _ = proxy.stats();
    let _ = proxy.metrics_text();
}
