//! Crash test (see `actix_device_store::testkit::crash`): a record is acknowledged once
//! its `put` returned Ok — every commit is durable — and must survive SIGKILL.

fn main() {
    actix_device_store::testkit::crash::main(
        |path| actix_device_redb::RedbStore::open(path),
        false,
    );
}
