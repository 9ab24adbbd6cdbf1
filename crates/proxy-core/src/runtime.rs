//! The proxy's tokio runtime on threads of its own: a current-thread runtime for one worker, multi-thread beyond.
//!
//! A sidecar runs one worker. A current-thread runtime driven by one dedicated
//! thread skips the work-stealing machinery, which is measurably cheaper per
//! request and per wake-up; the control thread (Python's) only spawns tasks
//! onto it and waits on it.

use std::io;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};
use tokio_util::sync::CancellationToken;

/// How long runtime shutdown waits for tasks that ignore cancellation.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

enum Owner {
    /// One thread running `block_on` until `stop` is cancelled.
    Single {
        thread: JoinHandle<()>,
        stop: CancellationToken,
    },
    /// Tokio's own worker threads.
    Multi(Runtime),
}

/// A running runtime and the means to stop it.
pub struct ProxyRuntime {
    handle: Handle,
    owner: Mutex<Option<Owner>>,
}

impl ProxyRuntime {
    /// Starts a runtime with `workers` threads, named `meshpy-proxy`.
    pub fn start(workers: usize) -> io::Result<Self> {
        let (handle, owner) = if workers <= 1 {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let stop = CancellationToken::new();
            let stopped = stop.clone();
            let thread = std::thread::Builder::new()
                .name("meshpy-proxy".into())
                .spawn(move || {
                    runtime.block_on(stopped.cancelled());
                    runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
                })?;
            (handle, Owner::Single { thread, stop })
        } else {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .max_blocking_threads(4)
                .thread_name("meshpy-proxy")
                .enable_all()
                .build()?;
            (runtime.handle().clone(), Owner::Multi(runtime))
        };
        Ok(Self {
            handle,
            owner: Mutex::new(Some(owner)),
        })
    }

    /// Spawns tasks and blocks on futures from outside the runtime.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Stops the runtime and joins its threads; later calls do nothing.
    pub fn stop(&self) {
        let owner = self
            .owner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        match owner {
            Some(Owner::Single { thread, stop }) => {
                stop.cancel();
                if thread.join().is_err() {
                    tracing::error!("the proxy runtime thread panicked");
                }
            }
            Some(Owner::Multi(runtime)) => runtime.shutdown_timeout(SHUTDOWN_TIMEOUT),
            None => {}
        }
    }
}
