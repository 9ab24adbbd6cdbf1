//! A small fast per-thread random source for load balancing, request ids and chances (not for secrets).
//!
//! Percentages become a [`Chance`] compiled once, so rolling one per request is a
//! random number and a comparison.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

/// Seeds from the std hasher's per-process random keys, so threads differ.
fn seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x9e37_79b9_7f4a_7c15);
    hasher.finish() | 1
}

/// Next pseudo-random number (xorshift64*).
pub fn next_u64() -> u64 {
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// A pseudo-random index below `len` (`len` > 0).
pub fn below(len: usize) -> usize {
    // Multiply-shift keeps the bias negligible without a division.
    ((u128::from(next_u64()) * len as u128) >> 64) as usize
}

/// A probability, as a threshold on a uniform `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chance {
    /// Never.
    Never,
    /// When a uniform draw is below the threshold.
    Below(u64),
    /// Always (100%): no draw can reach `u64::MAX + 1`.
    Always,
}

impl Chance {
    /// `percent`% (0..=100, fractions allowed) of the time.
    pub fn percent(percent: f64) -> Self {
        if percent.is_nan() || percent <= 0.0 {
            Self::Never
        } else if percent >= 100.0 {
            Self::Always
        } else {
            // percent/100 × 2^64, exact enough for any percent a config can say.
            Self::Below((percent / 100.0 * 18_446_744_073_709_551_616.0) as u64)
        }
    }

    /// Whether `draw` (uniform over `u64`) falls inside the chance.
    pub fn hit(self, draw: u64) -> bool {
        match self {
            Self::Never => false,
            Self::Below(threshold) => draw < threshold,
            Self::Always => true,
        }
    }

    /// Rolls the chance with the proxy's random source.
    pub fn roll(self) -> bool {
        match self {
            Self::Never => false,
            Self::Always => true,
            Self::Below(_) => self.hit(next_u64()),
        }
    }
}

#[cfg(test)]
mod tests;
