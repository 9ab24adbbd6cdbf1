//! Peak EWMA of an endpoint's response latency, kept in atomics (Finagle's and Linkerd's load metric).
//!
//! A sample slower than the estimate replaces it at once, so an endpoint that
//! turns slow is avoided from its first slow answer; faster samples decay in
//! with time constant [`DECAY`], and so does the estimate while no sample
//! comes, so an endpoint left alone because it was slow is tried again.
//!
//! An endpoint without samples (new, or never picked) costs nothing while it
//! has no request in flight, so it is probed at once instead of being starved
//! by a fast neighbour; while its first requests are out it costs
//! [`PENALTY`], so it gets no more until one answers (as in Finagle).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Time constant of the decay: after this long a sample has weight 1 - 1/e.
pub const DECAY: Duration = Duration::from_secs(10);

/// The cost of an endpoint without samples whose first requests are still out.
pub const PENALTY: f64 = 1e15;

/// Latency estimate of one endpoint.
#[derive(Debug, Default)]
pub struct PeakEwma {
    /// Estimate in nanoseconds; 0 before the first sample.
    estimate_ns: AtomicU64,
    /// When the estimate was last updated, in `clock::now_ns` time.
    stamp_ns: AtomicU64,
}

impl PeakEwma {
    /// Records a response-header latency of `sample_ns`, seen at `now_ns`.
    ///
    /// Two concurrent updates may lose one of them: an estimate needs no more
    /// precision than that, and a compare-and-swap loop would cost more.
    pub fn observe(&self, sample_ns: u64, now_ns: u64) {
        let previous = self.estimate_ns.load(Ordering::Relaxed);
        let stamp = self.stamp_ns.load(Ordering::Relaxed);
        let next = update(previous, stamp, sample_ns.max(1), now_ns, DECAY);
        self.estimate_ns.store(next, Ordering::Relaxed);
        self.stamp_ns.store(now_ns, Ordering::Relaxed);
    }

    /// The estimate at `now_ns` in nanoseconds, decayed since the last sample.
    pub fn estimate_ns(&self, now_ns: u64) -> f64 {
        let estimate = self.estimate_ns.load(Ordering::Relaxed);
        let stamp = self.stamp_ns.load(Ordering::Relaxed);
        current(estimate, stamp, now_ns, DECAY)
    }
}

/// Weight kept by the old estimate after `elapsed_ns`.
fn keep(elapsed_ns: u64, tau: Duration) -> f64 {
    (-(elapsed_ns as f64) / tau.as_nanos().max(1) as f64).exp()
}

/// The estimate after a sample: a peak replaces it, anything lower decays in.
pub fn update(previous: u64, stamp: u64, sample: u64, now: u64, tau: Duration) -> u64 {
    if previous == 0 || sample >= previous {
        return sample;
    }
    let w = keep(now.saturating_sub(stamp), tau);
    ((previous as f64) * w + (sample as f64) * (1.0 - w)).round() as u64
}

/// The estimate as read at `now`: 0 without samples, else decayed toward 0.
pub fn current(estimate: u64, stamp: u64, now: u64, tau: Duration) -> f64 {
    if estimate == 0 {
        return 0.0;
    }
    estimate as f64 * keep(now.saturating_sub(stamp), tau)
}

/// The cost of sending one more request to an endpoint: expected latency times
/// the requests it would then carry, per unit of weight. Without an estimate
/// (`rtt_ns` 0): free when idle, [`PENALTY`] while requests are out.
pub fn cost(rtt_ns: f64, in_flight: usize, weight: u64) -> f64 {
    if rtt_ns <= 0.0 {
        return if in_flight == 0 {
            0.0
        } else {
            PENALTY + in_flight as f64
        };
    }
    rtt_ns * (in_flight as f64 + 1.0) / weight.max(1) as f64
}

#[cfg(test)]
mod tests;
