//! Table tests of effective weights: the slow-start ramp and the local-zone preference.

use super::*;

#[test]
fn slow_start_ramps_linearly_from_a_tenth() {
    assert_eq!(slow_start(1, 0, 30_000), 10);
    assert_eq!(slow_start(1, 15_000, 30_000), 55);
    assert_eq!(slow_start(1, 29_999, 30_000), 99);
    assert_eq!(slow_start(1, 30_000, 30_000), 100);
    assert_eq!(slow_start(4, 60_000, 30_000), 400);
    assert_eq!(slow_start(2, 10_000, 20_000), 110);
}

#[test]
fn the_local_zone_is_preferred_while_one_of_it_is_available() {
    let local = [true, false, true, false];
    assert!(prefer_local(4, |i| local[i], |_| true));
    // One local endpoint down: the other local one still takes it all.
    assert!(prefer_local(4, |i| local[i], |i| i != 0));
    // Both local endpoints down: fail over to every zone.
    assert!(!prefer_local(4, |i| local[i], |i| i % 2 == 1));
    assert!(!prefer_local(4, |_| false, |_| true));
}
