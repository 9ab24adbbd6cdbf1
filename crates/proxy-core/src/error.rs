//! Errors on the request path: what failed, whose fault it was, and whether a retry may help.
//!
//! Every failure a request can meet is one `ProxyError`; `status()` and
//! `reason()` are the one place that maps them to what the client sees.

use std::fmt;

use http::StatusCode;

/// Which circuit-breaker limit a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `max_connections`: too many upstream connections.
    Connections,
    /// `max_pending_requests`: too many requests waiting for a connection.
    PendingRequests,
    /// `max_requests`: too many requests in flight.
    Requests,
}

impl Limit {
    /// The config name, sent in `x-meshpy-overflow`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Connections => "max_connections",
            Self::PendingRequests => "max_pending_requests",
            Self::Requests => "max_requests",
        }
    }
}

/// What went wrong while proxying a request or a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No virtual host serves the request's host, or no rule matches it.
    NoRoute,
    /// The matching rule's backends all have weight 0.
    NoBackend,
    /// The cluster has no endpoints to send to.
    NoEndpoints,
    /// The TCP connection to the endpoint was refused or failed.
    ConnectFailed,
    /// The TCP connection to the endpoint did not open in time.
    ConnectTimeout,
    /// The endpoint closed or broke the connection, or spoke invalid HTTP.
    UpstreamFailed,
    /// No response headers within the request timeout.
    RequestTimeout,
    /// The cluster uses mTLS and the proxy has no identity yet.
    NoIdentity,
    /// The TLS handshake with the endpoint failed (bad chain, no HTTP/2, ...).
    UpstreamTls,
    /// The endpoint's certificate is valid but names another workload than the cluster's `identity`.
    UpstreamIdentityMismatch,
    /// The listener's authorization refused the request.
    Unauthorized,
    /// The request path has a malformed percent-encoding, so it cannot be normalised for authorization.
    InvalidPath,
    /// A circuit breaker of the cluster is at its limit: the request fails at once.
    Overflow(Limit),
    /// The client's request body failed while the proxy read it ahead (for a retry or a mirror).
    ClientBody,
    /// The client's request body made no progress for the listener's `body_progress` timeout.
    ClientBodyTimeout,
}

/// A failure on the request path, with the error that caused it.
#[derive(Debug)]
pub struct ProxyError {
    kind: ErrorKind,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ProxyError {
    /// A failure of this kind with no underlying error.
    pub fn new(kind: ErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// A failure of this kind caused by `source`.
    pub fn with_source(
        kind: ErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether sending the request again, to another endpoint, may succeed:
    /// true only when the upstream cannot have seen the request.
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::ConnectFailed
                | ErrorKind::ConnectTimeout
                | ErrorKind::UpstreamTls
                | ErrorKind::UpstreamIdentityMismatch
        )
    }

    /// Whether the failure says something about the endpoint, for outlier detection
    /// and peak EWMA: not a full circuit breaker, a missing identity of this proxy, or
    /// the client's own broken or stalled body.
    pub fn blames_endpoint(&self) -> bool {
        !matches!(
            self.kind,
            ErrorKind::Overflow(_)
                | ErrorKind::NoIdentity
                | ErrorKind::ClientBody
                | ErrorKind::ClientBodyTimeout
        )
    }

    /// The circuit breaker limit a request ran into, for `x-meshpy-overflow`.
    pub fn overflow(&self) -> Option<Limit> {
        match self.kind {
            ErrorKind::Overflow(limit) => Some(limit),
            _ => None,
        }
    }

    /// The status code a client gets for this failure.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::NoRoute => StatusCode::NOT_FOUND,
            ErrorKind::NoBackend => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::NoEndpoints | ErrorKind::NoIdentity | ErrorKind::Overflow(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorKind::ConnectFailed
            | ErrorKind::ConnectTimeout
            | ErrorKind::UpstreamFailed
            | ErrorKind::UpstreamTls
            | ErrorKind::UpstreamIdentityMismatch => StatusCode::BAD_GATEWAY,
            ErrorKind::RequestTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Unauthorized => StatusCode::FORBIDDEN,
            ErrorKind::InvalidPath | ErrorKind::ClientBody => StatusCode::BAD_REQUEST,
            ErrorKind::ClientBodyTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// A short stable label for metrics and the `x-meshpy-error` header.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            ErrorKind::NoRoute => "no_route",
            ErrorKind::NoBackend => "no_backend",
            ErrorKind::NoEndpoints => "no_endpoints",
            ErrorKind::ConnectFailed => "connect_failed",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::UpstreamFailed => "upstream_failed",
            ErrorKind::RequestTimeout => "request_timeout",
            // The mTLS reasons are spelled with hyphens: other components match on these names.
            ErrorKind::NoIdentity => "no-identity",
            ErrorKind::UpstreamTls => "upstream-tls-failed",
            ErrorKind::UpstreamIdentityMismatch => "upstream-identity-mismatch",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::InvalidPath => "invalid-path",
            ErrorKind::Overflow(_) => "overflow",
            ErrorKind::ClientBody => "client_body",
            ErrorKind::ClientBodyTimeout => "client_body_timeout",
        }
    }

    /// The plain-text body a client gets.
    pub fn body(&self) -> String {
        let what = match self.kind {
            ErrorKind::NoRoute => "no route",
            ErrorKind::NoBackend => "no backend: every backend of the matching rule has weight 0",
            ErrorKind::NoEndpoints => "no endpoints available in the cluster",
            ErrorKind::ConnectFailed => "upstream connect error",
            ErrorKind::ConnectTimeout => "upstream connect timeout",
            ErrorKind::UpstreamFailed => "upstream connection failed",
            ErrorKind::RequestTimeout => "upstream request timeout",
            ErrorKind::NoIdentity => "no identity: the proxy has no certificate for mTLS yet",
            ErrorKind::UpstreamTls => "upstream TLS handshake failed",
            ErrorKind::UpstreamIdentityMismatch => "upstream identity mismatch",
            ErrorKind::Unauthorized => "unauthorized: the caller may not make this request",
            ErrorKind::InvalidPath => "invalid request path",
            ErrorKind::Overflow(Limit::Connections) => {
                "overflow: the cluster is at its max_connections"
            }
            ErrorKind::Overflow(Limit::PendingRequests) => {
                "overflow: the cluster is at its max_pending_requests"
            }
            ErrorKind::Overflow(Limit::Requests) => "overflow: the cluster is at its max_requests",
            ErrorKind::ClientBody => "the request body could not be read",
            ErrorKind::ClientBodyTimeout => "the request body stopped arriving",
        };
        match &self.source {
            Some(source) => format!("{what}: {source}\n"),
            None => format!("{what}\n"),
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.body().trim_end())
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests;
