//! TLS test clients (tokio-rustls): with or without a client certificate, reporting what the server presented.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::pki::Leaf;
use super::{collect, get, Got};

/// Accepts any server certificate: tests look at what was presented themselves.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client config presenting `leaf` (or no certificate), offering `alpn`.
pub fn client_config(leaf: Option<&Leaf>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)));
    let mut config = match leaf {
        Some(leaf) => {
            let chain = CertificateDer::pem_slice_iter(leaf.chain_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Opens a TLS connection to `addr` presenting `leaf`.
pub async fn tls_connect(
    addr: SocketAddr,
    leaf: Option<&Leaf>,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    TlsConnector::from(client_config(leaf, alpn))
        .connect(name, tcp)
        .await
}

/// The serial (lowercase hex) and SPIFFE ID of the certificate the server presented.
pub fn presented(stream: &TlsStream<TcpStream>) -> (String, String) {
    let der = &stream.get_ref().1.peer_certificates().unwrap()[0];
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let uri = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .find_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .unwrap_or_default();
    (format!("{:x}", cert.serial), uri)
}

/// One HTTP/1.1 GET on a fresh TLS connection. `Ok(text)` is what came back
/// (empty if the server closed); `Err` is a handshake or I/O error. With TLS
/// 1.3 a refused client certificate shows up after the handshake, on read.
pub async fn tls_get(addr: SocketAddr, leaf: Option<&Leaf>) -> Result<String, String> {
    tls_exchange(
        addr,
        leaf,
        b"GET / HTTP/1.1\r\nhost: svc\r\nconnection: close\r\n\r\n",
    )
    .await
}

/// Sends `request` as it is on a fresh TLS connection (ALPN http/1.1) and reads
/// until the server closes; results as for [`tls_get`].
pub async fn tls_exchange(
    addr: SocketAddr,
    leaf: Option<&Leaf>,
    request: &[u8],
) -> Result<String, String> {
    let mut stream = tls_connect(addr, leaf, &[b"http/1.1"])
        .await
        .map_err(|e| e.to_string())?;
    stream.write_all(request).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    match tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await {
        Ok(Ok(_)) => Ok(String::from_utf8_lossy(&out).into_owned()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_string()),
    }
}

/// A keep-alive HTTP/1.1 client over mTLS, with what the server presented.
pub struct TlsH1Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    /// Serial of the server's certificate at the handshake.
    pub serial: String,
    /// SPIFFE ID of the server's certificate.
    pub server_id: String,
}

impl TlsH1Client {
    pub async fn connect(addr: SocketAddr, leaf: &Leaf) -> Self {
        let stream = tls_connect(addr, Some(leaf), &[b"http/1.1"]).await.unwrap();
        let (serial, server_id) = presented(&stream);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Self {
            sender,
            serial,
            server_id,
        }
    }

    pub async fn get(&mut self, path: &str) -> Got {
        self.sender.ready().await.unwrap();
        collect(self.sender.send_request(get(path)).await.unwrap())
            .await
            .unwrap()
    }
}
