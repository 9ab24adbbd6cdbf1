//! Tests of the hash ring: entries by weight, stable hashes, spread, and keys that stay put.

use super::*;

fn names(n: usize) -> Vec<(String, u32)> {
    (0..n).map(|i| (format!("10.0.0.{i}:8080"), 1)).collect()
}

#[test]
fn ring_has_enough_entries_in_proportion_to_weight() {
    let ring = Ring::new(&names(10));
    assert_eq!(ring.len(), 1280);
    let weighted = Ring::new(&[("a:1", 3), ("b:1", 1)]);
    let a = weighted.entries.iter().filter(|(_, i)| *i == 0).count();
    assert_eq!(a, 3 * weighted.len() / 4);
    assert!(Ring::new::<&str>(&[]).is_empty());
}

#[test]
fn hashes_are_stable_across_processes() {
    // xxh3 is a fixed algorithm: these values never change.
    assert_eq!(xxh3_64(b""), 0x2d06_8005_38d3_94c2);
    assert_eq!(xxh3_64(b"10.0.0.1:8080_0"), xxh3_64(b"10.0.0.1:8080_0"));
}

#[test]
fn keys_spread_over_endpoints_roughly_by_weight() {
    let ring = Ring::new(&names(4));
    let mut seen = [0usize; 4];
    for key in 0..40_000u64 {
        let i = ring.find(xxh3_64(&key.to_le_bytes()), |_| true).unwrap();
        seen[i] += 1;
    }
    assert!(
        seen.iter().all(|&n| (7_000..13_000).contains(&n)),
        "{seen:?}"
    );
}

#[test]
fn removing_an_endpoint_moves_only_its_keys() {
    let all = names(10);
    let before = Ring::new(&all);
    let mut rest = all.clone();
    rest.remove(3);
    let after = Ring::new(&rest);
    let mut moved_to_others = 0;
    for key in 0..20_000u64 {
        let hash = xxh3_64(&key.to_le_bytes());
        let old = &all[before.find(hash, |_| true).unwrap()].0;
        let new = &rest[after.find(hash, |_| true).unwrap()].0;
        if old != &all[3].0 {
            assert_eq!(old, new, "key {key} moved off a surviving endpoint");
        } else {
            moved_to_others += 1;
        }
    }
    assert!(moved_to_others > 1000, "{moved_to_others}");
}

#[test]
fn an_ineligible_endpoint_is_walked_past_and_others_keep_their_keys() {
    let ring = Ring::new(&names(5));
    for key in 0..2_000u64 {
        let hash = xxh3_64(&key.to_le_bytes());
        let first = ring.find(hash, |_| true).unwrap();
        let skipping = ring.find(hash, |i| i != 2).unwrap();
        assert_ne!(skipping, 2);
        if first != 2 {
            assert_eq!(first, skipping);
        }
    }
    assert_eq!(ring.find(7, |_| false), None);
}
