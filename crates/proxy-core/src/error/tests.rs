//! Table tests of failures: status, retryability and reason label by kind, which ones blame the endpoint, the response body.

use super::*;

#[test]
fn status_codes_follow_the_kind() {
    let cases = [
        (ErrorKind::NoRoute, 404, false),
        (ErrorKind::NoBackend, 500, false),
        (ErrorKind::NoEndpoints, 503, false),
        (ErrorKind::ConnectFailed, 502, true),
        (ErrorKind::ConnectTimeout, 502, true),
        (ErrorKind::UpstreamFailed, 502, false),
        (ErrorKind::RequestTimeout, 504, false),
        (ErrorKind::NoIdentity, 503, false),
        (ErrorKind::UpstreamTls, 502, true),
        (ErrorKind::UpstreamIdentityMismatch, 502, true),
        (ErrorKind::Unauthorized, 403, false),
        (ErrorKind::InvalidPath, 400, false),
        (ErrorKind::Overflow(Limit::Requests), 503, false),
        (ErrorKind::ClientBody, 400, false),
        (ErrorKind::ClientBodyTimeout, 408, false),
    ];
    for (kind, status, retryable) in cases {
        let err = ProxyError::new(kind);
        assert_eq!(err.status().as_u16(), status, "{kind:?}");
        assert_eq!(err.retryable(), retryable, "{kind:?}");
        assert!(
            crate::telemetry::metrics::ERROR_REASONS.contains(&err.reason()),
            "{kind:?}"
        );
    }
}

#[test]
fn only_failures_of_the_endpoint_blame_it() {
    let cases = [
        (ErrorKind::ConnectFailed, true),
        (ErrorKind::ConnectTimeout, true),
        (ErrorKind::UpstreamFailed, true),
        (ErrorKind::UpstreamTls, true),
        (ErrorKind::Overflow(Limit::Requests), false),
        (ErrorKind::NoIdentity, false),
        (ErrorKind::ClientBody, false),
        (ErrorKind::ClientBodyTimeout, false),
    ];
    for (kind, blames) in cases {
        assert_eq!(ProxyError::new(kind).blames_endpoint(), blames, "{kind:?}");
    }
}

#[test]
fn body_carries_the_cause() {
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
    let err = ProxyError::with_source(ErrorKind::ConnectFailed, io);
    assert_eq!(err.body(), "upstream connect error: connection refused\n");
}
