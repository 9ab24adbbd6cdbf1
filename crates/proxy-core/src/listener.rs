//! Listeners: binding sockets, the accept loop, connection limits, and the per-listener state a reload swaps.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::authz::{Authorizer, AuthzRequest, Decision};
use crate::cluster::Cluster;
use crate::config::{
    self, ListenerLimits, ListenerProtocol, ListenerTimeouts, ProxyHeader, TlsMode,
};
use crate::identity::IdentityStore;
use crate::metrics::{AuthzCounters, ListenerMetrics, Metrics};
use crate::route::RouteTable;
use crate::{http, tcp};

/// Where a listener's traffic goes.
#[derive(Debug)]
pub enum Target {
    /// Everything to one cluster.
    Cluster(Arc<Cluster>),
    /// HTTP requests by host and rules.
    Routes(RouteTable<Arc<Cluster>>),
}

/// A listener's authorization: its compiled policies and their counters.
#[derive(Debug)]
pub struct ListenerAuthz {
    /// The policies.
    pub policies: Authorizer,
    /// Decisions and audit matches.
    pub counters: AuthzCounters,
}

impl ListenerAuthz {
    /// Decides on `req`, counting the decision and audit matches.
    pub fn decide(&self, req: &AuthzRequest<'_>) -> Decision {
        let decision = self
            .policies
            .evaluate(req, |index| self.counters.audited(index));
        self.counters.decided(&decision);
        decision
    }
}

/// What a listener's new connections and requests follow; replaced whole on reload.
#[derive(Debug)]
pub struct ListenerRoute {
    /// HTTP or TCP.
    pub protocol: ListenerProtocol,
    /// Where traffic goes.
    pub target: Target,
    /// Which proxy header to add.
    pub proxy_header: ProxyHeader,
    /// Request and idle timeouts.
    pub timeouts: ListenerTimeouts,
    /// Connection and header limits.
    pub limits: ListenerLimits,
    /// mTLS termination, if the listener has `tls`.
    pub tls: Option<TlsMode>,
    /// Authorization, if the listener has `authorization`.
    pub authz: Option<ListenerAuthz>,
}

impl ListenerRoute {
    /// Combines a listener's config with its compiled clusters (validated to exist)
    /// and its authorization, compiled with its counters.
    pub fn new(
        cfg: &config::Listener,
        clusters: &HashMap<&str, Arc<Cluster>>,
        metrics: &Metrics,
    ) -> Self {
        let resolve = |name: &str| clusters.get(name).cloned();
        let target = match cfg.cluster.as_deref().and_then(resolve) {
            Some(cluster) => Target::Cluster(cluster),
            None => Target::Routes(RouteTable::compile(&cfg.routes, resolve)),
        };
        Self {
            protocol: cfg.protocol,
            target,
            proxy_header: cfg.proxy_header,
            timeouts: cfg.timeouts,
            limits: cfg.limits,
            tls: cfg.tls.map(|tls| tls.mode),
            authz: cfg.authorization.as_ref().map(|authz| ListenerAuthz {
                policies: Authorizer::compile(authz),
                counters: metrics.authz(&cfg.name, authz),
            }),
        }
    }
}

/// Connections open across every listener of the proxy, and the most allowed
/// (`max_connections` of the bootstrap): at the limit new connections are refused
/// at accept, and those open are kept.
#[derive(Debug)]
pub struct ConnectionBudget {
    open: AtomicUsize,
    limit: AtomicUsize,
}

impl Default for ConnectionBudget {
    fn default() -> Self {
        Self {
            open: AtomicUsize::new(0),
            limit: AtomicUsize::new(usize::MAX),
        }
    }
}

impl ConnectionBudget {
    /// Sets the most connections open at once.
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Connections open now, on all listeners.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn is_full(&self) -> bool {
        self.open() >= self.limit.load(Ordering::Relaxed)
    }
}

/// State of one listener that outlives reloads: its route slot, metrics and connection count.
#[derive(Debug)]
pub struct ListenerShared {
    /// The listener's name.
    pub name: String,
    /// The current route; connections and requests load it, reloads store it.
    pub route: ArcSwap<ListenerRoute>,
    /// Metric handles.
    pub metrics: ListenerMetrics,
    /// The proxy's identity, which mTLS handshakes present.
    pub identity: Arc<IdentityStore>,
    open: AtomicUsize,
    /// The proxy-wide connection budget.
    budget: Arc<ConnectionBudget>,
}

impl ListenerShared {
    /// Shared state for a listener starting with `route`.
    pub fn new(
        name: &str,
        route: ListenerRoute,
        metrics: ListenerMetrics,
        identity: Arc<IdentityStore>,
        budget: Arc<ConnectionBudget>,
    ) -> Self {
        Self {
            name: name.to_string(),
            route: ArcSwap::from_pointee(route),
            metrics,
            identity,
            open: AtomicUsize::new(0),
            budget,
        }
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// Counts a connection open for as long as it lives.
struct OpenConnection(Arc<ListenerShared>);

impl OpenConnection {
    fn new(shared: &Arc<ListenerShared>) -> Self {
        shared.open.fetch_add(1, Ordering::Relaxed);
        shared.budget.open.fetch_add(1, Ordering::Relaxed);
        shared.metrics.connections_open.inc();
        shared.metrics.connections_total.inc();
        Self(Arc::clone(shared))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.budget.open.fetch_sub(1, Ordering::Relaxed);
        self.0.metrics.connections_open.dec();
    }
}

/// Signals that end connections: `drain` asks them to finish, `stop` ends them now.
#[derive(Debug, Clone)]
pub struct Shutdown {
    /// Stop accepting; finish in-flight requests, then close.
    pub drain: CancellationToken,
    /// Close now.
    pub stop: CancellationToken,
}

/// Binds `addr` synchronously, so a bad address fails the call that asked for it.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Lets a restarted proxy bind while old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Accepts connections until `shutdown.drain`, serving each on its own task.
pub async fn accept_loop(
    listener: std::net::TcpListener,
    shared: Arc<ListenerShared>,
    shutdown: Shutdown,
    tracker: TaskTracker,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(listener = %shared.name, %err, "cannot register listener");
            return;
        }
    };
    loop {
        let accepted = tokio::select! {
            _ = shutdown.drain.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(listener = %shared.name, %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let route = shared.route.load_full();
        // Shedding refuses new connections first; those open are kept.
        if shared.open_connections() >= route.limits.max_connections || shared.budget.is_full() {
            shared.metrics.connections_rejected.inc();
            drop(stream);
            continue;
        }
        let open = OpenConnection::new(&shared);
        let shared = Arc::clone(&shared);
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            serve(stream, peer, route, &shared, shutdown).await;
            drop(open);
        });
    }
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    route: Arc<ListenerRoute>,
    shared: &Arc<ListenerShared>,
    shutdown: Shutdown,
) {
    match route.protocol {
        ListenerProtocol::Http => {
            http::serve_connection(stream, peer, route, shared, shutdown).await
        }
        ListenerProtocol::Tcp => tcp::serve_connection(stream, route, shared, shutdown).await,
    }
}
