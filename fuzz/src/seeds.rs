//! Replays every committed seed through its target, as a regression suite.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("{dir:?}: {err}")) {
        let path = entry.map(|e| e.path()).unwrap_or_default();
        let data = std::fs::read(&path).unwrap_or_else(|err| panic!("{path:?}: {err}"));
        run(&data);
        seen += 1;
    }
    assert!(seen > 0, "no seeds in {dir:?}");
}

#[test]
fn config_parse() {
    replay("config_parse", crate::config_parse::run);
}

#[test]
fn http1_inbound() {
    replay("http1_inbound", crate::http1_inbound::run);
}

#[test]
fn normalize_path() {
    replay("normalize_path", crate::normalize_path::run);
}

#[test]
fn route_match() {
    replay("route_match", crate::route_match::run);
}

#[test]
fn spiffe_san() {
    replay("spiffe_san", crate::spiffe_san::run);
}
