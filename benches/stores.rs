//! Each store's get, put, CAS and scan next to the raw engine doing the same work, in
//! one run, with ratios; and redb group commit (16 concurrent writers) against one
//! commit per write.
//!
//! ```sh
//! cargo bench --bench stores --all-features
//! .ci/with-redis cargo bench --bench stores --all-features   # adds the Redis rows
//! .ci/with-postgres cargo bench --bench stores --all-features   # adds the Postgres rows
//! ```
//!
//! The Redis rows (`ACTIX_DEVICE_REDIS_URL` set) compare `RedisStore` with the bare
//! client on the same server: `GET`, `SET`, and for CAS a minimal compare-and-set script
//! (the least any atomic CAS on Redis costs). Both pay the loopback round trip.
//!
//! The Postgres rows (`ACTIX_DEVICE_POSTGRES_URL` set) compare `PostgresStore` with one
//! bare `tokio-postgres` connection sending the same statements, prepared once, to a
//! table of the same layout: what the pool, the timeout and the store's checks add to
//! the round trip and the server's work.
//!
//! Every figure is the median of ROUNDS (default 7) rounds of N operations (default 2000).
//! Raw baselines are given twice: inline (what the engine costs) and through
//! `spawn_blocking` (what any async caller of a blocking engine pays, the hop our sled and
//! redb stores make so they never block the executor).
//!
//! sled and redb `get` is measured three ways on the same 1000 hot keys: through the store
//! with its read cache (the default; every key cached by a warm-up pass, so these are
//! hits), through a store opened with the cache off (the read on `spawn_blocking` every
//! get used to make), and the raw engine inline and behind `spawn_blocking`. The `hot
//! get, 4 tasks` rows read through the cache from four tasks at once on the two workers
//! (contention on the shard locks), as ns per get of the whole run.

mod support;

use support::{env_num, median};

use std::sync::Arc;
use std::time::Instant;

use actix_device::stores::{
    Clock, MokaStore, PostgresStore, RedbStore, RedisStore, SledStore, Store, SystemClock,
};
use actix_device_store::ReadCacheConfig;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

const RAW: TableDefinition<&[u8], &[u8]> = TableDefinition::new("raw");

/// Median nanoseconds per operation over `rounds` rounds of `n` calls of `f`.
async fn measure<F, Fut>(rounds: usize, n: usize, mut f: F) -> f64
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut per_op = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        for i in 0..n {
            f(i).await;
        }
        per_op.push(start.elapsed().as_nanos() as f64 / n as f64);
    }
    median(per_op)
}

/// Median ns of `get` over the 1000 preloaded keys, after one warm-up pass over them.
async fn get_ns<S: Store>(s: &S, rounds: usize, n: usize) -> f64 {
    for i in 0..1000 {
        std::hint::black_box(s.get(&key(i)).await.unwrap());
    }
    measure(rounds, n, |i| async move {
        std::hint::black_box(s.get(&key(i)).await.unwrap());
    })
    .await
}

/// Median ns of `peek` (the session check's read) over the 1000 preloaded keys, after a
/// warm-up `get` pass; a peek that knows nothing panics, since the row would be a lie.
async fn peek_ns<S: Store>(s: &S, rounds: usize, n: usize) -> f64 {
    for i in 0..1000 {
        std::hint::black_box(s.get(&key(i)).await.unwrap());
    }
    measure(rounds, n, |i| async move {
        let found = s.peek(&key(i));
        assert!(
            found != actix_device::stores::Peek::Unknown,
            "a hot key peeks"
        );
        let _ = std::hint::black_box(found);
    })
    .await
}

/// Median ns per `get` with four tasks reading hot keys at once.
async fn concurrent_get_ns<S: Store + Clone>(s: &S, rounds: usize, n: usize) -> f64 {
    let mut per_op = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                tokio::spawn(async move {
                    for i in 0..n {
                        std::hint::black_box(s.get(&key(i * 7 + t)).await.unwrap());
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        per_op.push(start.elapsed().as_nanos() as f64 / (4 * n) as f64);
    }
    median(per_op)
}

fn key(i: usize) -> [u8; 12] {
    let mut k = *b"bench/\0\0\0\0\0\0";
    k[6..10].copy_from_slice(&((i % 1000) as u32).to_be_bytes());
    k
}

struct Row {
    what: String,
    ours: f64,
    raw: f64,
    raw_hop: Option<f64>,
}

fn print(rows: &[Row]) {
    println!(
        "\n{:<22} {:>11} {:>11} {:>8} {:>13} {:>9}",
        "operation", "store ns", "raw ns", "x raw", "raw+hop ns", "x raw+hop"
    );
    for r in rows {
        let hop = r.raw_hop.map_or(("-".to_owned(), "-".to_owned()), |h| {
            (format!("{h:.0}"), format!("{:.2}", r.ours / h))
        });
        println!(
            "{:<22} {:>11.0} {:>11.0} {:>8.2} {:>13} {:>9}",
            r.what,
            r.ours,
            r.raw,
            r.ours / r.raw,
            hop.0,
            hop.1
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = env_num("ROUNDS", 7);
    let n = env_num("N", 2000);
    let dir = tempfile::tempdir().expect("temp dir");
    let value = vec![7u8; 200];
    let mut rows = Vec::new();

    // moka
    let ours = MokaStore::new();
    let raw: moka::future::Cache<Vec<u8>, Arc<[u8]>> = moka::future::Cache::new(1_000_000);
    for i in 0..1000 {
        ours.put(&key(i), &value, None).await.unwrap();
        raw.insert(key(i).to_vec(), Arc::from(&value[..])).await;
    }
    rows.push(Row {
        what: "moka get".into(),
        ours: measure(rounds, n, |i| {
            let s = &ours;
            async move {
                std::hint::black_box(s.get(&key(i)).await.unwrap());
            }
        })
        .await,
        raw: measure(rounds, n, |i| {
            let c = &raw;
            async move {
                std::hint::black_box(c.get(&key(i)[..].to_vec()).await);
            }
        })
        .await,
        raw_hop: None,
    });
    let raw_sync: moka::sync::Cache<Vec<u8>, Arc<[u8]>> = moka::sync::Cache::new(1_000_000);
    for i in 0..1000 {
        raw_sync.insert(key(i).to_vec(), Arc::from(&value[..]));
    }
    rows.push(Row {
        what: "moka peek".into(),
        ours: peek_ns(&ours, rounds, n).await,
        raw: measure(rounds, n, |i| {
            let c = &raw_sync;
            async move {
                std::hint::black_box(c.get(&key(i)[..]));
            }
        })
        .await,
        raw_hop: None,
    });
    rows.push(Row {
        what: "moka put".into(),
        ours: measure(rounds, n, |i| {
            let s = &ours;
            let v = &value;
            async move {
                s.put(&key(i), v, None).await.unwrap();
            }
        })
        .await,
        raw: measure(rounds, n, |i| {
            let c = &raw;
            let v = &value;
            async move {
                c.insert(key(i).to_vec(), Arc::from(&v[..])).await;
            }
        })
        .await,
        raw_hop: None,
    });

    rows.push(Row {
        what: "moka cas".into(),
        ours: measure(rounds, n, |i| {
            let s = &ours;
            let v = &value;
            async move {
                let _ = s
                    .compare_and_swap(&key(i), Some(v), Some(v), None)
                    .await
                    .unwrap();
            }
        })
        .await,
        raw: measure(rounds, n, |i| {
            let c = &raw;
            let v = &value;
            async move {
                use moka::ops::compute::Op;
                let _ = c
                    .entry(key(i).to_vec())
                    .and_compute_with(|e| {
                        let op = match e {
                            Some(e) if e.value()[..] == v[..] => Op::Put(Arc::from(&v[..])),
                            _ => Op::Nop,
                        };
                        std::future::ready(op)
                    })
                    .await;
            }
        })
        .await,
        raw_hop: None,
    });

    // sled
    let ours = SledStore::open(dir.path().join("ours.sled")).unwrap();
    let raw_db = sled::open(dir.path().join("raw.sled")).unwrap();
    for i in 0..1000 {
        ours.put(&key(i), &value, None).await.unwrap();
        raw_db.insert(key(i), &value[..]).unwrap();
    }
    let raw_db = Arc::new(raw_db);
    let uncached = SledStore::builder(dir.path().join("uncached.sled"))
        .read_cache(ReadCacheConfig::disabled())
        .open()
        .unwrap();
    for i in 0..1000 {
        uncached.put(&key(i), &value, None).await.unwrap();
    }
    let raw = measure(rounds, n, |i| {
        let d = &raw_db;
        async move {
            std::hint::black_box(d.get(key(i)).unwrap());
        }
    })
    .await;
    let raw_hop = measure(rounds, n, |i| {
        let d = Arc::clone(&raw_db);
        async move {
            tokio::task::spawn_blocking(move || std::hint::black_box(d.get(key(i)).unwrap()))
                .await
                .unwrap();
        }
    })
    .await;
    rows.push(Row {
        what: "sled get, cached".into(),
        ours: get_ns(&ours, rounds, n).await,
        raw,
        raw_hop: Some(raw_hop),
    });
    rows.push(Row {
        what: "sled peek, cached".into(),
        ours: peek_ns(&ours, rounds, n).await,
        raw,
        raw_hop: Some(raw_hop),
    });
    rows.push(Row {
        what: "sled get, cache off".into(),
        ours: get_ns(&uncached, rounds, n).await,
        raw,
        raw_hop: Some(raw_hop),
    });
    rows.push(Row {
        what: "sled hot get, 4 tasks".into(),
        ours: concurrent_get_ns(&ours, rounds, n).await,
        raw,
        raw_hop: Some(raw_hop),
    });
    println!("sled read cache: {:?}", ours.read_cache_stats());
    rows.push(Row {
        what: "sled put".into(),
        ours: measure(rounds, n, |i| {
            let s = &ours;
            let v = &value;
            async move {
                s.put(&key(i), v, None).await.unwrap();
            }
        })
        .await,
        raw: measure(rounds, n, |i| {
            let d = &raw_db;
            let v = &value;
            async move {
                d.insert(key(i), &v[..]).unwrap();
            }
        })
        .await,
        raw_hop: None,
    });
    // What covering keys in the cache costs a write: the same puts with the cache off.
    rows.push(Row {
        what: "sled put, cache off".into(),
        ours: measure(rounds, n, |i| {
            let s = &uncached;
            let v = &value;
            async move {
                s.put(&key(i), v, None).await.unwrap();
            }
        })
        .await,
        raw: measure(rounds, n, |i| {
            let d = &raw_db;
            let v = &value;
            async move {
                d.insert(key(i), &v[..]).unwrap();
            }
        })
        .await,
        raw_hop: None,
    });
    rows.push(Row {
        what: "sled cas".into(),
        ours: measure(rounds, n, |i| {
            let s = &ours;
            let v = &value;
            async move {
                let _ = s
                    .compare_and_swap(&key(i), Some(v), Some(v), None)
                    .await
                    .unwrap();
            }
        })
        .await,
        raw: measure(rounds, n, |i| {
            let d = &raw_db;
            let v = &value;
            async move {
                let _ = d
                    .compare_and_swap(key(i), Some(&v[..]), Some(&v[..]))
                    .unwrap();
            }
        })
        .await,
        raw_hop: None,
    });
    rows.push(Row {
        what: "sled scan 50".into(),
        ours: measure(rounds, n / 10, |_| {
            let s = &ours;
            async move {
                let _ = std::hint::black_box(s.scan_prefix(b"bench/", None, 50).await.unwrap());
            }
        })
        .await,
        raw: measure(rounds, n / 10, |_| {
            let d = &raw_db;
            async move {
                std::hint::black_box(d.scan_prefix(b"bench/").take(50).collect::<Vec<_>>());
            }
        })
        .await,
        raw_hop: None,
    });

    // redb
    let ours = RedbStore::open(dir.path().join("ours.redb")).unwrap();
    let raw_db = Arc::new(redb::Database::create(dir.path().join("raw.redb")).unwrap());
    {
        let w = raw_db.begin_write().unwrap();
        {
            let mut t = w.open_table(RAW).unwrap();
            for i in 0..1000 {
                t.insert(&key(i)[..], &value[..]).unwrap();
            }
        }
        w.commit().unwrap();
    }
    for i in 0..1000 {
        ours.put(&key(i), &value, None).await.unwrap();
    }
    let raw_get = |db: &redb::Database, i: usize| {
        let r = db.begin_read().unwrap();
        let t = r.open_table(RAW).unwrap();
        std::hint::black_box(t.get(&key(i)[..]).unwrap().map(|v| v.value().to_vec()));
    };
    let uncached = RedbStore::builder(dir.path().join("uncached.redb"))
        .read_cache(ReadCacheConfig::disabled())
        .open()
        .unwrap();
    for i in 0..1000 {
        uncached.put(&key(i), &value, None).await.unwrap();
    }
    let raw = measure(rounds, n, |i| {
        raw_get(&raw_db, i);
        async {}
    })
    .await;
    let raw_hop = measure(rounds, n, |i| {
        let d = Arc::clone(&raw_db);
        async move {
            tokio::task::spawn_blocking(move || raw_get(&d, i))
                .await
                .unwrap();
        }
    })
    .await;
    rows.push(Row {
        what: "redb get, cached".into(),
        ours: get_ns(&ours, rounds, n).await,
        raw,
        raw_hop: Some(raw_hop),
    });
    rows.push(Row {
        what: "redb peek, cached".into(),
        ours: peek_ns(&ours, rounds, n).await,
        raw,
        raw_hop: Some(raw_hop),
    });
    rows.push(Row {
        what: "redb get, cache off".into(),
        ours: get_ns(&uncached, rounds, n).await,
        raw,
        raw_hop: Some(raw_hop),
    });
    rows.push(Row {
        what: "redb hot get, 4 tasks".into(),
        ours: concurrent_get_ns(&ours, rounds, n).await,
        raw,
        raw_hop: Some(raw_hop),
    });
    println!("redb read cache: {:?}", ours.read_cache_stats());
    drop(uncached);
    // The same work as the store's commits: durable, with two-phase commit.
    let raw_put = |db: &redb::Database, i: usize, v: &[u8]| {
        let mut w = db.begin_write().unwrap();
        w.set_two_phase_commit(true);
        {
            let mut t = w.open_table(RAW).unwrap();
            t.insert(&key(i)[..], v).unwrap();
        }
        w.commit().unwrap();
    };
    let put_rounds = rounds.min(3);
    let put_n = (n / 10).max(50);
    rows.push(Row {
        what: "redb put (1 writer)".into(),
        ours: measure(put_rounds, put_n, |i| {
            let s = &ours;
            let v = &value;
            async move {
                s.put(&key(i), v, None).await.unwrap();
            }
        })
        .await,
        raw: measure(put_rounds, put_n, |i| {
            raw_put(&raw_db, i, &value);
            async {}
        })
        .await,
        raw_hop: None,
    });
    // The same work as the store's CAS: read, compare and write in one durable commit.
    let raw_cas = |db: &redb::Database, i: usize, v: &[u8]| {
        let mut w = db.begin_write().unwrap();
        w.set_two_phase_commit(true);
        {
            let mut t = w.open_table(RAW).unwrap();
            let same = t
                .get(&key(i)[..])
                .unwrap()
                .is_some_and(|cur| cur.value() == v);
            if same {
                t.insert(&key(i)[..], v).unwrap();
            }
        }
        w.commit().unwrap();
    };
    rows.push(Row {
        what: "redb cas (1 writer)".into(),
        ours: measure(put_rounds, put_n, |i| {
            let s = &ours;
            let v = &value;
            async move {
                let _ = s
                    .compare_and_swap(&key(i), Some(v), Some(v), None)
                    .await
                    .unwrap();
            }
        })
        .await,
        raw: measure(put_rounds, put_n, |i| {
            raw_cas(&raw_db, i, &value);
            async {}
        })
        .await,
        raw_hop: None,
    });
    rows.push(Row {
        what: "redb scan 50".into(),
        ours: measure(rounds, n / 10, |_| {
            let s = &ours;
            async move {
                let _ = std::hint::black_box(s.scan_prefix(b"bench/", None, 50).await.unwrap());
            }
        })
        .await,
        raw: measure(rounds, n / 10, |_| {
            let r = raw_db.begin_read().unwrap();
            let t = r.open_table(RAW).unwrap();
            let got: Vec<_> = t
                .range(&b"bench/"[..]..)
                .unwrap()
                .take(50)
                .map(|e| e.unwrap().1.value().to_vec())
                .collect();
            std::hint::black_box(got);
            async {}
        })
        .await,
        raw_hop: None,
    });
    if let Some(redis_rows) = redis_rows(rounds, n, &value).await {
        rows.extend(redis_rows);
    } else {
        println!("(no Redis rows: ACTIX_DEVICE_REDIS_URL is not set; see the top of this file)");
    }
    if let Some(postgres_rows) = postgres_rows(rounds, n, &value).await {
        rows.extend(postgres_rows);
    } else {
        println!(
            "(no Postgres rows: ACTIX_DEVICE_POSTGRES_URL is not set; see the top of this file)"
        );
    }
    print(&rows);

    // Group commit: 16 concurrent writers.
    let writers = 16;
    let per_writer = env_num("PUTS_PER_WRITER", 100);
    let ours = Arc::new(ours);
    let mut group = Vec::new();
    let mut single = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let s = Arc::clone(&ours);
                let v = value.clone();
                tokio::spawn(async move {
                    for i in 0..per_writer {
                        s.put(&key(w * per_writer + i), &v, None).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        group.push((writers * per_writer) as f64 / start.elapsed().as_secs_f64());

        let start = Instant::now();
        let threads: Vec<_> = (0..writers)
            .map(|w| {
                let d = Arc::clone(&raw_db);
                let v = value.clone();
                std::thread::spawn(move || {
                    for i in 0..per_writer {
                        raw_put(&d, w * per_writer + i, &v);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        single.push((writers * per_writer) as f64 / start.elapsed().as_secs_f64());
    }
    let (g, s) = (median(group), median(single));
    println!(
        "\nredb, {writers} concurrent writers x {per_writer} durable puts (median of 3):\n  group commit (RedbStore) {g:>10.0} puts/s\n  one commit per write     {s:>10.0} puts/s\n  ratio                    {:>10.2}x  (goal >= 5x)",
        g / s
    );
}

/// RedisStore against the bare client on the server at `ACTIX_DEVICE_REDIS_URL`.
async fn redis_rows(rounds: usize, n: usize, value: &[u8]) -> Option<Vec<Row>> {
    let url = std::env::var("ACTIX_DEVICE_REDIS_URL").ok()?;
    let prefix = format!("bench-{}:", std::process::id());
    let ours = RedisStore::builder(&url)
        .key_prefix(&prefix)
        .connect()
        .await
        .expect("redis connects");
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let raw = redis::aio::ConnectionManager::new(client)
        .await
        .expect("redis connects");
    let raw_key = |i: usize| [prefix.as_bytes(), b"raw/", &key(i)[..]].concat();
    for i in 0..1000 {
        ours.put(&key(i), value, None).await.unwrap();
        let _: () = redis::cmd("SET")
            .arg(raw_key(i))
            .arg(value)
            .query_async(&mut raw.clone())
            .await
            .unwrap();
        let _: () = redis::cmd("ZADD")
            .arg(format!("{prefix}raw-index"))
            .arg(0)
            .arg(raw_key(i))
            .query_async(&mut raw.clone())
            .await
            .unwrap();
    }
    let raw_cas = redis::Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0",
    );
    let mut rows = Vec::new();
    rows.push(Row {
        what: "redis get".into(),
        ours: measure(rounds, n, |i| {
            let s = &ours;
            async move {
                std::hint::black_box(s.get(&key(i)).await.unwrap());
            }
        })
        .await,
        raw: measure(rounds, n, |i| {
            let mut c = raw.clone();
            let k = raw_key(i);
            async move {
                let v: Option<Vec<u8>> =
                    redis::cmd("GET").arg(k).query_async(&mut c).await.unwrap();
                std::hint::black_box(v);
            }
        })
        .await,
        raw_hop: None,
    });
    rows.push(Row {
        what: "redis put".into(),
        ours: measure(rounds, n, |i| {
            let s = &ours;
            async move {
                s.put(&key(i), value, None).await.unwrap();
            }
        })
        .await,
        raw: measure(rounds, n, |i| {
            let mut c = raw.clone();
            let k = raw_key(i);
            async move {
                let _: () = redis::cmd("SET")
                    .arg(k)
                    .arg(value)
                    .query_async(&mut c)
                    .await
                    .unwrap();
            }
        })
        .await,
        raw_hop: None,
    });
    rows.push(Row {
        what: "redis cas".into(),
        ours: measure(rounds, n, |i| {
            let s = &ours;
            async move {
                let _ = s
                    .compare_and_swap(&key(i), Some(value), Some(value), None)
                    .await
                    .unwrap();
            }
        })
        .await,
        raw: measure(rounds, n, |i| {
            let mut c = raw.clone();
            let k = raw_key(i);
            let script = &raw_cas;
            async move {
                let swapped: i64 = script
                    .key(k)
                    .arg(value)
                    .arg(value)
                    .invoke_async(&mut c)
                    .await
                    .unwrap();
                assert_eq!(swapped, 1);
            }
        })
        .await,
        raw_hop: None,
    });
    rows.push(Row {
        what: "redis scan 50".into(),
        ours: measure(rounds, n / 10, |_| {
            let s = &ours;
            async move {
                let _ = std::hint::black_box(s.scan_prefix(b"bench/", None, 50).await.unwrap());
            }
        })
        .await,
        // The bare-client way to an ordered scan: a sorted set of the keys, then MGET.
        raw: measure(rounds, n / 10, |_| {
            let mut c = raw.clone();
            let index = format!("{prefix}raw-index");
            async move {
                let keys: Vec<Vec<u8>> = redis::cmd("ZRANGEBYLEX")
                    .arg(index)
                    .arg("-")
                    .arg("+")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(50)
                    .query_async(&mut c)
                    .await
                    .unwrap();
                let v: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                    .arg(keys)
                    .query_async(&mut c)
                    .await
                    .unwrap();
                std::hint::black_box(v);
            }
        })
        .await,
        raw_hop: None,
    });
    ours.clear().await.expect("clear");
    Some(rows)
}

/// PostgresStore against one bare tokio-postgres connection (statements prepared once)
/// on the server at `ACTIX_DEVICE_POSTGRES_URL`, each on a table of the store's layout.
async fn postgres_rows(rounds: usize, n: usize, value: &[u8]) -> Option<Vec<Row>> {
    let url = std::env::var("ACTIX_DEVICE_POSTGRES_URL").ok()?;
    let connect = |table: String| PostgresStore::builder(&url).table(table).connect();
    let ours = connect(format!("bench_{}", std::process::id()))
        .await
        .expect("postgres connects");
    // Created through the store, so it has the same layout and index; used bare.
    let raw_table = connect(format!("bench_raw_{}", std::process::id()))
        .await
        .expect("postgres connects");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("postgres connects");
    tokio::spawn(connection);
    let t = raw_table.table();
    let live = "(expires_at IS NULL OR expires_at > $now)";
    let get_sql = format!(
        "SELECT value FROM {t} WHERE key = $1 AND {}",
        live.replace("$now", "$2")
    );
    let get = client.prepare(&get_sql).await.unwrap();
    let put_sql = format!(
        "INSERT INTO {t} (key, value, expires_at) VALUES ($1, $2, $3) ON CONFLICT (key) \
         DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at"
    );
    let put = client.prepare(&put_sql).await.unwrap();
    let cas_sql = format!(
        "UPDATE {t} SET value = $3, expires_at = $4 WHERE key = $1 AND value = $2 AND {}",
        live.replace("$now", "$5")
    );
    let cas = client.prepare(&cas_sql).await.unwrap();
    let scan_sql = format!(
        "SELECT key, value FROM {t} WHERE key >= $1 AND key > $2 AND key < $3 AND {} \
         ORDER BY key LIMIT $5",
        live.replace("$now", "$4")
    );
    let scan = client.prepare(&scan_sql).await.unwrap();
    let now = || i64::try_from(SystemClock.now_millis()).unwrap();
    let never: Option<i64> = None;
    for i in 0..1000 {
        ours.put(&key(i), value, None).await.unwrap();
        client
            .execute(&put, &[&&key(i)[..], &value, &never])
            .await
            .unwrap();
    }
    let mut rows = Vec::new();
    rows.push(
        paired(
            "postgres get",
            rounds,
            n,
            |i| {
                let s = &ours;
                async move {
                    std::hint::black_box(s.get(&key(i)).await.unwrap());
                }
            },
            |i| {
                let (c, st) = (&client, &get);
                async move {
                    let row = c.query_opt(st, &[&&key(i)[..], &now()]).await.unwrap();
                    std::hint::black_box(row.map(|r| r.get::<_, Vec<u8>>(0)));
                }
            },
        )
        .await,
    );
    rows.push(
        paired(
            "postgres put",
            rounds,
            n,
            |i| {
                let s = &ours;
                async move {
                    s.put(&key(i), value, None).await.unwrap();
                }
            },
            |i| {
                let (c, st) = (&client, &put);
                async move {
                    c.execute(st, &[&&key(i)[..], &value, &never])
                        .await
                        .unwrap();
                }
            },
        )
        .await,
    );
    rows.push(
        paired(
            "postgres cas",
            rounds,
            n,
            |i| {
                let s = &ours;
                async move {
                    let outcome = s
                        .compare_and_swap(&key(i), Some(value), Some(value), None)
                        .await
                        .unwrap();
                    assert!(outcome.is_swapped());
                }
            },
            |i| {
                let (c, st) = (&client, &cas);
                async move {
                    let k = &key(i)[..];
                    let swapped = c
                        .execute(st, &[&k, &value, &value, &never, &now()])
                        .await
                        .unwrap();
                    assert_eq!(swapped, 1);
                }
            },
        )
        .await,
    );
    rows.push(
        paired(
            "postgres scan 50",
            rounds,
            n / 10,
            |_| {
                let s = &ours;
                async move {
                    let _ = std::hint::black_box(s.scan_prefix(b"bench/", None, 50).await.unwrap());
                }
            },
            |_| {
                let (c, st) = (&client, &scan);
                async move {
                    let (prefix, end, after): (&[u8], &[u8], &[u8]) = (b"bench/", b"bench0", b"");
                    let rows = c
                        .query(st, &[&prefix, &after, &end, &now(), &51i64])
                        .await
                        .unwrap();
                    let entries: Vec<(Vec<u8>, Vec<u8>)> =
                        rows.iter().take(50).map(|r| (r.get(0), r.get(1))).collect();
                    std::hint::black_box(entries);
                }
            },
        )
        .await,
    );
    ours.drop_table().await.expect("drop table");
    raw_table.drop_table().await.expect("drop table");
    Some(rows)
}

/// A row whose two sides are measured in alternating rounds (ours then raw, raw then
/// ours, ...), so load that comes and goes on a shared machine falls on both alike.
async fn paired<F, Fut, G, Gut>(what: &str, rounds: usize, n: usize, mut ours: F, mut raw: G) -> Row
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
    G: FnMut(usize) -> Gut,
    Gut: std::future::Future<Output = ()>,
{
    let (mut a, mut b) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for round in 0..rounds {
        if round % 2 == 0 {
            a.push(measure(1, n, &mut ours).await);
            b.push(measure(1, n, &mut raw).await);
        } else {
            b.push(measure(1, n, &mut raw).await);
            a.push(measure(1, n, &mut ours).await);
        }
    }
    Row {
        what: what.into(),
        ours: median(a),
        raw: median(b),
        raw_hop: None,
    }
}
