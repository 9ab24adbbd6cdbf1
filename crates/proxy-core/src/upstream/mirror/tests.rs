//! Table tests of the shadow host a mirrored request is sent with.

use super::*;

#[test]
fn shadow_goes_before_the_port() {
    for (host, shadow) in [
        ("svc", "svc-shadow"),
        ("svc:8080", "svc-shadow:8080"),
        ("payment.default.svc", "payment.default.svc-shadow"),
        ("127.0.0.1:80", "127.0.0.1-shadow:80"),
        ("[::1]:80", "[::1]-shadow:80"),
        ("[::1]", "[::1]-shadow"),
        ("", "-shadow"),
    ] {
        assert_eq!(shadow_host(host), shadow, "{host}");
    }
}
