//! Flag bucketing as a property: for random weights, over 100,000 random device ids, each
//! variant's share is within one percentage point of its weight, and a restarted `Flags`
//! on the same durable store assigns every id the same variant.

#![cfg(feature = "redb")]

use std::collections::HashMap;
use std::sync::Arc;

use actix_device::flags::{FlagDefinition, Flags};
use actix_device::stores::{RedbStore, Store};
use actix_device::{DeviceId, ServiceContext};
use proptest::prelude::*;

const IDS: usize = 100_000;

fn shares(def: &FlagDefinition, ids: &[DeviceId]) -> HashMap<String, f64> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for id in ids {
        if let Some(v) = def.evaluate(id) {
            *counts.entry(v).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(k, n)| (k, n as f64 / ids.len() as f64))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn variant_shares_follow_weights(
        weights in proptest::collection::vec(1u32..100, 2..5),
        salt in "[a-z]{0,8}",
    ) {
        let ids: Vec<DeviceId> = (0..IDS).map(|_| DeviceId::new_v7()).collect();
        let mut def = FlagDefinition::new("exp");
        def.salt = salt;
        def.variants = weights.iter().enumerate().map(|(i, w)| (format!("v{i}"), *w)).collect();
        let total: u32 = weights.iter().sum();
        let got = shares(&def, &ids);
        for (i, w) in weights.iter().enumerate() {
            let want = f64::from(*w) / f64::from(total);
            let share = got.get(&format!("v{i}")).copied().unwrap_or(0.0);
            prop_assert!((share - want).abs() <= 0.01, "variant {i}: share {share:.4}, weight {want:.4}");
        }
    }

    #[test]
    fn rollout_share_follows_the_percentage(bp in 0u16..=10_000) {
        let ids: Vec<DeviceId> = (0..IDS).map(|_| DeviceId::new_v7()).collect();
        let mut def = FlagDefinition::new("rollout");
        def.rollout_bp = bp;
        let on = ids.iter().filter(|id| def.evaluate(id).is_some()).count() as f64 / IDS as f64;
        prop_assert!((on - f64::from(bp) / 10_000.0).abs() <= 0.01, "{bp} bp gave {on:.4}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn assignments_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.redb");
    let ids: Vec<DeviceId> = (0..IDS).map(|_| DeviceId::new_v7()).collect();
    let mut def = FlagDefinition::new("exp");
    def.variants = vec![("a".into(), 1), ("b".into(), 2), ("c".into(), 3)];
    def.rollout_bp = 7_500;
    let before: Vec<Option<String>> = {
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(&path).unwrap());
        let flags = Flags::new(&ServiceContext::new(store.clone()));
        flags.upsert(def).await.unwrap();
        store.flush().await.unwrap();
        ids.iter().map(|id| flags.evaluate("exp", id)).collect()
    };
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&path).unwrap());
    let flags = Flags::new(&ServiceContext::new(store));
    flags.reload().await.unwrap();
    let after: Vec<Option<String>> = ids.iter().map(|id| flags.evaluate("exp", id)).collect();
    assert_eq!(before, after);
}
