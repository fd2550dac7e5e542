//! State owned by the store: what `set` and the other transitions leave in memory and on disk.

use super::{Fixture, VOLUME_CONFIG};

/// The env of the record on disk, as `set` persisted it.
fn env_on_disk(f: &Fixture, id: &str) -> Vec<String> {
    let path = f.root().join(id).join("config.json");
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    serde_json::from_value(record["plugin"]["Settings"]["Env"].clone()).unwrap()
}

/// Before, `set` wrote the disk and then skipped memory when the record lock was poisoned:
/// the plugin showed its old settings until the next restart. Now both always agree.
#[tokio::test]
async fn set_after_a_panic_under_the_lock_reaches_disk_and_memory() {
    let f = Fixture::new().await;
    let p = f.create("vol").await;
    assert!(VOLUME_CONFIG.contains("DEBUG"));
    f.m.store().resolve("vol").unwrap().poison_record();
    f.m.set("vol", &["DEBUG=1".into()]).await.unwrap();
    assert_eq!(f.m.inspect("vol").unwrap().settings.env(), ["DEBUG=1", "FIXED=1"]);
    assert_eq!(env_on_disk(&f, &p.id), ["DEBUG=1", "FIXED=1"]);
    // A refused set changes neither.
    assert!(f.m.set("vol", &["FIXED=2".into()]).await.is_err());
    assert_eq!(f.m.inspect("vol").unwrap().settings.env(), ["DEBUG=1", "FIXED=1"]);
    assert_eq!(env_on_disk(&f, &p.id), ["DEBUG=1", "FIXED=1"]);
}
