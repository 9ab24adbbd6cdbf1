//! Tests of span export against real sockets: batches arrive as OTLP protobuf with the
//! configured headers, a full queue drops and counts, a dead receiver costs nothing but counts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use hyper::service::service_fn;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::*;
use crate::telemetry::trace::context::{SpanId, TraceId};
use crate::telemetry::trace::span::Kind;

/// What a test receiver got: each export's `authorization` header and decoded body.
type Got = Arc<Mutex<Vec<(Option<String>, ExportTraceServiceRequest)>>>;

/// An OTLP/HTTP receiver on 127.0.0.1 answering `status`; returns its endpoint URL.
async fn receiver(status: u16, got: Got) -> String {
    serve(status, got, None).await
}

/// A self-signed certificate for 127.0.0.1 (PEM) and a TLS server config presenting it.
fn tls_server() -> (String, Arc<rustls::ServerConfig>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let certificate = params.self_signed(&key).unwrap();
    let der = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(crate::identity::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate.der().clone()], der)
        .unwrap();
    (certificate.pem(), Arc::new(config))
}

/// The receiver of `receiver`, over TLS when `tls` is given (its URL then `https`).
async fn serve(status: u16, got: Got, tls: Option<Arc<rustls::ServerConfig>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let got = Arc::clone(&got);
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let got = Arc::clone(&got);
                async move {
                    let auth = req
                        .headers()
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_string());
                    let bytes = req.into_body().collect().await.unwrap().to_bytes();
                    let decoded = ExportTraceServiceRequest::decode(bytes).unwrap();
                    got.lock().unwrap().push((auth, decoded));
                    let mut response = http::Response::new(Full::new(Bytes::new()));
                    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            tokio::spawn(async move {
                let http1 = hyper::server::conn::http1::Builder::new();
                let _served = match acceptor {
                    None => http1.serve_connection(TokioIo::new(stream), service).await,
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(stream).await else {
                            return;
                        };
                        http1.serve_connection(TokioIo::new(stream), service).await
                    }
                };
            });
        }
    });
    format!("{scheme}://{address}/v1/traces")
}

fn span(n: u8) -> Record {
    Record {
        trace_id: TraceId([n; 16]),
        span_id: SpanId([n; 8]),
        parent: None,
        kind: Kind::Server,
        name: format!("GET s{n}"),
        start_unix_nanos: 1,
        end_unix_nanos: 2,
        error: false,
        attributes: Vec::new(),
    }
}

fn to(endpoint: &str, headers: &[(&str, &str)]) -> Receiver {
    Receiver::new(&OtlpExport {
        endpoint: endpoint.to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ca: None,
    })
    .unwrap()
}

fn trusting(endpoint: &str, ca: &str) -> Receiver {
    Receiver::new(&OtlpExport {
        endpoint: endpoint.to_string(),
        headers: BTreeMap::from([("authorization".to_string(), "Bearer s".to_string())]),
        ca: Some(ca.to_string()),
    })
    .unwrap()
}

async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn spans_reach_every_receiver_in_batches_with_their_headers() {
    let got: Got = Arc::default();
    let first = receiver(200, Arc::clone(&got)).await;
    let second = receiver(200, Arc::clone(&got)).await;
    let counters = TraceCounters::default();
    let exporter = Exporter::start(
        vec![
            to(&first, &[("authorization", "Bearer t")]),
            to(&second, &[]),
        ],
        vec![("service.name".into(), "cart".into())],
        counters.clone(),
        &tokio::runtime::Handle::current(),
    );
    for n in 1..=3 {
        exporter.record(span(n));
    }
    until("two exports", || got.lock().unwrap().len() == 2).await;
    until("counted", || counters.exported.get() == 6).await;
    let got = got.lock().unwrap();
    let auths: Vec<Option<&str>> = got.iter().map(|(auth, _)| auth.as_deref()).collect();
    assert!(
        auths.contains(&Some("Bearer t")) && auths.contains(&None),
        "{auths:?}"
    );
    for (_, export) in got.iter() {
        let spans = &export.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 3, "one batch of three");
        assert_eq!(spans[2].name, "GET s3");
    }
    assert_eq!((counters.dropped.get(), counters.failed.get()), (0, 0));
}

#[tokio::test]
async fn a_refusing_or_dead_receiver_counts_failures_and_a_full_queue_drops() {
    let got: Got = Arc::default();
    let refusing = receiver(503, Arc::clone(&got)).await;
    // A port that was just free: connecting fails at once.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1/traces", listener.local_addr().unwrap())
    };
    let counters = TraceCounters::default();
    let exporter = Exporter::start(
        vec![to(&refusing, &[]), to(&dead, &[])],
        Vec::new(),
        counters.clone(),
        &tokio::runtime::Handle::current(),
    );
    exporter.record(span(1));
    until("both failed", || counters.failed.get() == 2).await;
    assert_eq!(counters.exported.get(), 0);

    // Offered faster than a task on this (current-thread) runtime can take them: the
    // queue holds QUEUE_SPANS and the rest are dropped, without waiting.
    let started = std::time::Instant::now();
    for _ in 0..QUEUE_SPANS + 100 {
        exporter.record(span(2));
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(counters.dropped.get(), 100);
}

#[tokio::test]
async fn an_https_receiver_gets_spans_only_when_its_certificate_is_trusted() {
    let got: Got = Arc::default();
    let (ca, config) = tls_server();
    let (other_ca, _) = tls_server();
    let endpoint = serve(200, Arc::clone(&got), Some(config)).await;
    assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");
    let counters = TraceCounters::default();
    let exporter = Exporter::start(
        vec![trusting(&endpoint, &ca), trusting(&endpoint, &other_ca)],
        Vec::new(),
        counters.clone(),
        &tokio::runtime::Handle::current(),
    );
    exporter.record(span(7));
    until("one export, one refusal", || {
        counters.exported.get() == 1 && counters.failed.get() == 1
    })
    .await;
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1, "the untrusted certificate got nothing");
    assert_eq!(got[0].0.as_deref(), Some("Bearer s"));
    assert_eq!(
        got[0].1.resource_spans[0].scope_spans[0].spans[0].name,
        "GET s7"
    );
}

#[test]
fn https_receivers_are_made_with_the_system_roots_or_their_ca() {
    let system = Receiver::new(&OtlpExport {
        endpoint: "https://collector.example:4318/v1/traces".into(),
        headers: BTreeMap::new(),
        ca: None,
    })
    .unwrap();
    assert!(system.tls.is_some());
    assert!(to("http://collector.example/v1/traces", &[]).tls.is_none());
    let bad = Receiver::new(&OtlpExport {
        endpoint: "https://collector.example/v1/traces".into(),
        headers: BTreeMap::new(),
        ca: Some("not a certificate".into()),
    });
    assert!(bad.is_err());
}
