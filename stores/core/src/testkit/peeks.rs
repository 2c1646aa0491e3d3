//! [`Store::peek`]: optional, but never stale when it answers.

use std::sync::Arc;

use super::{clock, Harness};
use crate::{BatchOp, Peek, Store};

/// What `peek` says of `key`, as `get` would say it (`None` for `Unknown`).
fn peeked<S: Store>(s: &S, key: &[u8]) -> Option<Option<Vec<u8>>> {
    match s.peek(key) {
        Peek::Value(v) => Some(Some(v.to_vec())),
        Peek::Absent => Some(None),
        Peek::Unknown => None,
    }
}

/// Asserts that a peek of `key`, before and after a `get` (which may warm a cache),
/// agrees with the `get`.
async fn agree<S: Store>(s: &S, key: &[u8], step: &str) {
    let before = peeked(s, key);
    let got = s.get(key).await.unwrap();
    let after = peeked(s, key);
    for (when, p) in [("before", before), ("after", after)] {
        if let Some(p) = p {
            assert_eq!(p, got, "peek {when} get disagrees with get after {step}");
        }
    }
}

/// After every kind of write, and once an entry expires, a peek that answers answers what
/// `get` answers: no write acknowledged before it is missed.
pub async fn peeks_are_never_stale<H: Harness>(h: &H) {
    let c = clock();
    let s = h.open(c.clone()).await;
    let k = b"peek/k".as_slice();
    agree(&s, k, "nothing").await;
    s.put(k, b"v1", None).await.unwrap();
    agree(&s, k, "put").await;
    s.put(k, b"v2", None).await.unwrap();
    agree(&s, k, "overwrite").await;
    let _ = s
        .compare_and_swap(k, Some(b"v2"), Some(b"v3"), None)
        .await
        .unwrap();
    agree(&s, k, "compare_and_swap").await;
    assert!(s.delete(k).await.unwrap());
    agree(&s, k, "delete").await;
    assert!(s.insert_if_absent(k, b"v4", None).await.unwrap());
    agree(&s, k, "insert_if_absent").await;
    let ops = vec![
        BatchOp::Put {
            key: k.to_vec(),
            value: b"v5".to_vec(),
            ttl: Some(std::time::Duration::from_secs(10)),
        },
        BatchOp::Delete {
            key: b"peek/other".to_vec(),
        },
    ];
    s.batch(ops).await.unwrap();
    agree(&s, k, "batch").await;
    c.advance(std::time::Duration::from_secs(11));
    agree(&s, k, "expiry").await;
    assert_eq!(peeked(&s, b""), None, "an empty key peeks as unknown");
}

/// A reader peeking while another task counts up never sees the counter go back, nor a
/// value older than one `get` already returned.
pub async fn peeks_never_go_back_under_writes<H: Harness>(h: &H) {
    let s = Arc::new(h.open(clock()).await);
    let k = b"peek/counter".as_slice();
    s.put(k, &0u64.to_be_bytes(), None).await.unwrap();
    let writer = {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            for n in 1..=300u64 {
                s.put(k, &n.to_be_bytes(), None).await.unwrap();
            }
        })
    };
    let value = |v: Vec<u8>| u64::from_be_bytes(v.try_into().expect("8 bytes"));
    let mut seen = 0;
    while !writer.is_finished() {
        let got = value(s.get(k).await.unwrap().expect("present"));
        assert!(got >= seen, "get went back from {seen} to {got}");
        seen = got;
        if let Some(p) = peeked(&*s, k) {
            let p = value(p.expect("present"));
            assert!(p >= seen, "peek went back from {seen} to {p}");
            seen = p;
        }
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    agree(&*s, k, "the last write").await;
}
