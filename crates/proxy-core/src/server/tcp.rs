//! The TCP listener: relays a byte stream between a client and one endpoint of the cluster, either side possibly over mTLS.

use std::sync::Arc;

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::either::Either;

use crate::config::ListenerProtocol;
use crate::policy::plan::Target;
use crate::server::inbound::{self, PeerIdentity};
use crate::server::io::ClientStream;
use crate::server::listener::{ListenerEdges, ListenerRoute, ListenerShared, Shutdown};
use crate::server::metered::Metered;
use crate::telemetry::metrics::edge::EdgeEvent;
use crate::telemetry::metrics::Wire;
use crate::upstream::cluster::Pick;

/// Relays one connection until either side closes, it idles out, or the proxy stops.
///
/// Draining lets a relay run on (TCP has no way to ask a peer to finish); the
/// proxy's stop deadline ends it.
pub async fn serve_connection(
    stream: TcpStream,
    route: Arc<ListenerRoute>,
    shared: &Arc<ListenerShared>,
    shutdown: Shutdown,
) {
    let metrics = &shared.metrics;
    // Validation gives every tcp listener a cluster.
    let Target::Cluster(cluster) = &route.policy.target else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let client_ip = stream.peer_addr().ok().map(|addr| addr.ip());
    let idle = route.timeouts.idle;
    let wire = match route.tls {
        None => None,
        Some(mode) => match inbound::classify(&stream, mode, idle, shared, &shutdown).await {
            None => return,
            wire => wire,
        },
    };
    let activity = Counter::<u64>::default();
    let client = ClientStream::new(
        stream,
        Bytes::new(),
        metrics.bytes_received.clone(),
        metrics.bytes_sent.clone(),
    )
    .with_activity(activity.clone())
    .with_send_timeout(route.timeouts.send);
    // The client proves who it is, and is authorized, before anything is opened upstream.
    let (client, peer) = match wire {
        Some(Wire::Mtls) => {
            match inbound::handshake(client, shared, ListenerProtocol::Tcp, &shutdown).await {
                Some((tls, peer)) => (Either::Right(tls), Some(peer)),
                None => return,
            }
        }
        _ => (Either::Left(client), None),
    };
    let edge = match &route.edges {
        ListenerEdges::Inbound(edges) => edges.of_caller(peer.as_ref().map(|PeerIdentity(id)| id)),
        ListenerEdges::Outbound { .. } => Arc::clone(cluster.edge()),
    };
    if !authorize(&route, peer.as_ref(), shared) {
        edge.count(EdgeEvent::AuthzDenied);
        // Closing is the only refusal a byte stream has.
        return;
    }
    // Counted on its edge from here until it closes, when this is dropped.
    let connection = edge.tcp_stream_opened();
    let mut client = Metered::new(client, connection.read.clone(), connection.written.clone());
    let pick = Pick {
        client_ip,
        ..Pick::default()
    };
    let Some(endpoint) = cluster.pick(&pick) else {
        metrics.error("no_endpoints");
        return;
    };
    let (mut upstream, _lease) = match endpoint.connect_stream().await {
        Ok(connected) => connected,
        Err(err) => {
            metrics.error(err.reason());
            if let Some(event) = EdgeEvent::of_error(err.kind()) {
                edge.count(event);
            }
            tracing::debug!(listener = %shared.name, %err, "tcp connect failed");
            return;
        }
    };
    let idle_watch = async {
        // Checked once per idle period: a quiet connection closes within one to two periods.
        let mut last = activity.get();
        loop {
            tokio::time::sleep(idle).await;
            let now = activity.get();
            if now == last {
                return;
            }
            last = now;
        }
    };
    tokio::select! {
        result = relay(&mut client, &mut upstream) => {
            if let Err(err) = result {
                tracing::debug!(listener = %shared.name, %err, "tcp relay ended");
            }
        }
        _ = idle_watch => tracing::debug!(listener = %shared.name, "tcp relay idle timeout"),
        _ = shutdown.stop.cancelled() => {}
    }
}

/// Decides once for the whole connection: sources apply, request conditions
/// cannot (see `authz`: allow rules with them do not match, deny rules do).
fn authorize(route: &ListenerRoute, peer: Option<&PeerIdentity>, shared: &ListenerShared) -> bool {
    let identity = peer.map(|PeerIdentity(id)| id.as_str());
    let Some(decision) = route.authorize_connection(identity) else {
        return true;
    };
    if !decision.allowed {
        shared.metrics.error("unauthorized");
        tracing::debug!(
            listener = %shared.name,
            client = identity.unwrap_or("(unauthenticated)"),
            policy = route.decided_by(&decision),
            "connection refused by authorization"
        );
    }
    decision.allowed
}

async fn relay<C, U>(client: &mut C, upstream: &mut U) -> std::io::Result<(u64, u64)>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    tokio::io::copy_bidirectional(client, upstream).await
}
