//! The PostgreSQL backend against a real server (a throwaway cluster, see
//! `testing`): the whole conformance suite, one database per check, and what
//! only several replicas on one database can show: duplicate deliveries
//! racing, leases across clocks, events crossing stores, migrations racing
//! and a newer schema refused.

use std::time::Duration;

use super::testing::TestCluster;
use super::*;
use crate::store::{
    AccountStore, ConfigurationStore, JobStore, LeaseHolder, Store, TenantStore, conformance,
};

async fn fresh_store() -> ((), PostgresStore) {
    ((), TestCluster::shared().fresh_store().await)
}

crate::store_conformance_tests!(fresh_store());

/// The checks also hold when they share one database.
#[tokio::test]
async fn conformance_run_all_on_one_store() {
    let store = TestCluster::shared().fresh_store().await;
    conformance::run_all(&store).await;
}

pub(super) async fn open(url: &str) -> PostgresStore {
    PostgresStore::open(&PostgresConfig::new(PostgresUrl::new(url)))
        .await
        .expect("open postgres store")
}

/// Two replicas: two stores (two pools, two clocks) on one database.
pub(super) async fn two_replicas() -> (PostgresStore, PostgresStore) {
    let url = TestCluster::shared().fresh_database().await;
    let (a, b) = tokio::join!(open(&url), open(&url));
    (a, b)
}

/// A tenant with an installed account and an owner, made through `store`.
pub(super) async fn tenant(store: &dyn Store) -> (String, String, String) {
    let now = Timestamp::now();
    let institution = store
        .create_institution("Replica University", now)
        .await
        .expect("create institution");
    let configuration = store
        .create_configuration(NewConfiguration {
            institution_id: institution.institution_id.clone(),
            display_name: "Main".into(),
            view_priority: Vec::new(),
            policy: Default::default(),
            token_hash: crate::secrets::TokenHash::of(&crate::store::new_id("t")),
            now,
        })
        .await
        .expect("create configuration");
    let account = crate::store::new_id("zacct");
    store
        .install_account(AccountInstall {
            configuration_id: configuration.configuration_id.clone(),
            zoom_account_id: account.clone(),
            plan: ZoomPlan::Education,
            oauth: None,
            now,
        })
        .await
        .expect("install account");
    (
        institution.institution_id,
        configuration.configuration_id,
        account,
    )
}

pub(super) fn new_job(institution_id: &str, account: &str, meeting_uuid: &str) -> NewJob {
    let now = Timestamp::now();
    NewJob {
        institution_id: institution_id.into(),
        zoom_account_id: account.into(),
        meeting_uuid: meeting_uuid.into(),
        meeting_id: 1,
        topic: "Raced".into(),
        host_email: "host@example.edu".into(),
        meeting_start: None,
        state: JobState::Skipped,
        skip_reason: Some(SkipReason::NoMatchingUser),
        message: String::new(),
        owner_user_id: None,
        recording_file: None,
        skipped_file_count: 0,
        skipped_segment_count: 0,
        sealed_download_url: None,
        sealed_download_token: None,
        sealed_recording: None,
        event_time: now,
        now,
        source: JobSource::Webhook,
    }
}

#[tokio::test]
async fn replicas_racing_one_delivery_create_exactly_one_job() {
    let (a, b) = two_replicas().await;
    let (institution_id, _, account) = tenant(&a).await;
    for round in 0..20 {
        let uuid = format!("raced-{round}==");
        let job = new_job(&institution_id, &account, &uuid);
        let (from_a, from_b) = tokio::join!(a.upsert_job(job.clone()), b.upsert_job(job));
        let ((job_a, created_a), (job_b, created_b)) =
            (from_a.expect("upsert on a"), from_b.expect("upsert on b"));
        assert_eq!(
            u8::from(created_a) + u8::from(created_b),
            1,
            "round {round}: exactly one replica creates the job"
        );
        assert_eq!(
            job_a.job_id, job_b.job_id,
            "round {round}: both see one job"
        );
    }
    let listed = a
        .list_jobs(&institution_id, &JobFilter::default(), &PageQuery::first(0))
        .await
        .expect("list jobs");
    assert_eq!(listed.items.len(), 20, "one job per meeting uuid");
}

#[tokio::test]
async fn replicas_racing_installs_and_names_keep_one_winner() {
    let (a, b) = two_replicas().await;
    let (_, configuration_a, _) = tenant(&a).await;
    let (_, configuration_b, _) = tenant(&b).await;
    let install = |configuration_id: &str| AccountInstall {
        configuration_id: configuration_id.to_string(),
        zoom_account_id: "zacct-contested".into(),
        plan: ZoomPlan::Education,
        oauth: None,
        now: Timestamp::now(),
    };
    let (on_a, on_b) = tokio::join!(
        a.install_account(install(&configuration_a)),
        b.install_account(install(&configuration_b))
    );
    assert_eq!(
        u8::from(on_a.is_ok()) + u8::from(on_b.is_ok()),
        1,
        "one account, one institution: {on_a:?} / {on_b:?}"
    );
    let loser = on_a.err().or(on_b.err()).expect("one install fails");
    assert_eq!(loser.class(), crate::error::ErrorClass::AlreadyExists);

    let institution = a
        .create_institution("Names", Timestamp::now())
        .await
        .expect("create institution");
    let named = |label: &str| NewConfiguration {
        institution_id: institution.institution_id.clone(),
        display_name: "Same Name".into(),
        view_priority: Vec::new(),
        policy: Default::default(),
        token_hash: crate::secrets::TokenHash::of(label),
        now: Timestamp::now(),
    };
    let (on_a, on_b) = tokio::join!(
        a.create_configuration(named("token-a")),
        b.create_configuration(named("token-b"))
    );
    let errors: Vec<_> = [on_a, on_b].into_iter().filter_map(Result::err).collect();
    assert_eq!(errors.len(), 1, "unique configuration names: {errors:?}");
    assert_eq!(errors[0].class(), crate::error::ErrorClass::AlreadyExists);
}

/// A replica whose clock runs far ahead cannot take a live lease written by
/// another replica; the database's clock decides, and does expire it.
#[tokio::test]
async fn another_replicas_clock_cannot_steal_a_live_lease() {
    let (a, b) = two_replicas().await;
    let (institution_id, _, account) = tenant(&a).await;
    let job = NewJob {
        state: JobState::Queued,
        skip_reason: None,
        ..new_job(&institution_id, &account, "leased==")
    };
    a.upsert_job(job).await.expect("upsert");
    let now = Timestamp::now();
    let lease = a
        .claim_job("worker-a", Duration::from_millis(2500), now)
        .await
        .expect("claim on a")
        .expect("a claims the job");
    let an_hour_ahead = now.saturating_add_millis(3_600_000);
    let stolen = b
        .claim_job("worker-b", Duration::from_secs(30), an_hour_ahead)
        .await
        .expect("claim on b");
    assert!(
        stolen.is_none(),
        "b's clock an hour ahead must not take a's live lease"
    );
    // Once the database's clock passes the lease, b takes it over.
    tokio::time::sleep(Duration::from_millis(2700)).await;
    let taken = b
        .claim_job("worker-b", Duration::from_secs(30), Timestamp::now())
        .await
        .expect("claim on b")
        .expect("b takes over the expired lease");
    assert_eq!(taken.job.job_id, lease.job.job_id);
    let holder = LeaseHolder {
        job_id: &lease.job.job_id,
        worker_id: "worker-a",
    };
    assert!(
        !a.renew_lease(holder, Duration::from_secs(30), Timestamp::now())
            .await
            .expect("renew"),
        "a's lease is lost"
    );
}

#[tokio::test]
async fn a_job_event_from_one_replica_reaches_another_within_a_second() {
    let (a, b) = two_replicas().await;
    let (institution_id, _, account) = tenant(&a).await;
    let mut watch_b = b.subscribe_job_events();
    let (job, created) = a
        .upsert_job(new_job(&institution_id, &account, "watched=="))
        .await
        .expect("upsert on a");
    assert!(created);
    let event = tokio::time::timeout(Duration::from_secs(1), watch_b.recv())
        .await
        .expect("b hears of a's job within 1s")
        .expect("event");
    assert_eq!(event.job, job, "the event carries the committed job");
    assert!(!event.progress_only);

    let mut progressed = job.clone();
    progressed.bytes_transferred = 4096;
    a.publish_progress(progressed);
    let event = tokio::time::timeout(Duration::from_secs(1), watch_b.recv())
        .await
        .expect("b hears of a's progress within 1s")
        .expect("event");
    assert!(event.progress_only);
    assert_eq!(
        (event.job.job_id.as_str(), event.job.bytes_transferred),
        (job.job_id.as_str(), 4096)
    );
}

#[tokio::test]
async fn replicas_migrating_at_once_apply_each_migration_once_and_a_newer_schema_is_refused() {
    let url = TestCluster::shared().fresh_database().await;
    let stores = futures::future::join_all((0..4).map(|_| open(&url))).await;
    let client = stores[0].client().await.expect("client");
    let versions: Vec<i64> = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("read versions")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let expected: Vec<i64> = schema::MIGRATIONS.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions, expected, "each migration is recorded once");

    client
        .execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .expect("pretend a newer ferry migrated");
    let refused = PostgresStore::open(&PostgresConfig::new(PostgresUrl::new(url.clone())))
        .await
        .expect_err("a newer schema is refused");
    assert!(
        refused.to_string().contains("newer than this ferry"),
        "{refused}"
    );
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_and_the_url_stays_secret() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let url = PostgresUrl::new(format!("postgres://ferry:s3cret-pw@127.0.0.1:{port}/ferry"));
    assert!(!format!("{url:?}").contains("s3cret-pw"));
    let mut config = PostgresConfig::new(url);
    config.connect_timeout = Duration::from_secs(1);
    assert!(!format!("{config:?}").contains("s3cret-pw"));
    let error = PostgresStore::open(&config)
        .await
        .expect_err("nothing listens there");
    assert_eq!(error.class(), crate::error::ErrorClass::Unavailable);
    assert!(!error.to_string().contains("s3cret-pw"), "{error}");
    let malformed = PostgresUrl::new("postgres://ferry:s3cret-pw@[bad/ferry");
    let error = malformed.validate().expect_err("malformed");
    assert!(!error.to_string().contains("s3cret-pw"), "{error}");
}

/// A store whose database goes away answers Unavailable, and serves again
/// by itself once the database is back, events included.
#[tokio::test]
async fn the_store_recovers_by_itself_after_an_outage() {
    let cluster = TestCluster::start();
    let url = cluster.fresh_database().await;
    let mut config = PostgresConfig::new(PostgresUrl::new(url));
    config.connect_timeout = Duration::from_secs(1);
    let (a, b) = (
        PostgresStore::open(&config).await.expect("open a"),
        PostgresStore::open(&config).await.expect("open b"),
    );
    let (institution_id, _, account) = tenant(&a).await;
    cluster.stop();
    let error = a
        .upsert_job(new_job(&institution_id, &account, "during-outage=="))
        .await
        .expect_err("the database is down");
    assert_eq!(error.class(), crate::error::ErrorClass::Unavailable);
    cluster.restart();
    let mut watch_b = b.subscribe_job_events();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let job = loop {
        match a
            .upsert_job(new_job(&institution_id, &account, "after-outage=="))
            .await
        {
            Ok((job, _)) => break job,
            Err(e) if tokio::time::Instant::now() < deadline => {
                assert_eq!(e.class(), crate::error::ErrorClass::Unavailable, "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the store did not recover: {e}"),
        }
    };
    // b's listener reconnects with backoff; a change made once it has must
    // reach b. Repeat the change until one does, within the deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        a.cancel_job(&institution_id, &job.job_id, Timestamp::now())
            .await
            .ok();
        match tokio::time::timeout(Duration::from_secs(1), watch_b.recv()).await {
            Ok(Ok(event)) if event.job.job_id == job.job_id => break,
            _ if tokio::time::Instant::now() < deadline => {
                a.requeue_job(JobRequeue {
                    institution_id: institution_id.clone(),
                    job_id: job.job_id.clone(),
                    now: Timestamp::now(),
                    owner_user_id: String::new(),
                    recording_file: None,
                    sealed_download_url: None,
                    message: String::new(),
                })
                .await
                .ok();
            }
            _ => panic!("b's events did not recover after the outage"),
        }
    }
}
