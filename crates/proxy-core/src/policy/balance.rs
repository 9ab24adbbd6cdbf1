//! Endpoint choice: round robin, least request, peak EWMA (power of two choices), ring hash and Maglev, as pure functions.
//!
//! A balancer sees the endpoints through a [`View`]: each one's effective
//! weight for this pick (0 when it may not be picked: ejected, out of the
//! preferred zone, or to be avoided), load and latency. When every endpoint may
//! be picked at its configured weight the tables built once per config are
//! used as they are; otherwise choices run over the effective weights, in
//! time linear in the number of endpoints and without allocating.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::LbPolicy;

pub mod ewma;
pub mod maglev;
pub mod ring;
pub mod weight;

use maglev::Maglev;
use ring::Ring;

/// Longest weighted round-robin schedule kept; beyond it, weighted random is used.
const MAX_SCHEDULE: u32 = 1 << 16;

/// Choice tables for endpoints of unequal weight, computed once per config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weights {
    weights: Vec<u32>,
    /// Running sums of the weights, for weighted random choice.
    cumulative: Vec<u32>,
    /// Smooth weighted round-robin order (each index appears `weight` times, spread out).
    schedule: Vec<u32>,
}

impl Weights {
    /// Tables for `weights`; `None` when they are all equal (plain choice is exact then).
    pub fn new(weights: &[u32]) -> Option<Self> {
        let first = *weights.first()?;
        if weights.iter().all(|&w| w == first) || weights.contains(&0) {
            return None;
        }
        let cumulative: Vec<u32> = weights
            .iter()
            .scan(0u32, |sum, &w| {
                *sum = sum.saturating_add(w);
                Some(*sum)
            })
            .collect();
        let total = cumulative.last().copied().unwrap_or(0);
        let schedule = if total <= MAX_SCHEDULE {
            smooth_schedule(weights, total)
        } else {
            Vec::new()
        };
        Some(Self {
            weights: weights.to_vec(),
            cumulative,
            schedule,
        })
    }

    fn random_index(&self, random: &mut impl FnMut(usize) -> usize) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1) as usize;
        let ticket = random(total) as u32;
        self.cumulative.partition_point(|&sum| sum <= ticket)
    }
}

/// nginx's smooth weighted round robin: `a a b a c a a b` rather than `a a a a a b b c`.
fn smooth_schedule(weights: &[u32], total: u32) -> Vec<u32> {
    let mut current = vec![0i64; weights.len()];
    let mut schedule = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, &w) in weights.iter().enumerate() {
            current[i] += i64::from(w);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= i64::from(total);
        schedule.push(best as u32);
    }
    schedule
}

/// Everything a cluster's balancer precomputes, once per config.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    weights: Option<Weights>,
    ring: Option<Ring>,
    maglev: Option<Maglev>,
}

impl Tables {
    /// The tables `policy` needs for endpoints named by address, with weights.
    pub fn new<S: AsRef<str>>(policy: LbPolicy, endpoints: &[(S, u32)]) -> Self {
        let weights: Vec<u32> = endpoints.iter().map(|(_, w)| *w).collect();
        Self {
            weights: Weights::new(&weights),
            ring: (policy == LbPolicy::RingHash).then(|| Ring::new(endpoints)),
            maglev: (policy == LbPolicy::Maglev)
                .then(|| Maglev::new(endpoints))
                .flatten(),
        }
    }
}

/// What a balancer sees of a cluster's endpoints for one pick.
pub trait View {
    /// Number of endpoints, candidates or not.
    fn count(&self) -> usize;
    /// True when every endpoint is a candidate at its configured weight, so
    /// the precomputed tables apply as they are.
    fn is_plain(&self) -> bool;
    /// Effective weight of endpoint `i` in [`weight::FULL`] units per unit of
    /// configured weight; 0 when it may not be picked.
    fn weight(&self, i: usize) -> u64;
    /// Requests in flight on endpoint `i`.
    fn load(&self, i: usize) -> usize;
    /// Latency estimate of endpoint `i` in nanoseconds (peak EWMA).
    fn rtt_ns(&self, i: usize) -> f64;
}

/// Picks an endpoint index for `policy`; `None` when no endpoint may be picked.
///
/// `cursor` is the cluster's round-robin position, `hash` the request's hash
/// key for `ring_hash` and `maglev` (none: a random pick), and `random(n)` a
/// random index below `n`.
pub fn pick(
    policy: LbPolicy,
    tables: &Tables,
    cursor: &AtomicUsize,
    hash: Option<u64>,
    view: &impl View,
    mut random: impl FnMut(usize) -> usize,
) -> Option<usize> {
    let len = view.count();
    if len == 0 {
        return None;
    }
    let plain = view.is_plain();
    if len == 1 {
        return (plain || view.weight(0) > 0).then_some(0);
    }
    let eligible = |i: usize| plain || view.weight(i) > 0;
    match policy {
        LbPolicy::RingHash | LbPolicy::Maglev if hash.is_some() => {
            let hash = hash.unwrap_or_default();
            match policy {
                LbPolicy::RingHash => tables.ring.as_ref()?.find(hash, eligible),
                _ => tables.maglev.as_ref()?.find(hash, eligible),
            }
        }
        // Without a key a hashing balancer picks at random, by weight.
        LbPolicy::RingHash | LbPolicy::Maglev => {
            if plain {
                Some(plain_random(len, tables.weights.as_ref(), &mut random))
            } else {
                let total = total_weight(view);
                by_ticket(view, random_ticket(total, &mut random)?, None)
            }
        }
        LbPolicy::RoundRobin => match (plain, tables.weights.as_ref()) {
            (true, None) => Some(cursor.fetch_add(1, Ordering::Relaxed) % len),
            (true, Some(w)) if !w.schedule.is_empty() => {
                let at = cursor.fetch_add(1, Ordering::Relaxed) % w.schedule.len();
                Some(w.schedule[at] as usize)
            }
            (true, Some(w)) => Some(w.random_index(&mut random)),
            // Candidates of equal weight in turn; unequal ones (a ramp, weights
            // in config) at random by weight, which spreads them without tables.
            (false, _) => {
                let mut weights = (0..len).map(|i| view.weight(i)).filter(|&w| w > 0);
                let first = weights.next()?;
                let (count, equal) =
                    weights.fold((1, true), |(n, eq), w| (n + 1, eq && w == first));
                if equal {
                    let turn = cursor.fetch_add(1, Ordering::Relaxed) % count;
                    (0..len).filter(|&i| view.weight(i) > 0).nth(turn)
                } else {
                    by_ticket(view, random_ticket(total_weight(view), &mut random)?, None)
                }
            }
        },
        LbPolicy::LeastRequest => {
            let (a, b) = two_candidates(view, tables, &mut random)?;
            let weight = |i: usize| match (plain, tables.weights.as_ref()) {
                (true, Some(w)) => u64::from(w.weights[i]),
                (true, None) => 1,
                (false, _) => view.weight(i),
            };
            // Load compared relative to weight; the first candidate wins a tie.
            let (wa, wb) = (weight(a), weight(b));
            Some(if (view.load(b) as u64) * wa < (view.load(a) as u64) * wb {
                b
            } else {
                a
            })
        }
        LbPolicy::PeakEwma => {
            let (a, b) = two_candidates(view, tables, &mut random)?;
            let cost = |i: usize| {
                let w = match (plain, tables.weights.as_ref()) {
                    (true, Some(w)) => u64::from(w.weights[i]),
                    (true, None) => 1,
                    (false, _) => view.weight(i),
                };
                ewma::cost(view.rtt_ns(i), view.load(i), w)
            };
            Some(if cost(b) < cost(a) { b } else { a })
        }
    }
}

/// Two candidates for power of two choices: distinct when more than one may be picked.
fn two_candidates(
    view: &impl View,
    tables: &Tables,
    random: &mut impl FnMut(usize) -> usize,
) -> Option<(usize, usize)> {
    let len = view.count();
    if view.is_plain() {
        return Some(match tables.weights.as_ref() {
            None => {
                let a = random(len);
                (a, (a + 1 + random(len - 1)) % len)
            }
            // Drawn by weight; equal draws are fine, they just mean no choice.
            Some(w) => (w.random_index(random), w.random_index(random)),
        });
    }
    let total = total_weight(view);
    let a = by_ticket(view, random_ticket(total, random)?, None)?;
    let rest = total - view.weight(a);
    match random_ticket(rest, random) {
        Some(ticket) => Some((a, by_ticket(view, ticket, Some(a))?)),
        None => Some((a, a)),
    }
}

/// A random index of a plain view, by configured weight.
fn plain_random(
    len: usize,
    weights: Option<&Weights>,
    random: &mut impl FnMut(usize) -> usize,
) -> usize {
    match weights {
        Some(w) => w.random_index(random),
        None => random(len),
    }
}

fn total_weight(view: &impl View) -> u64 {
    (0..view.count()).map(|i| view.weight(i)).sum()
}

fn random_ticket(total: u64, random: &mut impl FnMut(usize) -> usize) -> Option<u64> {
    (total > 0).then(|| random(usize::try_from(total).unwrap_or(usize::MAX)) as u64)
}

/// The endpoint whose share of the effective weights (in index order, `skip` left out) holds `ticket`.
fn by_ticket(view: &impl View, mut ticket: u64, skip: Option<usize>) -> Option<usize> {
    (0..view.count()).filter(|&i| Some(i) != skip).find(|&i| {
        let w = view.weight(i);
        if ticket < w {
            return true;
        }
        ticket -= w;
        false
    })
}

#[cfg(test)]
mod tests;
