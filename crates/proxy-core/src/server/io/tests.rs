//! Tests of protocol detection from a connection's first bytes.

use super::*;

#[test]
fn detection_needs_only_enough_bytes() {
    assert_eq!(detect(b"GET / HTTP/1.1\r\n"), Some(Detected::Http1));
    assert_eq!(detect(b"POST"), Some(Detected::Http1));
    assert_eq!(detect(b"PRI"), None);
    assert_eq!(detect(b"PRI * HTTP/2.0\r\n"), None);
    assert_eq!(detect(H2_PREFACE), Some(Detected::Http2));
    assert_eq!(
        detect(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12"),
        Some(Detected::Http2)
    );
    assert_eq!(detect(b"PRI * HTTP/1.1\r\n"), Some(Detected::Http1));
}
