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
mod tests {
    use super::*;

    /// A view with fixed weights, loads and latencies.
    struct Fixed {
        weights: Vec<u32>,
        /// Effective weights; `None` for a plain view.
        effective: Option<Vec<u64>>,
        loads: Vec<usize>,
        rtts: Vec<f64>,
    }

    impl Fixed {
        fn plain(weights: &[u32], loads: &[usize]) -> Self {
            Self {
                weights: weights.to_vec(),
                effective: None,
                loads: loads.to_vec(),
                rtts: vec![0.0; weights.len()],
            }
        }

        fn effective(effective: &[u64]) -> Self {
            Self {
                weights: vec![1; effective.len()],
                effective: Some(effective.to_vec()),
                loads: vec![0; effective.len()],
                rtts: vec![0.0; effective.len()],
            }
        }

        fn tables(&self, policy: LbPolicy) -> Tables {
            let names: Vec<(String, u32)> = self
                .weights
                .iter()
                .enumerate()
                .map(|(i, w)| (format!("10.0.0.{i}:80"), *w))
                .collect();
            Tables::new(policy, &names)
        }
    }

    impl View for Fixed {
        fn count(&self) -> usize {
            self.weights.len()
        }
        fn is_plain(&self) -> bool {
            self.effective.is_none()
        }
        fn weight(&self, i: usize) -> u64 {
            match &self.effective {
                Some(e) => e[i],
                None => u64::from(self.weights[i]) * weight::FULL,
            }
        }
        fn load(&self, i: usize) -> usize {
            self.loads[i]
        }
        fn rtt_ns(&self, i: usize) -> f64 {
            self.rtts[i]
        }
    }

    fn run(policy: LbPolicy, view: &Fixed, hash: Option<u64>, rounds: usize) -> Vec<usize> {
        let tables = view.tables(policy);
        let cursor = AtomicUsize::new(0);
        let mut seen = vec![0; view.count()];
        for _ in 0..rounds {
            let i = pick(policy, &tables, &cursor, hash, view, crate::rng::below).unwrap();
            seen[i] += 1;
        }
        seen
    }

    fn counts(policy: LbPolicy, len: usize, loads: &[usize], rounds: usize) -> Vec<usize> {
        run(policy, &Fixed::plain(&vec![1; len], loads), None, rounds)
    }

    fn weighted_counts(
        policy: LbPolicy,
        weights: &[u32],
        loads: &[usize],
        rounds: usize,
    ) -> Vec<usize> {
        run(policy, &Fixed::plain(weights, loads), None, rounds)
    }

    const POLICIES: [LbPolicy; 5] = [
        LbPolicy::RoundRobin,
        LbPolicy::LeastRequest,
        LbPolicy::PeakEwma,
        LbPolicy::RingHash,
        LbPolicy::Maglev,
    ];

    #[test]
    fn empty_cluster_has_no_choice() {
        let cursor = AtomicUsize::new(0);
        let view = Fixed::plain(&[], &[]);
        for policy in POLICIES {
            let tables = view.tables(policy);
            assert_eq!(pick(policy, &tables, &cursor, Some(1), &view, |_| 0), None);
        }
    }

    #[test]
    fn nothing_eligible_is_no_choice() {
        let cursor = AtomicUsize::new(0);
        for view in [Fixed::effective(&[0]), Fixed::effective(&[0, 0, 0])] {
            for policy in POLICIES {
                let tables = view.tables(policy);
                for hash in [None, Some(42)] {
                    let picked = pick(policy, &tables, &cursor, hash, &view, crate::rng::below);
                    assert_eq!(picked, None, "{policy:?}");
                }
            }
        }
    }

    #[test]
    fn every_policy_skips_what_may_not_be_picked() {
        let view = Fixed::effective(&[100, 0, 100, 0]);
        for policy in POLICIES {
            for key in 0..50u64 {
                let seen = run(policy, &view, Some(key.wrapping_mul(0x9e37_79b9)), 4);
                assert_eq!(seen[1] + seen[3], 0, "{policy:?}: {seen:?}");
            }
        }
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
        let view = Fixed::plain(&[1, 1, 1], &[0, 0, 0]);
        let tables = view.tables(LbPolicy::RoundRobin);
        let order: Vec<_> = (0..6)
            .map(|_| pick(LbPolicy::RoundRobin, &tables, &cursor, None, &view, |_| 0).unwrap())
            .collect();
        assert_eq!(order, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn round_robin_over_candidates_takes_turns_and_follows_unequal_weights() {
        let view = Fixed::effective(&[100, 0, 100, 100]);
        let tables = view.tables(LbPolicy::RoundRobin);
        let cursor = AtomicUsize::new(0);
        let order: Vec<_> = (0..6)
            .map(|_| pick(LbPolicy::RoundRobin, &tables, &cursor, None, &view, |_| 0).unwrap())
            .collect();
        assert_eq!(order, vec![0, 2, 3, 0, 2, 3]);
        let seen = run(
            LbPolicy::RoundRobin,
            &Fixed::effective(&[10, 0, 30]),
            None,
            4000,
        );
        assert_eq!(seen[1], 0);
        assert!((800..1200).contains(&seen[0]), "{seen:?}");
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
        let view = Fixed::plain(&[1, 1], &[5, 1]);
        let tables = view.tables(LbPolicy::LeastRequest);
        let picked = pick(LbPolicy::LeastRequest, &tables, &cursor, None, &view, |_| 0);
        assert_eq!(picked, Some(1));
        let mut dynamic = Fixed::effective(&[100, 100]);
        dynamic.loads = vec![5, 1];
        let picked = pick(
            LbPolicy::LeastRequest,
            &tables,
            &cursor,
            None,
            &dynamic,
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

    #[test]
    fn peak_ewma_sends_most_traffic_to_the_faster_endpoint() {
        let mut view = Fixed::plain(&[1, 1, 1], &[0, 0, 0]);
        view.rtts = vec![5e6, 50e6, 6e6];
        let seen = run(LbPolicy::PeakEwma, &view, None, 3000);
        // The slow one never wins a comparison; the two fast ones split by latency.
        assert_eq!(seen[1], 0, "{seen:?}");
        assert!(seen[0] > seen[2], "{seen:?}");
        // Load counts too: a fast endpoint with a queue loses to an idle slower one.
        view.loads = vec![20, 0, 20];
        let seen = run(LbPolicy::PeakEwma, &view, None, 3000);
        assert!(seen[1] > 1500, "{seen:?}");
    }

    #[test]
    fn peak_ewma_probes_an_endpoint_without_samples() {
        // A fast known endpoint must not starve a new one: idle and unknown, it wins;
        // with its probe still out, it waits for the answer.
        let mut view = Fixed::plain(&[1, 1], &[0, 0]);
        view.rtts = vec![1e6, 0.0];
        assert_eq!(run(LbPolicy::PeakEwma, &view, None, 100)[1], 100);
        view.loads = vec![5, 1];
        assert_eq!(run(LbPolicy::PeakEwma, &view, None, 100)[0], 100);
    }

    #[test]
    fn peak_ewma_favours_weight() {
        let mut view = Fixed::plain(&[4, 1], &[3, 0]);
        view.rtts = vec![10e6, 10e6];
        // Cost 10 × 4 / 4 = 10 against 10 × 1 / 1 = 10: a tie, won by the first candidate.
        let seen = run(LbPolicy::PeakEwma, &view, None, 2000);
        assert!(seen[0] > 1000, "{seen:?}");
    }

    #[test]
    fn hashing_balancers_keep_a_key_on_one_endpoint_and_spread_keys() {
        for policy in [LbPolicy::RingHash, LbPolicy::Maglev] {
            let view = Fixed::plain(&[1, 1, 1, 1], &[0; 4]);
            let mut by_endpoint = [0usize; 4];
            for key in 0..4000u64 {
                let hash = xxhash_rust::xxh3::xxh3_64(&key.to_le_bytes());
                let seen = run(policy, &view, Some(hash), 5);
                let used: Vec<_> = (0..4).filter(|&i| seen[i] > 0).collect();
                assert_eq!(used.len(), 1, "{policy:?}: {seen:?}");
                by_endpoint[used[0]] += 1;
            }
            assert!(
                by_endpoint.iter().all(|&n| n > 700),
                "{policy:?}: {by_endpoint:?}"
            );
            // Without a key: random, over every endpoint.
            let seen = run(policy, &view, None, 4000);
            assert!(seen.iter().all(|&n| n > 700), "{policy:?}: {seen:?}");
        }
    }
}
