//! Endpoint choice: round robin and least request (power of two choices), weighted or not, as pure functions.
//!
//! They see only a count of endpoints, their weights and, for least request,
//! each one's load, so they are tested without sockets.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::LbPolicy;

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

/// Picks an endpoint index in `0..len` for `policy`; `None` when `len` is 0.
///
/// `cursor` is the cluster's round-robin position, `weights` the tables of a
/// weighted cluster, `load(i)` the number of requests in flight on endpoint
/// `i`, and `random(n)` a random index below `n`.
pub fn pick(
    policy: LbPolicy,
    len: usize,
    weights: Option<&Weights>,
    cursor: &AtomicUsize,
    load: impl Fn(usize) -> usize,
    mut random: impl FnMut(usize) -> usize,
) -> Option<usize> {
    match (len, weights) {
        (0, _) => None,
        (1, _) => Some(0),
        (_, None) => Some(match policy {
            LbPolicy::RoundRobin => cursor.fetch_add(1, Ordering::Relaxed) % len,
            LbPolicy::LeastRequest => {
                // Two distinct random candidates; the less loaded wins, the first on a tie.
                let a = random(len);
                let b = (a + 1 + random(len - 1)) % len;
                if load(b) < load(a) {
                    b
                } else {
                    a
                }
            }
        }),
        (_, Some(w)) => Some(match policy {
            LbPolicy::RoundRobin if !w.schedule.is_empty() => {
                let at = cursor.fetch_add(1, Ordering::Relaxed) % w.schedule.len();
                w.schedule[at] as usize
            }
            LbPolicy::RoundRobin => w.random_index(&mut random),
            LbPolicy::LeastRequest => {
                // Candidates drawn by weight; load compared relative to weight.
                let a = w.random_index(&mut random);
                let b = w.random_index(&mut random);
                let (wa, wb) = (w.weights[a] as usize, w.weights[b] as usize);
                if load(b) * wa < load(a) * wb {
                    b
                } else {
                    a
                }
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(policy: LbPolicy, len: usize, loads: &[usize], rounds: usize) -> Vec<usize> {
        weighted_counts(policy, &vec![1; len], loads, rounds)
    }

    fn weighted_counts(
        policy: LbPolicy,
        weights: &[u32],
        loads: &[usize],
        rounds: usize,
    ) -> Vec<usize> {
        let tables = Weights::new(weights);
        let cursor = AtomicUsize::new(0);
        let mut seen = vec![0; weights.len()];
        for _ in 0..rounds {
            let i = pick(
                policy,
                weights.len(),
                tables.as_ref(),
                &cursor,
                |i| loads[i],
                crate::rng::below,
            )
            .unwrap();
            seen[i] += 1;
        }
        seen
    }

    #[test]
    fn empty_cluster_has_no_choice() {
        let cursor = AtomicUsize::new(0);
        assert_eq!(
            pick(LbPolicy::RoundRobin, 0, None, &cursor, |_| 0, |_| 0),
            None
        );
        assert_eq!(
            pick(LbPolicy::LeastRequest, 0, None, &cursor, |_| 0, |_| 0),
            None
        );
    }

    #[test]
    fn round_robin_is_exactly_even() {
        assert_eq!(
            counts(LbPolicy::RoundRobin, 3, &[0, 0, 0], 300),
            vec![100, 100, 100]
        );
    }

    #[test]
    fn round_robin_visits_in_order() {
        let cursor = AtomicUsize::new(0);
        let order: Vec<_> = (0..6)
            .map(|_| pick(LbPolicy::RoundRobin, 3, None, &cursor, |_| 0, |_| 0).unwrap())
            .collect();
        assert_eq!(order, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn least_request_avoids_the_busy_endpoint() {
        // Endpoint 1 is busy: it only wins when both candidates are... never, since they are distinct.
        let seen = counts(LbPolicy::LeastRequest, 3, &[0, 50, 0], 3000);
        assert_eq!(seen[1], 0, "{seen:?}");
        assert!(seen[0] > 1200 && seen[2] > 1200, "{seen:?}");
    }

    #[test]
    fn least_request_spreads_equal_load() {
        let seen = counts(LbPolicy::LeastRequest, 4, &[1, 1, 1, 1], 4000);
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    }

    #[test]
    fn least_request_candidates_are_distinct() {
        // A random source that always says 0 must still compare endpoint 0 with another one.
        let cursor = AtomicUsize::new(0);
        let picked = pick(
            LbPolicy::LeastRequest,
            2,
            None,
            &cursor,
            |i| [5, 1][i],
            |_| 0,
        );
        assert_eq!(picked, Some(1));
    }

    #[test]
    fn equal_weights_need_no_tables() {
        assert_eq!(Weights::new(&[3, 3, 3]), None);
        assert_eq!(Weights::new(&[]), None);
    }

    #[test]
    fn weighted_round_robin_is_exact_and_smooth() {
        let seen = weighted_counts(LbPolicy::RoundRobin, &[5, 1, 1], &[0, 0, 0], 700);
        assert_eq!(seen, vec![500, 100, 100]);
        let w = Weights::new(&[5, 1, 1]).unwrap();
        assert_eq!(w.schedule, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn weighted_least_request_follows_weights_under_equal_load() {
        let seen = weighted_counts(LbPolicy::LeastRequest, &[3, 1], &[0, 0], 8000);
        // P2C with ties going to the first candidate: a gets about 3/4 + a bit.
        assert!(seen[0] > 5500 && seen[1] > 1000, "{seen:?}");
    }

    #[test]
    fn weighted_random_index_respects_boundaries() {
        let w = Weights::new(&[2, 1]).unwrap();
        let picks: Vec<_> = (0..3).map(|t| w.random_index(&mut |_| t)).collect();
        assert_eq!(picks, vec![0, 0, 1]);
    }
}
