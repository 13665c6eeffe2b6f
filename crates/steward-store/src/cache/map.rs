//! One kind's cache: a map bounded by a weight budget, whose generation moves with every
//! invalidation so that a read begun before one cannot store what it read. It knows nothing of
//! the database, the listener or what its entries are.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::MAX_AGE;

/// One kind's entries, bounded by a weight budget (entry count, or approximate bytes for kinds
/// whose rows can be large).
pub(crate) struct Cache<K, V> {
    budget: usize,
    weigh: fn(&V) -> usize,
    entries: Mutex<Entries<K, V>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct Entries<K, V> {
    map: HashMap<K, Entry<V>>,
    weight: usize,
    /// Moved by every invalidation; an insert read under another generation is refused.
    generation: u64,
}

struct Entry<V> {
    value: V,
    weight: usize,
    stored: Instant,
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    pub(crate) fn new(budget: usize, weigh: fn(&V) -> usize) -> Self {
        Cache {
            budget,
            weigh,
            entries: Mutex::new(Entries { map: HashMap::new(), weight: 0, generation: 0 }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<K, V>> {
        // A panic while holding the lock leaves a consistent map (no method panics half-way).
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let mut e = self.lock();
        let found = match e.map.get(key) {
            Some(entry) if entry.stored.elapsed() < MAX_AGE => Some(entry.value.clone()),
            Some(_) => {
                // Expired: dropping it is not an invalidation (no generation move).
                let old = e.map.remove(key).expect("just seen");
                e.weight -= old.weight;
                None
            }
            None => None,
        };
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Stores `value` unless the cache was invalidated since `generation` was read.
    pub(crate) fn insert(&self, generation: u64, key: K, value: V) {
        let weight = (self.weigh)(&value).max(1);
        let mut e = self.lock();
        if e.generation != generation || weight > self.budget {
            return;
        }
        if let Some(old) = e.map.remove(&key) {
            e.weight -= old.weight;
        }
        // Evict arbitrary entries: the hot set comes back on its next read.
        while e.weight + weight > self.budget {
            let Some(victim) = e.map.keys().next().cloned() else { break };
            let old = e.map.remove(&victim).expect("just seen");
            e.weight -= old.weight;
        }
        e.weight += weight;
        e.map.insert(key, Entry { value, weight, stored: Instant::now() });
    }

    pub(crate) fn remove(&self, key: &K) {
        self.retain(|k, _| k != key);
    }

    pub(crate) fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        let mut e = self.lock();
        e.generation += 1;
        let mut dropped = 0;
        e.map.retain(|k, entry| {
            let kept = keep(k, &entry.value);
            if !kept {
                dropped += entry.weight;
            }
            kept
        });
        e.weight -= dropped;
    }

    pub(crate) fn clear(&self) {
        self.retain(|_, _| false);
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats { hits: self.hits.load(Ordering::Relaxed), misses: self.misses.load(Ordering::Relaxed), entries: self.lock().map.len() }
    }
}

/// Hits, misses and entries of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_insert_read_before_an_invalidation_is_refused() {
        let cache: Cache<&str, i32> = Cache::new(10, |_| 1);
        let before = cache.generation();
        cache.remove(&"other");
        cache.insert(before, "a", 1);
        assert_eq!(cache.get(&"a"), None, "an invalidation of any key of the cache moved its generation");
        cache.insert(cache.generation(), "a", 2);
        assert_eq!(cache.get(&"a"), Some(2));
    }

    #[test]
    fn the_budget_bounds_the_weight() {
        let cache: Cache<u32, String> = Cache::new(10, |s| s.len());
        for i in 0..100 {
            cache.insert(cache.generation(), i, "abc".into());
        }
        let e = cache.lock();
        assert!(e.weight <= 10 && e.map.len() == 3, "weight {} with {} entries", e.weight, e.map.len());
        assert_eq!(e.weight, e.map.values().map(|v| v.weight).sum::<usize>());
        drop(e);
        cache.insert(cache.generation(), 1000, "x".repeat(11));
        assert_eq!(cache.get(&1000), None, "an entry over the whole budget is not stored");
    }
}
