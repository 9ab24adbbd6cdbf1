//! What a cluster keeps for resilience at run time: its retry budget, faults to inject, and counters.
//!
//! Percentages become a [`Chance`] compiled once. The mirror gate bounds copies in
//! flight per proxy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::config;
use crate::policy::retry::RetryBudget;
use crate::rng::Chance;
use crate::telemetry::metrics::{Metrics, MirrorCounters, RetryCounters};

/// A cluster's faults, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPolicy {
    /// Chance and length of a delay.
    pub delay: Option<(Chance, Duration)>,
    /// Chance and status of an abort.
    pub abort: Option<(Chance, StatusCode)>,
}

impl FaultPolicy {
    /// Compiles a validated `fault`.
    pub fn compile(cfg: &config::Fault) -> Self {
        Self {
            delay: cfg.delay.map(|d| (Chance::percent(d.percent), d.duration)),
            abort: cfg.abort.and_then(|a| {
                Some((
                    Chance::percent(a.percent),
                    StatusCode::from_u16(a.status).ok()?,
                ))
            }),
        }
    }

    /// Rolls both faults for one request: how long to hold it, and whether to answer it with a status.
    pub fn roll(&self) -> (Option<Duration>, Option<StatusCode>) {
        let delay = self
            .delay
            .and_then(|(chance, duration)| chance.roll().then_some(duration));
        let abort = self
            .abort
            .and_then(|(chance, status)| chance.roll().then_some(status));
        (delay, abort)
    }
}

/// Most mirrored requests in flight per proxy; more are dropped.
pub const MAX_MIRRORS_IN_FLIGHT: usize = 256;

/// Counts mirrored requests in flight across a proxy.
#[derive(Debug, Default)]
pub struct MirrorGate {
    in_flight: AtomicUsize,
}

impl MirrorGate {
    /// A slot for one more mirror, or `None` at the limit.
    pub fn enter(self: &Arc<Self>) -> Option<MirrorSlot> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= MAX_MIRRORS_IN_FLIGHT {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(MirrorSlot(Arc::clone(self)))
    }

    /// Mirrors in flight now.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// One mirror in flight; leaves the gate when dropped.
#[derive(Debug)]
pub struct MirrorSlot(Arc<MirrorGate>);

impl Drop for MirrorSlot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A cluster's resilience state: compiled with it, replaced with it on reload.
#[derive(Debug)]
pub struct Traffic {
    /// Retries that requests to the cluster may still cause.
    pub budget: RetryBudget,
    /// Faults injected into requests to the cluster.
    pub fault: Option<FaultPolicy>,
    /// Retries to the cluster.
    pub retries: RetryCounters,
    /// Copies of requests mirrored to the cluster.
    pub mirrors: MirrorCounters,
    /// The proxy's count of mirrors in flight.
    pub mirror_gate: Arc<MirrorGate>,
}

impl Traffic {
    /// Compiles cluster `cfg`'s budget and faults, with its counters.
    pub fn compile(
        cfg: &config::Cluster,
        metrics: &Metrics,
        mirror_gate: &Arc<MirrorGate>,
    ) -> Self {
        Self {
            budget: RetryBudget::new(&cfg.retry_budget),
            fault: cfg.fault.as_ref().map(FaultPolicy::compile),
            retries: metrics.retries(&cfg.name),
            mirrors: metrics.mirrors(&cfg.name),
            mirror_gate: Arc::clone(mirror_gate),
        }
    }
}

#[cfg(test)]
mod tests;
