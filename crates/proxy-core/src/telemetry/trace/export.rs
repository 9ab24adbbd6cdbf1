//! Sends recorded spans to OTLP/HTTP receivers: a bounded queue that never blocks a
//! request, batches of spans, and one protobuf POST per batch and receiver.
//!
//! A request only ever offers its span to the queue; when the queue is full the span
//! is dropped and counted. A receiver that is down or slow costs the requests nothing
//! more: its exports time out, and their spans are counted as failed.
//!
//! An `https` receiver is reached over TLS 1.3, its certificate checked against the
//! export's `ca` or else the system's trusted roots (read once per process).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use prost::Message;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::ServerName;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

use super::span::{export_request, Record};
use crate::config::{self, OtlpExport};
use crate::telemetry::metrics::TraceCounters;

/// Spans waiting to be exported, at most; more are dropped.
pub const QUEUE_SPANS: usize = 4096;
/// Spans sent in one export, at most.
pub const BATCH_SPANS: usize = 512;
/// How long the exporter lets spans queue up after the first, before it sends them.
pub const BATCH_WAIT: Duration = Duration::from_millis(100);
/// Bound on one export to one receiver: connecting, sending and the reply.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on the bytes of a receiver's reply read before it is dropped.
const REPLY_LIMIT: usize = 64 * 1024;

/// One receiver: where to POST, with which headers, and over TLS for `https`.
#[derive(Clone)]
pub struct Receiver {
    uri: Uri,
    headers: HeaderMap,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("uri", &self.uri)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// The receiver `export` describes (validated with the snapshot).
    pub fn new(export: &OtlpExport) -> Result<Self, String> {
        let uri = config::export_uri(&export.endpoint)?;
        let mut headers = HeaderMap::new();
        for (name, value) in &export.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|err| err.to_string())?;
            let value = HeaderValue::from_str(value).map_err(|err| err.to_string())?;
            headers.insert(name, value);
        }
        let tls = if uri.scheme_str() == Some("https") {
            let host = uri.host().unwrap_or_default();
            let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                .map_err(|err| format!("{host:?} is not a TLS server name: {err}"))?;
            Some((TlsConnector::from(tls_config(export.ca.as_deref())?), name))
        } else {
            None
        };
        Ok(Self { uri, headers, tls })
    }
}

/// A TLS 1.3 client config that trusts `ca` (PEM), or else the system's roots.
fn tls_config(ca: Option<&str>) -> Result<Arc<ClientConfig>, String> {
    let roots = match ca {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for certificate in config::ca_certificates(pem)? {
                roots.add(certificate).map_err(|err| format!("ca: {err}"))?;
            }
            Arc::new(roots)
        }
        None => system_roots()?,
    };
    let mut config = ClientConfig::builder_with_provider(crate::identity::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|err| err.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The system's trusted roots, read once; an error when none could be read.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    let roots = ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!(errors = ?found.errors, "no trusted root certificates found on this system");
        }
        Arc::new(roots)
    });
    if roots.is_empty() {
        return Err("no trusted root certificates on this system: give the receiver a ca".into());
    }
    Ok(Arc::clone(roots))
}

/// The sending end of the queue; the exporting task ends once every sender is gone
/// and the queue is drained.
#[derive(Debug)]
pub struct Exporter {
    queue: mpsc::Sender<Record>,
    counters: TraceCounters,
}

impl Exporter {
    /// Starts the task that exports to `receivers`, on `runtime`.
    pub fn start(
        receivers: Vec<Receiver>,
        resource: Vec<(String, String)>,
        counters: TraceCounters,
        runtime: &tokio::runtime::Handle,
    ) -> Self {
        let (queue, spans) = mpsc::channel(QUEUE_SPANS);
        runtime.spawn(export_loop(spans, receivers, resource, counters.clone()));
        Self { queue, counters }
    }

    /// Offers a span to the queue; a full queue drops it (counted), never waits.
    pub fn record(&self, span: Record) {
        if self.queue.try_send(span).is_err() {
            self.counters.dropped.inc();
        }
    }
}

/// Takes batches off the queue and sends each to every receiver, until the queue closes.
///
/// The task waits for a first span, then lingers for `BATCH_WAIT` while more queue up,
/// then takes what is queued, `BATCH_SPANS` at a time. A span queued meanwhile wakes no
/// task: on the proxy's own worker, a wake per span would cost as much as the span.
async fn export_loop(
    mut spans: mpsc::Receiver<Record>,
    receivers: Vec<Receiver>,
    resource: Vec<(String, String)>,
    counters: TraceCounters,
) {
    let mut connections: Vec<Option<Connection>> = receivers.iter().map(|_| None).collect();
    let mut batch = Vec::with_capacity(BATCH_SPANS);
    while let Some(first) = spans.recv().await {
        batch.push(first);
        tokio::time::sleep(BATCH_WAIT).await;
        loop {
            while batch.len() < BATCH_SPANS {
                match spans.try_recv() {
                    Ok(span) => batch.push(span),
                    Err(_) => break,
                }
            }
            let count = batch.len() as u64;
            let body = Bytes::from(export_request(&resource, batch.drain(..)).encode_to_vec());
            for (receiver, connection) in receivers.iter().zip(&mut connections) {
                let sent =
                    tokio::time::timeout(EXPORT_TIMEOUT, post(receiver, connection, body.clone()))
                        .await;
                match sent {
                    Ok(Ok(())) => {
                        counters.exported.inc_by(count);
                    }
                    Ok(Err(reason)) => {
                        counters.failed.inc_by(count);
                        tracing::debug!(receiver = %receiver.uri, %reason, "span export failed");
                    }
                    Err(_) => {
                        // Whatever the connection was doing is abandoned with it.
                        *connection = None;
                        counters.failed.inc_by(count);
                        tracing::debug!(receiver = %receiver.uri, "span export timed out");
                    }
                };
            }
            if spans.is_empty() {
                break;
            }
        }
    }
}

/// A kept-alive HTTP/1 connection to a receiver.
type Connection = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// POSTs one protobuf batch to `receiver`, on `connection` if it is still open, else on
/// a new one kept there; a 2xx reply is success.
async fn post(
    receiver: &Receiver,
    connection: &mut Option<Connection>,
    body: Bytes,
) -> Result<(), String> {
    let Some(authority) = receiver.uri.authority() else {
        return Err("no host".into());
    };
    let reusable = match connection.take() {
        Some(mut open) => open.ready().await.is_ok().then_some(open),
        None => None,
    };
    let mut sender = match reusable {
        Some(open) => open,
        None => connect(authority, receiver.tls.as_ref()).await?,
    };
    let path = receiver
        .uri
        .path_and_query()
        .map_or("/", |path| path.as_str());
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = Uri::try_from(path).map_err(|err| err.to_string())?;
    let headers = request.headers_mut();
    headers.clone_from(&receiver.headers);
    headers.insert(
        HOST,
        HeaderValue::from_str(authority.as_str()).map_err(|err| err.to_string())?,
    );
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-protobuf"),
    );
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| format!("send: {err}"))?;
    let status = response.status();
    // Read (a bounded part of) the reply, so that the connection can carry the next.
    let whole = http_body_util::Limited::new(response.into_body(), REPLY_LIMIT)
        .collect()
        .await
        .is_ok();
    if whole {
        *connection = Some(sender);
    }
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {status}"))
    }
}

/// A new HTTP/1 connection to `authority` (port 80, or 443 over TLS, if it names none).
async fn connect(
    authority: &http::uri::Authority,
    tls: Option<&(TlsConnector, ServerName<'static>)>,
) -> Result<Connection, String> {
    let default_port = if tls.is_some() { 443 } else { 80 };
    let address = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(default_port)
    );
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|err| format!("connect: {err}"))?;
    let Some((connector, name)) = tls else {
        return handshake(stream).await;
    };
    let stream = connector
        .connect(name.clone(), stream)
        .await
        .map_err(|err| format!("tls: {err}"))?;
    handshake(stream).await
}

/// HTTP/1 over `io`, its connection driven by a task of its own.
async fn handshake<Io>(io: Io) -> Result<Connection, String>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|err| format!("handshake: {err}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

#[cfg(test)]
mod tests;
