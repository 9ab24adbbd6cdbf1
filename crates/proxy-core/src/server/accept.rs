//! Binding listener sockets and accepting their connections, each served by `http` or `tcp` on a task of its own.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use crate::config::ListenerProtocol;
use crate::server::listener::{ListenerRoute, ListenerShared, Shutdown};
use crate::{server::http, server::tcp};

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
        let Some(open) = shared.admit(route.limits.max_connections) else {
            drop(stream);
            continue;
        };
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
