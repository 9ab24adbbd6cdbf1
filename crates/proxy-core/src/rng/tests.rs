//! Tests of the random numbers: ranges covered, chances that follow their percent.

use super::*;

#[test]
fn below_stays_in_range_and_covers_it() {
    let mut seen = [0usize; 5];
    for _ in 0..5000 {
        seen[below(5)] += 1;
    }
    assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
}

#[test]
fn chances_follow_their_percent() {
    let n = 200_000u64;
    // (percent, expected share)
    for (percent, share) in [
        (0.0, 0.0),
        (0.5, 0.005),
        (10.0, 0.1),
        (50.0, 0.5),
        (100.0, 1.0),
    ] {
        let chance = Chance::percent(percent);
        // An even spread of draws over u64 shows the threshold exactly.
        let hits = (0..n)
            .filter(|i| chance.hit(i.wrapping_mul(u64::MAX / n)))
            .count() as f64;
        assert!(
            (hits / n as f64 - share).abs() < 0.001,
            "{percent}%: {hits}"
        );
    }
    assert_eq!(Chance::percent(0.0), Chance::Never);
    assert_eq!(Chance::percent(100.0), Chance::Always);
    assert!(Chance::Always.hit(u64::MAX));
    assert!(!Chance::percent(99.999).hit(u64::MAX));
}
