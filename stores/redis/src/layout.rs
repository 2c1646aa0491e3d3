//! The Redis keys of one store, all under its key prefix (the table in the crate docs).

/// The prefix and the three names built from it, made once at connect so no call builds
/// them again.
pub(crate) struct Layout {
    /// The configured key prefix.
    prefix: Vec<u8>,
    /// `{prefix}d:`, followed by the store key, names a data key.
    data_prefix: Vec<u8>,
    /// `{prefix}i`: the sorted set of every key, all at score 0.
    index: Vec<u8>,
    /// `{prefix}e`: the sorted set of keys that expire, scored by expiry (epoch ms).
    expiry: Vec<u8>,
}

impl Layout {
    pub(crate) fn new(prefix: Vec<u8>) -> Self {
        Self {
            data_prefix: [&prefix[..], b"d:"].concat(),
            index: [&prefix[..], b"i"].concat(),
            expiry: [&prefix[..], b"e"].concat(),
            prefix,
        }
    }

    pub(crate) fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    pub(crate) fn data_prefix(&self) -> &[u8] {
        &self.data_prefix
    }

    pub(crate) fn index(&self) -> &[u8] {
        &self.index
    }

    pub(crate) fn expiry(&self) -> &[u8] {
        &self.expiry
    }

    /// The Redis key holding `key`'s envelope.
    pub(crate) fn data_key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.data_prefix.len() + key.len());
        k.extend_from_slice(&self.data_prefix);
        k.extend_from_slice(key);
        k
    }

    /// A `SCAN ... MATCH` pattern for every data key: the data prefix with its glob
    /// characters escaped, then `*`.
    pub(crate) fn data_glob(&self) -> Vec<u8> {
        let mut glob = Vec::with_capacity(self.data_prefix.len() + 2);
        for &b in &self.data_prefix {
            if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
                glob.push(b'\\');
            }
            glob.push(b);
        }
        glob.push(b'*');
        glob
    }
}
