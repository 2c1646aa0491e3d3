//! Locked state split in sixteen, for maps that every request touches: the device-token
//! and session-cookie memos, the registry's touch throttle. A request locks the one shard
//! its key hashes to, so the workers of a many-core server meet on a lock a sixteenth as
//! often, and work on a whole shard (a sweep) holds up only its own keys.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// How many shards.
pub(crate) const SHARDS: usize = 16;

pub(crate) struct Shards<T> {
    shards: Box<[Shard<T>]>,
}

/// One shard, on cache lines of its own: two locks on one line would make the workers'
/// caches trade it as if they shared one lock.
#[repr(align(128))]
struct Shard<T>(Mutex<T>);

impl<T: Default> Default for Shards<T> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard(Mutex::default())).collect(),
        }
    }
}

impl<T> Shards<T> {
    /// The shard of a key whose seeded hash is `hash`, locked. It is picked by the hash's
    /// upper half, the bits a hash map keyed by the same hash uses least (hashbrown takes
    /// the low bits for the bucket and the top seven for its tags). A poisoned shard is
    /// still consistent: nothing panics while one is held.
    pub(crate) fn lock(&self, hash: u64) -> MutexGuard<'_, T> {
        self.shards[(hash >> 32) as usize % SHARDS]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every shard, locked in turn (for tests of the bounds).
    #[cfg(test)]
    pub(crate) fn each(&self) -> impl Iterator<Item = MutexGuard<'_, T>> {
        self.shards
            .iter()
            .map(|s| s.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A map keyed by a seeded hash the caller already took (the one that picked the shard):
/// its hasher passes the key through, so a lookup hashes once. Two keys with one hash
/// share a slot; the value holds what tells them apart.
pub(crate) type ByHash<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

/// The hasher of [`ByHash`]: the key is already a keyed hash.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
