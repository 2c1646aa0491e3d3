//! The table layout and every statement the store sends, built once per table.

/// The layout version this crate writes and reads. A table created by a later version
/// (a higher number in the schema table) is refused at connect rather than misread.
pub(crate) const LAYOUT_VERSION: i32 = 1;

/// The table that records each store table's layout version (one row per table).
pub(crate) const SCHEMA_TABLE: &str = "actix_device_schema";

/// The longest table name accepted: PostgreSQL cuts identifiers at 63 bytes, and the
/// expiry index's name adds `_expires_at` to it.
pub(crate) const MAX_TABLE_LEN: usize = 48;

/// An advisory lock key ("actix-dv" in ASCII) held while tables are created, so
/// instances starting together do not race on `CREATE TABLE IF NOT EXISTS`.
const SCHEMA_LOCK: i64 = 0x6163_7469_782d_6476;

/// Whether `name` is a table name this store accepts: 1..=48 lowercase ASCII letters,
/// digits and underscores, not starting with a digit (so it never needs escaping and
/// means the same quoted or not).
pub(crate) fn valid_table_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    first_ok
        && name.len() <= MAX_TABLE_LEN
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The statements run at connect, in one transaction: create the schema table, the
/// store table and its expiry index if missing, and record the layout version.
pub(crate) fn create_schema(table: &str) -> String {
    format!(
        "SELECT pg_advisory_xact_lock({SCHEMA_LOCK});
         CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (
             store_table text PRIMARY KEY,
             version integer NOT NULL
         );
         CREATE TABLE IF NOT EXISTS \"{table}\" (
             key bytea PRIMARY KEY,
             value bytea NOT NULL,
             expires_at bigint
         );
         CREATE INDEX IF NOT EXISTS \"{table}_expires_at\" ON \"{table}\" (expires_at)
             WHERE expires_at IS NOT NULL;
         INSERT INTO {SCHEMA_TABLE} (store_table, version) VALUES ('{table}', {LAYOUT_VERSION})
             ON CONFLICT (store_table) DO NOTHING;"
    )
}

/// The layout version recorded for a table (`$1`: its name).
pub(crate) const SELECT_VERSION: &str =
    "SELECT version FROM actix_device_schema WHERE store_table = $1";

/// Every statement on one store table. `$now` parameters are the store clock's epoch
/// milliseconds; a row is live when `expires_at IS NULL OR expires_at > $now`.
#[derive(Debug)]
pub(crate) struct Statements {
    /// `$1` key, `$2` now → the live value.
    pub get: String,
    /// `$1` key, `$2` value, `$3` expires_at: upsert.
    pub put: String,
    /// `$1` key, `$2` now → one row (whether it was live) if a row was removed.
    pub delete: String,
    /// `$1` key, `$2` value, `$3` expires_at, `$4` now → a row if written (the key was
    /// absent, or held an expired row, which is replaced).
    pub insert_if_absent: String,
    /// `$1` key, `$2` expected, `$3` new value, `$4` expires_at, `$5` now → rows changed.
    pub swap: String,
    /// `$1` key, `$2` expected, `$3` now → rows removed.
    pub swap_delete: String,
    /// `$1` key → the row (value, expires_at), locked for the transaction.
    pub lock_row: String,
    /// `$1` key, `$2` value, `$3` expires_at: overwrite a row already locked.
    pub update_row: String,
    /// `$1` key: remove a row already locked.
    pub delete_row: String,
    /// `$1` key, `$2` value, `$3` expires_at → rows inserted (0 if the key exists).
    pub insert_new: String,
    /// `$1` prefix, `$2` after (exclusive), `$3` upper bound (exclusive), `$4` now,
    /// `$5` limit → (key, value) in key order.
    pub scan_bounded: String,
    /// As `scan_bounded` without an upper bound: `$3` now, `$4` limit.
    pub scan_open: String,
    /// `$1` keys to delete, `$2` keys, `$3` values, `$4` expiries to upsert (no key in
    /// both, none twice): one statement, so readers see all of it or none.
    pub batch: String,
    /// `$1` now, `$2` chunk → rows removed.
    pub purge: String,
    /// Removes every row.
    pub clear: String,
    /// Drops the table.
    pub drop: String,
}

impl Statements {
    pub(crate) fn new(table: &str) -> Self {
        let t = format!("\"{table}\"");
        let live = "(expires_at IS NULL OR expires_at > $now)";
        let live_at = |n: u8| live.replace("$now", &format!("${n}"));
        let upsert = "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, \
                      expires_at = EXCLUDED.expires_at";
        Self {
            get: format!("SELECT value FROM {t} WHERE key = $1 AND {}", live_at(2)),
            put: format!(
                "INSERT INTO {t} AS t (key, value, expires_at) VALUES ($1, $2, $3) {upsert}"
            ),
            delete: format!("DELETE FROM {t} WHERE key = $1 RETURNING {}", live_at(2)),
            insert_if_absent: format!(
                "INSERT INTO {t} AS t (key, value, expires_at) VALUES ($1, $2, $3) {upsert} \
                 WHERE t.expires_at IS NOT NULL AND t.expires_at <= $4 RETURNING true"
            ),
            swap: format!(
                "UPDATE {t} SET value = $3, expires_at = $4 WHERE key = $1 AND value = $2 AND {}",
                live_at(5)
            ),
            swap_delete: format!(
                "DELETE FROM {t} WHERE key = $1 AND value = $2 AND {}",
                live_at(3)
            ),
            lock_row: format!("SELECT value, expires_at FROM {t} WHERE key = $1 FOR UPDATE"),
            update_row: format!("UPDATE {t} SET value = $2, expires_at = $3 WHERE key = $1"),
            delete_row: format!("DELETE FROM {t} WHERE key = $1"),
            insert_new: format!(
                "INSERT INTO {t} (key, value, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO NOTHING"
            ),
            scan_bounded: format!(
                "SELECT key, value FROM {t} WHERE key >= $1 AND key > $2 AND key < $3 AND {} \
                 ORDER BY key LIMIT $5",
                live_at(4)
            ),
            scan_open: format!(
                "SELECT key, value FROM {t} WHERE key >= $1 AND key > $2 AND {} \
                 ORDER BY key LIMIT $4",
                live_at(3)
            ),
            batch: format!(
                "WITH gone AS (DELETE FROM {t} WHERE key = ANY($1)) \
                 INSERT INTO {t} AS t (key, value, expires_at) \
                 SELECT * FROM unnest($2::bytea[], $3::bytea[], $4::bigint[]) {upsert}"
            ),
            // The outer condition is checked again on a row rewritten meanwhile, so a
            // row given a new life by a concurrent write is not removed.
            purge: format!(
                "DELETE FROM {t} WHERE expires_at <= $1 AND key IN \
                 (SELECT key FROM {t} WHERE expires_at <= $1 LIMIT $2)"
            ),
            clear: format!("DELETE FROM {t}"),
            drop: format!("DROP TABLE IF EXISTS {t}"),
        }
    }
}

/// The smallest byte string greater than every string starting with `prefix`, or
/// `None` when there is none (an empty prefix, or one of only `0xff` bytes).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        for ok in ["actix_device", "_t", "shop2", &"a".repeat(MAX_TABLE_LEN)] {
            assert!(valid_table_name(ok), "{ok}");
        }
        let long = "a".repeat(MAX_TABLE_LEN + 1);
        for bad in [
            "", "2fa", "Shop", "a-b", "a b", "t\"x", "t;drop", "é", &long,
        ] {
            assert!(!valid_table_name(bad), "{bad}");
        }
    }

    #[test]
    fn prefix_end_is_the_first_key_past_the_prefix() {
        assert_eq!(prefix_end(b"dev/"), Some(b"dev0".to_vec()));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
