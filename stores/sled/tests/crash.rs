//! Crash test (see `actix_device_store::testkit::crash`): sled is durable only after a
//! flush, so a record is acknowledged once a `flush` after its `put` returned, and must
//! then survive SIGKILL.

fn main() {
    actix_device_store::testkit::crash::main(|path| actix_device_sled::SledStore::open(path), true);
}
