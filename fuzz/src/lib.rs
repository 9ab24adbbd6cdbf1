//! The bodies of proxy-core's fuzz targets, one module each, so that `cargo test` replays the seeds on stable.
//!
//! Each `fuzz_targets/<name>.rs` only hands libFuzzer's input to `<name>::run`.
//! A target panics (an `assert!`) only when proxy-core breaks a promise; an
//! error returned for a malformed input is the expected outcome, not a finding.

pub mod config_parse;
pub mod http1_inbound;
pub mod normalize_path;
pub mod route_match;
pub mod spiffe_san;

/// The input as text: fuzzed bytes that are not UTF-8 still reach the parsers, lossily.
fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

#[cfg(test)]
mod seeds;
