//! `authz::normalize_path` against what its doc promises, and against a plain model of RFC 3986 §6.2.2 and §5.2.4.
//!
//! The normalised path is what both authorization and the app see, so a
//! difference between the two readings of a path is a policy bypass: every
//! output must be a fixed point, free of `//`, `.` and `..` segments and of
//! percent-encodings that could still be decoded.

use std::borrow::Cow;

use http::Method;
use proxy_core::config::{
    Authorization, AuthzAction, AuthzDefault, AuthzPath, AuthzPolicy, AuthzRule, AuthzTarget,
};
use proxy_core::policy::authz::{
    normalize_path, Authorizer, AuthzRequest, HttpView, MalformedPath,
};

/// Checks the input as it is and, when it is not absolute, with a `/` in front:
/// only absolute paths are normalised, and most fuzzed inputs are not.
pub fn run(data: &[u8]) {
    let path = crate::text(data);
    check(&path);
    if !path.starts_with('/') {
        check(&format!("/{path}"));
    }
}

fn check(path: &str) {
    let result = normalize_path(path);
    let Some(rest) = path.strip_prefix('/') else {
        // `*` and the like are returned as they are, malformed or not.
        assert!(
            matches!(result, Ok(Cow::Borrowed(same)) if same == path),
            "{path:?} is not absolute, yet became {result:?}"
        );
        return;
    };
    let malformed = has_malformed_percent(rest.as_bytes());
    let normal = match result {
        Err(MalformedPath) => {
            assert!(
                malformed,
                "{path:?} was refused, yet every '%' has two hex digits"
            );
            return;
        }
        Ok(normal) => normal,
    };
    assert!(
        !malformed,
        "{path:?} has a malformed '%' and was accepted as {normal:?}"
    );
    if let Cow::Owned(owned) = &normal {
        // A path already normal is returned borrowed: a copy must differ.
        assert_ne!(owned, path, "{path:?} was copied though already normal");
    }
    assert_normal(path, &normal);
    assert_eq!(
        normal,
        model(path),
        "{path:?} normalised differently from RFC 3986"
    );
    // A fixed point, returned without copying.
    match normalize_path(&normal) {
        Ok(Cow::Borrowed(again)) => assert_eq!(again, normal, "{path:?}"),
        again => panic!("{path:?} -> {normal:?} -> {again:?}: not idempotent"),
    }
    check_policies(path, &normal);
}

/// What the doc of `normalize_path` promises of an output.
fn assert_normal(path: &str, normal: &str) {
    assert!(normal.starts_with('/'), "{path:?} -> {normal:?}");
    assert!(!normal.contains("//"), "{path:?} -> {normal:?} keeps '//'");
    let segments: Vec<&str> = normal[1..].split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        assert!(
            !matches!(*segment, "." | ".."),
            "{path:?} -> {normal:?} keeps a dot segment"
        );
        // Only the last segment may be empty: a trailing slash.
        assert!(
            !segment.is_empty() || last,
            "{path:?} -> {normal:?} keeps an empty segment"
        );
    }
    let bytes = normal.as_bytes();
    for (at, _) in normal.match_indices('%') {
        let hex = bytes.get(at + 1..at + 3).unwrap_or_default();
        let upper = |b: &u8| b.is_ascii_digit() || (b'A'..=b'F').contains(b);
        assert!(
            hex.len() == 2 && hex.iter().all(upper),
            "{path:?} -> {normal:?}: '%' at {at} is not followed by uppercase hex"
        );
        let decoded = hex_byte(hex[0]) << 4 | hex_byte(hex[1]);
        assert!(
            !is_unreserved(decoded),
            "{path:?} -> {normal:?}: %{} encodes an unreserved character",
            normal.get(at + 1..at + 3).unwrap_or_default()
        );
    }
}

/// The normalisation written straight from RFC 3986: decode unreserved
/// characters and uppercase the other encodings (§6.2.2.1-2), then remove dot
/// segments (§5.2.4), with empty segments dropped as repeated slashes.
fn model(path: &str) -> String {
    let mut decoded = Vec::with_capacity(path.len());
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let value = hex_byte(bytes[i + 1]) << 4 | hex_byte(bytes[i + 2]);
            if is_unreserved(value) {
                decoded.push(value);
            } else {
                decoded.extend(format!("%{value:02X}").bytes());
            }
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8_lossy(&decoded).into_owned();
    let raw: Vec<&str> = decoded[1..].split('/').collect();
    let mut kept: Vec<&str> = Vec::new();
    for segment in &raw {
        match *segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            segment => kept.push(segment),
        }
    }
    // A path ending in `/`, `/.` or `/..` names a directory: it keeps its slash.
    let trailing = matches!(raw.last().copied(), Some("" | "." | ".."));
    let mut out = String::new();
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    out
}

/// Policies are normalised the way requests are: an exact condition written as
/// the raw path must match the request whose path normalises the same.
fn check_policies(path: &str, normal: &str) {
    let policy = |paths: Vec<AuthzPath>| AuthzPolicy {
        name: "fuzz/p".to_string(),
        action: AuthzAction::Allow,
        rules: vec![AuthzRule {
            sources: None,
            to: Some(vec![AuthzTarget {
                paths,
                methods: Vec::new(),
            }]),
        }],
    };
    let authz = Authorizer::compile(&Authorization {
        default: AuthzDefault::Deny,
        policies: vec![
            policy(vec![AuthzPath::Exact(path.to_string())]),
            // Prefixes keep their last, partial segment: only run them.
            policy(vec![AuthzPath::Prefix(path.to_string())]),
        ],
    });
    let decision = authz.evaluate(
        &AuthzRequest {
            identity: None,
            http: Some(HttpView {
                method: &Method::GET,
                path: normal,
            }),
        },
        |_| {},
    );
    assert!(
        decision.allowed,
        "exact policy {path:?} does not match its own normal form {normal:?}"
    );
}

/// A `%` not followed by two hex digits.
fn has_malformed_percent(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(at, &b)| {
        b == b'%'
            && !bytes
                .get(at + 1..at + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    })
}

fn hex_byte(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

/// RFC 3986 §2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}
