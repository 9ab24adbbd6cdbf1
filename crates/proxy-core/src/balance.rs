//! Endpoint choice: round robin and least request (power of two choices), as pure functions.
//!
//! They see only a count of endpoints and, for least request, each one's load,
//! so they are tested without sockets.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::LbPolicy;

/// Picks an endpoint index in `0..len` for `policy`; `None` when `len` is 0.
///
/// `cursor` is the cluster's round-robin position, `load(i)` the number of
/// requests in flight on endpoint `i`, and `random(n)` a random index below `n`.
pub fn pick(
    policy: LbPolicy,
    len: usize,
    cursor: &AtomicUsize,
    load: impl Fn(usize) -> usize,
    mut random: impl FnMut(usize) -> usize,
) -> Option<usize> {
    match len {
        0 => None,
        1 => Some(0),
        _ => Some(match policy {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(policy: LbPolicy, len: usize, loads: &[usize], rounds: usize) -> Vec<usize> {
        let cursor = AtomicUsize::new(0);
        let mut seen = vec![0; len];
        for _ in 0..rounds {
            let i = pick(policy, len, &cursor, |i| loads[i], crate::rng::below).unwrap();
            seen[i] += 1;
        }
        seen
    }

    #[test]
    fn empty_cluster_has_no_choice() {
        let cursor = AtomicUsize::new(0);
        assert_eq!(pick(LbPolicy::RoundRobin, 0, &cursor, |_| 0, |_| 0), None);
        assert_eq!(pick(LbPolicy::LeastRequest, 0, &cursor, |_| 0, |_| 0), None);
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
            .map(|_| pick(LbPolicy::RoundRobin, 3, &cursor, |_| 0, |_| 0).unwrap())
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
        let picked = pick(LbPolicy::LeastRequest, 2, &cursor, |i| [5, 1][i], |_| 0);
        assert_eq!(picked, Some(1));
    }
}
