//! A process-wide monotonic clock in plain integers, so that atomics can hold times.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call in this process; never 0, so 0 can mean "never".
pub fn now_ns() -> u64 {
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// Milliseconds since the first call in this process, plus one (never 0).
pub fn now_ms() -> u64 {
    now_ns() / 1_000_000 + 1
}

/// A duration in whole milliseconds, saturating.
pub fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
