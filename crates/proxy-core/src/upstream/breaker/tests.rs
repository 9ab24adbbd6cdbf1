//! Tests of circuit breakers: slots up to each limit and back on drop, and a waiting request woken.

use super::*;

fn limits(max: usize) -> Limits {
    Limits {
        max_connections: max,
        max_pending_requests: max,
        max_requests: max,
    }
}

#[test]
fn slots_stop_at_the_limit_and_come_back_on_drop() {
    let counters = Arc::new(Counters::default());
    let limits = limits(2);
    let a = counters.acquire(Limit::Requests, &limits).unwrap();
    let b = counters.acquire(Limit::Requests, &limits).unwrap();
    assert!(counters.acquire(Limit::Requests, &limits).is_none());
    assert_eq!(counters.count(Limit::Requests), 2);
    drop(a);
    let c = counters.acquire(Limit::Requests, &limits).unwrap();
    drop((b, c));
    assert_eq!(counters.count(Limit::Requests), 0);
}

#[test]
fn limits_are_counted_apart() {
    let counters = Arc::new(Counters::default());
    let limits = limits(1);
    let _request = counters.acquire(Limit::Requests, &limits).unwrap();
    let _connection = counters.acquire(Limit::Connections, &limits).unwrap();
    assert!(counters.acquire(Limit::Connections, &limits).is_none());
    assert!(counters.acquire(Limit::PendingRequests, &limits).is_some());
}

#[test]
fn no_limit_never_refuses() {
    let counters = Arc::new(Counters::default());
    let slots: Vec<_> = (0..1000)
        .map(|_| counters.acquire(Limit::Requests, &Limits::NONE))
        .collect();
    assert!(slots.iter().all(Option::is_some));
    drop(slots);
    assert_eq!(counters.count(Limit::Requests), 0);
}

#[test]
fn config_maps_missing_limits_to_none() {
    let config = CircuitBreakers {
        max_connections: Some(3),
        max_pending_requests: None,
        max_requests: Some(7),
    };
    let limits = Limits::from_config(Some(&config));
    assert_eq!(limits.max_connections, 3);
    assert_eq!(limits.max_pending_requests, usize::MAX);
    assert_eq!(limits.max_requests, 7);
    assert_eq!(Limits::from_config(None), Limits::NONE);
}

// Paused time: the sleep below returns once the waiter is parked, not after 20 ms.
#[tokio::test(start_paused = true)]
async fn a_closed_connection_wakes_a_waiting_request() {
    let counters = Arc::new(Counters::default());
    let limits = limits(1);
    let slot = counters.acquire(Limit::Connections, &limits).unwrap();
    let waiter = Arc::clone(&counters);
    let waiting = tokio::spawn(async move {
        let freed = waiter.freed();
        tokio::pin!(freed);
        freed.as_mut().enable();
        if waiter.acquire(Limit::Connections, &limits).is_none() {
            freed.await;
        }
        waiter.acquire(Limit::Connections, &limits).is_some()
    });
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    drop(slot);
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await;
    assert!(got.unwrap().unwrap());
}
