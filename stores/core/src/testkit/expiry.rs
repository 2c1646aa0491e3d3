//! Expiry: an expired entry is absent everywhere, a put replaces the old TTL, purge
//! removes exactly the expired entries.

use std::time::Duration;

use super::{clock, Harness};
use crate::{CasOutcome, Store};

/// An expired entry is absent for get, scan, compare-and-swap, insert-if-absent and
/// delete's answer.
pub async fn ttl_hides_expired_entries_everywhere<H: Harness>(h: &H) {
    let c = clock();
    let s = h.open(c.clone()).await;
    let ttl = Some(Duration::from_secs(10));
    for k in [&b"t/get"[..], b"t/scan", b"t/cas", b"t/ins", b"t/del"] {
        s.put(k, b"v", ttl).await.unwrap();
    }
    s.put(b"t/forever", b"f", None).await.unwrap();
    c.advance(Duration::from_millis(9_999));
    assert_eq!(
        s.get(b"t/get").await.unwrap().as_deref(),
        Some(&b"v"[..]),
        "alive before its time"
    );
    c.advance(Duration::from_millis(1));
    assert_eq!(s.get(b"t/get").await.unwrap(), None, "expired at its time");
    let page = s.scan_prefix(b"t/", None, 100).await.unwrap();
    assert_eq!(page.entries, vec![(b"t/forever".to_vec(), b"f".to_vec())]);
    assert_eq!(page.next, None);
    // "t/get", "t/ins" and "t/scan" sort after "t/forever" but are expired: no next page.
    let page = s.scan_prefix(b"t/", None, 1).await.unwrap();
    assert_eq!(page.entries, vec![(b"t/forever".to_vec(), b"f".to_vec())]);
    assert_eq!(page.next, None, "only expired entries follow: no cursor");
    assert_eq!(
        s.compare_and_swap(b"t/cas", Some(b"v"), Some(b"w"), None)
            .await
            .unwrap(),
        CasOutcome::Conflict { current: None },
        "CAS sees an expired entry as absent"
    );
    assert!(s
        .compare_and_swap(b"t/cas", None, Some(b"w"), None)
        .await
        .unwrap()
        .is_swapped());
    assert_eq!(s.get(b"t/cas").await.unwrap().as_deref(), Some(&b"w"[..]));
    assert!(
        s.insert_if_absent(b"t/ins", b"new", None).await.unwrap(),
        "expired counts as absent"
    );
    assert_eq!(s.get(b"t/ins").await.unwrap().as_deref(), Some(&b"new"[..]));
    assert!(
        !s.delete(b"t/del").await.unwrap(),
        "deleting an expired entry finds nothing live"
    );
}

/// A put without a TTL replaces the entry's old expiry.
pub async fn put_without_ttl_clears_the_old_ttl<H: Harness>(h: &H) {
    let c = clock();
    let s = h.open(c.clone()).await;
    s.put(b"k", b"short", Some(Duration::from_secs(1)))
        .await
        .unwrap();
    s.put(b"k", b"long", None).await.unwrap();
    c.advance(Duration::from_secs(3600));
    assert_eq!(s.get(b"k").await.unwrap().as_deref(), Some(&b"long"[..]));
    s.put(b"k", b"again", Some(Duration::from_secs(5)))
        .await
        .unwrap();
    c.advance(Duration::from_secs(5));
    assert_eq!(s.get(b"k").await.unwrap(), None);
    assert_eq!(
        s.purge_expired().await.unwrap(),
        1,
        "only the current expiry counts"
    );
}

/// Purge removes exactly the expired entries and reports how many.
pub async fn purge_removes_expired_entries<H: Harness>(h: &H) {
    let c = clock();
    let s = h.open(c.clone()).await;
    for i in 0..20u8 {
        let ttl = (i % 2 == 0).then(|| Duration::from_secs(u64::from(i) + 1));
        s.put(&[b'p', i], &[i], ttl).await.unwrap();
    }
    assert_eq!(s.purge_expired().await.unwrap(), 0);
    c.advance(Duration::from_secs(10));
    // Even i in 0..=8 had ttl i+1 <= 9 < 10 s; i = 10.. still live.
    assert_eq!(s.purge_expired().await.unwrap(), 5);
    assert_eq!(s.purge_expired().await.unwrap(), 0, "purge is idempotent");
    let live = s.scan_prefix(b"p", None, 100).await.unwrap().entries.len();
    assert_eq!(live, 15);
    c.advance(Duration::from_secs(100));
    assert_eq!(s.purge_expired().await.unwrap(), 5);
}
