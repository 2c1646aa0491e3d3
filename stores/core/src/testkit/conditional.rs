//! Conditional writes: insert-if-absent and compare-and-swap, alone and racing.

use std::sync::Arc;
use std::time::Duration;

use super::{clock, Harness};
use crate::{CasOutcome, Store};

/// 16 tasks race to insert one key: exactly one wins, and its value stays.
pub async fn insert_if_absent_race_has_one_winner<H: Harness>(h: &H) {
    let s = Arc::new(h.open(clock()).await);
    // All 16 start together, so they really race.
    let start = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16u8)
        .map(|i| {
            let s = Arc::clone(&s);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                (i, s.insert_if_absent(b"race", &[i], None).await.unwrap())
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (i, won) = t.await.expect("task");
        if won {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one insert wins: {winners:?}");
    assert_eq!(s.get(b"race").await.unwrap(), Some(vec![winners[0]]));
}

/// Every expected/new combination of compare-and-swap.
pub async fn compare_and_swap_combinations<H: Harness>(h: &H) {
    let s = h.open(clock()).await;
    cas_on_values(&s).await;
    cas_on_the_empty_value(&s).await;
    cas_with_a_ttl(h).await;
}

/// Swaps, conflicts and deletes between absence and non-empty values, on key `c`.
async fn cas_on_values<S: Store>(s: &S) {
    // absent -> value
    assert!(s
        .compare_and_swap(b"c", None, Some(b"1"), None)
        .await
        .unwrap()
        .is_swapped());
    // absent expected, but present: conflict reports the value
    assert_eq!(
        s.compare_and_swap(b"c", None, Some(b"x"), None)
            .await
            .unwrap(),
        CasOutcome::Conflict {
            current: Some(b"1".to_vec())
        }
    );
    // value -> value
    assert!(s
        .compare_and_swap(b"c", Some(b"1"), Some(b"2"), None)
        .await
        .unwrap()
        .is_swapped());
    // wrong value: conflict, unchanged
    assert_eq!(
        s.compare_and_swap(b"c", Some(b"1"), Some(b"3"), None)
            .await
            .unwrap(),
        CasOutcome::Conflict {
            current: Some(b"2".to_vec())
        }
    );
    assert_eq!(s.get(b"c").await.unwrap().as_deref(), Some(&b"2"[..]));
    // value -> delete
    assert!(s
        .compare_and_swap(b"c", Some(b"2"), None, None)
        .await
        .unwrap()
        .is_swapped());
    assert_eq!(s.get(b"c").await.unwrap(), None);
    // absent -> delete (a no-op that succeeds)
    assert!(s
        .compare_and_swap(b"c", None, None, None)
        .await
        .unwrap()
        .is_swapped());
    assert_eq!(s.get(b"c").await.unwrap(), None);
    // value expected, but absent
    assert_eq!(
        s.compare_and_swap(b"c", Some(b"2"), None, None)
            .await
            .unwrap(),
        CasOutcome::Conflict { current: None }
    );
}

/// The empty value is a value, distinct from absence (key `c`, absent on entry).
async fn cas_on_the_empty_value<S: Store>(s: &S) {
    assert!(s
        .compare_and_swap(b"c", None, Some(b""), None)
        .await
        .unwrap()
        .is_swapped());
    assert_eq!(
        s.compare_and_swap(b"c", None, Some(b"x"), None)
            .await
            .unwrap(),
        CasOutcome::Conflict {
            current: Some(Vec::new())
        }
    );
    assert!(s
        .compare_and_swap(b"c", Some(b""), Some(b"e"), None)
        .await
        .unwrap()
        .is_swapped());
}

/// A swap with a TTL sets it.
async fn cas_with_a_ttl<H: Harness>(h: &H) {
    let c = clock();
    let t = h.open(c.clone()).await;
    assert!(t
        .compare_and_swap(b"ttl", None, Some(b"v"), Some(Duration::from_secs(1)))
        .await
        .unwrap()
        .is_swapped());
    c.advance(Duration::from_secs(1));
    assert_eq!(t.get(b"ttl").await.unwrap(), None);
}

/// 8 tasks × 250 increments of one counter through a CAS loop end at exactly 2,000.
pub async fn compare_and_swap_counter_loses_no_update<H: Harness>(h: &H) {
    let s = Arc::new(h.open(clock()).await);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                for _ in 0..250 {
                    let mut current = s.get(b"counter").await.unwrap();
                    loop {
                        let n = current
                            .as_deref()
                            .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
                            .unwrap_or(0);
                        let next = (n + 1).to_be_bytes();
                        match s
                            .compare_and_swap(b"counter", current.as_deref(), Some(&next), None)
                            .await
                            .unwrap()
                        {
                            CasOutcome::Swapped => break,
                            CasOutcome::Conflict { current: now } => current = now,
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let raw = s.get(b"counter").await.unwrap().expect("counter");
    assert_eq!(u64::from_be_bytes(raw.try_into().expect("8 bytes")), 2_000);
}
