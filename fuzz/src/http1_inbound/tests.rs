//! The HTTP/1 seeds answer as the fuzz snapshot says: status, the path the upstream saw, no broken promise.

/// The answer to a seed: its first status line and whether the upstream saw `path`.
fn answer(seed: &str) -> String {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds/http1_inbound")
        .join(seed);
    let data = std::fs::read(&file).unwrap_or_else(|err| panic!("{file:?}: {err}"));
    let response = super::send(&data, super::CHECKING);
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn seeds_go_where_the_snapshot_says() {
    for (seed, status, seen) in [
        ("get_root", "200", Some("/")),
        ("post_rewrite", "200", Some("/v2/orders")),
        ("pipelined", "200", Some("/items/42")),
        ("chunked_mirror", "200", Some("/mirror/x")),
        ("admin_spellings", "403", None),
        ("fault", "503", None),
        ("http10_empty", "503", None),
        ("http10_no_host", "400", None),
        ("bad_percent", "400", None),
        ("too_many_headers", "431", None),
    ] {
        let answer = answer(seed);
        let first = answer.lines().next().unwrap_or_default();
        assert!(
            first.split(' ').nth(1) == Some(status),
            "{seed}: {first:?}, not {status}\n{answer}"
        );
        if let Some(path) = seen {
            assert!(
                answer.contains(&format!("x-seen-path: {path}\r\n")),
                "{seed}: the upstream did not see {path}\n{answer}"
            );
        }
        assert_eq!(super::take_violation(), None, "{seed}");
    }
}
