//! Circuit breakers: per-cluster counts of connections, waiting and active requests, each slot released by a guard.
//!
//! The three limits, counted for everything this proxy sends to one cluster:
//!
//! - `max_requests`: requests between `Endpoint::send` and the end of their
//!   response body (for TCP, relayed connections while they last);
//! - `max_connections`: upstream connections open to the cluster's endpoints,
//!   pooled ones included, until they close;
//! - `max_pending_requests`: HTTP/1 requests that found no idle connection to
//!   their endpoint while the cluster was at `max_connections`, and so wait for
//!   one to come back to the pool or for a connection to close. HTTP/2 and TCP
//!   never wait: a new connection over `max_connections` fails at once.
//!
//! A slot is a guard: dropping it (a request cancelled by its client, a
//! connection task ending) gives it back, so nothing leaks a slot.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::CircuitBreakers;
pub use crate::error::Limit;

/// A cluster's limits, `usize::MAX` where none is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// See [`Limit::Connections`].
    pub max_connections: usize,
    /// See [`Limit::PendingRequests`].
    pub max_pending_requests: usize,
    /// See [`Limit::Requests`].
    pub max_requests: usize,
}

impl Limits {
    /// No limit at all.
    pub const NONE: Self = Self {
        max_connections: usize::MAX,
        max_pending_requests: usize::MAX,
        max_requests: usize::MAX,
    };

    /// The limits of a cluster's config.
    pub fn from_config(config: Option<&CircuitBreakers>) -> Self {
        let limit = |value: Option<u32>| value.map_or(usize::MAX, |v| v as usize);
        match config {
            None => Self::NONE,
            Some(c) => Self {
                max_connections: limit(c.max_connections),
                max_pending_requests: limit(c.max_pending_requests),
                max_requests: limit(c.max_requests),
            },
        }
    }

    fn of(&self, limit: Limit) -> usize {
        match limit {
            Limit::Connections => self.max_connections,
            Limit::PendingRequests => self.max_pending_requests,
            Limit::Requests => self.max_requests,
        }
    }
}

/// The counts of one cluster, kept across reloads so that a new config counts
/// the connections and requests the old one opened.
#[derive(Debug, Default)]
pub struct Counters {
    connections: AtomicUsize,
    pending: AtomicUsize,
    requests: AtomicUsize,
    /// Woken when a connection closes or goes back to a pool, for pending requests.
    freed: Notify,
}

impl Counters {
    fn counter(&self, limit: Limit) -> &AtomicUsize {
        match limit {
            Limit::Connections => &self.connections,
            Limit::PendingRequests => &self.pending,
            Limit::Requests => &self.requests,
        }
    }

    /// Takes a slot under `limit` of `limits`, or `None` when all are taken.
    pub fn acquire(self: &Arc<Self>, limit: Limit, limits: &Limits) -> Option<Slot> {
        let max = limits.of(limit);
        let counter = self.counter(limit);
        // Increment first and undo on overflow: two racing requests cannot both take the last slot.
        if counter.fetch_add(1, Ordering::AcqRel) >= max {
            counter.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot {
            counters: Arc::clone(self),
            limit,
            // Only a limited cluster can have requests waiting for a free connection.
            wake: limit == Limit::Connections && limits.max_connections != usize::MAX,
        })
    }

    /// What is counted now under `limit`.
    pub fn count(&self, limit: Limit) -> usize {
        self.counter(limit).load(Ordering::Relaxed)
    }

    /// Wakes requests waiting for a connection (one went back to a pool).
    pub fn wake_pending(&self) {
        self.freed.notify_waiters();
    }

    /// Resolves after the next `wake_pending` or connection close.
    pub fn freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.freed.notified()
    }
}

/// One counted connection or request; dropping it gives the slot back.
#[derive(Debug)]
pub struct Slot {
    counters: Arc<Counters>,
    limit: Limit,
    wake: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counters
            .counter(self.limit)
            .fetch_sub(1, Ordering::AcqRel);
        if self.wake {
            self.counters.wake_pending();
        }
    }
}

#[cfg(test)]
mod tests;
