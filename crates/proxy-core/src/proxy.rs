//! The proxy handle: owns the tokio runtime, starts listeners, applies snapshots atomically, shuts down with a drain.
//!
//! Control calls (`start`, `apply`, `shutdown`) come from a foreign thread
//! (Python's) and are serialised by one mutex; the request path never takes it.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{self, Bootstrap, ConfigError, Snapshot};
use crate::identity::store::{CertificateInfo, Credentials, IdentityError};
use crate::runtime::ProxyRuntime;
use crate::server::accept;
use crate::server::listener::{ListenerRoute, ListenerShared, Shutdown};
use crate::state::{Served, ServedListener, Shared};
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::trace::Tracer;
use crate::upstream::cluster::{self, Cluster};

/// Why a control call failed.
#[derive(Debug)]
pub enum Error {
    /// The bootstrap or snapshot is invalid; nothing changed.
    Config(ConfigError),
    /// A listener could not bind its address; nothing changed.
    Bind {
        /// The listener's name (`admin` for the admin listener).
        listener: String,
        /// The address asked for.
        address: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The identity (certificate chain, key, roots) was refused; the previous one stays.
    Identity(IdentityError),
    /// The call does not fit the proxy's state (e.g. `start` twice).
    State(&'static str),
    /// The runtime could not be created.
    Runtime(io::Error),
    /// The access log's file could not be opened.
    AccessLog(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(err) => err.fmt(f),
            Self::Bind {
                listener,
                address,
                source,
            } => write!(f, "listener {listener:?} cannot bind {address}: {source}"),
            Self::Identity(err) => write!(f, "identity refused: {err}"),
            Self::State(what) => f.write_str(what),
            Self::Runtime(err) => write!(f, "cannot start the proxy runtime: {err}"),
            Self::AccessLog(err) => write!(f, "cannot open the access log: {err}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(err) => Some(err),
            Self::Identity(err) => Some(err),
            Self::Bind { source, .. } | Self::Runtime(source) | Self::AccessLog(source) => {
                Some(source)
            }
            Self::State(_) => None,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(err: ConfigError) -> Self {
        Self::Config(err)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Created,
    Started,
    Stopped,
}

/// A listener the proxy knows: configured, and bound once started.
#[derive(Debug)]
struct Known {
    cfg: config::Listener,
    shared: Arc<ListenerShared>,
    bound: Option<SocketAddr>,
    drain: CancellationToken,
}

/// Everything the control path changes, behind one mutex.
#[derive(Debug)]
struct Control {
    phase: Phase,
    version: u64,
    uses_tls: bool,
    clusters: Vec<Arc<Cluster>>,
    listeners: Vec<Known>,
    admin: Option<SocketAddr>,
    /// The snapshot's tracing; kept while its section is unchanged, so that its
    /// exporter's queue and task carry on.
    tracer: Option<Arc<Tracer>>,
    /// The access log, from `start` to `shutdown`.
    access_log: Option<AccessLog>,
}

/// A proxy: a runtime on its own threads plus the listeners and clusters it serves.
pub struct Proxy {
    bootstrap: Bootstrap,
    runtime: ProxyRuntime,
    shared: Arc<Shared>,
    control: Mutex<Control>,
    shutdown: Shutdown,
    tracker: TaskTracker,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("bootstrap", &self.bootstrap)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Creates a proxy from a bootstrap document; nothing is bound until `start`.
    pub fn new(bootstrap_json: &str) -> Result<Self, Error> {
        Self::with_bootstrap(config::parse_bootstrap(bootstrap_json)?)
    }

    /// Creates a proxy from a parsed bootstrap.
    pub fn with_bootstrap(bootstrap: Bootstrap) -> Result<Self, Error> {
        let runtime = ProxyRuntime::start(bootstrap.workers).map_err(Error::Runtime)?;
        let shared = Shared::new(Metrics::with_istio(bootstrap.istio_metrics));
        shared.connections.set_limit(bootstrap.max_connections);
        Ok(Self {
            bootstrap,
            runtime,
            shared: Arc::new(shared),
            control: Mutex::new(Control {
                phase: Phase::Created,
                version: 0,
                uses_tls: false,
                clusters: Vec::new(),
                listeners: Vec::new(),
                admin: None,
                tracer: None,
                access_log: None,
            }),
            shutdown: Shutdown {
                drain: CancellationToken::new(),
                stop: CancellationToken::new(),
            },
            tracker: TaskTracker::new(),
        })
    }

    /// Binds the admin listener and every configured listener, then serves.
    /// Returns the bound addresses by listener name (`admin` included).
    pub fn start(&self) -> Result<Vec<(String, SocketAddr)>, Error> {
        let mut control = self.lock();
        if control.phase != Phase::Created {
            return Err(Error::State("the proxy was already started"));
        }
        let admin = match self.bootstrap.admin {
            Some(address) => Some(bind("admin", address)?),
            None => None,
        };
        let mut sockets = Vec::with_capacity(control.listeners.len());
        for known in &control.listeners {
            sockets.push(bind(&known.cfg.name, known.cfg.address)?);
        }
        if let Some(target) = &self.bootstrap.access_log {
            let log = AccessLog::start(&self.shared.tap, target).map_err(Error::AccessLog)?;
            control.access_log = Some(log);
        }
        // Everything bound: from here on nothing can fail.
        if let Some(socket) = admin {
            control.admin = socket.local_addr().ok();
            let serving =
                crate::admin::serve(socket, Arc::clone(&self.shared), self.shutdown.stop.clone());
            self.runtime.handle().spawn(serving);
        }
        for (known, socket) in control.listeners.iter_mut().zip(sockets) {
            known.bound = socket.local_addr().ok();
            self.spawn_accept(socket, known);
        }
        control.phase = Phase::Started;
        self.publish(&control);
        Ok(addresses(&control))
    }

    /// Validates and applies a snapshot atomically; returns the version now served.
    /// On error nothing changes and the previous snapshot keeps serving.
    pub fn apply(&self, snapshot_json: &str) -> Result<u64, Error> {
        let snapshot = match config::parse_snapshot(snapshot_json) {
            Ok(snapshot) => snapshot,
            Err(err) => {
                self.shared.metrics.config_reload(false);
                return Err(err.into());
            }
        };
        let applied = self.apply_parsed(snapshot);
        self.shared.metrics.config_reload(applied.is_ok());
        applied
    }

    fn apply_parsed(&self, snapshot: Snapshot) -> Result<u64, Error> {
        let mut control = self.lock();
        if control.phase == Phase::Stopped {
            return Err(Error::State("the proxy was shut down"));
        }
        let started = control.phase == Phase::Started;
        let reuse = cluster::endpoints_by_key(&control.clusters);
        let workload = snapshot.metrics.as_ref().and_then(|m| m.workload.as_ref());
        let ctx = cluster::Context {
            identity: &self.shared.identity,
            metrics: &self.shared.metrics,
            mirror_gate: &self.shared.mirror_gate,
            workload,
        };
        let clusters: HashMap<&str, Arc<Cluster>> = snapshot
            .clusters
            .iter()
            .map(|cfg| {
                (
                    cfg.name.as_str(),
                    Arc::new(Cluster::compile(cfg, &reuse, ctx)),
                )
            })
            .collect();

        let tracer = snapshot
            .tracing
            .as_ref()
            .map(|tracing| match &control.tracer {
                Some(same) if same.config == *tracing => Arc::clone(same),
                _ => Arc::new(Tracer::new(
                    tracing,
                    &self.shared.metrics.trace,
                    self.runtime.handle(),
                )),
            });

        // Plan: keep a listener whose name and configured address are unchanged,
        // bind the rest now so that a bind error leaves everything as it was.
        let mut plan = Vec::with_capacity(snapshot.listeners.len());
        for cfg in &snapshot.listeners {
            let route = ListenerRoute::new(
                cfg,
                &clusters,
                tracer.clone(),
                &self.shared.metrics,
                workload,
            );
            let kept = control
                .listeners
                .iter()
                .position(|k| k.cfg.name == cfg.name && k.cfg.address == cfg.address);
            let socket = match (kept, started) {
                (None, true) => Some(bind(&cfg.name, cfg.address)?),
                _ => None,
            };
            plan.push((cfg.clone(), route, kept, socket));
        }

        // Commit.
        let mut old: Vec<Option<Known>> = control.listeners.drain(..).map(Some).collect();
        let mut listeners = Vec::with_capacity(plan.len());
        for (cfg, route, kept, socket) in plan {
            let known = match kept.and_then(|i| old.get_mut(i).and_then(Option::take)) {
                Some(mut known) => {
                    known.shared.route.store(Arc::new(route));
                    known.cfg = cfg;
                    known
                }
                None => {
                    let metrics = self.shared.metrics.listener(&cfg.name);
                    let shared = ListenerShared::new(
                        &cfg.name,
                        route,
                        metrics,
                        Arc::clone(&self.shared.identity),
                        Arc::clone(&self.shared.connections),
                        Arc::clone(&self.shared.tap),
                    );
                    let mut known = Known {
                        shared: Arc::new(shared),
                        cfg,
                        bound: None,
                        drain: self.shutdown.drain.child_token(),
                    };
                    if let Some(socket) = socket {
                        known.bound = socket.local_addr().ok();
                        self.spawn_accept(socket, &known);
                    }
                    known
                }
            };
            if known.cfg.tls.is_some() {
                // A TLS listener shows its TLS series (at 0) from the start.
                known.shared.metrics.tls();
            }
            listeners.push(known);
        }
        // Listeners no longer configured stop accepting; their connections drain.
        for removed in old.into_iter().flatten() {
            removed.drain.cancel();
        }
        control.listeners = listeners;
        control.clusters = snapshot
            .clusters
            .iter()
            .filter_map(|cfg| clusters.get(cfg.name.as_str()).cloned())
            .collect();
        control.version = match snapshot.version {
            0 => control.version + 1,
            version => version,
        };
        control.uses_tls = snapshot.uses_tls();
        control.tracer = tracer;
        self.publish(&control);
        Ok(control.version)
    }

    /// Vets and puts in force the proxy's identity: a PEM certificate chain
    /// (leaf first), its private key (PKCS#8 or SEC1) and the trust roots (one
    /// or more, all trusted). New handshakes of both sides use it; open
    /// connections are untouched. On error nothing changes.
    pub fn set_identity(
        &self,
        chain_pem: &str,
        key_pem: &str,
        roots_pem: &str,
    ) -> Result<CertificateInfo, Error> {
        let credentials =
            Credentials::from_pem(chain_pem, key_pem, roots_pem).map_err(Error::Identity)?;
        let control = self.lock();
        if control.phase == Phase::Stopped {
            return Err(Error::State("the proxy was shut down"));
        }
        let info = credentials.info().clone();
        tracing::info!(
            identity = %credentials.identity(),
            serial = %info.serial,
            not_after = info.not_after,
            "identity set"
        );
        self.shared.identity.set(credentials);
        self.shared
            .metrics
            .identity_expiration
            .set(info.not_after as f64);
        drop(control);
        Ok(info)
    }

    /// The identity in force, if one was set.
    pub fn identity(&self) -> Option<CertificateInfo> {
        self.shared
            .identity
            .current()
            .map(|credentials| credentials.info().clone())
    }

    /// Bound addresses by listener name (`admin` included); empty before `start`.
    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        addresses(&self.lock())
    }

    /// Stats as JSON: version, readiness, listeners and clusters.
    pub fn stats(&self) -> serde_json::Value {
        self.shared.stats()
    }

    /// Prometheus text exposition of the proxy's metrics.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics.render()
    }

    /// Whether the proxy serves a snapshot, is not shutting down, and has an
    /// identity if the snapshot uses mTLS.
    pub fn is_ready(&self) -> bool {
        self.shared.is_ready()
    }

    /// Why the proxy is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        self.shared.not_ready_reason()
    }

    /// Stops accepting, lets in-flight requests finish for up to `grace`,
    /// then closes every connection and stops the runtime. Blocks the caller.
    pub fn shutdown(&self, grace: Duration) {
        {
            let mut control = self.lock();
            if control.phase == Phase::Stopped {
                return;
            }
            control.phase = Phase::Stopped;
        }
        self.shared.set_ready(false);
        self.shutdown.drain.cancel();
        self.tracker.close();
        let tracker = self.tracker.clone();
        let drained = self
            .runtime
            .handle()
            .block_on(async move { tokio::time::timeout(grace, tracker.wait()).await.is_ok() });
        if !drained {
            tracing::info!("drain deadline reached; closing remaining connections");
        }
        self.shutdown.stop.cancel();
        let tracker = self.tracker.clone();
        let _ = self.runtime.handle().block_on(async move {
            tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await
        });
        self.runtime.stop();
        // Every request has ended: the access log writes its last lines.
        let log = self.lock().access_log.take();
        if let Some(mut log) = log {
            log.stop();
        }
    }

    fn spawn_accept(&self, socket: std::net::TcpListener, known: &Known) {
        let shutdown = Shutdown {
            drain: known.drain.clone(),
            stop: self.shutdown.stop.clone(),
        };
        let serving = accept::accept_loop(
            socket,
            Arc::clone(&known.shared),
            shutdown,
            self.tracker.clone(),
        );
        self.runtime.handle().spawn(serving);
    }

    /// Publishes the control state for stats, metrics and readiness.
    fn publish(&self, control: &Control) {
        let served = Served {
            version: control.version,
            listeners: control
                .listeners
                .iter()
                .map(|k| ServedListener {
                    shared: Arc::clone(&k.shared),
                    bound: k.bound,
                })
                .collect(),
            clusters: control.clusters.clone(),
        };
        self.shared.served.store(Arc::new(served));
        self.shared.metrics.config_version.set(control.version);
        self.shared.set_needs_identity(control.uses_tls);
        self.shared
            .set_ready(control.phase == Phase::Started && control.version > 0);
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        self.control
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown(Duration::ZERO);
    }
}

fn bind(name: &str, address: SocketAddr) -> Result<std::net::TcpListener, Error> {
    accept::bind(address).map_err(|source| Error::Bind {
        listener: name.to_string(),
        address,
        source,
    })
}

fn addresses(control: &Control) -> Vec<(String, SocketAddr)> {
    control
        .admin
        .map(|a| ("admin".to_string(), a))
        .into_iter()
        .chain(
            control
                .listeners
                .iter()
                .filter_map(|k| k.bound.map(|a| (k.cfg.name.clone(), a))),
        )
        .collect()
}
