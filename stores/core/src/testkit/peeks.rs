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

/// A watch ([`Store::peek_watched`], optional) holds only while its value is what `get`
/// answers: every kind of write to its key, and the entry's expiry, end it.
pub async fn watches_end_on_every_change<H: Harness>(h: &H) {
    let c = clock();
    let s = h.open(c.clone()).await;
    let k = b"watch/k".as_slice();
    let ttl = Some(std::time::Duration::from_secs(10));
    let writes: Vec<(&str, BatchOp)> = vec![
        (
            "put",
            BatchOp::Put {
                key: k.to_vec(),
                value: b"v2".to_vec(),
                ttl: None,
            },
        ),
        ("delete", BatchOp::Delete { key: k.to_vec() }),
    ];
    let mut watched = 0;
    for step in [
        "put",
        "delete",
        "compare_and_swap",
        "insert_if_absent",
        "batch",
        "expiry",
    ] {
        s.put(k, b"v1", ttl).await.unwrap();
        // Warm a cache, then watch.
        assert_eq!(s.get(k).await.unwrap().as_deref(), Some(&b"v1"[..]));
        let Some((value, watch)) = s.peek_watched(k) else {
            continue;
        };
        watched += 1;
        assert_eq!(&*value, b"v1", "{step}: the watched value is get's");
        assert!(watch.holds(), "{step}: a fresh watch holds");
        s.put(b"watch/other", step.as_bytes(), None).await.unwrap();
        assert!(watch.holds(), "{step}: a write to another key leaves it");
        match step {
            "put" => s.put(k, b"v2", None).await.unwrap(),
            "delete" => assert!(s.delete(k).await.unwrap()),
            "compare_and_swap" => {
                let _ = s
                    .compare_and_swap(k, Some(b"v1"), Some(b"v2"), None)
                    .await
                    .unwrap();
            }
            "insert_if_absent" => {
                // Refused (the key is there), yet the watch may end: never hold wrongly.
                assert!(!s.insert_if_absent(k, b"v2", None).await.unwrap());
                s.put(k, b"v3", None).await.unwrap();
            }
            "batch" => s
                .batch(writes.iter().map(|(_, op)| op.clone()).collect())
                .await
                .unwrap(),
            _ => c.advance(std::time::Duration::from_secs(11)),
        }
        assert!(
            !watch.holds(),
            "{step}: the watch still holds after the change"
        );
        s.delete(k).await.unwrap();
    }
    if watched > 0 {
        assert_eq!(
            watched, 6,
            "a store that watches a warm key watches it every time"
        );
    }
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
    let mut watches: std::collections::VecDeque<(u64, crate::Watch)> =
        std::collections::VecDeque::new();
    while !writer.is_finished() {
        let got = value(s.get(k).await.unwrap().expect("present"));
        assert!(got >= seen, "get went back from {seen} to {got}");
        seen = got;
        for (at, watch) in &watches {
            assert!(
                *at == got || !watch.holds(),
                "a watch of {at} holds after get saw {got}"
            );
        }
        if let Some((v, watch)) = s.peek_watched(k) {
            let p = value(v.to_vec());
            assert!(p >= seen, "a watched peek went back from {seen} to {p}");
            seen = p;
            watches.push_back((p, watch));
            if watches.len() > 8 {
                watches.pop_front();
            }
        }
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
