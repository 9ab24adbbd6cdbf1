//! Test backends and clients on real loopback sockets, for the proxy's integration tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod mesh;
pub mod pki;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A proxy config document: one listener `web` on port 0 to cluster `backend`.
pub fn snapshot(
    protocol: &str,
    endpoints: &[SocketAddr],
    extra_listener: &str,
    extra_cluster: &str,
) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        r#"{{"listeners":[{{"name":"web","address":"127.0.0.1:0","protocol":"{protocol}","cluster":"backend"{extra_listener}}}],
            "clusters":[{{"name":"backend","endpoints":[{}]{extra_cluster}}}]}}"#,
        endpoints.join(",")
    )
}

/// Starts a proxy with `snapshot`; returns it and the `web` listener address.
pub fn start_proxy(snapshot: &str) -> (proxy_core::Proxy, SocketAddr) {
    let proxy = proxy_core::Proxy::new(r#"{"admin":"127.0.0.1:0"}"#).unwrap();
    proxy.apply(snapshot).unwrap();
    let bound = proxy.start().unwrap();
    let web = bound.iter().find(|(name, _)| name == "web").unwrap().1;
    (proxy, web)
}

/// Serves HTTP/1.1 and h2c on a new loopback port, every request answered by `respond`.
pub async fn serve_http<F, Fut, B>(respond: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let respond = respond.clone();
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service_fn(respond))
                    .await;
            });
        }
    });
    addr
}

/// An HTTP backend (HTTP/1.1 and h2c) answering `name` and echoing what it saw:
/// `x-seen-headers` lists the request header names, `x-seen-version` the version,
/// `x-seen-host` the Host or authority, `x-seen-client-id` every
/// `x-meshpy-client-id` value, `x-seen-path` the path and query, and each
/// `x-t-*` request header comes back as `x-seen-t-*` with its values joined by
/// `|`. `/sleep/<ms>` waits before answering.
pub async fn http_backend(name: &'static str) -> SocketAddr {
    serve_http(move |req| backend_respond(name, req)).await
}

async fn backend_respond(
    name: &'static str,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut names: Vec<String> = req.headers().keys().map(|k| k.to_string()).collect();
    names.sort();
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let version = format!("{:?}", req.version());
    let seen_path = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_default();
    let mut echoed: Vec<(String, String)> = Vec::new();
    for name in req.headers().keys() {
        if let Some(rest) = name.as_str().strip_prefix("x-t-") {
            let values: Vec<&str> = req
                .headers()
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            echoed.push((format!("x-seen-t-{rest}"), values.join("|")));
        }
    }
    let client_ids: Vec<&str> = req
        .headers()
        .get_all("x-meshpy-client-id")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let client_ids = client_ids.join(" | ");
    let forwarded_for = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if let Some(ms) = req.uri().path().strip_prefix("/sleep/") {
        let ms: u64 = ms.parse().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = if body.is_empty() {
        name.to_string()
    } else {
        format!("{name}:{}", String::from_utf8_lossy(&body))
    };
    let mut response = Response::builder();
    for (name, value) in echoed {
        response = response.header(name, value);
    }
    Ok(response
        .header("x-seen-path", seen_path)
        .header("x-seen-headers", names.join(","))
        .header("x-seen-version", version)
        .header("x-seen-host", host)
        .header("x-seen-forwarded-for", forwarded_for)
        .header("x-seen-client-id", client_ids)
        .header("connection", "keep-alive")
        .header("keep-alive", "timeout=30")
        .body(Full::new(Bytes::from(text)))
        .unwrap())
}

/// An HTTP backend that answers 200 `name` and records the request line of
/// every request it gets (`"POST /charge?x=1"`), to show what reached it.
pub async fn recording_backend(
    name: &'static str,
) -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&seen);
    let addr = serve_http(move |req: Request<Incoming>| {
        let target = req
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str().to_string())
            .unwrap_or_default();
        record
            .lock()
            .unwrap()
            .push(format!("{} {target}", req.method()));
        async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(name)))) }
    })
    .await;
    (addr, seen)
}

/// A TCP backend that echoes every byte back.
pub async fn echo_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

/// An address where nothing listens (bound, then closed).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A response with its body collected.
pub struct Got {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Got {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A keep-alive HTTP/1.1 client connection.
pub struct H1Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl H1Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Self { sender }
    }

    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Got, hyper::Error> {
        self.sender.ready().await?;
        let response = self.sender.send_request(req).await?;
        collect(response).await
    }

    pub async fn get(&mut self, path: &str) -> Got {
        self.send(get(path)).await.unwrap()
    }
}

/// An HTTP/2 prior-knowledge client connection.
pub struct H2Client {
    sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
}

impl H2Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        Self { sender }
    }

    pub async fn get(&mut self, authority: &str, path: &str) -> Got {
        self.try_get(authority, path).await.unwrap()
    }

    pub async fn try_get(&mut self, authority: &str, path: &str) -> Result<Got, hyper::Error> {
        let req = Request::builder()
            .uri(format!("http://{authority}{path}"))
            .version(http::Version::HTTP_2)
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.sender.ready().await?;
        collect(self.sender.send_request(req).await?).await
    }
}

pub(crate) async fn collect(response: Response<Incoming>) -> Result<Got, hyper::Error> {
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Got {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A GET for `path` with `Host: svc`.
pub fn get(path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri(path)
        .header("host", "svc")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Sends raw bytes and reads until the peer closes or `limit` bytes arrived.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8], limit: usize) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = vec![0u8; limit];
    let mut filled = 0;
    while filled < limit {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut out[filled..])).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => filled += n,
        }
    }
    String::from_utf8_lossy(&out[..filled]).into_owned()
}

/// A runtime for the test's clients and backends (the proxy has its own).
pub fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// How long a wait for a condition may last before the test fails.
const WAIT_LIMIT: Duration = Duration::from_secs(5);

/// Waits until `done` holds, polling every 5 ms: the way to wait for the proxy to
/// reach a state, instead of sleeping and hoping. Fails the test, naming `what`,
/// after 5 s.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT_LIMIT;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "still waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// [`wait_until`] for async code: the runtime keeps running while it waits.
pub async fn wait_until_async(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT_LIMIT;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "still waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Requests in flight (sent or waiting for a connection) to the endpoints of
/// `cluster`, from the proxy's stats.
pub fn in_flight(proxy: &proxy_core::Proxy, cluster: &str) -> u64 {
    let stats = proxy.stats();
    stats["clusters"][cluster]["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|endpoint| endpoint["in_flight"].as_u64().unwrap_or(0))
        .sum()
}
