//! Effective weights of one pick: slow start ramps and local-zone preference, as pure functions.

/// Units of effective weight per unit of configured weight, so a ramp can go below 1.
pub const FULL: u64 = 100;

/// Share of its weight an endpoint starts its slow start with, in percent.
const RAMP_START: u64 = 10;

/// The effective weight of an endpoint of `weight` that joined `elapsed_ms`
/// ago, with a slow-start `window_ms`: linear from 10% to 100%, never 0.
pub fn slow_start(weight: u32, elapsed_ms: u64, window_ms: u64) -> u64 {
    let full = u64::from(weight) * FULL;
    if elapsed_ms >= window_ms || window_ms == 0 {
        return full;
    }
    let percent = RAMP_START + (100 - RAMP_START) * elapsed_ms / window_ms;
    (u64::from(weight) * percent).max(1)
}

/// Whether a pick keeps to local-zone endpoints: only while one of them is available.
pub fn prefer_local(
    len: usize,
    is_local: impl Fn(usize) -> bool,
    available: impl Fn(usize) -> bool,
) -> bool {
    (0..len).any(|i| is_local(i) && available(i))
}

#[cfg(test)]
mod tests;
