//! Plain reads and writes: round trips, arbitrary bytes, the size limits.

use super::{clock, Harness};
use crate::{Store, StoreError, MAX_KEY_LEN, MAX_SCAN_LIMIT, MAX_VALUE_LEN};

/// get / put / delete round trips, overwrite, delete of a missing key.
pub async fn round_trips<H: Harness>(h: &H) {
    let s = h.open(clock()).await;
    assert_eq!(s.get(b"k").await.unwrap(), None);
    s.put(b"k", b"v1", None).await.unwrap();
    assert_eq!(s.get(b"k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    s.put(b"k", b"v2", None).await.unwrap();
    assert_eq!(s.get(b"k").await.unwrap().as_deref(), Some(&b"v2"[..]));
    assert!(s.delete(b"k").await.unwrap(), "delete reports a live entry");
    assert!(
        !s.delete(b"k").await.unwrap(),
        "delete of a missing key is false"
    );
    assert_eq!(s.get(b"k").await.unwrap(), None);
}

/// Keys and values are arbitrary bytes; empty values are values.
pub async fn binary_keys_and_values<H: Harness>(h: &H) {
    let s = h.open(clock()).await;
    let keys: [&[u8]; 4] = [b"\x00", b"\xff\xfe\x00\x01", b"a\x00b", &[0x80; 64]];
    for (i, k) in keys.iter().enumerate() {
        let v: Vec<u8> = (0..=255u8).cycle().skip(i).take(300).collect();
        s.put(k, &v, None).await.unwrap();
        assert_eq!(s.get(k).await.unwrap(), Some(v));
    }
    s.put(b"empty", b"", None).await.unwrap();
    assert_eq!(s.get(b"empty").await.unwrap(), Some(Vec::new()));
    assert!(
        s.delete(b"empty").await.unwrap(),
        "an empty value is a live entry"
    );
}

/// 1 MiB values round-trip.
pub async fn large_values<H: Harness>(h: &H) {
    let s = h.open(clock()).await;
    let v: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    s.put(b"big", &v, None).await.unwrap();
    assert_eq!(s.get(b"big").await.unwrap(), Some(v.clone()));
    let edge = vec![1u8; MAX_VALUE_LEN];
    s.put(b"edge", &edge, None).await.unwrap();
    assert_eq!(
        s.get(b"edge").await.unwrap().map(|v| v.len()),
        Some(MAX_VALUE_LEN)
    );
}

/// Keys and values over the limits, empty keys and a zero scan limit are errors, never
/// panics, and write nothing.
pub async fn limits_are_errors<H: Harness>(h: &H) {
    let s = h.open(clock()).await;
    let long_key = vec![b'k'; MAX_KEY_LEN + 1];
    let long_value = vec![0u8; MAX_VALUE_LEN + 1];
    assert!(matches!(
        s.put(&long_key, b"v", None).await,
        Err(StoreError::KeyTooLarge { .. })
    ));
    assert!(matches!(
        s.put(b"", b"v", None).await,
        Err(StoreError::EmptyKey)
    ));
    assert!(matches!(s.get(b"").await, Err(StoreError::EmptyKey)));
    assert!(matches!(
        s.get(&long_key).await,
        Err(StoreError::KeyTooLarge { .. })
    ));
    assert!(matches!(
        s.put(b"k", &long_value, None).await,
        Err(StoreError::ValueTooLarge { .. })
    ));
    assert!(matches!(
        s.insert_if_absent(b"k", &long_value, None).await,
        Err(StoreError::ValueTooLarge { .. })
    ));
    assert!(matches!(
        s.compare_and_swap(b"k", None, Some(&long_value), None)
            .await,
        Err(StoreError::ValueTooLarge { .. })
    ));
    assert!(matches!(
        s.delete(&long_key).await,
        Err(StoreError::KeyTooLarge { .. })
    ));
    assert!(matches!(
        s.scan_prefix(b"", None, 0).await,
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        s.scan_prefix(b"", None, MAX_SCAN_LIMIT + 1).await,
        Err(StoreError::InvalidArgument(_))
    ));
    let err = s.put(b"k", &long_value, None).await.unwrap_err();
    assert!(
        err.to_string().contains("\"k\""),
        "the error names the key: {err}"
    );
    assert_eq!(s.get(b"k").await.unwrap(), None, "nothing was written");
    let key_max = vec![b'm'; MAX_KEY_LEN];
    s.put(&key_max, b"ok", None).await.unwrap();
    assert_eq!(s.get(&key_max).await.unwrap().as_deref(), Some(&b"ok"[..]));
}
