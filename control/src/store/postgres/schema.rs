//! The PostgreSQL schema: versioned migrations embedded in the binary,
//! applied in order at open, each in its own transaction, while holding a
//! session advisory lock so that replicas starting together take turns (the
//! second finds the work done). A database whose schema is newer than this
//! build knows is refused: an older replica must not write rows it does not
//! understand. Migrations are append-only; a released one never changes.
//!
//! The shapes follow the SQLite schema (integer milliseconds for time, text
//! ids) with PostgreSQL types; ids use the "C" collation so that paging by id
//! is byte order whatever the database's locale. Leases also carry the
//! database clock's expiry (`lease_expires_db`, see the backend's docs).

use deadpool_postgres::Object;

use super::pg_error;
use crate::error::StoreError;
use crate::store::StoreResult;

/// The key of the advisory lock held while migrating ("ferrymig").
const MIGRATION_LOCK_KEY: i64 = 0x6665_7272_796d_6967;

/// The reconciler's migration. Its number is the only line a renumbering
/// touches: the SQL below is self-contained.
const RECONCILE_VERSION: i64 = 5;

/// The kept job counts and the list indexes' migration (as SQLite's V4 and V5).
pub(super) const JOB_HISTORY_VERSION: i64 = 6;

/// Ingest choices and the move to Zoom's trash (only adds columns and an
/// index of its own).
const CHOICES_VERSION: i64 = 7;

/// Companion files (only adds a table and its index).
const COMPANIONS_VERSION: i64 = 9;

pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (1, V1),
    (2, V2),
    (3, V3),
    (4, V4),
    (RECONCILE_VERSION, RECONCILE),
    (JOB_HISTORY_VERSION, JOB_HISTORY),
    (CHOICES_VERSION, CHOICES),
    (8, LIST_COMBINATIONS),
    (COMPANIONS_VERSION, COMPANIONS),
    (10, SECTIONS),
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

// The runner applies every version above the database's: a gap or a
// repeated number would skip or reorder a migration, so the list must count
// 1, 2, 3, ... with no holes.
const _: () = {
    let mut index = 0;
    while index < MIGRATIONS.len() {
        assert!(MIGRATIONS[index].0 == index as i64 + 1);
        index += 1;
    }
};

/// Brings the schema up to `SCHEMA_VERSION`, or refuses a newer one.
pub(super) async fn migrate(client: &mut Object) -> StoreResult<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(pg_error)?;
    let result = migrate_locked(client).await;
    // Unlock even after a failure; if the connection broke, the server
    // dropped the session lock with it.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(pg_error);
    result.and(unlocked.map(|_| ()))
}

async fn migrate_locked(client: &mut Object) -> StoreResult<()> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    BIGINT PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(pg_error)?;
    let current: i64 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    if current > SCHEMA_VERSION {
        return Err(StoreError::Unavailable(format!(
            "database schema version {current} is newer than this ferry ({SCHEMA_VERSION}); upgrade ferry"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.batch_execute(sql).await.map_err(|e| {
            StoreError::Unavailable(format!("migration {version} failed: {}", pg_error(e)))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        tracing::info!(version, "applied a store migration");
    }
    Ok(())
}

const V1: &str = r#"
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE institutions (
    institution_id TEXT COLLATE "C" PRIMARY KEY,
    display_name   TEXT NOT NULL,
    created_ms     BIGINT NOT NULL
);

CREATE TABLE admin_keys (
    key_id         TEXT COLLATE "C" PRIMARY KEY,
    institution_id TEXT COLLATE "C" NOT NULL REFERENCES institutions (institution_id),
    name           TEXT NOT NULL,
    key_hash       TEXT NOT NULL UNIQUE,
    created_ms     BIGINT NOT NULL,
    revoked_ms     BIGINT
);
CREATE INDEX admin_keys_by_institution ON admin_keys (institution_id, key_id);

CREATE TABLE zoom_configurations (
    configuration_id TEXT COLLATE "C" PRIMARY KEY,
    institution_id   TEXT COLLATE "C" NOT NULL REFERENCES institutions (institution_id),
    display_name     TEXT NOT NULL,
    name_key         TEXT NOT NULL,
    view_priority    TEXT NOT NULL,
    token_hash       TEXT NOT NULL UNIQUE,
    created_ms       BIGINT NOT NULL,
    token_issued_ms  BIGINT NOT NULL,
    CONSTRAINT zoom_configurations_unique_name UNIQUE (institution_id, name_key)
);

-- The primary key is the rule "one account, one institution".
CREATE TABLE zoom_accounts (
    zoom_account_id            TEXT COLLATE "C" PRIMARY KEY,
    institution_id             TEXT COLLATE "C" NOT NULL REFERENCES institutions (institution_id),
    configuration_id           TEXT COLLATE "C" NOT NULL,
    plan                       TEXT NOT NULL,
    installed_ms               BIGINT NOT NULL,
    uninstalled_ms             BIGINT,
    oauth_client_id            TEXT,
    oauth_client_secret_sealed BYTEA
);
CREATE INDEX zoom_accounts_by_institution ON zoom_accounts (institution_id, zoom_account_id);
CREATE INDEX zoom_accounts_by_configuration ON zoom_accounts (configuration_id);

CREATE TABLE users (
    user_id              TEXT COLLATE "C" PRIMARY KEY,
    institution_id       TEXT COLLATE "C" NOT NULL REFERENCES institutions (institution_id),
    external_id          TEXT NOT NULL,
    email                TEXT NOT NULL,
    alternate_zoom_email TEXT,
    display_name         TEXT NOT NULL,
    role                 TEXT NOT NULL,
    active               BOOLEAN NOT NULL,
    created_ms           BIGINT NOT NULL,
    updated_ms           BIGINT NOT NULL,
    UNIQUE (institution_id, external_id)
);
CREATE INDEX users_by_institution ON users (institution_id, user_id);

-- Every email and alternate email of every active user, one row each. The
-- primary key is the rule "an email belongs to at most one active user of an
-- institution", and the index behind LookupUserByEmail.
CREATE TABLE user_emails (
    institution_id TEXT COLLATE "C" NOT NULL,
    email          TEXT NOT NULL,
    user_id        TEXT COLLATE "C" NOT NULL REFERENCES users (user_id),
    PRIMARY KEY (institution_id, email)
);
CREATE INDEX user_emails_by_user ON user_emails (user_id);

CREATE TABLE jobs (
    job_id                 TEXT COLLATE "C" PRIMARY KEY,
    institution_id         TEXT COLLATE "C" NOT NULL REFERENCES institutions (institution_id),
    zoom_account_id        TEXT COLLATE "C" NOT NULL,
    meeting_uuid           TEXT NOT NULL,
    meeting_id             BIGINT NOT NULL,
    topic                  TEXT NOT NULL,
    host_email             TEXT NOT NULL,
    host_email_key         TEXT NOT NULL,
    meeting_start_ms       BIGINT,
    state                  TEXT NOT NULL,
    skip_reason            TEXT,
    message                TEXT NOT NULL,
    owner_user_id          TEXT COLLATE "C",
    file_id                TEXT,
    recording_type         TEXT,
    file_type              TEXT,
    file_extension         TEXT,
    file_size              BIGINT,
    recording_start_ms     BIGINT,
    recording_end_ms       BIGINT,
    skipped_file_count     BIGINT NOT NULL,
    skipped_segment_count  BIGINT NOT NULL,
    bytes_transferred      BIGINT NOT NULL DEFAULT 0,
    total_bytes            BIGINT NOT NULL DEFAULT 0,
    attempt_count          BIGINT NOT NULL DEFAULT 0,
    media_id               TEXT COLLATE "C",
    created_ms             BIGINT NOT NULL,
    updated_ms             BIGINT NOT NULL,
    finished_ms            BIGINT,
    detected_mid_stream    BOOLEAN NOT NULL DEFAULT FALSE,
    download_url_sealed    BYTEA,
    download_token_sealed  BYTEA,
    download_event_ms      BIGINT,
    recording_sealed       BYTEA,
    lease_owner            TEXT,
    -- The holder's expiry in its own clock, which store instance's clock
    -- that is, and the same expiry in the database's clock.
    lease_expires_ms       BIGINT,
    lease_clock            TEXT,
    lease_expires_db       TIMESTAMPTZ,
    CONSTRAINT jobs_one_per_meeting UNIQUE (zoom_account_id, meeting_uuid)
);
CREATE INDEX jobs_by_institution ON jobs (institution_id, job_id);
CREATE INDEX jobs_by_state ON jobs (state, job_id);
CREATE INDEX jobs_by_host ON jobs (institution_id, host_email_key);

CREATE TABLE media (
    media_id       TEXT COLLATE "C" PRIMARY KEY,
    institution_id TEXT COLLATE "C" NOT NULL REFERENCES institutions (institution_id),
    owner_user_id  TEXT COLLATE "C" NOT NULL REFERENCES users (user_id),
    title          TEXT NOT NULL,
    duration_ms    BIGINT NOT NULL,
    size_bytes     BIGINT NOT NULL,
    checksum       TEXT NOT NULL,
    object_key     TEXT NOT NULL UNIQUE,
    meeting_id     BIGINT NOT NULL,
    meeting_uuid   TEXT NOT NULL,
    recorded_ms    BIGINT,
    job_id         TEXT COLLATE "C" NOT NULL UNIQUE REFERENCES jobs (job_id),
    created_ms     BIGINT NOT NULL,
    content_type   TEXT NOT NULL
);
CREATE INDEX media_by_institution ON media (institution_id, media_id);
CREATE INDEX media_by_owner ON media (institution_id, owner_user_id, media_id);

CREATE TABLE transfer_uploads (
    job_id            TEXT COLLATE "C" PRIMARY KEY REFERENCES jobs (job_id),
    upload_id         TEXT NOT NULL,
    object_key        TEXT NOT NULL,
    part_size         BIGINT NOT NULL,
    media_duration_ms BIGINT,
    created_ms        BIGINT NOT NULL
);

CREATE TABLE transfer_parts (
    job_id      TEXT COLLATE "C" NOT NULL REFERENCES transfer_uploads (job_id),
    part_number BIGINT NOT NULL,
    etag        TEXT NOT NULL,
    crc32c      BIGINT NOT NULL,
    offset_b    BIGINT NOT NULL,
    len_b       BIGINT NOT NULL,
    scan_state  BYTEA,
    PRIMARY KEY (job_id, part_number)
);

CREATE TABLE job_attempts (
    job_id         TEXT COLLATE "C" NOT NULL REFERENCES jobs (job_id),
    attempt        BIGINT NOT NULL,
    worker_id      TEXT NOT NULL,
    started_ms     BIGINT NOT NULL,
    resumed_from_b BIGINT NOT NULL,
    note           TEXT NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
"#;

/// The daemons sharing the database, when each was last seen alive, the
/// duties one of them at a time performs, and the retention indexes.
const V2: &str = r#"
CREATE TABLE replicas (
    replica_id TEXT COLLATE "C" PRIMARY KEY,
    seen_ms    BIGINT NOT NULL
);

CREATE TABLE replica_duties (
    duty       TEXT COLLATE "C" PRIMARY KEY,
    replica_id TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);

-- Retention: the final jobs still holding sealed download details, and
-- those `job_days` may delete, each in order of finish time.
CREATE INDEX jobs_holding_secrets ON jobs (finished_ms)
    WHERE state IN ('completed', 'skipped', 'failed', 'cancelled')
      AND (download_url_sealed IS NOT NULL OR download_token_sealed IS NOT NULL
           OR recording_sealed IS NOT NULL);
CREATE INDEX jobs_expirable ON jobs (finished_ms)
    WHERE state IN ('skipped', 'failed', 'cancelled');
"#;

/// An erased recording is an empty value rather than NULL, which tells
/// `RetryJob` the details were erased rather than never kept: the jobs
/// still holding details are those with a non-empty one.
const V3: &str = r#"
DROP INDEX jobs_holding_secrets;
CREATE INDEX jobs_holding_secrets ON jobs (finished_ms)
    WHERE state IN ('completed', 'skipped', 'failed', 'cancelled')
      AND (download_url_sealed IS NOT NULL OR download_token_sealed IS NOT NULL
           OR length(recording_sealed) > 0);
"#;

/// The web flows' short-lived tickets (install states, installs waiting
/// for their configuration token, console sessions), each found by the
/// hash of its secret with a sealed payload, and the Zoom accounts'
/// Marketplace OAuth tokens with the claim that keeps a refresh token from
/// being spent twice (a conditional update under the row's lock).
const V4: &str = r#"
CREATE TABLE web_tickets (
    kind       TEXT COLLATE "C" NOT NULL,
    hash       TEXT COLLATE "C" NOT NULL,
    sealed     BYTEA NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (kind, hash)
);
CREATE INDEX web_tickets_by_expiry ON web_tickets (expires_ms);

CREATE TABLE zoom_account_tokens (
    zoom_account_id      TEXT COLLATE "C" PRIMARY KEY,
    client_id            TEXT NOT NULL,
    access_token_sealed  BYTEA NOT NULL,
    access_expires_ms    BIGINT NOT NULL,
    refresh_token_sealed BYTEA NOT NULL,
    refresh_token_hash   TEXT NOT NULL,
    refresh_holder       TEXT,
    refresh_claim_ms     BIGINT,
    updated_ms           BIGINT NOT NULL
);
"#;

/// Reconciling with Zoom's recordings list (as SQLite's V10): where each job
/// came from, the reconciler's cursor per account, and backfills with their
/// counts and cursors.
const RECONCILE: &str = r#"
ALTER TABLE jobs ADD COLUMN source TEXT NOT NULL DEFAULT 'webhook';
CREATE INDEX jobs_by_institution_source ON jobs (institution_id, source, job_id);

CREATE TABLE reconcile_cursors (
    zoom_account_id TEXT COLLATE "C" PRIMARY KEY,
    from_day        TEXT NOT NULL,
    to_day          TEXT NOT NULL,
    chunk_from_day  TEXT NOT NULL,
    next_page_token TEXT NOT NULL,
    pass_started_ms BIGINT NOT NULL,
    finished_ms     BIGINT
);

CREATE TABLE backfills (
    backfill_id     TEXT COLLATE "C" PRIMARY KEY,
    institution_id  TEXT COLLATE "C" NOT NULL REFERENCES institutions (institution_id),
    zoom_account_id TEXT COLLATE "C" NOT NULL,
    state           TEXT NOT NULL,
    message         TEXT NOT NULL,
    meetings_seen   BIGINT NOT NULL,
    jobs_created    BIGINT NOT NULL,
    duplicates      BIGINT NOT NULL,
    not_ready       BIGINT NOT NULL,
    skipped         TEXT NOT NULL,
    from_day        TEXT NOT NULL,
    to_day          TEXT NOT NULL,
    chunk_from_day  TEXT NOT NULL,
    next_page_token TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL,
    finished_ms     BIGINT
);
CREATE INDEX backfills_by_institution ON backfills (institution_id, backfill_id);
CREATE INDEX backfills_running ON backfills (backfill_id) WHERE state = 'running';
"#;

/// Jobs per state kept in the transaction of every insert, state change and
/// delete of a job, one row per (state, writing backend) so that concurrent
/// writers never share a row (see `job_list`), seeded here from the jobs
/// already stored; the partial index that answers "oldest queued job" from
/// its first entry, and the queued jobs in id order for the claim; and an
/// index for every `ListJobs` filter, each ending in `job_id` so that a page
/// is read in id order without a sort. The host index replaces
/// `jobs_by_host`, which was not ordered by id; `jobs_by_institution` goes
/// (the state index serves an unfiltered list); the source index gains the
/// state, so that a source with a state reads one range per state.
///
/// The lock first: writers of an older replica still running wait until
/// this commits, so no job is inserted between the seeding count and the
/// triggers (and the indexes are built without one either way).
const JOB_HISTORY: &str = r#"
LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE job_state_counts (
    state TEXT NOT NULL,
    slot  INTEGER NOT NULL,
    jobs  BIGINT NOT NULL,
    PRIMARY KEY (state, slot)
);
INSERT INTO job_state_counts (state, slot, jobs)
    SELECT state, 0, COUNT(*) FROM jobs GROUP BY state;

-- Inserts and deletes are counted once per statement (a retention batch
-- or a bulk load adds one row per state, not one per job); a state change,
-- always of a few rows, once per row.
CREATE FUNCTION ferry_count_jobs_in_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_state_counts AS c (state, slot, jobs)
    SELECT state, pg_backend_pid(),
           CASE TG_OP WHEN 'INSERT' THEN COUNT(*) ELSE -COUNT(*) END
    FROM changed_jobs GROUP BY state ORDER BY state
    ON CONFLICT (state, slot) DO UPDATE SET jobs = c.jobs + EXCLUDED.jobs;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS changed_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION ferry_count_jobs_in_out();
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS changed_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION ferry_count_jobs_in_out();

CREATE FUNCTION ferry_count_job_state_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_state_counts AS c (state, slot, jobs)
    VALUES (OLD.state, pg_backend_pid(), -1), (NEW.state, pg_backend_pid(), 1)
    ON CONFLICT (state, slot) DO UPDATE SET jobs = c.jobs + EXCLUDED.jobs;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_count_state AFTER UPDATE OF state ON jobs
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION ferry_count_job_state_change();

CREATE INDEX jobs_queued_since ON jobs (updated_ms) WHERE state = 'queued';
-- The claim's: in the column's own collation, so that no list (which
-- orders by "POSIX", see below) can walk it and filter.
CREATE INDEX jobs_queued_by_id ON jobs (job_id) WHERE state = 'queued';

-- "POSIX" orders exactly as the column's "C" (byte order), but the primary
-- key cannot serve an ORDER BY in it: see `job_list`.
-- Every list index leads with institution_id, and none other can order the
-- ids of an institution: see `job_list::access_of`.
DROP INDEX jobs_by_host;
DROP INDEX jobs_by_institution;
DROP INDEX jobs_by_institution_source;
CREATE INDEX jobs_by_host_state ON jobs (institution_id, host_email_key, state, job_id COLLATE "POSIX");
CREATE INDEX jobs_by_account_state ON jobs (institution_id, zoom_account_id, state, job_id COLLATE "POSIX");
CREATE INDEX jobs_by_institution_state ON jobs (institution_id, state, job_id COLLATE "POSIX");
CREATE INDEX jobs_by_institution_reason ON jobs (institution_id, skip_reason, job_id COLLATE "POSIX");
CREATE INDEX jobs_by_institution_source ON jobs (institution_id, source, state, job_id COLLATE "POSIX");
"#;

/// Who decides what is copied and what happens in Zoom afterwards (as
/// SQLite's V11): a configuration's ingest mode and after-copy action, a
/// user's ingest choice, and a completed job's move to Zoom's trash, with
/// the index the trash duty reads.
const CHOICES: &str = r#"
ALTER TABLE zoom_configurations ADD COLUMN ingest_mode TEXT NOT NULL DEFAULT 'all_matching_users';
ALTER TABLE zoom_configurations ADD COLUMN after_copy TEXT NOT NULL DEFAULT 'keep';
ALTER TABLE users ADD COLUMN ingest_choice TEXT NOT NULL DEFAULT 'default';
ALTER TABLE jobs ADD COLUMN zoom_trash_state TEXT;
ALTER TABLE jobs ADD COLUMN zoom_trash_message TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN zoom_trash_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN zoom_trash_next_ms BIGINT;
CREATE INDEX jobs_zoom_trash_due ON jobs (zoom_trash_next_ms, job_id)
    WHERE zoom_trash_state = 'pending';
"#;

/// Every combination of `ListJobs` filters reads only matching entries (as
/// SQLite's V14, see `store::job_plan`): a source or a skip reason, with or
/// without a host or an account, and a host with an account, each get an
/// index whose leading columns are the institution and the filter's host
/// and account, then the source, the state and the skip reason key
/// (`job_plan::REASON_KEY`, the same expression the lists write), then the
/// id in the lists' collation. The source index gains the reason key and
/// takes over the skip reason's filters, so the reason's own index goes.
const LIST_COMBINATIONS: &str = r#"
DROP INDEX jobs_by_institution_reason;
DROP INDEX jobs_by_institution_source;
CREATE INDEX jobs_by_institution_source ON jobs (institution_id, source, state,
    (CASE WHEN state = 'skipped' THEN COALESCE(skip_reason, '') ELSE '' END), job_id COLLATE "POSIX");
CREATE INDEX jobs_by_host_source ON jobs (institution_id, host_email_key, source, state,
    (CASE WHEN state = 'skipped' THEN COALESCE(skip_reason, '') ELSE '' END), job_id COLLATE "POSIX");
CREATE INDEX jobs_by_account_source ON jobs (institution_id, zoom_account_id, source, state,
    (CASE WHEN state = 'skipped' THEN COALESCE(skip_reason, '') ELSE '' END), job_id COLLATE "POSIX");
CREATE INDEX jobs_by_host_account ON jobs (institution_id, host_email_key, zoom_account_id,
    source, state, (CASE WHEN state = 'skipped' THEN COALESCE(skip_reason, '') ELSE '' END),
    job_id COLLATE "POSIX");
"#;

/// Companion files (as SQLite's): one row per job and kind, with the sealed
/// download URL and token kept until the file is copied, the companion's
/// own lease, and the partial index the claim reads.
const COMPANIONS: &str = r#"
CREATE TABLE job_companions (
    job_id                TEXT COLLATE "C" NOT NULL REFERENCES jobs (job_id),
    kind                  TEXT NOT NULL,
    file_id               TEXT NOT NULL,
    file_size             BIGINT NOT NULL,
    state                 TEXT NOT NULL,
    reason                TEXT NOT NULL DEFAULT '',
    object_key            TEXT NOT NULL DEFAULT '',
    size_bytes            BIGINT NOT NULL DEFAULT 0,
    checksum              TEXT NOT NULL DEFAULT '',
    sealed_download_url   BYTEA,
    sealed_download_token BYTEA,
    lease_owner           TEXT,
    lease_expires_ms      BIGINT,
    updated_ms            BIGINT NOT NULL,
    PRIMARY KEY (job_id, kind)
);
CREATE INDEX job_companions_pending ON job_companions (updated_ms, job_id, kind)
    WHERE state = 'pending';
"#;

/// Course sections (as SQLite's): the institution's sections (synced by
/// external id, deactivated rather than deleted), the configurations'
/// mapping rules with their sections (gone with their configuration), and
/// which media are shared with which sections (indexed by section for
/// `ListMedia`).
const SECTIONS: &str = r#"
CREATE TABLE sections (
    section_id     TEXT COLLATE "C" PRIMARY KEY,
    institution_id TEXT COLLATE "C" NOT NULL REFERENCES institutions (institution_id),
    external_id    TEXT NOT NULL,
    name           TEXT NOT NULL,
    active         BOOLEAN NOT NULL,
    created_ms     BIGINT NOT NULL,
    updated_ms     BIGINT NOT NULL,
    UNIQUE (institution_id, external_id)
);
CREATE INDEX sections_by_institution ON sections (institution_id, section_id);

CREATE TABLE section_mappings (
    mapping_id       TEXT COLLATE "C" PRIMARY KEY,
    institution_id   TEXT COLLATE "C" NOT NULL REFERENCES institutions (institution_id),
    configuration_id TEXT COLLATE "C" NOT NULL
        REFERENCES zoom_configurations (configuration_id) ON DELETE CASCADE,
    meeting_id       BIGINT,
    topic_prefix     TEXT,
    created_ms       BIGINT NOT NULL,
    CHECK ((meeting_id IS NULL) <> (topic_prefix IS NULL))
);
CREATE INDEX section_mappings_by_institution
    ON section_mappings (institution_id, configuration_id, mapping_id);

CREATE TABLE section_mapping_sections (
    mapping_id TEXT COLLATE "C" NOT NULL REFERENCES section_mappings (mapping_id) ON DELETE CASCADE,
    section_id TEXT COLLATE "C" NOT NULL REFERENCES sections (section_id),
    PRIMARY KEY (mapping_id, section_id)
);

CREATE TABLE media_sections (
    media_id       TEXT COLLATE "C" NOT NULL REFERENCES media (media_id),
    section_id     TEXT COLLATE "C" NOT NULL REFERENCES sections (section_id),
    institution_id TEXT COLLATE "C" NOT NULL,
    shared_ms      BIGINT NOT NULL,
    PRIMARY KEY (media_id, section_id)
);
CREATE INDEX media_sections_by_section ON media_sections (institution_id, section_id, media_id);
"#;
