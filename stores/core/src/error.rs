use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;

/// A store key, shown with non-printable bytes escaped (`dev/\x01\xff`), for error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyName(pub Vec<u8>);

impl KeyName {
    /// Copies `key` for an error message, cutting very long keys to their first 128 bytes.
    #[must_use]
    pub fn new(key: &[u8]) -> Self {
        Self(key[..key.len().min(128)].to_vec())
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

impl fmt::Debug for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

type Source = Box<dyn StdError + Send + Sync + 'static>;

/// Why a store call failed.
///
/// Input errors (`EmptyKey`, `KeyTooLarge`, `ValueTooLarge`, `InvalidArgument`) are
/// raised before anything is written. Engine errors keep their source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Keys must hold at least one byte.
    #[error("store keys must not be empty")]
    EmptyKey,
    /// The key is longer than [`MAX_KEY_LEN`](crate::MAX_KEY_LEN).
    #[error("key {key} is {len} bytes, over the limit of {max} bytes")]
    KeyTooLarge {
        /// The key (cut to 128 bytes).
        key: KeyName,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value is longer than [`MAX_VALUE_LEN`](crate::MAX_VALUE_LEN).
    #[error("value for key {key} is {len} bytes, over the limit of {max} bytes")]
    ValueTooLarge {
        /// The key the value was for.
        key: KeyName,
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An argument outside its documented range (a scan limit of 0, say).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// A stored entry could not be read back (bad envelope, truncated bytes).
    #[error("corrupt entry at key {key}: {reason}")]
    Corrupt {
        /// The entry's key.
        key: KeyName,
        /// What was wrong with it.
        reason: String,
    },
    /// The store could not be opened at `path`.
    #[error("cannot open store at {}: {source}", path.display())]
    Open {
        /// The path given to the backend.
        path: PathBuf,
        /// The engine's error.
        #[source]
        source: Source,
    },
    /// The engine failed while working on `key` (or on no single key, for batches and flush).
    #[error("{backend} error{}: {source}", key.as_ref().map(|k| format!(" on key {k}")).unwrap_or_default())]
    Backend {
        /// Which backend ("sled", "redb", ...).
        backend: &'static str,
        /// The key involved, where one is.
        key: Option<KeyName>,
        /// The engine's error.
        #[source]
        source: Source,
    },
    /// The store has been shut down (its writer thread is gone).
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// An engine error on `key`.
    pub fn backend(backend: &'static str, key: Option<&[u8]>, source: impl Into<Source>) -> Self {
        Self::Backend {
            backend,
            key: key.map(KeyName::new),
            source: source.into(),
        }
    }

    /// An error opening the store at `path`.
    pub fn open(path: impl Into<PathBuf>, source: impl Into<Source>) -> Self {
        Self::Open {
            path: path.into(),
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key_with_bytes_escaped() {
        let e = StoreError::backend("sled", Some(b"dev/\x00\xff"), "disk on fire");
        assert_eq!(
            e.to_string(),
            "sled error on key \"dev/\\x00\\xff\": disk on fire"
        );
        assert!(StdError::source(&e).is_some());
        let e = StoreError::backend("redb", None, "commit failed");
        assert_eq!(e.to_string(), "redb error: commit failed");
    }
}
