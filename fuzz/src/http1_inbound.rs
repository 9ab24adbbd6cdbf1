//! Arbitrary client bytes on a connection to a running proxy's HTTP listener, served exactly as deployed.
//!
//! The proxy is the public `Proxy`, created once per process with one worker
//! (its current-thread runtime on its own thread) and a snapshot that uses
//! most of the request path: routes by host, path, header and query,
//! authorization, header and URL rewrites, retries, mirroring, fault
//! injection, HTTP/1 and HTTP/2 upstreams and a cluster with no endpoints. So
//! each input goes through the real accept loop, protocol sniffing, hyper's
//! HTTP/1 server with the listener's limits, and the proxy's service.
//!
//! Each input is written on a fresh loopback connection. The client then reads
//! until the proxy has read every byte and has no request with an upstream
//! (its stats say so), half-closes, and reads until the proxy closes.
//! (Half-closing at once would make hyper drop requests still waiting for
//! their upstream, and most of the path would go unrun.)
//!
//! Besides "never panics", the upstreams check what reaches them: the path
//! is the normalised one authorization decided on, `/admin` (denied by policy)
//! never arrives in any spelling, and no hop-by-hop header or client-supplied
//! identity header gets through.

use std::convert::Infallible;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use proxy_core::policy::authz::normalize_path;
use proxy_core::Proxy;

/// How often the client looks for the proxy's answer and progress.
const POLL: Duration = Duration::from_micros(100);

/// How long the client waits before it half-closes. Stats can say "done" for
/// a moment while a request is between reading and its upstream, or between
/// its upstream and the client (a descheduled worker thread makes that moment
/// long), and half-closing then drops the request unanswered.
#[derive(Clone, Copy)]
pub struct Patience {
    /// How long the stats must say "done" without a pause.
    settled: Duration,
    /// Half-close anyway after this long without a byte from the proxy, in
    /// case it stopped reading without closing (it should not).
    quiet: Duration,
}

/// Fuzzing: fast, at the cost of an input now and then cut short on a busy machine.
pub const FUZZING: Patience = Patience {
    settled: Duration::from_micros(300),
    quiet: Duration::from_millis(50),
};

/// Checking an answer: long enough that a busy machine can't cut it short.
pub const CHECKING: Patience = Patience {
    settled: Duration::from_millis(100),
    quiet: Duration::from_secs(2),
};
/// How long a connection may last in all; past it the client gives up.
const LIMIT: Duration = Duration::from_secs(3);

/// The HTTP/2 connection preface: inputs that start with it are not HTTP/1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub fn run(data: &[u8]) {
    let response = send(data, FUZZING);
    if !response.is_empty() && !data.starts_with(&H2_PREFACE[..data.len().min(H2_PREFACE.len())]) {
        assert!(
            response.starts_with(b"HTTP/1.1 ") || response.starts_with(b"HTTP/1.0 "),
            "an HTTP/1 client got {:?}",
            String::from_utf8_lossy(&response[..response.len().min(64)])
        );
    }
    if let Some(violation) = take_violation() {
        panic!("{violation}");
    }
}

/// Sends `data` on a new connection to the proxy; returns the first 4 KiB of what came back.
pub fn send(data: &[u8], patience: Patience) -> Vec<u8> {
    // One connection at a time (tests run in parallel): progress is read from
    // the listener's totals.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let harness = harness();
    let before = harness.progress().received;
    let mut stream =
        TcpStream::connect(harness.web).unwrap_or_else(|err| panic!("the listener is gone: {err}"));
    let _ = stream.set_nodelay(true);
    // The proxy may close before reading everything (a bad request line): not an error.
    let _ = stream.write_all(data);
    exchange(&mut stream, harness, before + data.len() as u64, patience)
}

/// Reads what the proxy answers until it closes. The client half-closes (as a
/// client that has nothing more to send) once the proxy has read every byte
/// and no request is with an upstream, as its stats say.
fn exchange(
    stream: &mut TcpStream,
    harness: &Harness,
    all_read: u64,
    patience: Patience,
) -> Vec<u8> {
    let started = Instant::now();
    let mut heard = Instant::now();
    let mut response = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut half_closed = false;
    // Since when the proxy's stats have said "done", without a pause.
    let mut done_since: Option<Instant> = None;
    // Read timeouts are too coarse (jiffies) for this: poll instead.
    let _ = stream.set_nonblocking(true);
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // The head of the first response is all that is checked; the rest is drained.
                if response.len() < 4096 {
                    response.extend_from_slice(&buf[..n.min(4096)]);
                }
                heard = Instant::now();
                done_since = None;
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                if started.elapsed() > LIMIT {
                    // Still open, though the client has closed its side by now:
                    // hyper should have closed. Leave it to the idle timeout.
                    break;
                }
                if !half_closed {
                    let progress = harness.progress();
                    let done = progress.received >= all_read && !progress.busy;
                    done_since = if done {
                        done_since.or_else(|| Some(Instant::now()))
                    } else {
                        None
                    };
                    let settled = done_since.is_some_and(|t| t.elapsed() >= patience.settled);
                    if settled || heard.elapsed() > patience.quiet {
                        let _ = stream.shutdown(Shutdown::Write);
                        half_closed = true;
                    }
                }
                std::thread::sleep(POLL);
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            // Reset by the proxy.
            Err(_) => break,
        }
    }
    response
}

struct Harness {
    /// Kept for the life of the process.
    proxy: Proxy,
    web: SocketAddr,
}

/// What the proxy's stats say of the connection being served.
struct Progress {
    /// Bytes the `web` listener has read, ever.
    received: u64,
    /// Whether a request is with an upstream (sent, its response not ended).
    busy: bool,
}

impl Harness {
    fn progress(&self) -> Progress {
        let stats = self.proxy.stats();
        let received = stats["listeners"]["web"]["bytes_received"]
            .as_u64()
            .unwrap_or_else(|| panic!("no bytes_received in {stats}"));
        let busy = stats["clusters"]
            .as_object()
            .into_iter()
            .flat_map(|clusters| clusters.values())
            .filter_map(|cluster| cluster["endpoints"].as_array())
            .flatten()
            .any(|endpoint| endpoint["in_flight"].as_u64() != Some(0));
        Progress { received, busy }
    }
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let upstreams = [upstream(), upstream()];
        let proxy = Proxy::new(r#"{"workers":1}"#).unwrap_or_else(|err| panic!("proxy: {err}"));
        let snapshot = snapshot(upstreams);
        if let Err(err) = proxy.apply(&snapshot) {
            panic!("the fuzz snapshot is refused: {err}\n{snapshot}");
        }
        let bound = proxy.start().unwrap_or_else(|err| panic!("start: {err}"));
        let web = bound
            .iter()
            .find(|(name, _)| name == "web")
            .map(|(_, addr)| *addr)
            .unwrap_or_else(|| panic!("no web listener in {bound:?}"));
        Harness { proxy, web }
    })
}

/// One listener using most of what a request can go through, small header
/// limits (so that fuzzed inputs reach them), and two upstreams.
fn snapshot(upstreams: [SocketAddr; 2]) -> String {
    let [a, b] = upstreams;
    serde_json::json!({
        "listeners": [{
            "name": "web",
            "address": "127.0.0.1:0",
            "protocol": "http",
            "proxy_header": "forwarded",
            "timeouts": {"request": "2s", "idle": "10s"},
            "limits": {"max_header_bytes": 2048, "max_headers": 32},
            "authorization": {
                "default": "all_unauthenticated",
                "policies": [
                    {"name": "fuzz/deny-admin", "action": "deny",
                     "rules": [{"to": [{"paths": [{"prefix": "/admin"}]}]}]},
                    {"name": "fuzz/audit-posts", "action": "audit",
                     "rules": [{"to": [{"methods": ["POST"], "paths": [{"exact": "/api/orders"}]}]}]},
                ],
            },
            "routes": [
                {"name": "api", "hosts": ["api.local", "api"], "rules": [
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                     "backends": [{"cluster": "h1"}],
                     "filters": {
                        "url_rewrite": {"path": {"type": "ReplacePrefixMatch", "value": "/v2"}},
                        "request_headers": {"set": [{"name": "x-route", "value": "api"}],
                                            "add": [{"name": "x-added", "value": "1"}],
                                            "remove": ["x-drop"]},
                        "response_headers": {"set": [{"name": "x-served-by", "value": "api"}],
                                             "remove": ["x-upstream"]},
                     }},
                    {"matches": [{"path": {"type": "RegularExpression", "value": "/items/[0-9]+"},
                                  "headers": [{"name": "x-canary", "value": "yes"}]}],
                     "backends": [{"cluster": "h1", "weight": 1}, {"cluster": "h2", "weight": 1}]},
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/retry"}}],
                     "backends": [{"cluster": "h1"}],
                     "retry": {"attempts": 2, "codes": [503], "backoff": "1ms"}},
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/mirror"}}],
                     "backends": [{"cluster": "h1"}],
                     "filters": {"request_mirror": {"cluster": "h2", "percent": 100}}},
                    {"matches": [{"method": "POST", "query_params": [{"name": "fault", "value": "1"}]}],
                     "backends": [{"cluster": "faulty"}]},
                    {"matches": [{"path": {"type": "Exact", "value": "/empty"}}],
                     "backends": [{"cluster": "empty"}]},
                    {"backends": [{"cluster": "h1"}],
                     "timeouts": {"request": "1s", "backend_request": "500ms"}},
                ]},
                {"name": "any", "hosts": ["*"], "rules": [{"backends": [{"cluster": "h2"}]}]},
            ],
        }],
        "clusters": [
            {"name": "h1", "endpoints": [a.to_string(), b.to_string()]},
            {"name": "h2", "endpoints": [a.to_string(), b.to_string()], "protocol": "http2",
             "lb": "ring_hash", "hash_on": {"header": "x-user"}},
            {"name": "faulty", "endpoints": [a.to_string()],
             "fault": {"abort": {"percent": 100, "status": 503}}},
            {"name": "empty", "endpoints": []},
        ],
    })
    .to_string()
}

/// The first broken promise an upstream saw, for the fuzz thread to report.
static VIOLATION: Mutex<Option<String>> = Mutex::new(None);

fn take_violation() -> Option<String> {
    VIOLATION
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take()
}

fn violation(message: String) {
    VIOLATION
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get_or_insert(message);
}

/// An HTTP/1.1 and h2c upstream on a loopback port, served by a current-thread runtime of its own.
fn upstream() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|err| panic!("upstream bind: {err}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|err| panic!("upstream address: {err}"));
    let _ = listener.set_nonblocking(true);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|err| panic!("upstream runtime: {err}"));
    let spawned = std::thread::Builder::new()
        .name("fuzz-upstream".into())
        .spawn(move || runtime.block_on(serve_upstream(listener)));
    if let Err(err) = spawned {
        panic!("upstream thread: {err}");
    }
    addr
}

async fn serve_upstream(listener: std::net::TcpListener) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}

/// Checks what the proxy forwarded, then answers: 503 for paths ending in
/// `/503` (what the retry rule retries), else 200 with the request body.
async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let seen = || format!("{} {}", req.method(), req.uri());
    match normalize_path(&path) {
        Ok(std::borrow::Cow::Borrowed(_)) => {}
        normal => violation(format!(
            "upstream got {} whose path is not normal ({normal:?})",
            seen()
        )),
    }
    if path.starts_with("/admin") {
        violation(format!("upstream got {}, denied by policy", seen()));
    }
    for name in [
        "connection",
        "proxy-connection",
        "keep-alive",
        "upgrade",
        "proxy-authenticate",
        "x-meshpy-client-id",
    ] {
        if req.headers().contains_key(name) {
            violation(format!("upstream got {} with a {name} header", seen()));
        }
    }
    let status = if path.ends_with("/503") {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = Limited::new(req.into_body(), 1 << 20)
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("x-upstream", http::HeaderValue::from_static("1"));
    if let Ok(path) = http::HeaderValue::from_str(&path) {
        headers.insert("x-seen-path", path);
    }
    Ok(response)
}

#[cfg(test)]
mod tests;
