//! Persistence: what was flushed is there after a reopen, expiry included.

use std::time::Duration;

use super::{clock, Harness};
use crate::Store;

/// After `flush` and a reopen, every acknowledged write is there, expiry included.
pub async fn flushed_writes_survive_reopen<H: Harness>(h: &H) {
    let c = clock();
    let s = h.open(c.clone()).await;
    for i in 0..100u32 {
        s.put(&i.to_be_bytes(), &[i as u8; 10], None).await.unwrap();
    }
    s.put(b"short", b"s", Some(Duration::from_secs(5)))
        .await
        .unwrap();
    s.put(b"gone", b"g", None).await.unwrap();
    assert!(s.delete(b"gone").await.unwrap());
    s.flush().await.unwrap();
    let Some(s) = h.reopen(s, c.clone()).await else {
        eprintln!("conformance: persistence skipped (the store keeps nothing across restarts)");
        return;
    };
    for i in 0..100u32 {
        assert_eq!(
            s.get(&i.to_be_bytes()).await.unwrap(),
            Some(vec![i as u8; 10])
        );
    }
    assert_eq!(s.get(b"gone").await.unwrap(), None);
    assert_eq!(s.get(b"short").await.unwrap().as_deref(), Some(&b"s"[..]));
    c.advance(Duration::from_secs(5));
    assert_eq!(
        s.get(b"short").await.unwrap(),
        None,
        "the expiry survived the reopen"
    );
    assert_eq!(s.purge_expired().await.unwrap(), 1);
}
