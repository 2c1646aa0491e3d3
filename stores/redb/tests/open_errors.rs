//! Opening bad files is an error, never a panic.

use actix_device_redb::RedbStore;
use actix_device_store::{Store, StoreError};

fn is_open_error(r: Result<RedbStore, StoreError>) -> bool {
    matches!(r, Err(StoreError::Open { .. }))
}

#[test]
fn a_file_that_is_not_a_database_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        b"these are not the pages you are looking for\n".repeat(200),
    )
    .unwrap();
    let err = RedbStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(
        err.to_string().contains("notes.txt"),
        "the error names the file: {err}"
    );
}

#[test]
fn a_missing_directory_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(is_open_error(RedbStore::open(
        dir.path().join("no/such/dir/db.redb")
    )));
}

#[test]
fn a_database_already_open_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let first = RedbStore::open(&path).unwrap();
    let err = RedbStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    drop(first);
    assert!(
        RedbStore::open(&path).is_ok(),
        "free again once the first store is dropped"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_or_corrupted_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        let store = RedbStore::open(&path).unwrap();
        for i in 0..2_000u32 {
            store
                .put(&i.to_be_bytes(), &[7u8; 200], None)
                .await
                .unwrap();
        }
    }
    let original = std::fs::read(&path).unwrap();
    let mut damaged: Vec<Vec<u8>> = vec![
        original[..original.len() / 2].to_vec(),
        original[..100].to_vec(),
        Vec::new(),
    ];
    for offset in [
        0usize,
        64,
        512,
        4096,
        original.len() / 3,
        original.len() - 100,
    ] {
        let mut flipped = original.clone();
        for b in &mut flipped[offset..(offset + 64).min(original.len())] {
            *b ^= 0xa5;
        }
        damaged.push(flipped);
    }
    for (i, bytes) in damaged.iter().enumerate() {
        let p = dir.path().join(format!("damaged-{i}.redb"));
        std::fs::write(&p, bytes).unwrap();
        // Either a clear error or a store that answers reads with values or errors.
        let outcome = std::panic::catch_unwind(|| RedbStore::open(&p));
        let opened = outcome.unwrap_or_else(|_| panic!("case {i}: open panicked"));
        if let Ok(store) = opened {
            for k in [0u32, 999, 1_999] {
                let _ = store.get(&k.to_be_bytes()).await;
            }
        }
    }
}
