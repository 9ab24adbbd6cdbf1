//! Request mirroring: a copy of a request goes to another cluster on its own task, its answer drained and dropped.
//!
//! A copy never delays or fails the request it copies: it is made only of a body
//! already buffered, sent after the gate admits it (at most 256 per proxy), and
//! whatever happens to it is only counted.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::Request;
use http_body_util::BodyExt;

use crate::body::request::{Prepared, Replay};
use crate::policy::headers;
use crate::policy::route::Mirror;
use crate::upstream::cluster::{Cluster, Pick};

/// `host` with `-shadow` appended to its name, before any port (as Envoy does),
/// so the shadow can tell copies from real traffic.
pub fn shadow_host(host: &str) -> String {
    let (name, port) = match host.rfind(':') {
        // An IPv6 literal's colons are inside brackets; a port follows the `]`.
        Some(colon)
            if !host[colon..].contains(']')
                && host[colon + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            host.split_at(colon)
        }
        _ => (host, ""),
    };
    format!("{name}-shadow{port}")
}

/// Sends a copy of the request `parts` + `body` (as prepared for its own upstream)
/// to `target` on a task of its own, bounded by `timeout`.
pub fn spawn(target: &Arc<Cluster>, parts: &Parts, body: &Replay, timeout: Duration) {
    let traffic = target.traffic();
    let Some(slot) = traffic.mirror_gate.enter() else {
        traffic.mirrors.dropped.inc();
        return;
    };
    let mut req = Request::new(body.body());
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    let authority = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()));
    if let Some(shadow) = authority.and_then(|a| HeaderValue::from_str(&shadow_host(a)).ok()) {
        req.headers_mut().insert(header::HOST, shadow);
    }
    // The copy's cluster may speak another HTTP version than the original's.
    headers::set_target(&mut req, target.protocol());
    if target.tls_identity().is_some() {
        headers::use_https(&mut req);
    }
    let target = Arc::clone(target);
    tokio::spawn(async move {
        let _slot = slot;
        let counters = &target.traffic().mirrors;
        // Hashing balancers see the copy's headers; the client's address stays with the original.
        let pick = Pick {
            headers: Some(req.headers()),
            ..Pick::default()
        };
        let Some(endpoint) = target.pick(&pick) else {
            counters.failed.inc();
            return;
        };
        let exchange = async {
            let (response, mut lease) = endpoint.send(req, timeout).await?;
            let mut body = response.into_body();
            while let Some(frame) = body.frame().await {
                if frame.is_err() {
                    // Answered, then broke: the copy was still sent and answered.
                    return Ok(());
                }
            }
            lease.complete();
            Ok::<_, crate::error::ProxyError>(())
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(())) => {
                counters.sent.inc();
            }
            Ok(Err(err)) => {
                tracing::debug!(cluster = target.name(), %err, "mirrored request failed");
                counters.failed.inc();
            }
            Err(_) => {
                counters.failed.inc();
            }
        }
    });
}

/// Which mirrors get a copy of this request, as a bit per mirror.
pub fn roll(mirrors: &[Mirror<Arc<Cluster>>]) -> u64 {
    mirrors
        .iter()
        .take(64)
        .enumerate()
        .filter(|(_, mirror)| mirror.chance.roll())
        .fold(0, |mask, (i, _)| mask | (1 << i))
}

/// Spawns the copies of the request that its mirrors rolled for (`mirrored`, a bit per
/// mirror); a body too large to keep can't be copied, and the copy is counted as dropped.
pub fn send_rolled(
    mirrors: &[Mirror<Arc<Cluster>>],
    mirrored: u64,
    timeout: Duration,
    parts: &http::request::Parts,
    prepared: &Prepared,
) {
    for (i, mirror) in mirrors.iter().enumerate() {
        if mirrored & (1 << i) == 0 {
            continue;
        }
        match prepared {
            Prepared::Replay(body) => spawn(&mirror.target, parts, body, timeout),
            Prepared::Once(_) => {
                mirror.target.traffic().mirrors.dropped.inc();
            }
        }
    }
}

#[cfg(test)]
mod tests;
