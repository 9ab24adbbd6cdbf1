//! Outlier detection: per-endpoint failure streaks and ejections in atomics, decided by pure functions of a clock the caller passes.
//!
//! An endpoint whose streak of failures reaches a threshold is ejected for
//! `base_ejection_time × times ejected` (at most [`MAX_EJECTION`], or the base
//! if that is longer); each `interval` it then stays in takes one off its
//! times ejected. Recovery is passive: once its time is up it gets real
//! traffic again, and one success resets its streaks.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock;
use crate::config::OutlierDetection;

/// Longest ejection, unless `base_ejection_time` itself is longer (as Envoy's default).
pub const MAX_EJECTION: Duration = Duration::from_secs(300);

/// What came of one request to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Response headers with this status.
    Response(u16),
    /// A TCP relay's connection opened.
    Connected,
    /// No response: connect failure or timeout, broken connection, request timeout.
    Failure,
}

impl Outcome {
    fn is_5xx(self) -> bool {
        match self {
            Self::Response(status) => (500..600).contains(&status),
            Self::Connected => false,
            Self::Failure => true,
        }
    }

    fn is_gateway_error(self) -> bool {
        match self {
            Self::Response(status) => matches!(status, 502..=504),
            Self::Connected => false,
            Self::Failure => true,
        }
    }
}

/// A cluster's outlier detection, in the units the atomics use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Streak of 5xx that ejects; `u32::MAX` when off.
    pub consecutive_5xx: u32,
    /// Streak of gateway errors that ejects; `u32::MAX` when off.
    pub consecutive_gateway_errors: u32,
    /// Milliseconds per decrement of times ejected.
    pub interval_ms: u64,
    /// Milliseconds of the first ejection.
    pub base_ms: u64,
    /// Most ejected at once, in percent of the cluster's endpoints.
    pub max_percent: u32,
}

impl Policy {
    /// The policy of a cluster's config.
    pub fn from_config(config: &OutlierDetection) -> Self {
        Self {
            consecutive_5xx: config.consecutive_5xx.unwrap_or(u32::MAX),
            consecutive_gateway_errors: config.consecutive_gateway_errors.unwrap_or(u32::MAX),
            interval_ms: clock::ms(config.interval).max(1),
            base_ms: clock::ms(config.base_ejection_time).max(1),
            max_percent: config.max_ejection_percent,
        }
    }

    /// How long an ejection lasts, and the new times ejected, for an endpoint
    /// ejected `times` times whose count has been decaying since `decay_from`.
    pub fn ejection(&self, times: u32, decay_from: u64, now: u64) -> (u64, u32) {
        let decayed = now.saturating_sub(decay_from) / self.interval_ms;
        let times = u64::from(times)
            .saturating_sub(decayed)
            .saturating_add(1)
            .min(u64::from(u32::MAX));
        let cap = clock::ms(MAX_EJECTION).max(self.base_ms);
        let duration = self.base_ms.saturating_mul(times).min(cap);
        (duration, times as u32)
    }
}

/// Whether one more endpoint may be ejected when `ejected` of `total` already are.
pub fn may_eject(ejected: usize, total: usize, max_percent: u32) -> bool {
    ejected == 0 || (ejected + 1) * 100 <= max_percent as usize * total
}

/// The failure streaks and ejection of one endpoint.
#[derive(Debug, Default)]
pub struct Health {
    streak_5xx: AtomicU32,
    streak_gateway: AtomicU32,
    /// End of the current ejection in `clock::now_ms` time; 0 when not ejected.
    ejected_until: AtomicU64,
    times_ejected: AtomicU32,
    /// When times ejected started decaying (the end of the last ejection).
    decay_from: AtomicU64,
}

impl Health {
    /// Counts an outcome; true when a streak reached its threshold, so the
    /// endpoint should be ejected.
    pub fn record(&self, policy: &Policy, outcome: Outcome) -> bool {
        let bump = |streak: &AtomicU32, failed: bool| {
            if failed {
                streak.fetch_add(1, Ordering::Relaxed).saturating_add(1)
            } else {
                // Load first: a healthy endpoint's successes write nothing.
                if streak.load(Ordering::Relaxed) != 0 {
                    streak.store(0, Ordering::Relaxed);
                }
                0
            }
        };
        let all = bump(&self.streak_5xx, outcome.is_5xx());
        let gateway = bump(&self.streak_gateway, outcome.is_gateway_error());
        all >= policy.consecutive_5xx || gateway >= policy.consecutive_gateway_errors
    }

    /// Whether the endpoint is ejected at `now`.
    pub fn is_ejected(&self, now: u64) -> bool {
        let until = self.ejected_until.load(Ordering::Acquire);
        until != 0 && now < until
    }

    /// Whether an ejection is recorded, its time up or not.
    pub fn has_ejection(&self) -> bool {
        self.ejected_until.load(Ordering::Acquire) != 0
    }

    /// Ends an ejection whose time is up; true for the one caller that ended it.
    pub fn expire(&self, now: u64) -> bool {
        let until = self.ejected_until.load(Ordering::Acquire);
        until != 0
            && now >= until
            && self
                .ejected_until
                .compare_exchange(until, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Ejects the endpoint (not ejected now) at `now`; the end of the ejection,
    /// or `None` when another caller ejected it first.
    pub fn eject(&self, policy: &Policy, now: u64) -> Option<u64> {
        let times = self.times_ejected.load(Ordering::Relaxed);
        let decay_from = self.decay_from.load(Ordering::Relaxed);
        let (duration, times) = policy.ejection(times, decay_from, now);
        let until = now.saturating_add(duration).max(1);
        self.ejected_until
            .compare_exchange(0, until, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        self.times_ejected.store(times, Ordering::Relaxed);
        self.decay_from.store(until, Ordering::Relaxed);
        self.streak_5xx.store(0, Ordering::Relaxed);
        self.streak_gateway.store(0, Ordering::Relaxed);
        Some(until)
    }

    /// Times ejected, as last counted (before decay).
    #[cfg(test)]
    pub fn times_ejected(&self) -> u32 {
        self.times_ejected.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
