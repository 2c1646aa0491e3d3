//! Opening bad paths is an error, never a panic.

use actix_device_sled::SledStore;
use actix_device_store::{Store, StoreError};

#[test]
fn a_path_that_is_a_file_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain-file");
    std::fs::write(&path, b"not a directory").unwrap();
    let err = SledStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(err.to_string().contains("plain-file"), "{err}");
}

#[test]
fn missing_parent_directories_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c");
    assert!(SledStore::open(&path).is_ok());
    assert!(path.is_dir());
}

#[test]
fn a_database_already_open_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let first = SledStore::open(&path).unwrap();
    let err = SledStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    drop(first);
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupted_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = SledStore::open(&path).unwrap();
        for i in 0..2_000u32 {
            store
                .put(&i.to_be_bytes(), &[7u8; 200], None)
                .await
                .unwrap();
        }
        store.flush().await.unwrap();
    }
    let files: Vec<_> = walk(&path);
    assert!(!files.is_empty());
    for (i, damage) in [
        Damage::Truncate,
        Damage::Flip(0),
        Damage::Flip(4096),
        Damage::Garbage,
    ]
    .iter()
    .enumerate()
    {
        let copy = dir.path().join(format!("damaged-{i}"));
        copy_dir(&path, &copy);
        for f in walk(&copy) {
            let mut bytes = std::fs::read(&f).unwrap();
            match damage {
                Damage::Truncate => bytes.truncate(bytes.len() / 2),
                Damage::Flip(at) => {
                    let start = (*at).min(bytes.len().saturating_sub(1));
                    let end = (start + 256).min(bytes.len());
                    for b in &mut bytes[start..end] {
                        *b ^= 0x5a;
                    }
                }
                Damage::Garbage => bytes = b"garbage".repeat(100),
            }
            std::fs::write(&f, bytes).unwrap();
        }
        let opened = std::panic::catch_unwind(|| SledStore::open(&copy))
            .unwrap_or_else(|_| panic!("case {i}: open panicked"));
        if let Ok(store) = opened {
            for k in [0u32, 1_999] {
                let _ = store.get(&k.to_be_bytes()).await;
            }
        }
    }
}

enum Damage {
    Truncate,
    Flip(usize),
    Garbage,
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}
