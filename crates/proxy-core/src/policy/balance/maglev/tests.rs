//! Tests of the Maglev table: slots shared evenly and by weight, and keys that stay put.

use super::*;
use xxhash_rust::xxh3::xxh3_64;

fn names(n: usize) -> Vec<(String, u32)> {
    (0..n).map(|i| (format!("10.0.0.{i}:8080"), 1)).collect()
}

fn share(table: &Maglev, index: usize) -> usize {
    table.table.iter().filter(|&&i| i as usize == index).count()
}

#[test]
fn slots_are_shared_evenly_and_by_weight() {
    let table = Maglev::new(&names(7)).unwrap();
    assert!(table.table.iter().all(|&i| i < 7));
    for i in 0..7 {
        let n = share(&table, i);
        assert!(n.abs_diff(TABLE_SIZE / 7) <= 2, "endpoint {i}: {n}");
    }
    let weighted = Maglev::new(&[("a:1", 2), ("b:1", 1)]).unwrap();
    let a = share(&weighted, 0) as f64 / TABLE_SIZE as f64;
    assert!((a - 2.0 / 3.0).abs() < 0.01, "{a}");
    assert!(Maglev::new::<&str>(&[]).is_none());
}

#[test]
fn removing_an_endpoint_keeps_almost_every_other_key() {
    let all = names(10);
    let before = Maglev::new(&all).unwrap();
    let mut rest = all.clone();
    rest.remove(6);
    let after = Maglev::new(&rest).unwrap();
    let (mut kept, mut surviving) = (0, 0);
    for key in 0..50_000u64 {
        let hash = xxh3_64(&key.to_le_bytes());
        let old = &all[before.find(hash, |_| true).unwrap()].0;
        if old == &all[6].0 {
            continue;
        }
        surviving += 1;
        if old == &rest[after.find(hash, |_| true).unwrap()].0 {
            kept += 1;
        }
    }
    let ratio = f64::from(kept) / f64::from(surviving);
    assert!(ratio >= 0.95, "{ratio}");
}

#[test]
fn an_ineligible_endpoint_is_replaced_by_another() {
    let table = Maglev::new(&names(4)).unwrap();
    for key in 0..2_000u64 {
        let hash = xxh3_64(&key.to_le_bytes());
        let found = table.find(hash, |i| i != 1).unwrap();
        assert_ne!(found, 1);
        // The same key always lands on the same replacement.
        assert_eq!(table.find(hash, |i| i != 1), Some(found));
    }
    assert_eq!(table.find(3, |_| false), None);
    assert_eq!(table.find(3, |i| i == 2), Some(2));
}
