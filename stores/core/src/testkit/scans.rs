//! Prefix scans: order, prefix bounds, the cursor, paging while others write.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{clock, Harness};
use crate::Store;

/// Keys come back in byte order, only under the prefix, with `next` set exactly when more
/// follow.
pub async fn scan_is_ordered_and_bounded_by_prefix<H: Harness>(h: &H) {
    let s = h.open(clock()).await;
    let keys: Vec<&[u8]> = vec![
        b"a\xff",
        b"a\xff\x00",
        b"a\xff\xff",
        b"a\xff\xff\x01",
        b"b",
        b"a\xfe\xff",
        b"a\x00",
    ];
    for k in &keys {
        s.put(k, k, None).await.unwrap();
    }
    let page = s.scan_prefix(b"a\xff", None, 100).await.unwrap();
    let got: Vec<Vec<u8>> = page.entries.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        got,
        vec![
            b"a\xff".to_vec(),
            b"a\xff\x00".to_vec(),
            b"a\xff\xff".to_vec(),
            b"a\xff\xff\x01".to_vec()
        ]
    );
    assert!(page.entries.iter().all(|(k, v)| k == v));
    assert_eq!(page.next, None);
    let all = s.scan_prefix(b"a", None, 100).await.unwrap();
    let got: Vec<Vec<u8>> = all.entries.iter().map(|(k, _)| k.clone()).collect();
    let mut want: Vec<Vec<u8>> = keys
        .iter()
        .filter(|k| k.starts_with(b"a"))
        .map(|k| k.to_vec())
        .collect();
    want.sort();
    assert_eq!(got, want, "byte order");
    // limit honoured, next exact
    let first = s.scan_prefix(b"a", None, 2).await.unwrap();
    assert_eq!(first.entries.len(), 2);
    assert_eq!(first.next.as_deref(), Some(want[1].as_slice()));
    let rest = s
        .scan_prefix(b"a", first.next.as_deref(), 100)
        .await
        .unwrap();
    assert_eq!(rest.entries.len(), want.len() - 2);
    assert_eq!(rest.next, None);
    let exact = s.scan_prefix(b"a", None, want.len()).await.unwrap();
    assert_eq!(exact.next, None, "a full last page has no next");
    // the empty prefix scans everything
    assert_eq!(
        s.scan_prefix(b"", None, 100).await.unwrap().entries.len(),
        keys.len()
    );
    assert!(s
        .scan_prefix(b"zzz", None, 10)
        .await
        .unwrap()
        .entries
        .is_empty());
}

/// Paging with the cursor while other tasks insert: every key present from the start is
/// seen exactly once, in order.
pub async fn scan_pages_neither_skip_nor_repeat_under_inserts<H: Harness>(h: &H) {
    let s = Arc::new(h.open(clock()).await);
    let mut original = BTreeSet::new();
    for i in 0..300u32 {
        let k = format!("page/{:05}", i * 2).into_bytes();
        s.put(&k, b"o", None).await.unwrap();
        original.insert(k);
    }
    let writer = {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            for i in 0..300u32 {
                let k = format!("page/{:05}", i * 2 + 1).into_bytes();
                s.put(&k, b"n", None).await.unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = s.scan_prefix(b"page/", after.as_deref(), 7).await.unwrap();
        assert!(page.entries.len() <= 7);
        seen.extend(page.entries.into_iter().map(|(k, _)| k));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    writer.await.expect("writer");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "ordered, no repeats");
    for k in &original {
        assert!(
            seen.binary_search(k).is_ok(),
            "skipped {:?}",
            String::from_utf8_lossy(k)
        );
    }
}
