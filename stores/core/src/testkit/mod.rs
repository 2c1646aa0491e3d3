//! The conformance suite: the definition of a correct [`Store`].
//!
//! A store crate (ours or yours) implements [`Harness`] — how to open a fresh store on a
//! given clock, and for persistent stores how to reopen it — and runs [`run_suite`] from a
//! multi-threaded tokio test:
//!
//! ```ignore
//! use actix_device_store::{testkit, ManualClock};
//!
//! struct MyHarness { dir: tempfile::TempDir }
//!
//! #[actix_device_store::async_trait]
//! impl testkit::Harness for MyHarness {
//!     type Store = MyStore;
//!     async fn open(&self, clock: ManualClock) -> MyStore {
//!         MyStore::open_fresh(self.dir.path(), clock)
//!     }
//!     async fn reopen(&self, old: MyStore, clock: ManualClock) -> Option<MyStore> {
//!         let path = old.path().to_owned();
//!         drop(old);
//!         Some(MyStore::open(path, clock))
//!     }
//! }
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn conformance() {
//!     testkit::run_suite(&MyHarness { dir: tempfile::tempdir().unwrap() }).await;
//! }
//! ```
//!
//! Every check is also public on its own, so a failure names the rule that broke. The
//! concurrency checks spawn tokio tasks: run the suite on a multi-threaded runtime so
//! they really race.
//!
//! The checks live in one file per part of the contract: `basics` (round trips, bytes,
//! limits), `expiry`, `conditional` (insert-if-absent and compare-and-swap), `scans`,
//! `batches`, `peeks` and `reopen`; [`crash`] is the process-kill test for persistent stores.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use async_trait::async_trait;
use futures_util::FutureExt;

use crate::{ManualClock, Store};

mod basics;
mod batches;
mod conditional;
pub mod crash;
mod expiry;
mod peeks;
mod reopen;
mod scans;

pub use basics::{binary_keys_and_values, large_values, limits_are_errors, round_trips};
pub use batches::{batch_is_all_or_nothing_for_readers, failed_batch_leaves_nothing};
pub use conditional::{
    compare_and_swap_combinations, compare_and_swap_counter_loses_no_update,
    insert_if_absent_race_has_one_winner,
};
pub use expiry::{
    purge_removes_expired_entries, put_without_ttl_clears_the_old_ttl,
    ttl_hides_expired_entries_everywhere,
};
pub use peeks::{
    peeks_are_never_stale, peeks_never_go_back_under_writes, watches_end_on_every_change,
};
pub use reopen::flushed_writes_survive_reopen;
pub use scans::{
    scan_is_ordered_and_bounded_by_prefix, scan_pages_neither_skip_nor_repeat_under_inserts,
};

/// How the suite gets stores to test.
#[async_trait]
pub trait Harness: Send + Sync {
    /// The store under test.
    type Store: Store;

    /// A fresh, empty store that measures expiry by `clock`.
    async fn open(&self, clock: ManualClock) -> Self::Store;

    /// For persistent stores: close `store` (after its `flush`) and open the same data
    /// again on `clock`. The default, `None`, marks a store that keeps nothing across
    /// restarts; the persistence check is then skipped with a printed note.
    async fn reopen(&self, store: Self::Store, clock: ManualClock) -> Option<Self::Store> {
        drop((store, clock));
        None
    }
}

/// A clock far from the epoch and from the wall clock, so stores cannot lean on either.
fn clock() -> ManualClock {
    ManualClock::new(1_900_000_000_000)
}

/// Runs every check in turn, printing each name as it starts. A failing check panics
/// with its name and the broken assertion: `conformance check `scan_...` failed: ...`.
pub async fn run_suite<H: Harness>(h: &H) {
    macro_rules! check {
        ($($name:ident),* $(,)?) => {
            $(
                eprintln!("conformance: {}", stringify!($name));
                if let Err(panic) = AssertUnwindSafe($name(h)).catch_unwind().await {
                    panic!(
                        "conformance check `{}` failed: {}",
                        stringify!($name),
                        panic_message(panic.as_ref())
                    );
                }
            )*
        };
    }
    check!(
        round_trips,
        binary_keys_and_values,
        large_values,
        limits_are_errors,
        ttl_hides_expired_entries_everywhere,
        put_without_ttl_clears_the_old_ttl,
        purge_removes_expired_entries,
        insert_if_absent_race_has_one_winner,
        compare_and_swap_combinations,
        compare_and_swap_counter_loses_no_update,
        scan_is_ordered_and_bounded_by_prefix,
        scan_pages_neither_skip_nor_repeat_under_inserts,
        batch_is_all_or_nothing_for_readers,
        failed_batch_leaves_nothing,
        peeks_are_never_stale,
        peeks_never_go_back_under_writes,
        watches_end_on_every_change,
        flushed_writes_survive_reopen,
    );
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(a panic without a message)"
    }
}
