//! The store conformance suite: every rule the `Store` trait documents,
//! written against `&dyn Store` so that each backend (SQLite today, Postgres
//! later) runs the same checks and must pass them unchanged.
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

use std::fmt::Debug;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::error::ErrorClass;
use crate::model::*;
use crate::secrets::{Sealed, TokenHash};
use crate::store::{Page, PageQuery, Store, StoreResult, new_id};

/// The suite's clock: every `now` is an offset from here, so time-dependent
/// rules (leases, ranges, "keeps the first time") are exact.
const T0: Timestamp = Timestamp(1_700_000_000_000);

fn at(offset_ms: i64) -> Timestamp {
    T0.saturating_add_millis(offset_ms)
}

const LEASE: Duration = Duration::from_secs(30);
const LEASE_MS: i64 = 30_000;

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
    job_leases(store).await;
    job_cancel_and_requeue(store).await;
    job_completion_and_media(store).await;
    job_events(store).await;
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
        .create_configuration(&institution_id, "Main", &[], unique_hash("zcfg"), T0)
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
        .sync_users(
            institution_id,
            SyncMode::Upsert,
            vec![user_record(0, external_id, email, None, external_id)],
            Vec::new(),
            T0,
        )
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

// --- operator and institutions --------------------------------------------------

/// The operator token hash is stored once; later inits keep the first.
pub async fn operator_token(store: &dyn Store) {
    let stored = store
        .operator_token_hash()
        .await
        .expect("read operator hash");
    assert!(
        stored.is_none(),
        "a fresh store has no operator token hash (run on a fresh store)"
    );
    let first = unique_hash("operator");
    let second = unique_hash("operator");
    assert!(
        store
            .init_operator_token_hash(first.clone())
            .await
            .expect("init operator hash"),
        "the first init stores the hash"
    );
    assert!(
        !store
            .init_operator_token_hash(second)
            .await
            .expect("init operator hash again"),
        "a second init reports that nothing was stored"
    );
    let stored = store
        .operator_token_hash()
        .await
        .expect("read operator hash");
    assert!(
        stored.is_some_and(|hash| hash.matches(&first)),
        "the first hash is kept"
    );
}

/// Institutions are created, read back, listed in creation order and paged.
pub async fn institutions(store: &dyn Store) {
    let mut existing = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_institutions(&PageQuery { after, size: 1000 })
            .await
            .expect("list institutions");
        existing.extend(page.items.into_iter().map(|i| i.institution_id));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }

    let mut created = Vec::new();
    for index in 0..5 {
        let institution = store
            .create_institution(&format!("Paging University {index}"), at(index))
            .await
            .expect("create institution");
        assert_eq!(
            institution.display_name,
            format!("Paging University {index}")
        );
        assert_eq!(
            institution.created_at,
            at(index),
            "created_at is the given now"
        );
        let read = store
            .get_institution(&institution.institution_id)
            .await
            .expect("get institution");
        assert_eq!(read, institution, "get returns what create returned");
        created.push(institution);
    }

    let total = existing.len() + created.len();
    let mut listed: Vec<Institution> = Vec::new();
    let mut page_sizes = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_institutions(&PageQuery { after, size: 2 })
            .await
            .expect("list institutions");
        assert!(page.items.len() <= 2, "a page holds at most its size");
        page_sizes.push(page.items.len());
        listed.extend(page.items.iter().cloned());
        match page.next_after {
            Some(next) => {
                assert_eq!(
                    Some(&next),
                    page.items.last().map(|i| &i.institution_id),
                    "next_after is the last id of the page"
                );
                after = Some(next);
            }
            None => break,
        }
        assert!(page_sizes.len() <= total, "paging does not terminate");
    }
    let expected_sizes: Vec<usize> = (0..total.div_ceil(2))
        .map(|page| (total - 2 * page).min(2))
        .collect();
    assert_eq!(
        page_sizes, expected_sizes,
        "pages of 2 over {total} institutions, next_after None on the last"
    );
    let listed_ids: Vec<&String> = listed.iter().map(|i| &i.institution_id).collect();
    assert!(listed_ids.is_sorted(), "institutions are listed by id");
    assert_eq!(
        &listed[existing.len()..],
        created.as_slice(),
        "new institutions are listed last, in creation order"
    );

    assert_class(
        store.get_institution("inst_conformance_missing").await,
        ErrorClass::NotFound,
        "get unknown institution",
    );
}

/// Admin keys: found by hash until revoked, revoked once, listed per institution.
pub async fn admin_keys(store: &dyn Store) {
    let a = create_tenant(store, "keys a").await.institution_id;
    let b = create_tenant(store, "keys b").await.institution_id;
    let (hash_1, hash_2, hash_b) = (unique_hash("key"), unique_hash("key"), unique_hash("key"));
    let key_1 = store
        .create_admin_key(&a, "ops laptop", hash_1.clone(), at(1))
        .await
        .expect("create key 1");
    assert_eq!(key_1.institution_id, a);
    assert_eq!(key_1.name, "ops laptop");
    assert_eq!(key_1.created_at, at(1));
    assert_eq!(key_1.revoked_at, None, "a new key is not revoked");
    let key_2 = store
        .create_admin_key(&a, "ci", hash_2.clone(), at(2))
        .await
        .expect("create key 2");
    let key_b = store
        .create_admin_key(&b, "other", hash_b.clone(), at(3))
        .await
        .expect("create key b");
    assert_class(
        store
            .create_admin_key("inst_conformance_missing", "x", unique_hash("key"), at(4))
            .await,
        ErrorClass::NotFound,
        "create key in unknown institution",
    );

    assert_eq!(
        store.get_admin_key(&key_1.key_id).await.expect("get key"),
        key_1
    );
    assert_eq!(
        store.find_admin_key(&hash_1).await.expect("find key"),
        Some(key_1.clone()),
        "an unrevoked key is found by its hash"
    );
    assert_eq!(
        store
            .find_admin_key(&unique_hash("key"))
            .await
            .expect("find key"),
        None,
        "an unknown hash finds nothing"
    );

    let first = store
        .list_admin_keys(&a, &PageQuery::first(1))
        .await
        .expect("list keys");
    assert_eq!(first.items, vec![key_1.clone()], "first page of one key");
    assert_eq!(first.next_after.as_deref(), Some(key_1.key_id.as_str()));
    let second = store
        .list_admin_keys(
            &a,
            &PageQuery {
                after: first.next_after,
                size: 1,
            },
        )
        .await
        .expect("list keys");
    assert_eq!(second.items, vec![key_2.clone()], "second page of one key");
    assert_eq!(second.next_after, None, "no page after the last key");
    let listed_b = store
        .list_admin_keys(&b, &PageQuery::first(0))
        .await
        .expect("list keys");
    assert_eq!(
        listed_b.items,
        vec![key_b],
        "keys are listed only in their institution"
    );

    let revoked = store
        .revoke_admin_key(&key_1.key_id, at(10))
        .await
        .expect("revoke key");
    assert_eq!(revoked.revoked_at, Some(at(10)), "revoke records its time");
    assert_eq!(
        store.find_admin_key(&hash_1).await.expect("find key"),
        None,
        "a revoked key is not found"
    );
    assert_eq!(
        store.find_admin_key(&hash_2).await.expect("find key"),
        Some(key_2),
        "revoking one key leaves the others"
    );
    let revoked_again = store
        .revoke_admin_key(&key_1.key_id, at(20))
        .await
        .expect("revoke key twice");
    assert_eq!(
        revoked_again.revoked_at,
        Some(at(10)),
        "the first revocation time is kept"
    );
    assert_eq!(
        store
            .get_admin_key(&key_1.key_id)
            .await
            .expect("get key")
            .revoked_at,
        Some(at(10))
    );
    assert_class(
        store.get_admin_key("key_conformance_missing").await,
        ErrorClass::NotFound,
        "get unknown key",
    );
}

// --- configurations and accounts -------------------------------------------

/// Names are unique per institution (case-insensitively); reads, updates and
/// token rotation are scoped to the owning institution.
pub async fn configurations(store: &dyn Store) {
    let a = store
        .create_institution("config a", T0)
        .await
        .expect("create a")
        .institution_id;
    let b = store
        .create_institution("config b", T0)
        .await
        .expect("create b")
        .institution_id;
    let views = vec!["speaker_view".to_string(), "gallery_view".to_string()];
    let token_1 = unique_hash("zcfg");
    let main = store
        .create_configuration(&a, "Main", &views, token_1.clone(), at(1))
        .await
        .expect("create Main");
    assert_eq!(main.institution_id, a);
    assert_eq!(main.display_name, "Main");
    assert_eq!(
        main.view_priority, views,
        "view priority round-trips in order"
    );
    assert_eq!(main.created_at, at(1));
    assert_eq!(main.token_issued_at, at(1));
    assert_eq!(main.installed_account_count, 0);

    assert_class(
        store
            .create_configuration(&a, "main", &[], unique_hash("zcfg"), at(2))
            .await,
        ErrorClass::AlreadyExists,
        "configuration names are unique per institution, ignoring case",
    );
    let main_b = store
        .create_configuration(&b, "Main", &[], unique_hash("zcfg"), at(2))
        .await
        .expect("the same name is allowed in another institution");
    assert!(
        main_b.view_priority.is_empty(),
        "an empty view priority stays empty"
    );
    let second = store
        .create_configuration(&a, "Second", &[], unique_hash("zcfg"), at(3))
        .await
        .expect("create Second");
    assert_class(
        store
            .create_configuration(
                "inst_conformance_missing",
                "X",
                &[],
                unique_hash("zcfg"),
                at(3),
            )
            .await,
        ErrorClass::NotFound,
        "create configuration in unknown institution",
    );

    assert_eq!(
        store
            .get_configuration(&a, &main.configuration_id)
            .await
            .expect("get"),
        main
    );
    assert_class(
        store.get_configuration(&b, &main.configuration_id).await,
        ErrorClass::NotFound,
        "get configuration through another institution",
    );
    let listed = store
        .list_configurations(&a, &PageQuery::first(1))
        .await
        .expect("list configurations");
    assert_eq!(listed.items, vec![main.clone()], "first page");
    let listed = store
        .list_configurations(
            &a,
            &PageQuery {
                after: listed.next_after,
                size: 1,
            },
        )
        .await
        .expect("list configurations");
    assert_eq!(listed.items, vec![second.clone()], "second page");
    assert_eq!(listed.next_after, None, "no page after the last");

    let renamed = store
        .update_configuration(
            &a,
            &main.configuration_id,
            ConfigurationUpdate {
                display_name: Some("Primary".into()),
                view_priority: None,
            },
        )
        .await
        .expect("rename");
    assert_eq!(renamed.display_name, "Primary");
    assert_eq!(
        renamed.view_priority, views,
        "an update without views keeps them"
    );
    let reordered = store
        .update_configuration(
            &a,
            &main.configuration_id,
            ConfigurationUpdate {
                display_name: None,
                view_priority: Some(vec!["gallery_view".into()]),
            },
        )
        .await
        .expect("reorder views");
    assert_eq!(
        reordered.display_name, "Primary",
        "an update without a name keeps it"
    );
    assert_eq!(reordered.view_priority, vec!["gallery_view".to_string()]);
    let recased = store
        .update_configuration(
            &a,
            &main.configuration_id,
            ConfigurationUpdate {
                display_name: Some("PRIMARY".into()),
                view_priority: None,
            },
        )
        .await
        .expect("a configuration may change the case of its own name");
    assert_eq!(recased.display_name, "PRIMARY");
    assert_class(
        store
            .update_configuration(
                &a,
                &second.configuration_id,
                ConfigurationUpdate {
                    display_name: Some("primary".into()),
                    view_priority: None,
                },
            )
            .await,
        ErrorClass::AlreadyExists,
        "renaming onto another configuration's name",
    );
    assert_class(
        store
            .update_configuration(&b, &main.configuration_id, ConfigurationUpdate::default())
            .await,
        ErrorClass::NotFound,
        "update configuration through another institution",
    );

    assert_eq!(
        store
            .find_configuration_by_token(&token_1)
            .await
            .expect("find by token")
            .map(|c| c.configuration_id),
        Some(main.configuration_id.clone()),
        "the configuration is found by its token hash"
    );
    let token_2 = unique_hash("zcfg");
    let rotated = store
        .rotate_configuration_token(&a, &main.configuration_id, token_2.clone(), at(50))
        .await
        .expect("rotate token");
    assert_eq!(
        rotated.token_issued_at,
        at(50),
        "rotation records the issue time"
    );
    assert_eq!(rotated.created_at, at(1), "rotation keeps created_at");
    assert_eq!(
        store
            .find_configuration_by_token(&token_1)
            .await
            .expect("find by old token"),
        None,
        "the old token no longer finds the configuration"
    );
    assert_eq!(
        store
            .find_configuration_by_token(&token_2)
            .await
            .expect("find by new token")
            .map(|c| c.configuration_id),
        Some(main.configuration_id.clone()),
        "the new token finds the configuration"
    );
    assert_class(
        store
            .rotate_configuration_token(&b, &main.configuration_id, unique_hash("zcfg"), at(60))
            .await,
        ErrorClass::NotFound,
        "rotate through another institution",
    );
    assert!(
        store
            .find_configuration_by_token(&token_2)
            .await
            .expect("find")
            .is_some(),
        "a refused rotation leaves the token alone"
    );
}

/// Deleting a configuration uninstalls exactly its installed accounts.
pub async fn configuration_delete(store: &dyn Store) {
    let tenant = create_tenant(store, "delete").await;
    let other = create_tenant(store, "delete other").await;
    let a = &tenant.institution_id;
    let token = unique_hash("zcfg");
    let doomed = store
        .create_configuration(a, "Doomed", &[], token.clone(), at(1))
        .await
        .expect("create configuration");
    let gone_before = install_new_account(store, &doomed.configuration_id).await;
    store
        .uninstall_account(Some(a), &gone_before, at(2))
        .await
        .expect("uninstall");
    let mut installed = vec![
        install_new_account(store, &doomed.configuration_id).await,
        install_new_account(store, &doomed.configuration_id).await,
    ];
    installed.sort();
    let count = store
        .get_configuration(a, &doomed.configuration_id)
        .await
        .expect("get")
        .installed_account_count;
    assert_eq!(
        count, 2,
        "installed_account_count counts installed accounts only"
    );

    assert_class(
        store
            .delete_configuration(&other.institution_id, &doomed.configuration_id, at(3))
            .await,
        ErrorClass::NotFound,
        "delete through another institution",
    );
    let mut uninstalled = store
        .delete_configuration(a, &doomed.configuration_id, at(10))
        .await
        .expect("delete configuration");
    uninstalled.sort();
    assert_eq!(
        uninstalled, installed,
        "delete returns the accounts it uninstalled"
    );

    assert_class(
        store.get_configuration(a, &doomed.configuration_id).await,
        ErrorClass::NotFound,
        "a deleted configuration is gone",
    );
    assert_eq!(
        store
            .find_configuration_by_token(&token)
            .await
            .expect("find by token"),
        None,
        "a deleted configuration's token finds nothing"
    );
    for account in &installed {
        assert_eq!(
            store
                .installed_account(account)
                .await
                .expect("installed account"),
            None,
            "account {account} is uninstalled with its configuration"
        );
        let read = store.get_account(a, account).await.expect("get account");
        assert_eq!(
            read.uninstalled_at,
            Some(at(10)),
            "uninstalled at the delete time"
        );
    }
    assert!(
        store
            .installed_account(&tenant.zoom_account_id)
            .await
            .expect("installed account")
            .is_some(),
        "accounts of other configurations stay installed"
    );
    let listed = store
        .list_configurations(a, &PageQuery::first(0))
        .await
        .expect("list configurations");
    assert_eq!(
        listed
            .items
            .iter()
            .map(|c| &c.configuration_id)
            .collect::<Vec<_>>(),
        vec![&tenant.configuration_id],
        "a deleted configuration is not listed"
    );
    store
        .create_configuration(a, "doomed", &[], unique_hash("zcfg"), at(11))
        .await
        .expect("a deleted configuration's name is free again");
}

/// One account, one institution: installs are idempotent per configuration
/// and refused elsewhere until uninstalled.
pub async fn accounts(store: &dyn Store) {
    let tenant_a = create_tenant(store, "accounts a").await;
    let tenant_b = create_tenant(store, "accounts b").await;
    let (a, b) = (&tenant_a.institution_id, &tenant_b.institution_id);
    let other_configuration_a = store
        .create_configuration(a, "Other", &[], unique_hash("zcfg"), T0)
        .await
        .expect("create configuration");
    let account_id = new_id("zacct");
    let credentials_1 = SealedOAuthCredentials {
        client_id: "client-1".into(),
        sealed_client_secret: Sealed(vec![0, 1, 2, 0xfe, 0xff]),
    };
    let install = |configuration_id: &str, plan, oauth, now| AccountInstall {
        configuration_id: configuration_id.to_string(),
        zoom_account_id: account_id.clone(),
        plan,
        oauth,
        now,
    };

    let installed = store
        .install_account(install(
            &tenant_a.configuration_id,
            ZoomPlan::Pro,
            Some(credentials_1.clone()),
            at(1),
        ))
        .await
        .expect("install");
    let expected = ZoomAccount {
        zoom_account_id: account_id.clone(),
        institution_id: a.clone(),
        configuration_id: tenant_a.configuration_id.clone(),
        plan: ZoomPlan::Pro,
        installed_at: at(1),
        uninstalled_at: None,
        oauth: Some(credentials_1.clone()),
    };
    assert_eq!(
        installed, expected,
        "install binds the account to the configuration's institution"
    );
    assert_eq!(
        store
            .get_account(a, &account_id)
            .await
            .expect("get account"),
        expected
    );
    assert_eq!(
        store
            .installed_account(&account_id)
            .await
            .expect("installed account"),
        Some(expected.clone())
    );
    assert_class(
        store.get_account(b, &account_id).await,
        ErrorClass::NotFound,
        "get account through another institution",
    );

    let credentials_2 = SealedOAuthCredentials {
        client_id: "client-2".into(),
        sealed_client_secret: Sealed(vec![9, 8, 7]),
    };
    let reinstalled = store
        .install_account(install(
            &tenant_a.configuration_id,
            ZoomPlan::Business,
            Some(credentials_2.clone()),
            at(5),
        ))
        .await
        .expect("reinstall into the same configuration");
    assert_eq!(
        reinstalled.installed_at,
        at(1),
        "a reinstall keeps installed_at"
    );
    assert_eq!(
        reinstalled.plan,
        ZoomPlan::Business,
        "a reinstall refreshes the plan"
    );
    assert_eq!(
        reinstalled.oauth,
        Some(credentials_2.clone()),
        "a reinstall refreshes credentials"
    );
    let without_credentials = store
        .install_account(install(
            &tenant_a.configuration_id,
            ZoomPlan::Business,
            None,
            at(6),
        ))
        .await
        .expect("reinstall without credentials");
    assert_eq!(
        without_credentials.oauth,
        Some(credentials_2),
        "a reinstall without credentials keeps the stored ones"
    );

    assert_class(
        store
            .install_account(install(
                &tenant_b.configuration_id,
                ZoomPlan::Pro,
                None,
                at(7),
            ))
            .await,
        ErrorClass::AlreadyExists,
        "install into another institution while installed",
    );
    assert_class(
        store
            .install_account(install(
                &other_configuration_a.configuration_id,
                ZoomPlan::Pro,
                None,
                at(7),
            ))
            .await,
        ErrorClass::AlreadyExists,
        "install into another configuration of the same institution",
    );
    assert_class(
        store
            .install_account(install(
                "zcfg_conformance_missing",
                ZoomPlan::Pro,
                None,
                at(7),
            ))
            .await,
        ErrorClass::NotFound,
        "install into an unknown configuration",
    );
    let still = store
        .get_account(a, &account_id)
        .await
        .expect("get account");
    assert_eq!(
        still.configuration_id, tenant_a.configuration_id,
        "refused installs change nothing"
    );

    let listed = store
        .list_accounts(a, false, &PageQuery::first(0))
        .await
        .expect("list accounts");
    assert!(listed.items.iter().any(|x| x.zoom_account_id == account_id));
    let listed = store
        .list_accounts(b, true, &PageQuery::first(0))
        .await
        .expect("list accounts");
    assert!(
        listed.items.iter().all(|x| x.zoom_account_id != account_id),
        "accounts are listed only in their institution"
    );

    assert_class(
        store.uninstall_account(Some(b), &account_id, at(8)).await,
        ErrorClass::NotFound,
        "uninstall through another institution",
    );
    assert!(
        store
            .installed_account(&account_id)
            .await
            .expect("installed")
            .is_some(),
        "a refused uninstall leaves the account installed"
    );
    let uninstalled = store
        .uninstall_account(Some(a), &account_id, at(10))
        .await
        .expect("uninstall");
    assert_eq!(uninstalled.uninstalled_at, Some(at(10)));
    assert_eq!(
        store
            .installed_account(&account_id)
            .await
            .expect("installed"),
        None,
        "an uninstalled account is not installed"
    );
    let again = store
        .uninstall_account(Some(a), &account_id, at(11))
        .await
        .expect("uninstalling twice is not an error");
    assert!(!again.is_installed());
    let listed = store
        .list_accounts(a, false, &PageQuery::first(0))
        .await
        .expect("list accounts");
    assert!(
        listed.items.iter().all(|x| x.zoom_account_id != account_id),
        "uninstalled accounts are left out unless asked for"
    );
    let listed = store
        .list_accounts(a, true, &PageQuery::first(0))
        .await
        .expect("list accounts");
    assert!(listed.items.iter().any(|x| x.zoom_account_id == account_id));

    let moved = store
        .install_account(install(
            &tenant_b.configuration_id,
            ZoomPlan::Enterprise,
            None,
            at(20),
        ))
        .await
        .expect("another institution may install an uninstalled account");
    assert_eq!(moved.institution_id, *b);
    assert_eq!(moved.configuration_id, tenant_b.configuration_id);
    assert_eq!(
        moved.installed_at,
        at(20),
        "a new binding has a new installed_at"
    );
    assert_eq!(moved.uninstalled_at, None);
    assert_eq!(
        moved.oauth, None,
        "credentials of the previous institution are not inherited"
    );
    assert_class(
        store.get_account(a, &account_id).await,
        ErrorClass::NotFound,
        "the previous institution no longer sees the account",
    );
    let deauthorized = store
        .uninstall_account(None, &account_id, at(30))
        .await
        .expect("uninstall without an institution");
    assert_eq!(deauthorized.uninstalled_at, Some(at(30)));
    assert_class(
        store
            .uninstall_account(None, "zacct_conformance_missing", at(30))
            .await,
        ErrorClass::NotFound,
        "uninstall an unknown account",
    );
}

// --- user directory ------------------------------------------------------------

/// FULL deactivates the absent, UPSERT leaves them; counts are exact;
/// deactivated users free their emails and come back on a later sync.
pub async fn user_sync_modes(store: &dyn Store) {
    let a = store
        .create_institution("sync a", T0)
        .await
        .expect("create a")
        .institution_id;
    let b = store
        .create_institution("sync b", T0)
        .await
        .expect("create b")
        .institution_id;
    let mut ada = user_record(
        0,
        "ada",
        "ada@example.edu",
        Some("ada.zoom@example.edu"),
        "Ada",
    );
    ada.role = UserRole::Instructor;
    let bob = user_record(1, "bob", "bob@example.edu", None, "Bob");
    let cy = user_record(2, "cy", "cy@example.edu", None, "Cy");

    let outcome = store
        .sync_users(
            &a,
            SyncMode::Full,
            vec![ada.clone(), bob.clone(), cy.clone()],
            Vec::new(),
            at(1),
        )
        .await
        .expect("first sync");
    assert_eq!(
        outcome,
        SyncOutcome {
            created: 3,
            ..SyncOutcome::default()
        }
    );
    let ada_user = lookup(store, &a, "ada@example.edu")
        .await
        .expect("ada by email");
    assert_eq!(ada_user.external_id, "ada");
    assert_eq!(ada_user.institution_id, a);
    assert_eq!(
        ada_user.alternate_zoom_email.as_deref(),
        Some("ada.zoom@example.edu")
    );
    assert_eq!(ada_user.role, UserRole::Instructor);
    assert_eq!(ada_user.display_name, "Ada");
    assert!(ada_user.active);
    assert_eq!((ada_user.created_at, ada_user.updated_at), (at(1), at(1)));
    assert_eq!(
        lookup(store, &a, "ada.zoom@example.edu")
            .await
            .map(|u| u.user_id),
        Some(ada_user.user_id.clone()),
        "lookup finds the alternate email"
    );
    assert_eq!(lookup(store, &a, "nobody@example.edu").await, None);
    assert_eq!(
        lookup(store, &b, "ada@example.edu").await,
        None,
        "lookups are per institution"
    );
    assert_eq!(
        store
            .get_user(&a, &ada_user.user_id)
            .await
            .expect("get user"),
        ada_user
    );
    assert_class(
        store.get_user(&b, &ada_user.user_id).await,
        ErrorClass::NotFound,
        "get user through another institution",
    );

    let mut cy_renamed = cy.clone();
    cy_renamed.display_name = "Cy Young".into();
    cy_renamed.record_index = 1;
    let outcome = store
        .sync_users(
            &a,
            SyncMode::Upsert,
            vec![bob.clone(), cy_renamed.clone()],
            Vec::new(),
            at(2),
        )
        .await
        .expect("upsert sync");
    assert_eq!(
        outcome,
        SyncOutcome {
            updated: 1,
            unchanged: 1,
            ..SyncOutcome::default()
        }
    );
    let cy_user = lookup(store, &a, "cy@example.edu")
        .await
        .expect("cy by email");
    assert_eq!(cy_user.display_name, "Cy Young");
    assert_eq!(
        (cy_user.created_at, cy_user.updated_at),
        (at(1), at(2)),
        "an update keeps created_at"
    );
    assert!(
        lookup(store, &a, "ada@example.edu").await.is_some(),
        "UPSERT leaves users absent from the stream alone"
    );

    let outcome = store
        .sync_users(
            &a,
            SyncMode::Full,
            vec![ada.clone(), bob.clone()],
            Vec::new(),
            at(3),
        )
        .await
        .expect("full sync without cy");
    assert_eq!(
        outcome,
        SyncOutcome {
            unchanged: 2,
            deactivated: 1,
            ..SyncOutcome::default()
        }
    );
    let cy_inactive = store
        .get_user(&a, &cy_user.user_id)
        .await
        .expect("deactivated user stays retrievable");
    assert!(
        !cy_inactive.active,
        "FULL deactivates users absent from the stream"
    );
    assert_eq!(cy_inactive.updated_at, at(3));
    assert_eq!(
        lookup(store, &a, "cy@example.edu").await,
        None,
        "lookup skips inactive users"
    );
    let active = store
        .list_users(&a, false, &PageQuery::first(0))
        .await
        .expect("list active");
    assert_eq!(
        active
            .items
            .iter()
            .map(|u| u.external_id.as_str())
            .collect::<Vec<_>>(),
        vec!["ada", "bob"],
        "inactive users are listed only when asked for"
    );
    let everyone = store
        .list_users(&a, true, &PageQuery::first(0))
        .await
        .expect("list all");
    assert_eq!(everyone.items.len(), 3);

    let dan = user_record(0, "dan", "cy@example.edu", None, "Dan");
    let outcome = store
        .sync_users(&a, SyncMode::Upsert, vec![dan], Vec::new(), at(4))
        .await
        .expect("give an inactive user's email to a new user");
    assert_eq!(
        outcome,
        SyncOutcome {
            created: 1,
            ..SyncOutcome::default()
        }
    );
    assert_eq!(
        lookup(store, &a, "cy@example.edu")
            .await
            .map(|u| u.external_id),
        Some("dan".to_string()),
        "an inactive user's email is free"
    );

    let mut cy_back = cy_renamed.clone();
    cy_back.record_index = 0;
    cy_back.email = "cy.new@example.edu".into();
    let outcome = store
        .sync_users(&a, SyncMode::Upsert, vec![cy_back], Vec::new(), at(5))
        .await
        .expect("reactivate cy");
    assert_eq!(
        outcome,
        SyncOutcome {
            updated: 1,
            ..SyncOutcome::default()
        }
    );
    let cy_active = lookup(store, &a, "cy.new@example.edu")
        .await
        .expect("reactivated cy");
    assert_eq!(
        cy_active.user_id, cy_user.user_id,
        "a returning user keeps its id"
    );
    assert!(cy_active.active);
    assert_eq!(cy_active.created_at, at(1));

    let first = store
        .list_users(&a, true, &PageQuery::first(3))
        .await
        .expect("list page 1");
    assert_eq!(first.items.len(), 3);
    let rest = store
        .list_users(
            &a,
            true,
            &PageQuery {
                after: first.next_after.clone(),
                size: 3,
            },
        )
        .await
        .expect("list page 2");
    assert_eq!(rest.items.len(), 1, "4 users in pages of 3");
    assert_eq!(rest.next_after, None);
    assert!(
        store
            .list_users(&b, true, &PageQuery::first(0))
            .await
            .expect("list b")
            .items
            .is_empty(),
        "users are listed only in their institution"
    );
}

/// Duplicates and email conflicts reject the later record with a reason
/// naming the field; swaps, upfront rejections and atomicity.
pub async fn user_sync_conflicts(store: &dyn Store) {
    let a = store
        .create_institution("conflicts", T0)
        .await
        .expect("create")
        .institution_id;
    let erin = user_record(0, "erin", "erin@example.edu", None, "Erin");
    let fay = user_record(1, "fay", "fay@example.edu", None, "Fay");
    store
        .sync_users(&a, SyncMode::Upsert, vec![erin, fay], Vec::new(), at(1))
        .await
        .expect("seed users");

    let records = vec![
        user_record(0, "gus", "gus@example.edu", None, "Gus"),
        user_record(1, "gus", "gus.two@example.edu", None, "Gus Two"),
        user_record(2, "hal", "gus@example.edu", None, "Hal"),
        user_record(3, "ida", "ida@example.edu", Some("erin@example.edu"), "Ida"),
        user_record(4, "jo", "jo@example.edu", None, "Jo"),
    ];
    let mut outcome = store
        .sync_users(&a, SyncMode::Upsert, records, Vec::new(), at(2))
        .await
        .expect("sync with conflicts");
    outcome.rejected.sort_by_key(|r| r.record_index);
    assert_eq!(
        (
            outcome.created,
            outcome.updated,
            outcome.unchanged,
            outcome.deactivated
        ),
        (2, 0, 0, 0)
    );
    let rejected: Vec<(u32, &str, &str)> = outcome
        .rejected
        .iter()
        .map(|r| (r.record_index, r.external_id.as_str(), r.email.as_str()))
        .collect();
    assert_eq!(
        rejected,
        vec![
            (1, "gus", "gus.two@example.edu"),
            (2, "hal", "gus@example.edu"),
            (3, "ida", "ida@example.edu"),
        ],
        "the later duplicate and the conflicting records are rejected"
    );
    assert!(
        outcome.rejected[0].reason.contains("external_id"),
        "reason names external_id: {:?}",
        outcome.rejected[0].reason
    );
    assert!(
        outcome.rejected[1].reason.contains("email"),
        "reason names email: {:?}",
        outcome.rejected[1].reason
    );
    assert!(
        outcome.rejected[2].reason.contains("email"),
        "reason names email: {:?}",
        outcome.rejected[2].reason
    );
    assert_eq!(
        lookup(store, &a, "gus@example.edu")
            .await
            .map(|u| u.display_name),
        Some("Gus".to_string()),
        "the first record with an external id or email wins"
    );
    assert_eq!(lookup(store, &a, "gus.two@example.edu").await, None);
    assert_eq!(
        lookup(store, &a, "ida@example.edu").await,
        None,
        "a rejected record is not applied"
    );
    assert_eq!(
        lookup(store, &a, "erin@example.edu")
            .await
            .map(|u| u.external_id),
        Some("erin".to_string()),
        "an active user absent from an UPSERT keeps its email"
    );

    let erin_id = lookup(store, &a, "erin@example.edu")
        .await
        .expect("erin")
        .user_id;
    let fay_id = lookup(store, &a, "fay@example.edu")
        .await
        .expect("fay")
        .user_id;
    let swap = vec![
        user_record(0, "erin", "fay@example.edu", None, "Erin"),
        user_record(1, "fay", "erin@example.edu", None, "Fay"),
    ];
    let outcome = store
        .sync_users(&a, SyncMode::Upsert, swap.clone(), Vec::new(), at(3))
        .await
        .expect("swap emails");
    assert_eq!(
        outcome,
        SyncOutcome {
            updated: 2,
            ..SyncOutcome::default()
        },
        "two users may swap emails"
    );
    assert_eq!(
        lookup(store, &a, "fay@example.edu")
            .await
            .map(|u| u.user_id),
        Some(erin_id)
    );
    assert_eq!(
        lookup(store, &a, "erin@example.edu")
            .await
            .map(|u| u.user_id),
        Some(fay_id)
    );

    // FULL without gus and jo: jo's record was rejected upfront, so jo stays;
    // gus is deactivated, which frees gus@ for kim in the same sync.
    let upfront = RejectedRecord {
        record_index: 3,
        external_id: "jo".into(),
        email: "jo@example.edu".into(),
        reason: "role: unknown role \"teacher\"".into(),
    };
    let mut records = swap;
    records.push(user_record(2, "kim", "gus@example.edu", None, "Kim"));
    let outcome = store
        .sync_users(&a, SyncMode::Full, records, vec![upfront.clone()], at(4))
        .await
        .expect("full sync with an upfront rejection");
    assert_eq!(
        outcome,
        SyncOutcome {
            created: 1,
            unchanged: 2,
            deactivated: 1,
            rejected: vec![upfront],
            ..SyncOutcome::default()
        },
        "upfront rejections are echoed and their users are not deactivated"
    );
    assert_eq!(
        lookup(store, &a, "jo@example.edu").await.map(|u| u.active),
        Some(true),
        "a user whose record was rejected upfront stays active"
    );
    assert_eq!(
        lookup(store, &a, "gus@example.edu")
            .await
            .map(|u| u.external_id),
        Some("kim".to_string()),
        "FULL hands a deactivated user's email to another in the same sync"
    );

    let before = store
        .list_users(&a, true, &PageQuery::first(0))
        .await
        .expect("list");
    assert_class(
        store
            .sync_users(
                "inst_conformance_missing",
                SyncMode::Full,
                vec![user_record(0, "erin", "erin@example.edu", None, "Erin")],
                Vec::new(),
                at(5),
            )
            .await,
        ErrorClass::NotFound,
        "sync into an unknown institution",
    );
    let after = store
        .list_users(&a, true, &PageQuery::first(0))
        .await
        .expect("list");
    assert_eq!(before.items, after.items, "a failed sync changes nothing");
    assert!(
        store
            .list_users("inst_conformance_missing", true, &PageQuery::first(0))
            .await
            .map(|page| page.items.is_empty())
            .unwrap_or(true),
        "a failed sync creates no users"
    );
}

// --- jobs ----------------------------------------------------------------------

/// One job per (account, meeting uuid); jobs are scoped to their institution.
pub async fn job_upsert_and_scope(store: &dyn Store) {
    let tenant = create_tenant(store, "upsert").await;
    let other = create_tenant(store, "upsert other").await;
    let new_job = queued_job(&tenant, "meeting-uuid-1==", "Lecture 1", at(100));
    let job = create_job(store, new_job.clone()).await;
    assert_eq!(job.institution_id, tenant.institution_id);
    assert_eq!(job.zoom_account_id, tenant.zoom_account_id);
    assert_eq!(job.meeting_uuid, "meeting-uuid-1==");
    assert_eq!(job.meeting_id, new_job.meeting_id);
    assert_eq!(job.topic, "Lecture 1");
    assert_eq!(job.host_email, new_job.host_email);
    assert_eq!(job.meeting_start, new_job.meeting_start);
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.owner_user_id, new_job.owner_user_id);
    assert_eq!(
        job.recording_file, new_job.recording_file,
        "the recording file round-trips"
    );
    assert_eq!((job.skipped_file_count, job.skipped_segment_count), (1, 0));
    assert_eq!((job.attempt_count, job.bytes_transferred), (0, 0));
    assert_eq!((job.media_id.clone(), job.finished_at), (None, None));
    assert_eq!((job.created_at, job.updated_at), (at(100), at(100)));
    assert_eq!(
        store
            .get_job(&tenant.institution_id, &job.job_id)
            .await
            .expect("get job"),
        job
    );

    let mut newer = queued_job(&tenant, "meeting-uuid-1==", "Lecture 1 (renamed)", at(200));
    newer.sealed_download_token = Some(Sealed(vec![0x70, 2]));
    let (again, created) = store.upsert_job(newer).await.expect("upsert newer event");
    assert!(!created, "a second event for the meeting creates no job");
    assert_eq!(again.job_id, job.job_id, "the existing job is returned");
    assert_eq!(
        again.topic, "Lecture 1",
        "the existing job is returned as it is"
    );
    let mut older = queued_job(&tenant, "meeting-uuid-1==", "Lecture 1", at(150));
    older.event_time = at(50);
    let (again, created) = store.upsert_job(older).await.expect("upsert older event");
    assert!(!created);
    assert_eq!(again.job_id, job.job_id);
    // The sealed download credentials have no getter on the trait, so which
    // event's token won is not observable here.

    let same_uuid_other_account = queued_job(&other, "meeting-uuid-1==", "Elsewhere", at(300));
    let elsewhere = create_job(store, same_uuid_other_account).await;
    assert_ne!(
        elsewhere.job_id, job.job_id,
        "the key is the account and meeting uuid together"
    );

    assert_class(
        store.get_job(&other.institution_id, &job.job_id).await,
        ErrorClass::NotFound,
        "get job through another institution",
    );
    assert_class(
        store
            .get_job(&tenant.institution_id, "job_conformance_missing")
            .await,
        ErrorClass::NotFound,
        "get unknown job",
    );
    assert_class(
        store
            .cancel_job(&other.institution_id, &job.job_id, at(400))
            .await,
        ErrorClass::NotFound,
        "cancel job through another institution",
    );
    assert_eq!(
        job_ids(store, &other.institution_id, &JobFilter::default()).await,
        vec![elsewhere.job_id.clone()],
        "jobs are listed only in their institution"
    );

    let skipped = create_job(
        store,
        NewJob {
            state: JobState::Skipped,
            skip_reason: Some(SkipReason::NoMatchingUser),
            message: "no user has host email".into(),
            owner_user_id: None,
            ..queued_job(&tenant, "meeting-uuid-2==", "Unowned", at(500))
        },
    )
    .await;
    assert_eq!(skipped.state, JobState::Skipped);
    assert_eq!(skipped.skip_reason, Some(SkipReason::NoMatchingUser));
    assert_eq!(skipped.message, "no user has host email");
    assert_eq!(skipped.owner_user_id, None);

    cancel(store, &tenant.institution_id, &job.job_id, at(600)).await;
    cancel(store, &other.institution_id, &elsewhere.job_id, at(600)).await;
}

/// `list_jobs` applies every set filter, and pages.
pub async fn job_list_filters(store: &dyn Store) {
    let tenant = create_tenant(store, "filters").await;
    let other = create_tenant(store, "filters other").await;
    let a = &tenant.institution_id;
    let second_account = install_new_account(store, &tenant.configuration_id).await;
    let make = |uuid: &str, account: &str, host: &str, state, reason, created| NewJob {
        zoom_account_id: account.to_string(),
        host_email: host.to_string(),
        state,
        skip_reason: reason,
        ..queued_job(&tenant, uuid, uuid, at(created))
    };
    let first_account = tenant.zoom_account_id.as_str();
    let j1 = create_job(
        store,
        make(
            "m1",
            first_account,
            "Host.One@Example.EDU",
            JobState::Queued,
            None,
            10,
        ),
    )
    .await;
    let j2 = create_job(
        store,
        make(
            "m2",
            first_account,
            "host.two@example.edu",
            JobState::Skipped,
            Some(SkipReason::NoMatchingUser),
            20,
        ),
    )
    .await;
    let j3 = create_job(
        store,
        make(
            "m3",
            &second_account,
            "host.one@example.edu",
            JobState::Skipped,
            Some(SkipReason::TooLong),
            30,
        ),
    )
    .await;
    let j4 = create_job(
        store,
        make(
            "m4",
            &second_account,
            "host.two@example.edu",
            JobState::Queued,
            None,
            40,
        ),
    )
    .await;
    let j5 = create_job(
        store,
        make(
            "m5",
            first_account,
            "host.two@example.edu",
            JobState::Queued,
            None,
            50,
        ),
    )
    .await;
    let foreign = create_job(store, queued_job(&other, "m1", "foreign", at(10))).await;
    let ids = |jobs: &[&Job]| jobs.iter().map(|j| j.job_id.clone()).collect::<Vec<_>>();

    let cases: Vec<(&str, JobFilter, Vec<String>)> = vec![
        (
            "no filter",
            JobFilter::default(),
            ids(&[&j1, &j2, &j3, &j4, &j5]),
        ),
        (
            "queued",
            JobFilter {
                states: vec![JobState::Queued],
                ..JobFilter::default()
            },
            ids(&[&j1, &j4, &j5]),
        ),
        (
            "queued or skipped",
            JobFilter {
                states: vec![JobState::Queued, JobState::Skipped],
                ..JobFilter::default()
            },
            ids(&[&j1, &j2, &j3, &j4, &j5]),
        ),
        (
            "completed",
            JobFilter {
                states: vec![JobState::Completed],
                ..JobFilter::default()
            },
            Vec::new(),
        ),
        (
            "skip reason",
            JobFilter {
                skip_reason: Some(SkipReason::NoMatchingUser),
                ..JobFilter::default()
            },
            ids(&[&j2]),
        ),
        (
            "skipped and too long",
            JobFilter {
                states: vec![JobState::Skipped],
                skip_reason: Some(SkipReason::TooLong),
                ..JobFilter::default()
            },
            ids(&[&j3]),
        ),
        (
            "account",
            JobFilter {
                zoom_account_id: Some(second_account.clone()),
                ..JobFilter::default()
            },
            ids(&[&j3, &j4]),
        ),
        (
            "host email, stored in mixed case",
            JobFilter {
                host_email: Some("host.one@example.edu".into()),
                ..JobFilter::default()
            },
            ids(&[&j1, &j3]),
        ),
        (
            "created in [20, 40)",
            JobFilter {
                created_from: Some(at(20)),
                created_before: Some(at(40)),
                ..JobFilter::default()
            },
            ids(&[&j2, &j3]),
        ),
        (
            "account and host",
            JobFilter {
                zoom_account_id: Some(first_account.to_string()),
                host_email: Some("host.two@example.edu".into()),
                ..JobFilter::default()
            },
            ids(&[&j2, &j5]),
        ),
    ];
    for (name, filter, expected) in cases {
        assert_eq!(job_ids(store, a, &filter).await, expected, "filter: {name}");
    }

    let queued = JobFilter {
        states: vec![JobState::Queued],
        ..JobFilter::default()
    };
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_jobs(a, &queued, &PageQuery { after, size: 2 })
            .await
            .expect("list jobs");
        pages.push(
            page.items
                .iter()
                .map(|j| j.job_id.clone())
                .collect::<Vec<_>>(),
        );
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(pages.len() <= 3, "paging does not terminate");
    }
    assert_eq!(
        pages,
        vec![ids(&[&j1, &j4]), ids(&[&j5])],
        "filtered pages of 2"
    );

    for job in [&j1, &j4, &j5] {
        cancel(store, a, &job.job_id, at(60)).await;
    }
    cancel(store, &other.institution_id, &foreign.job_id, at(60)).await;
}

/// Leases: oldest first, renewable by their holder, taken over once expired.
pub async fn job_leases(store: &dyn Store) {
    let tenant = create_tenant(store, "leases").await;
    let a = &tenant.institution_id;
    let t = at(1_000_000);
    let first = create_job(store, queued_job(&tenant, "lease-1", "First", t)).await;
    let second = create_job(
        store,
        queued_job(&tenant, "lease-2", "Second", t.saturating_add_millis(1)),
    )
    .await;

    let claimed = claim_expecting(store, "worker-1", t, &first).await;
    assert_eq!(claimed.attempt_count, 1, "a first claim is attempt 1");
    assert_eq!(
        store.get_job(a, &first.job_id).await.expect("get").state,
        JobState::Transferring
    );
    claim_expecting(store, "worker-2", t, &second).await;
    assert_nothing_claimable(store, t, "both jobs are leased").await;

    let renewed = store
        .renew_lease(
            &first.job_id,
            "worker-1",
            LEASE,
            t.saturating_add_millis(10_000),
        )
        .await
        .expect("renew");
    assert!(renewed, "the holder renews its lease");
    let stolen = store
        .renew_lease(
            &first.job_id,
            "worker-2",
            LEASE,
            t.saturating_add_millis(10_000),
        )
        .await
        .expect("renew");
    assert!(
        !stolen,
        "another worker cannot renew a lease it does not hold"
    );

    // At t+35s the second job's lease (until t+30s) has expired; the first
    // was renewed until t+40s and must not be taken.
    let later = t.saturating_add_millis(35_000);
    let taken_over = claim_expecting(store, "worker-3", later, &second).await;
    assert_eq!(
        taken_over.attempt_count, 2,
        "a claim after expiry is another attempt"
    );
    let lost = store
        .renew_lease(&second.job_id, "worker-2", LEASE, later)
        .await
        .expect("renew");
    assert!(!lost, "the previous holder's lease is lost");
    assert!(
        store
            .renew_lease(&first.job_id, "worker-1", LEASE, later)
            .await
            .expect("renew"),
        "an unexpired renewed lease is still held"
    );
    assert_nothing_claimable(store, later, "both leases are valid").await;

    cancel(store, a, &first.job_id, later).await;
    cancel(store, a, &second.job_id, later).await;
}

/// Cancel drops the job (and its lease) from the queue; requeue brings back
/// only final, non-completed jobs.
pub async fn job_cancel_and_requeue(store: &dyn Store) {
    let tenant = create_tenant(store, "cancel").await;
    let a = &tenant.institution_id;
    let replacement_owner = create_user(store, a, "second-owner", "second.owner@example.edu").await;
    let t = at(2_000_000);
    let queued = create_job(store, queued_job(&tenant, "cancel-1", "Queued", t)).await;
    let transferring = create_job(store, queued_job(&tenant, "cancel-2", "Transferring", t)).await;

    let cancelled = cancel(store, a, &queued.job_id, t.saturating_add_millis(1)).await;
    assert_eq!(
        cancelled.state,
        JobState::Cancelled,
        "a queued job can be cancelled"
    );
    claim_expecting(store, "worker-1", t.saturating_add_millis(2), &transferring).await;
    let cancelled_while_held =
        cancel(store, a, &transferring.job_id, t.saturating_add_millis(3)).await;
    assert_eq!(
        cancelled_while_held.state,
        JobState::Cancelled,
        "a transferring job can be cancelled"
    );
    assert!(
        !store
            .renew_lease(
                &transferring.job_id,
                "worker-1",
                LEASE,
                t.saturating_add_millis(4)
            )
            .await
            .expect("renew"),
        "cancelling drops the lease"
    );
    assert_class(
        store
            .complete_job(
                &transferring.job_id,
                "worker-1",
                new_media("cancelled"),
                t.saturating_add_millis(4),
            )
            .await,
        ErrorClass::FailedPrecondition,
        "complete a cancelled job",
    );
    assert_nothing_claimable(
        store,
        t.saturating_add_millis(100_000),
        "cancelled jobs are not claimable",
    )
    .await;
    assert_class(
        store
            .cancel_job(a, &queued.job_id, t.saturating_add_millis(5))
            .await,
        ErrorClass::FailedPrecondition,
        "cancel a final job",
    );

    let new_file = recording_file("file-2", t);
    let requeued = store
        .requeue_job(
            a,
            &queued.job_id,
            JobRequeue {
                owner_user_id: replacement_owner.user_id.clone(),
                recording_file: Some(new_file.clone()),
                sealed_download_url: None,
            },
            t.saturating_add_millis(6),
        )
        .await
        .expect("requeue a cancelled job");
    assert_eq!(requeued.state, JobState::Queued);
    assert_eq!(
        requeued.owner_user_id,
        Some(replacement_owner.user_id.clone()),
        "requeue sets the owner"
    );
    assert_eq!(
        requeued.recording_file,
        Some(new_file),
        "requeue sets the file when given"
    );
    let requeue_again = JobRequeue {
        owner_user_id: tenant.owner.user_id.clone(),
        recording_file: None,
        sealed_download_url: None,
    };
    assert_class(
        store
            .requeue_job(
                a,
                &queued.job_id,
                requeue_again.clone(),
                t.saturating_add_millis(7),
            )
            .await,
        ErrorClass::FailedPrecondition,
        "requeue a queued job",
    );
    let other = create_tenant(store, "cancel other").await;
    assert_class(
        store
            .requeue_job(
                &other.institution_id,
                &transferring.job_id,
                requeue_again.clone(),
                t.saturating_add_millis(7),
            )
            .await,
        ErrorClass::NotFound,
        "requeue through another institution",
    );

    let skipped = create_job(
        store,
        NewJob {
            state: JobState::Skipped,
            skip_reason: Some(SkipReason::NoMatchingUser),
            owner_user_id: None,
            ..queued_job(&tenant, "cancel-3", "Skipped", t.saturating_add_millis(8))
        },
    )
    .await;
    let requeued_skip = store
        .requeue_job(
            a,
            &skipped.job_id,
            requeue_again,
            t.saturating_add_millis(9),
        )
        .await
        .expect("requeue a skipped job");
    assert_eq!(requeued_skip.state, JobState::Queued);
    assert_eq!(
        requeued_skip.owner_user_id,
        Some(tenant.owner.user_id.clone())
    );
    assert_eq!(
        requeued_skip.recording_file, skipped.recording_file,
        "requeue without a file keeps it"
    );

    let reclaimed = claim_expecting(store, "worker-2", t.saturating_add_millis(10), &queued).await;
    assert_eq!(
        reclaimed.owner_user_id,
        Some(replacement_owner.user_id),
        "the requeued job is claimable"
    );
    assert_class(
        store
            .requeue_job(
                a,
                &queued.job_id,
                JobRequeue {
                    owner_user_id: tenant.owner.user_id.clone(),
                    recording_file: None,
                    sealed_download_url: None,
                },
                t.saturating_add_millis(11),
            )
            .await,
        ErrorClass::FailedPrecondition,
        "requeue a transferring job",
    );
    cancel(store, a, &queued.job_id, t.saturating_add_millis(12)).await;
    cancel(store, a, &skipped.job_id, t.saturating_add_millis(12)).await;
}

fn new_media(label: &str) -> NewMedia {
    NewMedia {
        object_key: format!("recordings/{}.mp4", new_id(label)),
        checksum: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        duration_ms: 3_000_000,
        size_bytes: 52_428_800,
        content_type: "video/mp4".into(),
    }
}

/// Only the lease holder completes; completion creates the media record.
pub async fn job_completion_and_media(store: &dyn Store) {
    let tenant = create_tenant(store, "complete").await;
    let other = create_tenant(store, "complete other").await;
    let a = &tenant.institution_id;
    let second_owner = create_user(store, a, "second", "second@example.edu").await;
    let t = at(3_000_000);
    let job = create_job(
        store,
        queued_job(&tenant, "complete-1", "Thermodynamics 101", t),
    )
    .await;
    claim_expecting(store, "worker-1", t, &job).await;

    assert_class(
        store
            .complete_job(
                &job.job_id,
                "worker-2",
                new_media("wrong"),
                t.saturating_add_millis(1),
            )
            .await,
        ErrorClass::FailedPrecondition,
        "complete by a worker that does not hold the lease",
    );
    let media_in = new_media("thermo");
    let (completed, media) = store
        .complete_job(
            &job.job_id,
            "worker-1",
            media_in.clone(),
            t.saturating_add_millis(2),
        )
        .await
        .expect("complete by the holder");
    assert_eq!(completed.state, JobState::Completed);
    assert_eq!(completed.media_id.as_deref(), Some(media.media_id.as_str()));
    assert_eq!(completed.finished_at, Some(t.saturating_add_millis(2)));
    assert_eq!(media.institution_id, *a);
    assert_eq!(
        media.owner_user_id, tenant.owner.user_id,
        "media owner is the job owner"
    );
    assert_eq!(
        media.title, "Thermodynamics 101",
        "media title is the topic"
    );
    assert_eq!(
        (media.meeting_id, media.meeting_uuid.as_str()),
        (job.meeting_id, "complete-1")
    );
    assert_eq!(media.job_id, job.job_id);
    assert_eq!(media.created_at, t.saturating_add_millis(2));
    assert_eq!(
        (
            media.object_key.as_str(),
            media.checksum.as_str(),
            media.duration_ms,
            media.size_bytes,
            media.content_type.as_str()
        ),
        (
            media_in.object_key.as_str(),
            media_in.checksum.as_str(),
            media_in.duration_ms,
            media_in.size_bytes,
            media_in.content_type.as_str()
        ),
        "media keeps what the transfer reported"
    );
    assert_eq!(
        store.get_job(a, &job.job_id).await.expect("get job"),
        completed
    );
    assert_eq!(
        store
            .get_media(a, &media.media_id)
            .await
            .expect("get media"),
        media
    );
    assert_class(
        store
            .get_media(&other.institution_id, &media.media_id)
            .await,
        ErrorClass::NotFound,
        "get media through another institution",
    );

    assert_class(
        store
            .complete_job(
                &job.job_id,
                "worker-1",
                new_media("twice"),
                t.saturating_add_millis(3),
            )
            .await,
        ErrorClass::FailedPrecondition,
        "complete twice",
    );
    assert_class(
        store
            .cancel_job(a, &job.job_id, t.saturating_add_millis(3))
            .await,
        ErrorClass::FailedPrecondition,
        "cancel a completed job",
    );
    let requeue = JobRequeue {
        owner_user_id: tenant.owner.user_id.clone(),
        recording_file: None,
        sealed_download_url: None,
    };
    assert_class(
        store
            .requeue_job(a, &job.job_id, requeue, t.saturating_add_millis(3))
            .await,
        ErrorClass::FailedPrecondition,
        "requeue a completed job",
    );
    let (redelivered, created) = store
        .upsert_job(queued_job(
            &tenant,
            "complete-1",
            "Thermodynamics 101",
            t.saturating_add_millis(4),
        ))
        .await
        .expect("redeliver after completion");
    assert!(!created);
    assert_eq!(
        redelivered.state,
        JobState::Completed,
        "a redelivery does not reopen a completed job"
    );

    let job_2 = create_job(
        store,
        NewJob {
            owner_user_id: Some(second_owner.user_id.clone()),
            ..queued_job(&tenant, "complete-2", "Statics", t.saturating_add_millis(5))
        },
    )
    .await;
    claim_expecting(store, "worker-1", t.saturating_add_millis(5), &job_2).await;
    let (_, media_2) = store
        .complete_job(
            &job_2.job_id,
            "worker-1",
            new_media("statics"),
            t.saturating_add_millis(6),
        )
        .await
        .expect("complete second job");
    assert_eq!(media_2.owner_user_id, second_owner.user_id);

    let media_ids = |page: Page<Media>| {
        page.items
            .into_iter()
            .map(|m| m.media_id)
            .collect::<Vec<_>>()
    };
    let all = store
        .list_media(a, None, &PageQuery::first(0))
        .await
        .expect("list media");
    assert_eq!(
        media_ids(all),
        vec![media.media_id.clone(), media_2.media_id.clone()]
    );
    let first_page = store
        .list_media(a, None, &PageQuery::first(1))
        .await
        .expect("list media");
    assert_eq!(
        first_page.next_after.as_deref(),
        Some(media.media_id.as_str()),
        "media pages"
    );
    let owned = store
        .list_media(a, Some(&tenant.owner.user_id), &PageQuery::first(0))
        .await
        .expect("list owned media");
    assert_eq!(
        media_ids(owned),
        vec![media.media_id.clone()],
        "the owner filter"
    );
    assert!(
        store
            .list_media(&other.institution_id, None, &PageQuery::first(0))
            .await
            .expect("list")
            .items
            .is_empty(),
        "media is listed only in its institution"
    );

    let transferred = store
        .transfer_media_ownership(a, &media.media_id, &second_owner.user_id)
        .await
        .expect("transfer ownership");
    assert_eq!(transferred.owner_user_id, second_owner.user_id);
    assert_eq!(
        store
            .get_media(a, &media.media_id)
            .await
            .expect("get media")
            .owner_user_id,
        second_owner.user_id
    );
    let owned = store
        .list_media(a, Some(&second_owner.user_id), &PageQuery::first(0))
        .await
        .expect("list owned media");
    assert_eq!(
        media_ids(owned),
        vec![media.media_id.clone(), media_2.media_id.clone()]
    );
    assert_class(
        store
            .transfer_media_ownership(a, &media.media_id, &other.owner.user_id)
            .await,
        ErrorClass::NotFound,
        "transfer to a user of another institution",
    );
    assert_class(
        store
            .transfer_media_ownership(&other.institution_id, &media.media_id, &other.owner.user_id)
            .await,
        ErrorClass::NotFound,
        "transfer through another institution",
    );
    assert_class(
        store
            .transfer_media_ownership(a, "med_conformance_missing", &tenant.owner.user_id)
            .await,
        ErrorClass::NotFound,
        "transfer unknown media",
    );
    assert_eq!(
        store
            .get_media(a, &media.media_id)
            .await
            .expect("get media")
            .owner_user_id,
        second_owner.user_id,
        "refused transfers change nothing"
    );
}

/// Subscribers see job creation, claims and cancellation.
pub async fn job_events(store: &dyn Store) {
    let tenant = create_tenant(store, "events").await;
    let mut events = store.subscribe_job_events();
    let t = at(4_000_000);
    let job = create_job(store, queued_job(&tenant, "events-1", "Watched", t)).await;
    let event = next_event_for(&mut events, &job.job_id).await;
    assert_eq!(
        event.job.state,
        JobState::Queued,
        "an event for the created job"
    );
    assert!(!event.progress_only);
    claim_expecting(store, "worker-1", t, &job).await;
    let event = next_event_for(&mut events, &job.job_id).await;
    assert_eq!(
        event.job.state,
        JobState::Transferring,
        "an event for the claim"
    );
    assert_eq!(event.job.attempt_count, 1);
    cancel(
        store,
        &tenant.institution_id,
        &job.job_id,
        t.saturating_add_millis(1),
    )
    .await;
    let event = next_event_for(&mut events, &job.job_id).await;
    assert_eq!(
        event.job.state,
        JobState::Cancelled,
        "an event for the cancellation"
    );
}
