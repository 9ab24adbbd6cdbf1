//! Tests of outlier detection: streaks of errors, ejections that end and back off, the max-percent cap.

use super::*;

fn policy() -> Policy {
    Policy::from_config(&OutlierDetection {
        consecutive_5xx: Some(3),
        consecutive_gateway_errors: None,
        interval: Duration::from_secs(10),
        base_ejection_time: Duration::from_secs(30),
        max_ejection_percent: 10,
    })
}

const S: u64 = 1000;

#[test]
fn a_streak_of_5xx_asks_for_ejection_and_a_success_resets_it() {
    let health = Health::default();
    let p = policy();
    assert!(!health.record(&p, Outcome::Response(500)));
    assert!(!health.record(&p, Outcome::Failure));
    assert!(!health.record(&p, Outcome::Response(404)));
    assert!(!health.record(&p, Outcome::Response(503)));
    assert!(!health.record(&p, Outcome::Response(500)));
    assert!(health.record(&p, Outcome::Response(502)));
}

#[test]
fn gateway_errors_count_apart_from_other_5xx() {
    let p = Policy {
        consecutive_5xx: u32::MAX,
        consecutive_gateway_errors: 2,
        ..policy()
    };
    let health = Health::default();
    assert!(!health.record(&p, Outcome::Response(502)));
    // A 500 is not a gateway error: the streak restarts.
    assert!(!health.record(&p, Outcome::Response(500)));
    assert!(!health.record(&p, Outcome::Response(504)));
    assert!(health.record(&p, Outcome::Failure));
    assert!(!health.record(&p, Outcome::Connected));
}

#[test]
fn ejection_lasts_its_time_then_ends_once() {
    let health = Health::default();
    let p = policy();
    let until = health.eject(&p, 100 * S).unwrap();
    assert_eq!(until, 130 * S);
    assert!(health.is_ejected(129 * S));
    // Already ejected: a second ejection loses.
    assert_eq!(health.eject(&p, 101 * S), None);
    assert!(!health.expire(129 * S));
    assert!(!health.is_ejected(130 * S));
    assert!(health.expire(130 * S));
    assert!(!health.expire(130 * S));
    assert!(!health.has_ejection());
}

#[test]
fn repeated_ejections_back_off_and_the_count_decays() {
    let p = policy();
    // Ejected again right after the first ended: twice the base.
    assert_eq!(p.ejection(1, 130 * S, 131 * S), (60 * S, 2));
    // After two intervals in, the count went down by two first.
    assert_eq!(p.ejection(2, 100 * S, 120 * S), (30 * S, 1));
    // Capped at 300 s.
    assert_eq!(p.ejection(50, 0, 0), (300 * S, 51));
    // ...unless the base itself is longer.
    let long = Policy {
        base_ms: 600 * S,
        ..p
    };
    assert_eq!(long.ejection(3, 0, 0), (600 * S, 4));
    let health = Health::default();
    let first = health.eject(&p, S).unwrap();
    assert!(health.expire(first));
    let second = health.eject(&p, first + 1).unwrap();
    assert_eq!(second - (first + 1), 60 * S);
    assert_eq!(health.times_ejected(), 2);
}

#[test]
fn max_percent_allows_at_least_one() {
    assert!(may_eject(0, 5, 10));
    assert!(!may_eject(1, 5, 10));
    assert!(may_eject(0, 3, 0));
    assert!(may_eject(4, 10, 50));
    assert!(!may_eject(5, 10, 50));
    assert!(may_eject(9, 10, 100));
}
