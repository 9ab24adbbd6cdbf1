//! Table tests of retry decisions, backoff bounds and the retry budget.

use super::*;

fn policy(attempts: u32, codes: &[u16]) -> RetryPolicy {
    RetryPolicy::compile(&config::Retry {
        attempts,
        codes: codes.to_vec(),
        backoff: Duration::from_millis(25),
    })
}

#[test]
fn statuses_are_a_set() {
    let p = policy(2, &[400, 463, 503, 599]);
    for (status, retried) in [
        (400, true),
        (463, true),
        (503, true),
        (599, true),
        (500, false),
        (200, false),
        (399, false),
        (600, false),
        (0, false),
    ] {
        assert_eq!(p.retries_status(status), retried, "{status}");
    }
}

#[test]
fn decisions_follow_method_outcome_and_attempts() {
    use Decision::{Retry as R, Return as N};
    use Outcome::*;
    let p = policy(2, &[503]);
    let (get, post, put, patch) = (Method::GET, Method::POST, Method::PUT, Method::PATCH);
    let cases = [
        // (method, outcome, retries done, decision)
        (&get, Status(503), 0, R),
        (&get, Status(503), 1, R),
        (&get, Status(503), 2, N),
        (&get, Status(500), 0, N),
        (&get, Status(200), 0, N),
        (&put, Status(503), 0, R),
        (&post, Status(503), 0, N),
        (&patch, Status(503), 0, N),
        (&get, NotSent, 0, R),
        (&post, NotSent, 0, R),
        (&post, NotSent, 2, N),
        (&get, Failed, 0, R),
        (&post, Failed, 0, N),
        (&get, TimedOut, 0, R),
        (&post, TimedOut, 0, N),
    ];
    for (method, outcome, done, want) in cases {
        assert_eq!(
            decide(&p, method, outcome, done),
            want,
            "{method} {outcome:?} after {done}"
        );
    }
    // attempts 0: never.
    assert_eq!(decide(&policy(0, &[503]), &get, NotSent, 0), N);
}

#[test]
fn idempotent_methods() {
    for (method, want) in [
        (Method::GET, true),
        (Method::HEAD, true),
        (Method::OPTIONS, true),
        (Method::PUT, true),
        (Method::DELETE, true),
        (Method::TRACE, true),
        (Method::POST, false),
        (Method::PATCH, false),
        (Method::CONNECT, false),
    ] {
        assert_eq!(idempotent(&method), want, "{method}");
    }
}

#[test]
fn errors_map_to_outcomes() {
    use crate::error::ErrorKind;
    for (kind, want) in [
        (ErrorKind::ConnectFailed, Outcome::NotSent),
        (ErrorKind::ConnectTimeout, Outcome::NotSent),
        (ErrorKind::UpstreamTls, Outcome::NotSent),
        (ErrorKind::UpstreamFailed, Outcome::Failed),
        (ErrorKind::RequestTimeout, Outcome::TimedOut),
        (
            ErrorKind::Overflow(crate::upstream::breaker::Limit::Requests),
            Outcome::Refused,
        ),
    ] {
        assert_eq!(Outcome::of_error(&ProxyError::new(kind)), want, "{kind:?}");
    }
}

#[test]
fn an_overflow_is_not_retried() {
    let policy = RetryPolicy::compile(&config::Retry {
        attempts: 3,
        codes: vec![503],
        backoff: Duration::from_millis(25),
    });
    assert_eq!(
        decide(&policy, &Method::GET, Outcome::Refused, 0),
        Decision::Return
    );
}

#[test]
fn backoff_grows_exponentially_to_ten_times_the_base_with_full_jitter() {
    let base = Duration::from_millis(25);
    // The largest draw shows the ceiling; the smallest is always zero.
    let ceiling = |retry| backoff(base, retry, |n| n - 1);
    let cases = [
        (1, 25),
        (2, 50),
        (3, 100),
        (4, 200),
        (5, 250),
        (6, 250),
        (40, 250),
    ];
    for (retry, ms) in cases {
        assert_eq!(ceiling(retry), Duration::from_millis(ms), "retry {retry}");
        assert_eq!(backoff(base, retry, |_| 0), Duration::ZERO);
    }
    assert_eq!(backoff(Duration::ZERO, 3, |n| n - 1), Duration::ZERO);
    // Real draws stay within the bounds.
    for _ in 0..1000 {
        let d = backoff(base, 3, |n| crate::rng::below(n as usize) as u64);
        assert!(d <= Duration::from_millis(100), "{d:?}");
    }
}

fn budget(percent: f64, min: u32) -> RetryBudget {
    RetryBudget::new(&config::RetryBudget {
        percent,
        min_retries_per_second: min,
    })
}

/// Sends `per_second` requests a second for `seconds`, each failing, each retried
/// while the budget allows; returns (requests, retries).
fn sustained_failure(b: &RetryBudget, per_second: u64, seconds: u64) -> (u64, u64) {
    let mut retries = 0;
    for now in 0..seconds {
        for _ in 0..per_second {
            b.deposit_at(now);
            // Up to two retries per request, as with attempts 2.
            for _ in 0..2 {
                if b.try_withdraw_at(now) {
                    retries += 1;
                }
            }
        }
    }
    (per_second * seconds, retries)
}

#[test]
fn the_budget_caps_retries_at_the_percentage_plus_the_reserve() {
    // (percent, min per second, requests per second, seconds, retries allowed)
    let cases = [
        // One window: 20% of 1000 requests + 10/s × 10 s.
        (20.0, 10, 100, 10, 200 + 100),
        // Three windows: per window, 20% of its requests + the reserve.
        (20.0, 10, 100, 30, 3 * (200 + 100)),
        (20.0, 0, 100, 10, 200),
        (0.0, 0, 100, 10, 0),
        (0.0, 10, 100, 10, 100),
        (100.0, 0, 10, 10, 100),
        (2.5, 0, 400, 10, 100),
    ];
    for (percent, min, rate, seconds, allowed) in cases {
        let b = budget(percent, min);
        let (requests, retries) = sustained_failure(&b, rate, seconds);
        // Windows overlap by a second at their edges: allow that much slack.
        let slack = (rate as f64 * percent / 100.0) as u64 + u64::from(min) + 1;
        assert!(
            retries <= allowed + slack && retries + slack >= allowed,
            "{percent}% +{min}/s at {rate}/s for {seconds}s: {retries} retries of {requests} requests, want ~{allowed}"
        );
    }
}

#[test]
fn the_budget_refills_as_old_seconds_leave_the_window() {
    let b = budget(20.0, 1);
    // The reserve alone: 10 retries.
    let taken = (0..50).filter(|_| b.try_withdraw_at(0)).count();
    assert_eq!(taken, 10);
    assert!(!b.try_withdraw_at(5));
    // Ten seconds on, the withdrawals of second 0 are forgotten.
    assert!(b.try_withdraw_at(10));
    // Deposits: 5 requests give one retry.
    let b = budget(20.0, 0);
    for _ in 0..4 {
        b.deposit_at(3);
    }
    assert!(!b.try_withdraw_at(3));
    b.deposit_at(3);
    assert!(b.try_withdraw_at(4));
    assert!(!b.try_withdraw_at(4));
    // Deposits expire with their second.
    for _ in 0..10 {
        b.deposit_at(20);
    }
    assert!((b.balance_at(29) - 2.0).abs() < 1e-9);
    assert!(b.balance_at(30).abs() < 1e-9);
}
