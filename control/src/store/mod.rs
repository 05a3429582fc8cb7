//! The store: everything Ferry must remember, behind one trait per domain
//! (tenants, configurations, accounts, directory, jobs, transfers, media,
//! course sections, replicas, the web flows' tickets, accounts' OAuth
//! tokens and jobs' companion files;
//! `Store` is their sum) so that the embedded SQLite backend and a later
//! Postgres backend are interchangeable and each backend file implements
//! one domain. Calls take owned request structs rather than lists of ids.
//!
//! The store owns durability and the invariants that need a transaction
//! (one account one institution, unique configuration names, one active user
//! per email, one job per meeting). It never sees a plaintext secret: tokens
//! arrive hashed and download credentials arrive sealed. It never decides
//! policy that belongs to the services (plans, validation of input shape).

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod job_plan;
mod postgres;
mod section_plan;
mod sqlite;
mod web;

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::error::StoreError;
use crate::model::*;
use crate::secrets::TokenHash;

/// Throwaway clusters for the tests, the benches and `ferry demo --replicas`.
pub use postgres::testing as postgres_testing;
pub use postgres::{
    PostgresConfig, PostgresStore, PostgresUrl, SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION,
};
pub use sqlite::{DEFAULT_MMAP_BYTES as DEFAULT_SQLITE_MMAP_BYTES, SqliteConfig, SqliteStore};
pub use web::{AccountTokenStore, AccountTokens, Ticket, TicketKind, TicketStore};

pub type StoreResult<T> = Result<T, StoreError>;

/// Default and maximum page sizes of every list call.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;

/// A page request: items are ordered by id (ids grow with creation time) and
/// `after` is the last id of the previous page.
#[derive(Clone, Debug, Default)]
pub struct PageQuery {
    pub after: Option<String>,
    pub size: u32,
}

impl PageQuery {
    pub fn first(size: u32) -> Self {
        PageQuery { after: None, size }
    }

    /// The effective page size: the default for 0, clamped to the maximum.
    pub fn limit(&self) -> u32 {
        match self.size {
            0 => DEFAULT_PAGE_SIZE,
            size => size.min(MAX_PAGE_SIZE),
        }
    }
}

/// One page of results; `next_after` is set when more may follow.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_after: Option<String>,
}

/// A transfer worker's hold on a job: valid until `expires_at` unless renewed.
#[derive(Clone, Debug)]
pub struct Lease {
    pub job: Job,
    pub worker_id: String,
    pub expires_at: Timestamp,
}

/// The lease holder a fenced write speaks for: it is refused
/// (FailedPrecondition) once `worker_id` no longer holds `job_id`'s lease.
#[derive(Clone, Copy, Debug)]
pub struct LeaseHolder<'a> {
    pub job_id: &'a str,
    pub worker_id: &'a str,
}

/// One pass of the retention policy over at most `max_jobs` jobs.
#[derive(Clone, Copy, Debug)]
pub struct RetentionSweep {
    /// SKIPPED, FAILED and CANCELLED jobs that finished before this lose
    /// their sealed download URL, token and recording (COMPLETED jobs lose
    /// them at completion; any left from before are erased whatever their
    /// age). An erased job's secrets read back with no URL or token and an
    /// empty sealed recording: the mark by which `RetryJob` tells erased
    /// details from details never kept.
    pub erase_secrets_finished_before: Timestamp,
    /// When set, SKIPPED, FAILED and CANCELLED jobs that finished before this
    /// are deleted with their attempts and companions, unless an unfinished upload still
    /// references them. COMPLETED jobs stay: their media record names them.
    pub delete_jobs_finished_before: Option<Timestamp>,
    pub max_jobs: u32,
}

/// What one retention pass did; a pass that reached `max_jobs` in either
/// count may leave more to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionSwept {
    pub secrets_erased: u64,
    pub jobs_deleted: u64,
}

/// Everything Ferry remembers: the sum of the domain stores below, each of
/// which a backend implements in its own file.
pub trait Store:
    TenantStore
    + ConfigurationStore
    + AccountStore
    + DirectoryStore
    + JobStore
    + TransferStore
    + MediaStore
    + SectionStore
    + ReplicaStore
    + ReconcileStore
    + TicketStore
    + AccountTokenStore
    + ZoomTrashStore
    + CompanionStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: TenantStore
        + ConfigurationStore
        + AccountStore
        + DirectoryStore
        + JobStore
        + TransferStore
        + MediaStore
        + SectionStore
        + ReplicaStore
        + ReconcileStore
        + TicketStore
        + AccountTokenStore
        + ZoomTrashStore
        + CompanionStore
        + Send
        + Sync
        + 'static
{
}

/// The operator, institutions and their admin keys.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// The stored hash of the generated operator token, if one was generated.
    async fn operator_token_hash(&self) -> StoreResult<Option<TokenHash>>;
    /// Stores `hash` unless a hash is already stored; returns whether it did.
    async fn init_operator_token_hash(&self, hash: TokenHash) -> StoreResult<bool>;
    async fn create_institution(
        &self,
        display_name: &str,
        now: Timestamp,
    ) -> StoreResult<Institution>;
    async fn get_institution(&self, institution_id: &str) -> StoreResult<Institution>;
    async fn list_institutions(&self, page: &PageQuery) -> StoreResult<Page<Institution>>;
    async fn create_admin_key(&self, key: NewAdminKey) -> StoreResult<AdminKey>;
    async fn get_admin_key(&self, key_id: &str) -> StoreResult<AdminKey>;
    async fn list_admin_keys(
        &self,
        institution_id: &str,
        page: &PageQuery,
    ) -> StoreResult<Page<AdminKey>>;
    /// Revoking a revoked key keeps its first revocation time.
    async fn revoke_admin_key(&self, key_id: &str, now: Timestamp) -> StoreResult<AdminKey>;
    /// The unrevoked key with this hash, if any.
    async fn find_admin_key(&self, hash: &TokenHash) -> StoreResult<Option<AdminKey>>;
}

/// Zoom configurations and their tokens.
#[async_trait]
pub trait ConfigurationStore: Send + Sync {
    /// AlreadyExists when the institution has a configuration of that name.
    async fn create_configuration(
        &self,
        configuration: NewConfiguration,
    ) -> StoreResult<ZoomConfiguration>;
    async fn get_configuration(
        &self,
        institution_id: &str,
        configuration_id: &str,
    ) -> StoreResult<ZoomConfiguration>;
    async fn list_configurations(
        &self,
        institution_id: &str,
        page: &PageQuery,
    ) -> StoreResult<Page<ZoomConfiguration>>;
    async fn update_configuration(
        &self,
        institution_id: &str,
        configuration_id: &str,
        update: ConfigurationUpdate,
    ) -> StoreResult<ZoomConfiguration>;
    async fn rotate_configuration_token(
        &self,
        rotation: TokenRotation,
    ) -> StoreResult<ZoomConfiguration>;
    /// Deletes the configuration and uninstalls its accounts, atomically;
    /// returns the uninstalled account ids.
    async fn delete_configuration(
        &self,
        institution_id: &str,
        configuration_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<String>>;
    async fn find_configuration_by_token(
        &self,
        hash: &TokenHash,
    ) -> StoreResult<Option<ZoomConfiguration>>;
}

/// Zoom accounts bound to institutions.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Binds an account to the configuration's institution. AlreadyExists
    /// when it is installed in another institution or another configuration;
    /// idempotent for the same configuration (keeps `installed_at`, refreshes
    /// plan and credentials when given).
    async fn install_account(&self, install: AccountInstall) -> StoreResult<ZoomAccount>;
    async fn get_account(
        &self,
        institution_id: &str,
        zoom_account_id: &str,
    ) -> StoreResult<ZoomAccount>;
    async fn list_accounts(
        &self,
        institution_id: &str,
        include_uninstalled: bool,
        page: &PageQuery,
    ) -> StoreResult<Page<ZoomAccount>>;
    /// Uninstalls an installed account (NotFound when `institution_id` is
    /// given and the account is not its). Uninstalling twice is not an error.
    async fn uninstall_account(&self, uninstall: AccountUninstall) -> StoreResult<ZoomAccount>;
    /// The account if it is currently installed, whichever institution owns it.
    async fn installed_account(&self, zoom_account_id: &str) -> StoreResult<Option<ZoomAccount>>;
}

/// The user directory.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Applies validated records atomically (see `SyncMode`). Records that
    /// repeat an external id or email of an earlier record, or that would
    /// give an email to two active users, are rejected, not applied.
    async fn sync_users(&self, sync: UserSync) -> StoreResult<SyncOutcome>;
    /// The active user whose email or alternate email equals `email`
    /// (already normalised). Indexed.
    async fn lookup_user_by_email(
        &self,
        institution_id: &str,
        email: &str,
    ) -> StoreResult<Option<User>>;
    /// `lookup_user_by_email` for each of `emails` (already normalised), in
    /// order. A backend whose reads are round trips answers in one.
    async fn lookup_users_by_email(
        &self,
        institution_id: &str,
        emails: &[String],
    ) -> StoreResult<Vec<Option<User>>> {
        let mut users = Vec::with_capacity(emails.len());
        for email in emails {
            users.push(self.lookup_user_by_email(institution_id, email).await?);
        }
        Ok(users)
    }
    async fn get_user(&self, institution_id: &str, user_id: &str) -> StoreResult<User>;
    async fn list_users(
        &self,
        institution_id: &str,
        include_inactive: bool,
        page: &PageQuery,
    ) -> StoreResult<Page<User>>;
}

/// Jobs: one per (Zoom account, meeting uuid), their leases and their events.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Creates the job for (account, meeting uuid), or returns the existing
    /// one with `false`. A newer sealed download URL or token replaces the
    /// stored one on an existing job that has not completed.
    async fn upsert_job(&self, job: NewJob) -> StoreResult<(Job, bool)>;
    async fn get_job(&self, institution_id: &str, job_id: &str) -> StoreResult<Job>;
    /// The job's sealed download URL, download token and recording.
    async fn get_job_secrets(&self, institution_id: &str, job_id: &str) -> StoreResult<JobSecrets>;
    async fn list_jobs(
        &self,
        institution_id: &str,
        filter: &JobFilter,
        page: &PageQuery,
    ) -> StoreResult<Page<Job>>;
    /// Jobs per state across every institution, and the oldest queued one.
    async fn job_counts(&self) -> StoreResult<JobCounts>;
    /// Moves a SKIPPED, FAILED or CANCELLED job back to QUEUED with the
    /// given owner (and file, when given); FailedPrecondition otherwise.
    async fn requeue_job(&self, requeue: JobRequeue) -> StoreResult<Job>;
    /// Cancels a QUEUED or TRANSFERRING job (dropping any lease).
    async fn cancel_job(
        &self,
        institution_id: &str,
        job_id: &str,
        now: Timestamp,
    ) -> StoreResult<Job>;
    /// Claims the oldest QUEUED job, or a TRANSFERRING one whose lease has
    /// expired, for `worker_id` until `now + lease`. A claim is not an
    /// attempt: the holder counts each attempt with `begin_attempt`.
    async fn claim_job(
        &self,
        worker_id: &str,
        lease: Duration,
        now: Timestamp,
    ) -> StoreResult<Option<Lease>>;
    /// Extends a lease still held; false when it was lost (expired and
    /// claimed by another worker, or the job was cancelled).
    async fn renew_lease(
        &self,
        holder: LeaseHolder<'_>,
        lease: Duration,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Completes a held job: creates its media record (owner, title and
    /// meeting from the job) and moves it to COMPLETED, atomically, erasing
    /// its sealed download URL, token and recording (nothing needs them now).
    /// The same commit shares the media with the active sections that the
    /// mappings of the account's configuration give its meeting
    /// (`rules::mapped_sections`), so a completed media is never unshared.
    async fn complete_job(
        &self,
        holder: LeaseHolder<'_>,
        media: NewMedia,
        now: Timestamp,
    ) -> StoreResult<(Job, Media)>;
    /// Ends a held transfer that did not complete.
    async fn finish_job(
        &self,
        holder: LeaseHolder<'_>,
        outcome: JobOutcome,
        now: Timestamp,
    ) -> StoreResult<Job>;
    /// Applies the retention policy to at most `sweep.max_jobs` jobs for
    /// each of its two rules, oldest first (an indexed read, not a scan).
    async fn sweep_retention(&self, sweep: RetentionSweep) -> StoreResult<RetentionSwept>;
    /// Tells watchers about byte progress without writing anything.
    fn publish_progress(&self, job: Job);
    /// Receives every job change committed through this store.
    fn subscribe_job_events(&self) -> broadcast::Receiver<JobEvent>;
}

/// Resumable transfer state: a job's multipart upload, its parts and its
/// attempts. Every write of a lease holder is fenced by the lease.
#[async_trait]
pub trait TransferStore: Send + Sync {
    /// Records the multipart upload a lease holder started for the job,
    /// replacing any earlier one and its parts (a transfer starting over).
    async fn start_upload(&self, holder: LeaseHolder<'_>, upload: UploadRecord) -> StoreResult<()>;
    /// The job's upload and its acknowledged parts, if one was started.
    async fn upload_state(&self, job_id: &str) -> StoreResult<Option<UploadState>>;
    /// Records an acknowledged part and the job's byte progress.
    async fn record_part(
        &self,
        holder: LeaseHolder<'_>,
        part: PartRecord,
        bytes_transferred: u64,
    ) -> StoreResult<()>;
    /// Replaces a held job's download token (and URL, when one is given)
    /// with credentials fetched from Zoom's API after the webhook's were
    /// refused, so that the next attempt, after a restart or a takeover,
    /// starts with them rather than fetching again. They count as of `now`:
    /// a redelivered older webhook does not put its token back.
    async fn store_fresh_download(
        &self,
        holder: LeaseHolder<'_>,
        fresh: FreshCredentials,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Counts one more transfer attempt of a held job and appends it to the
    /// job's history; returns the attempt's number.
    async fn begin_attempt(&self, start: AttemptStart) -> StoreResult<u32>;
    /// The job's attempts, oldest first.
    async fn job_attempts(&self, job_id: &str) -> StoreResult<Vec<JobAttempt>>;
    /// Forgets a job's upload (after it was aborted).
    async fn drop_upload(&self, job_id: &str) -> StoreResult<()>;
    /// Uploads whose jobs are no longer queued or transferring (cancelled,
    /// failed, skipped): their multipart uploads must be aborted.
    async fn abandoned_uploads(&self) -> StoreResult<Vec<(String, UploadRecord)>>;
    /// Every upload id the store tracks, for finding orphans in the sink.
    async fn tracked_upload_ids(&self) -> StoreResult<Vec<String>>;
}

/// Media records: what landed, and who owns it.
#[async_trait]
pub trait MediaStore: Send + Sync {
    async fn get_media(&self, institution_id: &str, media_id: &str) -> StoreResult<Media>;
    async fn list_media(
        &self,
        institution_id: &str,
        owner_user_id: Option<&str>,
        page: &PageQuery,
    ) -> StoreResult<Page<Media>>;
    /// NotFound when the media or the new owner is not in the institution.
    async fn transfer_media_ownership(&self, transfer: OwnershipTransfer) -> StoreResult<Media>;
}

/// Course sections, the configurations' mapping rules and the media shared
/// with sections. Every call is scoped to one institution: a section,
/// mapping or media of another answers NotFound.
#[async_trait]
pub trait SectionStore: Send + Sync {
    /// Applies validated records atomically (see `SyncMode`: FULL
    /// deactivates the sections the stream did not name; they keep their
    /// shares). Records that repeat an earlier record's external id are
    /// rejected, not applied.
    async fn sync_sections(&self, sync: SectionSync) -> StoreResult<SectionSyncOutcome>;
    async fn get_section(&self, institution_id: &str, section_id: &str) -> StoreResult<Section>;
    async fn list_sections(
        &self,
        institution_id: &str,
        include_inactive: bool,
        page: &PageQuery,
    ) -> StoreResult<Page<Section>>;
    /// NotFound when the configuration or a section is not the
    /// institution's (naming the sections), FailedPrecondition when a
    /// section is inactive.
    async fn create_section_mapping(
        &self,
        mapping: NewSectionMapping,
    ) -> StoreResult<SectionMapping>;
    async fn get_section_mapping(
        &self,
        institution_id: &str,
        mapping_id: &str,
    ) -> StoreResult<SectionMapping>;
    /// The institution's mappings (of one configuration when given), by id.
    async fn list_section_mappings(
        &self,
        institution_id: &str,
        configuration_id: Option<&str>,
        page: &PageQuery,
    ) -> StoreResult<Page<SectionMapping>>;
    /// Deletes a mapping; the media it shared stay shared.
    async fn delete_section_mapping(
        &self,
        institution_id: &str,
        mapping_id: &str,
    ) -> StoreResult<SectionMapping>;
    /// Shares every existing media of the mapping's configuration that the
    /// mapping matches with the mapping's active sections, atomically;
    /// shares already there are kept, so applying twice adds nothing.
    async fn apply_section_mapping(
        &self,
        institution_id: &str,
        mapping_id: &str,
        now: Timestamp,
    ) -> StoreResult<MappingApplied>;
    /// Adds the shares (already there: kept). NotFound for a media or a
    /// section not the institution's, FailedPrecondition for an inactive
    /// section; nothing is applied then.
    async fn share_media(&self, sharing: MediaSharing) -> StoreResult<Media>;
    /// Removes the shares (not there: nothing to do). NotFound for a media
    /// or a section not the institution's.
    async fn unshare_media(&self, sharing: MediaSharing) -> StoreResult<Media>;
    /// The media shared with a section (and owned by a user, when given),
    /// by id; NotFound when the section is not the institution's.
    async fn list_section_media(
        &self,
        institution_id: &str,
        section_id: &str,
        owner_user_id: Option<&str>,
        page: &PageQuery,
    ) -> StoreResult<Page<Media>>;
}

/// The daemons sharing this store, each heart-beating, so that a limit on
/// what Zoom sees can be split between the replicas alive now.
#[async_trait]
pub trait ReplicaStore: Send + Sync {
    /// Records that `replica_id` is alive at `now`, forgets replicas not seen
    /// for `ttl`, and returns how many are alive (this one included).
    async fn replica_heartbeat(
        &self,
        replica_id: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> StoreResult<u32>;
    /// Forgets a replica that stops cleanly, so the others take its share at once.
    async fn replica_gone(&self, replica_id: &str) -> StoreResult<()>;
    /// Answers when the store can be reached (a trivial read); Unavailable
    /// otherwise. Health checks poll it.
    async fn ping(&self) -> StoreResult<()>;
    /// Takes the named duty (such as the start-up sweep of orphaned uploads)
    /// for `replica_id` until `now + ttl`, unless another replica holds it
    /// unexpired; returns whether this replica has it now.
    async fn take_duty(
        &self,
        duty: &str,
        replica_id: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> StoreResult<bool>;
}

/// What the reconciler and backfills need beyond the intake's calls: the
/// accounts they may list, a meeting's job by its business key, their
/// cursors, backfills as resources, and failing the job of a recording Zoom
/// deleted.
#[async_trait]
pub trait ReconcileStore: Send + Sync {
    /// Installed accounts with a way into Zoom's API — Server-to-Server
    /// OAuth credentials or the Marketplace app's tokens from a web install
    /// — every institution's, ordered by account id.
    async fn accounts_with_api_access(&self) -> StoreResult<Vec<ZoomAccount>>;
    /// The job of (account, meeting uuid), if any, whichever institution.
    async fn job_for_meeting(
        &self,
        zoom_account_id: &str,
        meeting_uuid: &str,
    ) -> StoreResult<Option<Job>>;
    /// Fails the meeting's job if it is QUEUED or TRANSFERRING (dropping any
    /// lease, so the holder's next fenced write is refused); returns it
    /// then, `None` when there is no such job or it already ended.
    async fn fail_gone_recording(&self, gone: RecordingGone) -> StoreResult<Option<Job>>;
    async fn reconcile_cursor(&self, zoom_account_id: &str)
    -> StoreResult<Option<ReconcileCursor>>;
    /// Replaces the account's cursor.
    async fn save_reconcile_cursor(&self, cursor: ReconcileCursor) -> StoreResult<()>;
    /// A RUNNING backfill with its cursor at the range's first page.
    async fn create_backfill(&self, backfill: NewBackfill) -> StoreResult<Backfill>;
    async fn get_backfill(&self, institution_id: &str, backfill_id: &str) -> StoreResult<Backfill>;
    /// The institution's backfills (of one account when given), by id.
    async fn list_backfills(
        &self,
        institution_id: &str,
        zoom_account_id: Option<&str>,
        page: &PageQuery,
    ) -> StoreResult<Page<Backfill>>;
    /// Every RUNNING backfill, oldest first, for the runners to pick up.
    async fn running_backfills(&self) -> StoreResult<Vec<Backfill>>;
    /// Saves a running backfill's counts and cursor (and its end, when
    /// given) and returns it; a backfill that no longer runs is returned
    /// unchanged, so a cancel is never undone.
    async fn record_backfill_progress(&self, progress: BackfillProgress) -> StoreResult<Backfill>;
    /// Cancels a RUNNING backfill; FailedPrecondition once it ended.
    async fn cancel_backfill(
        &self,
        institution_id: &str,
        backfill_id: &str,
        now: Timestamp,
    ) -> StoreResult<Backfill>;
}

/// Completed jobs whose meeting's recordings are to be moved to Zoom's
/// trash (`JobStore::complete_job` leaves them pending, with the
/// completion): what the trash duty reads and records.
#[async_trait]
pub trait ZoomTrashStore: Send + Sync {
    /// Up to `limit` jobs whose move is pending and due at `now`, the
    /// longest due first (an indexed read).
    async fn due_zoom_trash(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<Job>>;
    /// Records one call's result on a job whose move is pending, counting
    /// the call, and returns the job; a job whose move is not pending
    /// (already recorded by another replica) is returned unchanged.
    async fn record_zoom_trash(&self, update: ZoomTrashUpdate) -> StoreResult<Job>;
}

/// The fenced writer of one companion's copy: refused (FailedPrecondition)
/// once `worker_id` no longer holds the companion's lease.
#[derive(Clone, Copy, Debug)]
pub struct CompanionHolder<'a> {
    pub job_id: &'a str,
    pub kind: CompanionKind,
    pub worker_id: &'a str,
}

/// Companion files (transcript, captions, chat): one per job and kind,
/// planned while the job transfers, copied under a lease of their own once
/// the job has completed, so that a companion never holds up or fails its
/// video. A companion keeps its sealed download URL and token until it is
/// copied (a retry needs them after the job's own were erased).
#[async_trait]
pub trait CompanionStore: Send + Sync {
    /// Records the companions the holder of the job's lease found in its
    /// recording; a kind the job already has keeps its row (an attempt that
    /// runs again, or a transcript attached earlier).
    async fn plan_companions(
        &self,
        holder: LeaseHolder<'_>,
        companions: Vec<NewCompanion>,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Attaches a companion from a later event to the job of (account,
    /// meeting uuid), whatever its state (a pending companion is copied
    /// once the job completes); None when there is no such job. See
    /// `CompanionAttached` for what a redelivery does.
    async fn attach_companion(
        &self,
        zoom_account_id: &str,
        meeting_uuid: &str,
        companion: NewCompanion,
        now: Timestamp,
    ) -> StoreResult<Option<CompanionAttached>>;
    /// The job's companions, in kind order.
    async fn list_companions(&self, job_id: &str) -> StoreResult<Vec<Companion>>;
    /// Claims the longest-pending companion of a COMPLETED job that nobody
    /// holds (or whose lease expired) for `worker_id` until `now + lease`.
    async fn claim_companion(
        &self,
        worker_id: &str,
        lease: Duration,
        now: Timestamp,
    ) -> StoreResult<Option<CompanionLease>>;
    /// Extends a companion lease still held; false when it was lost.
    async fn renew_companion_lease(
        &self,
        holder: CompanionHolder<'_>,
        lease: Duration,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Records how a held companion's copy ended and drops the lease; a
    /// copied one forgets its sealed URL and token.
    async fn finish_companion(
        &self,
        holder: CompanionHolder<'_>,
        outcome: CompanionOutcome,
        now: Timestamp,
    ) -> StoreResult<Companion>;
    /// Sends the job's missing and failed companions back to pending;
    /// returns how many.
    async fn retry_companions(&self, job_id: &str, now: Timestamp) -> StoreResult<u32>;
}

/// Prefixed, time-ordered identifiers: `inst_0190...`. Ordering by id is
/// ordering by creation, which list paging relies on.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}
