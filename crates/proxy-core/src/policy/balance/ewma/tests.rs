//! Tests of peak EWMA: peaks and decay of the estimate, probing, cost, and the atomics against the pure functions.

use super::*;

const MS: u64 = 1_000_000;

#[test]
fn a_peak_replaces_the_estimate_at_once() {
    assert_eq!(update(10 * MS, 0, 200 * MS, 1, DECAY), 200 * MS);
    assert_eq!(update(0, 0, 5 * MS, 1, DECAY), 5 * MS);
}

#[test]
fn faster_samples_decay_in_with_time() {
    let tau = Duration::from_secs(10);
    // Right after the last update a fast sample barely moves the estimate.
    let soon = update(100 * MS, 0, 10 * MS, MS, tau);
    assert!(soon > 99 * MS, "{soon}");
    // One time constant later it moves 1 - 1/e of the way.
    let later = update(100 * MS, 0, 10 * MS, 10_000 * MS, tau);
    let expected = 10.0 + 90.0 / std::f64::consts::E;
    assert!(((later / MS) as f64 - expected).abs() < 1.0, "{later}");
}

#[test]
fn an_endpoint_without_samples_is_probed_once_then_waits_for_its_answer() {
    assert_eq!(cost(0.0, 0, 1), 0.0, "idle and unknown: try it");
    assert!(
        cost(0.0, 1, 1) > cost(30.0 * MS as f64, 1000, 1),
        "its probe is out"
    );
}

#[test]
fn no_sample_reads_zero_and_old_estimates_fade() {
    assert_eq!(current(0, 0, 5, DECAY), 0.0);
    let fresh = current(100 * MS, 0, 0, DECAY);
    let old = current(100 * MS, 0, 30_000 * MS, DECAY);
    assert_eq!(fresh, (100 * MS) as f64);
    assert!(old < (6 * MS) as f64, "{old}");
}

#[test]
fn cost_grows_with_load_and_shrinks_with_weight() {
    assert_eq!(cost(10.0, 0, 1), 10.0);
    assert_eq!(cost(10.0, 3, 1), 40.0);
    assert_eq!(cost(10.0, 3, 4), 10.0);
}

#[test]
fn atomics_follow_the_pure_functions() {
    let ewma = PeakEwma::default();
    assert_eq!(ewma.estimate_ns(1), 0.0);
    ewma.observe(50 * MS, 1);
    assert_eq!(ewma.estimate_ns(1), (50 * MS) as f64);
    ewma.observe(80 * MS, 2);
    assert_eq!(ewma.estimate_ns(2), (80 * MS) as f64);
}
