//! Table tests of path normalisation: what it normalises, and the malformed percent-encodings it refuses.

use super::*;

#[test]
fn paths_are_normalised() {
    let cases = [
        ("/", "/"),
        ("/charge", "/charge"),
        ("/a/b/", "/a/b/"),
        ("/.well-known/x", "/.well-known/x"),
        ("//charge", "/charge"),
        ("///charge//now", "/charge/now"),
        ("/admin/../charge", "/charge"),
        ("/admin/./../charge", "/charge"),
        ("/a/b/../../../charge", "/charge"),
        ("/..", "/"),
        ("/../..", "/"),
        ("/a/..", "/"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("/a//", "/a/"),
        ("//", "/"),
        ("/%63harge", "/charge"),
        ("/%2e%2e/charge", "/charge"),
        ("/admin/%2E%2E/charge", "/charge"),
        ("/a%2fb", "/a%2Fb"),
        ("/a%2F..%2Fb", "/a%2F..%2Fb"),
        ("/%7e%2D%5f%2e%41z", "/~-_.Az"),
        ("/sp%20ace%3a%00", "/sp%20ace%3A%00"),
        ("/caf%C3%A9", "/caf%C3%A9"),
        ("*", "*"),
        ("", ""),
    ];
    for (path, want) in cases {
        let got = normalize_path(path).unwrap();
        assert_eq!(got, want, "{path}");
        // Normalising is idempotent, and a normal path is not copied.
        assert!(
            matches!(normalize_path(want).unwrap(), Cow::Borrowed(_)),
            "{want}"
        );
    }
    assert!(matches!(
        normalize_path("/charge").unwrap(),
        Cow::Borrowed(_)
    ));
}

#[test]
fn malformed_percent_encodings_are_refused() {
    for path in ["/%", "/a%2", "/%zz", "/%g0", "/a/%%41", "/%2"] {
        assert_eq!(normalize_path(path), Err(MalformedPath), "{path}");
    }
}
