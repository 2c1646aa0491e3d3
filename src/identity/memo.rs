//! A bounded memo from exact byte strings to what was derived from them, for work that
//! a browser makes the server repeat on every request with the same bytes: verifying its
//! device token (keyed BLAKE3 or an AES-GCM-SIV open), hashing its session token.
//! `Sessions` also keeps beside a session token's hash the hot entry of its last passed
//! check, which is not derived from the bytes: that entry is checked again in full on
//! every use (`SessionService::check_hot`), so a stale one only sends the request to the
//! full check.
//!
//! Sound where the derivation is a pure function of the bytes and of keys that never
//! change for the memo's owner: an entry exists only for bytes that were derived in full,
//! and a hit compares every byte. For device tokens only the time-dependent checks
//! (expiry, lifetime) run again on a hit. An attacker gains nothing: bytes that differ
//! anywhere miss and are derived in full; whether a given token is remembered tells only
//! someone who already holds that token. Memory is bounded: past its share a shard drops
//! an arbitrary entry. Tokens are held only in this process's memory, never in a store.

use std::hash::BuildHasher;

use crate::identity::shards::{ByHash, Shards, SHARDS};

/// Entries held in all (a few hundred bytes each at most: device tokens are bounded by
/// `MAX_TOKEN_LEN`, session tokens have a fixed length).
const CAPACITY: usize = 16 * 1024;

/// A seeded hash of the bytes (foldhash, its seed random per process), used whole as the
/// map key: no second hash per lookup. Two values with one hash share a slot and only
/// make each other miss; a shard holds at most `CAPACITY / SHARDS` entries, which bounds
/// what a crowd of colliding values could cost a lookup.
type Shard<T> = ByHash<(Box<[u8]>, T)>;

pub(crate) struct Memo<T> {
    shards: Shards<Shard<T>>,
    hasher: foldhash::fast::RandomState,
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Self {
            shards: Shards::default(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl<T: Clone> Memo<T> {
    fn shard(&self, hash: u64) -> std::sync::MutexGuard<'_, Shard<T>> {
        self.shards.lock(hash)
    }

    /// What `value` was derived to before; otherwise `derive` runs (with no lock held)
    /// and a success is remembered. A failure is never remembered.
    pub(crate) fn get_or_derive<E>(
        &self,
        value: &[u8],
        derive: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        self.read_or_derive(value, derive, T::clone)
    }

    /// [`get_or_derive`](Self::get_or_derive), handing what is remembered to `read`
    /// rather than cloning it out. On a hit `read` runs with the entry's shard locked:
    /// it must be short, and must not use this memo.
    pub(crate) fn read_or_derive<E, R>(
        &self,
        value: &[u8],
        derive: impl FnOnce() -> Result<T, E>,
        read: impl FnOnce(&T) -> R,
    ) -> Result<R, E> {
        let hash = self.hasher.hash_one(value);
        {
            let shard = self.shard(hash);
            if let Some((bytes, derived)) = shard.get(&hash) {
                if **bytes == *value {
                    return Ok(read(derived));
                }
            }
        }
        let derived = derive()?;
        let answer = read(&derived);
        self.store(hash, value, derived);
        Ok(answer)
    }

    /// Remembers `derived` for `value`, in place of what was remembered before.
    pub(crate) fn insert(&self, value: &[u8], derived: T) {
        self.store(self.hasher.hash_one(value), value, derived);
    }

    fn store(&self, hash: u64, value: &[u8], derived: T) {
        let mut shard = self.shard(hash);
        if shard.len() >= CAPACITY / SHARDS && !shard.contains_key(&hash) {
            if let Some(victim) = shard.keys().next().copied() {
                shard.remove(&victim);
            }
        }
        shard.insert(hash, (value.into(), derived));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.each().map(|s| s.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::device_id::DeviceId;
    use crate::identity::token::{Mode, Token};

    fn token(n: u8) -> Token {
        Token {
            id: DeviceId::from_bytes([n; 16]),
            mode: Mode::Signed,
            key_id: Some(1),
            issued_at: Some(1_000),
            expires_at: None,
            retired_key: false,
            legacy_format: false,
        }
    }

    /// What the memo answers for `value`, without deriving anything.
    fn remembered(cache: &Memo<Token>, value: &[u8]) -> Option<Token> {
        cache.get_or_derive(value, || Err(())).ok()
    }

    #[test]
    fn only_the_exact_bytes_hit() {
        let cache = Memo::<Token>::default();
        assert_eq!(
            cache.get_or_derive(b"AQAAAAEabc", || Ok::<_, ()>(token(1))),
            Ok(token(1))
        );
        assert_eq!(remembered(&cache, b"AQAAAAEabc"), Some(token(1)));
        for other in [&b"AQAAAAEabd"[..], b"AQAAAAEab", b"AQAAAAEabcd", b""] {
            assert_eq!(remembered(&cache, other), None, "{other:?}");
        }
    }

    #[test]
    fn failures_are_not_remembered() {
        let cache = Memo::<Token>::default();
        assert_eq!(cache.get_or_derive(b"bad", || Err("no")), Err("no"));
        assert_eq!(remembered(&cache, b"bad"), None);
    }

    #[test]
    fn an_insert_replaces_only_its_own_bytes() {
        let cache = Memo::<Token>::default();
        cache.insert(b"one", token(1));
        cache.insert(b"two", token(3));
        cache.insert(b"one", token(2));
        assert_eq!(remembered(&cache, b"one"), Some(token(2)));
        assert_eq!(remembered(&cache, b"two"), Some(token(3)));
        assert_eq!(remembered(&cache, b"onf"), None);
    }

    #[test]
    fn it_stays_within_its_capacity() {
        let cache = Memo::<Token>::default();
        for n in 0..3 * CAPACITY {
            let _ = cache.get_or_derive(format!("token-{n}").as_bytes(), || Ok::<_, ()>(token(1)));
        }
        assert!(cache.len() <= CAPACITY, "{} entries", cache.len());
        assert!(cache.len() > CAPACITY / 2, "{} entries", cache.len());
    }
}
