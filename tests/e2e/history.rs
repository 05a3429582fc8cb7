//! What a year of recordings must not cost: a clean shutdown leaves the
//! store's WAL checkpointed and empty.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_checkpoints_and_truncates_the_wal() {
    let daemon = TestDaemon::start().await.unwrap();
    let mut operator = daemon.operator().await.unwrap();
    for i in 0..20 {
        create_institution(&mut operator, &format!("Shutdown U {i}"))
            .await
            .unwrap();
    }
    let wal = daemon.data_dir.join("ferry.db-wal");
    assert!(
        std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0),
        "the writes went through the WAL"
    );
    drop(operator);
    let data_dir = daemon.data_dir.clone();
    let _guard = daemon.stop().await;
    assert_eq!(
        std::fs::metadata(data_dir.join("ferry.db-wal")).map_or(0, |m| m.len()),
        0,
        "the WAL is empty or gone after a clean shutdown"
    );
}
