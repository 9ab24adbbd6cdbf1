//! Retry decisions as pure functions: whether a try's outcome is retried, the backoff, and the per-cluster budget.
//!
//! The loop that sends tries lives in `http`; everything it decides is here, so
//! it is tested with tables and an injected clock, no sockets. The budget is a
//! ring of one-second slots of atomic counters: no lock, and a request touches
//! one slot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::Method;

use crate::config;
use crate::error::ProxyError;

/// A rule's retries, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub attempts: u32,
    /// Statuses retried (idempotent methods only), as a bitset of `status - 400`.
    codes: [u64; 4],
    /// Base of the exponential backoff.
    pub backoff: Duration,
}

impl RetryPolicy {
    /// Compiles a validated `retry`.
    pub fn compile(cfg: &config::Retry) -> Self {
        let mut codes = [0u64; 4];
        for code in &cfg.codes {
            if let Some(bit) = code.checked_sub(400).filter(|b| *b < 200) {
                codes[usize::from(bit / 64)] |= 1 << (bit % 64);
            }
        }
        Self {
            attempts: cfg.attempts,
            codes,
            backoff: cfg.backoff,
        }
    }

    /// Whether responses with `status` are retried.
    pub fn retries_status(&self, status: u16) -> bool {
        status
            .checked_sub(400)
            .filter(|bit| *bit < 200)
            .is_some_and(|bit| self.codes[usize::from(bit / 64)] & (1 << (bit % 64)) != 0)
    }
}

/// What one try came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with this status.
    Status(u16),
    /// The request provably never reached the upstream (connect or handshake failure).
    NotSent,
    /// The connection failed after the request may have been sent.
    Failed,
    /// No response headers within the per-try timeout.
    TimedOut,
    /// This proxy refused to send it (a circuit breaker at its limit): another try
    /// would only take more of what is short.
    Refused,
}

impl Outcome {
    /// The outcome of a try that ended in `err`.
    pub fn of_error(err: &ProxyError) -> Self {
        match err.kind() {
            crate::error::ErrorKind::RequestTimeout => Self::TimedOut,
            crate::error::ErrorKind::Overflow(_) => Self::Refused,
            _ if err.retryable() => Self::NotSent,
            _ => Self::Failed,
        }
    }
}

/// What to do after a try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Hand this outcome to the client.
    Return,
    /// Try again, if the budget and the time left allow.
    Retry,
}

/// Methods that may be sent twice with the effect of once (RFC 9110 §9.2.2).
pub fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Whether the outcome of try number `retries_done` (0 for the first) is retried.
/// A request that never reached the upstream is retried whatever its method;
/// otherwise only idempotent methods are, on a listed status, a broken connection
/// or a timeout. Only a request whose body was kept whole is ever tried again, so
/// the caller asks only for those (a streamed body goes once: see `http::forward`).
pub fn decide(
    policy: &RetryPolicy,
    method: &Method,
    outcome: Outcome,
    retries_done: u32,
) -> Decision {
    if retries_done >= policy.attempts {
        return Decision::Return;
    }
    let retry = match outcome {
        Outcome::NotSent => true,
        Outcome::Status(status) => idempotent(method) && policy.retries_status(status),
        Outcome::Failed | Outcome::TimedOut => idempotent(method),
        Outcome::Refused => false,
    };
    if retry {
        Decision::Retry
    } else {
        Decision::Return
    }
}

/// The wait before retry number `retry` (1 for the first): full jitter, uniform
/// in `[0, min(base × 2^(retry-1), 10 × base)]`. `random(n)` is uniform below `n`.
pub fn backoff(base: Duration, retry: u32, random: impl FnOnce(u64) -> u64) -> Duration {
    let base_us = u64::try_from(base.as_micros()).unwrap_or(u64::MAX);
    let cap = base_us.saturating_mul(10);
    let grown = base_us.saturating_mul(1u64 << retry.saturating_sub(1).min(32));
    let ceiling = grown.min(cap);
    Duration::from_micros(random(ceiling.saturating_add(1)))
}

/// Seconds the budget remembers deposits and withdrawals for.
pub const BUDGET_WINDOW_SECS: u64 = 10;

/// One second of the budget's window.
#[derive(Debug, Default)]
struct Slot {
    /// The second this slot counts, plus one (0: never used).
    epoch: AtomicU64,
    deposits: AtomicU64,
    withdrawals: AtomicU64,
}

/// A cluster's retry budget: over the last ten seconds, retries may be at most
/// `percent`% of requests plus `min_retries_per_second × 10`.
///
/// Concurrent requests may read a balance another is about to spend, so a burst
/// can overdraw by a few retries; the budget bounds retry storms, not single retries.
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    reserve: f64,
    slots: [Slot; BUDGET_WINDOW_SECS as usize],
    started: Instant,
}

impl RetryBudget {
    /// A budget from config, empty but for the reserve.
    pub fn new(cfg: &config::RetryBudget) -> Self {
        Self {
            ratio: cfg.percent / 100.0,
            reserve: f64::from(cfg.min_retries_per_second) * BUDGET_WINDOW_SECS as f64,
            slots: Default::default(),
            started: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Records a request (each request deposits `percent`/100 of a retry).
    pub fn deposit(&self) {
        self.deposit_at(self.now());
    }

    /// Takes one retry from the budget; `false` when there is none left.
    pub fn try_withdraw(&self) -> bool {
        self.try_withdraw_at(self.now())
    }

    /// The slot of second `now`, emptied first if it last counted an older second.
    fn slot(&self, now: u64) -> &Slot {
        let index = (now % BUDGET_WINDOW_SECS) as usize;
        let slot = &self.slots[index];
        let epoch = now + 1;
        let seen = slot.epoch.load(Ordering::Acquire);
        // Whoever moves the slot to this second empties it; counts racing the
        // reset may be lost, which only makes the budget slightly off for a second.
        if seen != epoch
            && slot
                .epoch
                .compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            slot.deposits.store(0, Ordering::Relaxed);
            slot.withdrawals.store(0, Ordering::Relaxed);
        }
        slot
    }

    /// [`deposit`](Self::deposit) at second `now` of the budget's clock.
    pub fn deposit_at(&self, now: u64) {
        self.slot(now).deposits.fetch_add(1, Ordering::Relaxed);
    }

    /// [`try_withdraw`](Self::try_withdraw) at second `now` of the budget's clock.
    pub fn try_withdraw_at(&self, now: u64) -> bool {
        let slot = self.slot(now);
        if self.balance_at(now) < 1.0 {
            return false;
        }
        slot.withdrawals.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Retries left at second `now`.
    pub fn balance_at(&self, now: u64) -> f64 {
        let oldest = (now + 1).saturating_sub(BUDGET_WINDOW_SECS - 1);
        let (mut deposits, mut withdrawals) = (0u64, 0u64);
        for slot in &self.slots {
            let epoch = slot.epoch.load(Ordering::Acquire);
            if epoch >= oldest.max(1) && epoch <= now + 1 {
                deposits += slot.deposits.load(Ordering::Relaxed);
                withdrawals += slot.withdrawals.load(Ordering::Relaxed);
            }
        }
        deposits as f64 * self.ratio + self.reserve - withdrawals as f64
    }
}

#[cfg(test)]
mod tests;
