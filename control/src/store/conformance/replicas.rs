//! Conformance checks of the replica registry: heartbeats count the
//! replicas alive within the time-to-live, and a replica that leaves stops
//! counting at once.

use std::time::Duration;

use super::at;
use crate::store::Store;

/// Replicas alive are those seen within `ttl`; a clean exit counts at once.
pub async fn replicas(store: &dyn Store) {
    let ttl = Duration::from_secs(30);
    let beat = |id: &'static str, offset_ms: i64| store.replica_heartbeat(id, at(offset_ms), ttl);
    assert_eq!(
        beat("replica-a", 0).await.expect("heartbeat"),
        1,
        "the first replica alone"
    );
    assert_eq!(
        beat("replica-b", 1_000).await.expect("heartbeat"),
        2,
        "a second replica joins"
    );
    assert_eq!(
        beat("replica-a", 2_000).await.expect("heartbeat"),
        2,
        "a heartbeat again is still one replica"
    );
    assert_eq!(
        beat("replica-c", 3_000).await.expect("heartbeat"),
        3,
        "a third replica joins"
    );
    // replica-b was last seen at 1 s; at 31.5 s it has been gone 30.5 s.
    assert_eq!(
        beat("replica-a", 31_500).await.expect("heartbeat"),
        2,
        "a replica not seen for the ttl no longer counts"
    );
    store.replica_gone("replica-c").await.expect("gone");
    assert_eq!(
        beat("replica-a", 32_000).await.expect("heartbeat"),
        1,
        "a replica that left counts no more"
    );
    store.replica_gone("replica-a").await.expect("gone");
    store
        .replica_gone("replica-never-seen")
        .await
        .expect("forgetting an unknown replica is not an error");
}

/// A duty is held by one replica at a time until it expires; its holder
/// may take it again, another only once it expired.
pub async fn replica_duties(store: &dyn Store) {
    let ttl = Duration::from_secs(60);
    let take = |replica: &'static str, offset_ms: i64| {
        store.take_duty("sweep", replica, at(offset_ms), ttl)
    };
    assert!(
        take("replica-a", 0).await.expect("take"),
        "a free duty is taken"
    );
    assert!(
        !take("replica-b", 1_000).await.expect("take"),
        "a held duty is refused to another replica"
    );
    assert!(
        take("replica-a", 2_000).await.expect("take"),
        "its holder takes it again, extending it"
    );
    assert!(
        !take("replica-b", 61_000).await.expect("take"),
        "extended by the holder until 62 s"
    );
    assert!(
        take("replica-b", 62_000).await.expect("take"),
        "an expired duty passes to another replica"
    );
    assert!(
        store
            .take_duty("another-duty", "replica-a", at(62_000), ttl)
            .await
            .expect("take"),
        "duties are held one by one"
    );
}
