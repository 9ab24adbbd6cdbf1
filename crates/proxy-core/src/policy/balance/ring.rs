//! A Ketama-style consistent-hash ring: virtual nodes in proportion to weight, hashed with xxh3 so that every process agrees.
//!
//! An endpoint's virtual nodes sit where the hashes of `"<address>_<n>"` fall,
//! independently of the other endpoints, so removing one endpoint moves only
//! the keys it held.

use xxhash_rust::xxh3::xxh3_64;

/// Fewest entries a ring of a non-empty cluster has.
pub const MIN_ENTRIES: u64 = 1024;

/// The ring: virtual nodes sorted by hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    entries: Vec<(u64, u32)>,
}

impl Ring {
    /// The ring of endpoints named `name` (their address) with weights.
    ///
    /// Each unit of weight gets the same number of virtual nodes: a power of
    /// two chosen so the ring has at least [`MIN_ENTRIES`]. Powers of two keep
    /// that number the same when a cluster loses or gains a few endpoints.
    pub fn new<S: AsRef<str>>(endpoints: &[(S, u32)]) -> Self {
        let total: u64 = endpoints.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return Self {
                entries: Vec::new(),
            };
        }
        let per_weight = MIN_ENTRIES.div_ceil(total).next_power_of_two();
        let mut entries = Vec::with_capacity((total * per_weight) as usize);
        let mut key = String::new();
        for (index, (name, weight)) in endpoints.iter().enumerate() {
            for n in 0..u64::from(*weight) * per_weight {
                key.clear();
                key.push_str(name.as_ref());
                key.push('_');
                key.push_str(&n.to_string());
                entries.push((xxh3_64(key.as_bytes()), index as u32));
            }
        }
        // Ties (practically never) are broken by index, so the ring is the same every time.
        entries.sort_unstable();
        Self { entries }
    }

    /// Entries on the ring.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the ring has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The endpoint of the first entry at or after `hash`, going round, that `eligible` accepts.
    pub fn find(&self, hash: u64, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let len = self.entries.len();
        let start = self.entries.partition_point(|(h, _)| *h < hash);
        (0..len)
            .map(|k| self.entries[(start + k) % len].1 as usize)
            .find(|&index| eligible(index))
    }
}

#[cfg(test)]
mod tests;
