//! Google's Maglev lookup table (NSDI 2016): each endpoint fills the slots of its own permutation in turn, weighted.
//!
//! The table has a prime number of slots, so every permutation visits every
//! slot; an endpoint's permutation depends only on its address (xxh3 with two
//! seeds), so removing one endpoint moves few keys besides its own.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Slots of the table: a prime much larger than any cluster.
pub const TABLE_SIZE: usize = 65_537;

/// How many rehashes try to find an eligible endpoint before walking the endpoints.
const REHASHES: u64 = 8;

/// The lookup table: slot → endpoint index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maglev {
    table: Vec<u32>,
    endpoints: usize,
}

impl Maglev {
    /// The table of endpoints named `name` (their address) with weights; `None` when there are none.
    pub fn new<S: AsRef<str>>(endpoints: &[(S, u32)]) -> Option<Self> {
        let max_weight = endpoints.iter().map(|(_, w)| *w).max().filter(|&w| w > 0)?;
        let m = TABLE_SIZE as u64;
        // Each endpoint's permutation: slot(j) = (offset + j × skip) mod M.
        let perms: Vec<(u64, u64)> = endpoints
            .iter()
            .map(|(name, _)| {
                let name = name.as_ref().as_bytes();
                let offset = xxh3_64_with_seed(name, 0) % m;
                let skip = xxh3_64_with_seed(name, 1) % (m - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0u64; endpoints.len()];
        // Weighted population (as Envoy's): an endpoint takes a slot in a round
        // when round × weight has caught up with its target; heavier ones more often.
        let mut target = vec![0u64; endpoints.len()];
        let mut table = vec![u32::MAX; TABLE_SIZE];
        let mut filled = 0;
        let mut round = 0u64;
        while filled < TABLE_SIZE {
            round += 1;
            for (i, (_, weight)) in endpoints.iter().enumerate() {
                if filled == TABLE_SIZE {
                    break;
                }
                let weight = u64::from(*weight);
                if weight == 0 || round * weight < target[i] {
                    continue;
                }
                target[i] += u64::from(max_weight);
                let (offset, skip) = perms[i];
                loop {
                    let slot = ((offset + next[i] * skip) % m) as usize;
                    next[i] += 1;
                    if table[slot] == u32::MAX {
                        table[slot] = i as u32;
                        filled += 1;
                        break;
                    }
                }
            }
        }
        Some(Self {
            table,
            endpoints: endpoints.len(),
        })
    }

    /// The endpoint for `hash` that `eligible` accepts: its slot's, else a
    /// rehashed slot's, else the next eligible endpoint after the slot's.
    pub fn find(&self, hash: u64, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let slot_of = |h: u64| self.table[(h % TABLE_SIZE as u64) as usize] as usize;
        let first = slot_of(hash);
        if eligible(first) {
            return Some(first);
        }
        for seed in 1..=REHASHES {
            let index = slot_of(xxh3_64_with_seed(&hash.to_le_bytes(), seed));
            if eligible(index) {
                return Some(index);
            }
        }
        (1..self.endpoints)
            .map(|k| (first + k) % self.endpoints)
            .find(|&index| eligible(index))
    }
}

#[cfg(test)]
mod tests;
