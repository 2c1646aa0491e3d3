//! Typed records above the byte [`Store`]: a format version and a
//! serde payload in a compact binary encoding (postcard).
//!
//! A record that fails to decode is an error naming its key — never a panic, never
//! silently replaced. Decoding is canonical: bytes that decode but would not be written
//! back identically (an over-long varint, trailing bytes) are rejected too, so one record
//! has exactly one stored form.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use actix_device_store::{CasOutcome, KeyName, Peek, Store, Watch};

use crate::core::error::{RecordError, ServiceError};

/// A value the library stores under a key.
pub trait Record: Serialize + DeserializeOwned {
    /// What the record is, for error messages (`"device"`, `"session"`, ...).
    const KIND: &'static str;
    /// The format version written in the first byte. Bump it when the layout changes.
    const VERSION: u8;
}

/// The stored bytes of `record`.
#[must_use]
pub fn encode<T: Record>(record: &T) -> Vec<u8> {
    let out = vec![T::VERSION];
    // postcard serialises any serde value that has no maps with non-string keys and no
    // unsized sequences; every record type in this crate is such a value.
    match postcard::to_extend(record, out) {
        Ok(bytes) => bytes,
        Err(e) => unreachable!("{} records always serialise: {e}", T::KIND),
    }
}

/// Reads the record stored under `key`.
pub fn decode<T: Record>(key: &[u8], bytes: &[u8]) -> Result<T, RecordError> {
    let (&version, payload) = bytes.split_first().ok_or_else(|| RecordError::Empty {
        kind: T::KIND,
        key: KeyName::new(key),
    })?;
    if version != T::VERSION {
        return Err(RecordError::Version {
            kind: T::KIND,
            key: KeyName::new(key),
            found: version,
            expected: T::VERSION,
        });
    }
    let corrupt = |reason: String| RecordError::Corrupt {
        kind: T::KIND,
        key: KeyName::new(key),
        reason,
    };
    let record: T = postcard::from_bytes(payload).map_err(|e| corrupt(e.to_string()))?;
    if encode(&record) != bytes {
        return Err(corrupt("not in canonical form".to_owned()));
    }
    Ok(record)
}

/// Decoded records kept beside the bytes they came from, so a hot read that finds the same
/// bytes in the store again skips decoding. Coherent with any store, shared or not: the
/// bytes are read every time and compared, only the decoding is saved. A store that
/// answers [`Store::peek`] hands out the very allocation it holds, so an unchanged record
/// is recognised by pointer before any byte is compared, and read with no future at all.
pub(crate) struct DecodeCache<T> {
    entries: std::sync::Mutex<Decoded<T>>,
}

/// A record read through a [`DecodeCache`].
pub(crate) struct Read<T> {
    /// The record.
    pub(crate) record: Arc<T>,
    /// The allocation the store answered from memory, if it did.
    pub(crate) peeked: Option<Arc<[u8]>>,
    /// A watch on that answer, if the store keeps one ([`Store::peek_watched`]).
    pub(crate) watch: Option<Watch>,
}

/// Key → (the stored bytes, the record they decode to).
type Decoded<T> = std::collections::HashMap<Box<[u8]>, (Arc<[u8]>, Arc<T>)>;

/// Entries a [`DecodeCache`] holds; past that an arbitrary one makes room.
const MAX_DECODED: usize = 50_000;

impl<T> Default for DecodeCache<T> {
    fn default() -> Self {
        Self {
            entries: std::sync::Mutex::default(),
        }
    }
}

impl<T: Record> DecodeCache<T> {
    /// The record under `key`, decoded once per distinct stored form, with the allocation
    /// the store answered from if it answered from memory ([`Store::peek`]): while the
    /// store answers `key` with that very allocation again, the record is unchanged.
    pub(crate) async fn read(
        &self,
        records: &Records,
        key: &[u8],
    ) -> Result<Option<Read<T>>, ServiceError> {
        let store = records.store();
        let (bytes, peeked, watch): (Arc<[u8]>, bool, _) = match store.peek_watched(key) {
            Some((bytes, watch)) => (bytes, true, Some(watch)),
            None => match store.peek(key) {
                Peek::Value(bytes) => (bytes, true, None),
                Peek::Absent => return Ok(None),
                Peek::Unknown => match store.get(key).await? {
                    Some(bytes) => (Arc::from(bytes), false, None),
                    None => return Ok(None),
                },
            },
        };
        let record = self.decoded(key, Arc::clone(&bytes))?;
        Ok(Some(Read {
            record,
            peeked: peeked.then_some(bytes),
            watch,
        }))
    }

    fn decoded(&self, key: &[u8], bytes: Arc<[u8]>) -> Result<Arc<T>, ServiceError> {
        let lock = || {
            self.entries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some((seen, record)) = lock().get(key) {
            if Arc::ptr_eq(seen, &bytes) || **seen == *bytes {
                return Ok(Arc::clone(record));
            }
        }
        let record = Arc::new(decode::<T>(key, &bytes)?);
        let mut entries = lock();
        if entries.len() >= MAX_DECODED {
            if let Some(victim) = entries.keys().next().cloned() {
                entries.remove(&victim);
            }
        }
        entries.insert(key.into(), (bytes, Arc::clone(&record)));
        Ok(record)
    }
}

/// Typed access to a [`Store`]: records in, records out, read-modify-write through
/// compare-and-swap so concurrent updates are never lost.
#[derive(Clone)]
pub struct Records {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records").finish_non_exhaustive()
    }
}

/// What an [`Records::update`] step decided.
#[derive(Debug)]
pub enum Change<T> {
    /// Leave the record as it is.
    Keep,
    /// Write this value.
    Write(T),
    /// Delete the record.
    Delete,
}

/// How many times [`Records::update`] retries a lost compare-and-swap race before
/// answering [`ServiceError::Conflict`].
const MAX_CAS_ATTEMPTS: usize = 64;

impl Records {
    /// Typed access to `store`.
    #[must_use]
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// The underlying store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The record under `key`, if any.
    pub async fn get<T: Record>(&self, key: &[u8]) -> Result<Option<T>, ServiceError> {
        match self.store.get(key).await? {
            Some(bytes) => Ok(Some(decode(key, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Writes `record` under `key`.
    pub async fn put<T: Record>(
        &self,
        key: &[u8],
        record: &T,
        ttl: Option<Duration>,
    ) -> Result<(), ServiceError> {
        Ok(self.store.put(key, &encode(record), ttl).await?)
    }

    /// Read-modify-write of the record under `key`: `step` sees the current record and
    /// decides; on a lost race it runs again on the newer record. Returns the record as
    /// it stands after the update (`None` if absent or deleted).
    pub async fn update<T, F>(
        &self,
        key: &[u8],
        ttl: Option<Duration>,
        mut step: F,
    ) -> Result<Option<T>, ServiceError>
    where
        T: Record + Clone,
        F: FnMut(Option<T>) -> Result<Change<T>, ServiceError>,
    {
        let mut raw = self.store.get(key).await?;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = raw.as_deref().map(|b| decode::<T>(key, b)).transpose()?;
            let (new_bytes, result) = match step(current.clone())? {
                Change::Keep => return Ok(current),
                Change::Write(record) => (Some(encode(&record)), Some(record)),
                Change::Delete => (None, None),
            };
            match self
                .store
                .compare_and_swap(key, raw.as_deref(), new_bytes.as_deref(), ttl)
                .await?
            {
                CasOutcome::Swapped => return Ok(result),
                CasOutcome::Conflict { current } => raw = current,
            }
        }
        Err(ServiceError::Conflict(
            "too many concurrent updates of one record",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Visit {
        count: u64,
        note: Option<String>,
    }
    impl Record for Visit {
        const KIND: &'static str = "visit";
        const VERSION: u8 = 3;
    }

    #[test]
    fn records_round_trip_with_their_version() {
        let v = Visit {
            count: 300,
            note: Some("hi".into()),
        };
        let bytes = encode(&v);
        assert_eq!(bytes[0], 3);
        assert_eq!(decode::<Visit>(b"k", &bytes).unwrap(), v);
    }

    #[test]
    fn bad_bytes_are_errors_naming_the_key() {
        let good = encode(&Visit {
            count: 1,
            note: None,
        });
        let mut trailing = good.clone();
        trailing.push(0);
        // 1 written as an over-long varint: 0x81 0x00.
        let overlong = vec![3, 0x81, 0x00, 0x00];
        let cases: [(&[u8], &str); 5] = [
            (&[], "empty"),
            (&[9, 1, 0], "version 9"),
            (&[3], "corrupt"),
            (&trailing, "canonical"),
            (&overlong, "canonical"),
        ];
        for (bytes, want) in cases {
            let err = decode::<Visit>(b"dev/x", bytes).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("\"dev/x\"") && text.contains(want), "{text}");
        }
    }
}
