//! The store conformance suite: the checks every `Store` backend must pass.
//! It owns every rule the `Store` trait documents, written against
//! `&dyn Store` so that each backend (SQLite today, Postgres later) runs the
//! same checks and must pass them unchanged; it must never depend on a
//! particular backend. This module holds the helpers the checks share and
//! `run_all`; the checks live in submodules by subject and are re-exported
//! here.
//!
//! Each check creates its own institutions, accounts and users, so checks do
//! not see each other's tenants. Two things are global by design and shape
//! how the suite must be run:
//! - the operator token hash is a singleton, so `operator_token` (and
//!   `run_all`) needs a fresh store;
//! - `claim_job` takes the oldest claimable job of any institution, so every
//!   check that creates QUEUED jobs cancels or completes them before it
//!   returns, and the lease checks fail loudly if some other job is claimable.
//!
//! Backends run the suite from their own tests (one `#[tokio::test]` per check
//! reads best in failure reports); the `conformance` feature exports it to
//! backends living outside this crate.

mod accounts;
mod choices;
mod companions;
mod configurations;
mod counts;
mod directory;
mod jobs;
mod listing;
mod media;
mod reconcile;
mod replicas;
mod retention;
mod sections;
mod tenants;
mod transfers;
mod web;

pub use accounts::accounts;
pub use choices::{ingest_choices_and_policy, zoom_trash_after_completion};
pub use companions::job_companions;
pub use configurations::{configuration_delete, configurations};
pub use counts::{
    PRE_COUNTS_JOB_STATES, job_counts_follow_every_change, pre_counts_after_cancel,
    pre_counts_job_insert, pre_counts_seeded,
};
pub use directory::{user_sync_conflicts, user_sync_modes};
pub use jobs::{job_cancel_and_requeue, job_leases, job_list_filters, job_upsert_and_scope};
pub use listing::job_list_filter_combinations;
pub use media::{job_completion_and_media, job_events};
pub use reconcile::{backfills, gone_recordings, job_sources, reconcile_cursors_and_accounts};
pub use replicas::{replica_duties, replicas};
pub use retention::job_retention;
pub use sections::{section_mappings_and_shares, section_sync_modes};
pub use tenants::{admin_keys, institutions, operator_token};
pub use transfers::{fresh_download_credentials, transfer_state_and_attempts};
pub use web::{account_token_refresh, web_tickets};

use std::fmt::Debug;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::error::ErrorClass;
use crate::model::*;
use crate::secrets::{Sealed, TokenHash};
use crate::store::{LeaseHolder, PageQuery, Store, StoreResult, new_id};

/// The suite's clock: every `now` is an offset from here, so time-dependent
/// rules (leases, ranges, "keeps the first time") are exact.
const T0: Timestamp = Timestamp(1_700_000_000_000);

fn at(offset_ms: i64) -> Timestamp {
    T0.saturating_add_millis(offset_ms)
}

const LEASE: Duration = Duration::from_secs(30);
const LEASE_MS: i64 = 30_000;

/// One `#[tokio::test]` per check for a backend, each on a fresh store made
/// by `$fresh` (an async expression giving `(guard, store)`; the guard, a
/// temporary directory or database, lives until the check ends), so that a
/// failure names the rule that broke. The list of checks lives here only:
/// a check added to the suite runs against every backend.
#[macro_export]
macro_rules! store_conformance_tests {
    ($fresh:expr) => {
        $crate::store_conformance_tests!(
            @each $fresh;
            operator_token,
            institutions,
            admin_keys,
            configurations,
            configuration_delete,
            accounts,
            user_sync_modes,
            user_sync_conflicts,
            job_upsert_and_scope,
            job_list_filters,
            job_list_filter_combinations,
            job_leases,
            job_cancel_and_requeue,
            job_counts_follow_every_change,
            job_completion_and_media,
            job_events,
            transfer_state_and_attempts,
            fresh_download_credentials,
            replicas,
            replica_duties,
            job_sources,
            gone_recordings,
            reconcile_cursors_and_accounts,
            backfills,
            job_retention,
            web_tickets,
            account_token_refresh,
            ingest_choices_and_policy,
            zoom_trash_after_completion,
            job_companions,
            section_sync_modes,
            section_mappings_and_shares,
        );
    };
    (@each $fresh:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let (_guard, store) = $fresh.await;
                $crate::store::conformance::$check(&store).await;
            }
        )*
    };
}

/// Runs every check on one store, which must be fresh (see the module docs).
pub async fn run_all(store: &dyn Store) {
    operator_token(store).await;
    institutions(store).await;
    admin_keys(store).await;
    configurations(store).await;
    configuration_delete(store).await;
    accounts(store).await;
    user_sync_modes(store).await;
    user_sync_conflicts(store).await;
    job_upsert_and_scope(store).await;
    job_list_filters(store).await;
    job_list_filter_combinations(store).await;
    job_leases(store).await;
    job_cancel_and_requeue(store).await;
    job_counts_follow_every_change(store).await;
    job_completion_and_media(store).await;
    job_events(store).await;
    transfer_state_and_attempts(store).await;
    fresh_download_credentials(store).await;
    replicas(store).await;
    replica_duties(store).await;
    job_sources(store).await;
    gone_recordings(store).await;
    reconcile_cursors_and_accounts(store).await;
    backfills(store).await;
    // Last: its sweep erases and deletes the old final jobs of every check.
    job_retention(store).await;
    web_tickets(store).await;
    account_token_refresh(store).await;
    ingest_choices_and_policy(store).await;
    zoom_trash_after_completion(store).await;
    job_companions(store).await;
    section_sync_modes(store).await;
    section_mappings_and_shares(store).await;
}

// --- helpers -----------------------------------------------------------------

#[track_caller]
fn assert_class<T: Debug>(result: StoreResult<T>, expected: ErrorClass, what: &str) {
    match result {
        Ok(value) => panic!("{what}: expected {expected:?}, got Ok({value:?})"),
        Err(error) => assert_eq!(
            error.class(),
            expected,
            "{what}: wrong error class for \"{error}\""
        ),
    }
}

/// A token hash no other check (or earlier run) uses: hashes are unique store-wide.
fn unique_hash(label: &str) -> TokenHash {
    TokenHash::of(&new_id(label))
}

fn user_record(
    record_index: u32,
    external_id: &str,
    email: &str,
    alternate_zoom_email: Option<&str>,
    display_name: &str,
) -> UserRecord {
    UserRecord {
        record_index,
        external_id: external_id.to_string(),
        email: email.to_string(),
        alternate_zoom_email: alternate_zoom_email.map(str::to_string),
        display_name: display_name.to_string(),
        role: UserRole::Student,
        ingest_choice: IngestChoice::Default,
    }
}

fn recording_file(file_id: &str, start: Timestamp) -> RecordingFile {
    RecordingFile {
        file_id: file_id.to_string(),
        recording_type: "shared_screen_with_speaker_view".to_string(),
        file_type: "MP4".to_string(),
        file_extension: "MP4".to_string(),
        file_size: 52_428_800,
        recording_start: start,
        recording_end: start.saturating_add_millis(3_000_000),
    }
}

/// An institution with one configuration, one installed Zoom account and
/// one user who owns the jobs the checks create.
struct Tenant {
    institution_id: String,
    configuration_id: String,
    zoom_account_id: String,
    owner: User,
}

async fn create_tenant(store: &dyn Store, label: &str) -> Tenant {
    let institution = store
        .create_institution(&format!("conformance {label}"), T0)
        .await
        .expect("create institution");
    let institution_id = institution.institution_id;
    let configuration = store
        .create_configuration(NewConfiguration {
            institution_id: institution_id.to_string(),
            display_name: "Main".to_string(),
            view_priority: Vec::new(),
            policy: Default::default(),
            token_hash: unique_hash("zcfg"),
            now: T0,
        })
        .await
        .expect("create configuration");
    let zoom_account_id = install_new_account(store, &configuration.configuration_id).await;
    let owner = create_user(store, &institution_id, "owner", "owner@example.edu").await;
    Tenant {
        institution_id,
        configuration_id: configuration.configuration_id,
        zoom_account_id,
        owner,
    }
}

async fn install_new_account(store: &dyn Store, configuration_id: &str) -> String {
    let zoom_account_id = new_id("zacct");
    store
        .install_account(AccountInstall {
            configuration_id: configuration_id.to_string(),
            zoom_account_id: zoom_account_id.clone(),
            plan: ZoomPlan::Education,
            oauth: None,
            now: T0,
        })
        .await
        .expect("install account");
    zoom_account_id
}

async fn create_user(
    store: &dyn Store,
    institution_id: &str,
    external_id: &str,
    email: &str,
) -> User {
    let outcome = store
        .sync_users(UserSync {
            institution_id: institution_id.to_string(),
            mode: SyncMode::Upsert,
            records: vec![user_record(0, external_id, email, None, external_id)],
            rejected_upfront: Vec::new(),
            now: T0,
        })
        .await
        .expect("sync one user");
    assert!(
        outcome.rejected.is_empty(),
        "user {external_id} rejected: {outcome:?}"
    );
    lookup(store, institution_id, email)
        .await
        .unwrap_or_else(|| panic!("user {external_id} not found after sync"))
}

async fn lookup(store: &dyn Store, institution_id: &str, email: &str) -> Option<User> {
    store
        .lookup_user_by_email(institution_id, email)
        .await
        .expect("lookup user by email")
}

fn queued_job(tenant: &Tenant, meeting_uuid: &str, topic: &str, now: Timestamp) -> NewJob {
    NewJob {
        institution_id: tenant.institution_id.clone(),
        zoom_account_id: tenant.zoom_account_id.clone(),
        meeting_uuid: meeting_uuid.to_string(),
        meeting_id: 81_234_567_890,
        topic: topic.to_string(),
        host_email: tenant.owner.email.clone(),
        meeting_start: Some(now.saturating_add_millis(-3_600_000)),
        state: JobState::Queued,
        skip_reason: None,
        message: String::new(),
        owner_user_id: Some(tenant.owner.user_id.clone()),
        recording_file: Some(recording_file(
            "file-1",
            now.saturating_add_millis(-3_500_000),
        )),
        skipped_file_count: 1,
        skipped_segment_count: 0,
        sealed_download_url: Some(Sealed(vec![0xd1, 1])),
        sealed_download_token: Some(Sealed(vec![0x70, 1])),
        sealed_recording: Some(Sealed(vec![0x5e, 1])),
        event_time: now,
        now,
        source: JobSource::Webhook,
    }
}

async fn create_job(store: &dyn Store, job: NewJob) -> Job {
    let (job, created) = store.upsert_job(job).await.expect("upsert job");
    assert!(created, "a new meeting must create a job");
    job
}

async fn job_ids(store: &dyn Store, institution_id: &str, filter: &JobFilter) -> Vec<String> {
    let page = store
        .list_jobs(institution_id, filter, &PageQuery::first(0))
        .await
        .expect("list jobs");
    page.items.into_iter().map(|job| job.job_id).collect()
}

/// Claims the next job and insists it is `expected`: any other job means the
/// claim order is wrong or another check left a claimable job behind.
async fn claim_expecting(
    store: &dyn Store,
    worker_id: &str,
    now: Timestamp,
    expected: &Job,
) -> Job {
    let lease = store
        .claim_job(worker_id, LEASE, now)
        .await
        .expect("claim job")
        .unwrap_or_else(|| {
            panic!(
                "{worker_id} claimed nothing; expected job {}",
                expected.job_id
            )
        });
    assert_eq!(
        lease.job.job_id, expected.job_id,
        "{worker_id} claimed the wrong job (not the oldest claimable one, or a job left behind by another check)"
    );
    assert_eq!(lease.worker_id, worker_id, "lease names its worker");
    assert_eq!(
        lease.expires_at,
        now.saturating_add_millis(LEASE_MS),
        "lease runs until now + lease"
    );
    assert_eq!(
        lease.job.state,
        JobState::Transferring,
        "a claimed job is transferring"
    );
    lease.job
}

async fn assert_nothing_claimable(store: &dyn Store, now: Timestamp, why: &str) {
    let claimed = store
        .claim_job("worker-idle", LEASE, now)
        .await
        .expect("claim job");
    assert!(
        claimed.is_none(),
        "{why}: expected no claimable job, but claimed {:?}",
        claimed.map(|lease| lease.job.job_id)
    );
}

async fn cancel(store: &dyn Store, institution_id: &str, job_id: &str, now: Timestamp) -> Job {
    store
        .cancel_job(institution_id, job_id, now)
        .await
        .expect("cancel job")
}

async fn next_event_for(events: &mut broadcast::Receiver<JobEvent>, job_id: &str) -> JobEvent {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(event) if event.job.job_id == job_id => return event,
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => panic!("job event channel closed"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .unwrap_or_else(|_| panic!("no job event for {job_id} within 5s"))
}

/// A requeue to `owner_user_id` (and `recording_file`, when given); each
/// call names the job and the time.
fn requeue_to(owner_user_id: &str, recording_file: Option<RecordingFile>) -> JobRequeue {
    JobRequeue {
        institution_id: String::new(),
        job_id: String::new(),
        now: T0,
        owner_user_id: owner_user_id.to_string(),
        recording_file,
        sealed_download_url: None,
        message: String::new(),
    }
}

fn new_media(label: &str) -> NewMedia {
    NewMedia {
        object_key: format!("recordings/{}.mp4", new_id(label)),
        checksum: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        duration_ms: 3_000_000,
        size_bytes: 52_428_800,
        content_type: "video/mp4".into(),
        job_note: String::new(),
        after_copy: AfterCopy::Keep,
    }
}
