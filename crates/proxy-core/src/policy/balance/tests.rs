//! Table tests of the balancers over fixed views: round robin, least request, peak EWMA and hashing, plain and weighted.

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
