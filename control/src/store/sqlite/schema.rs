//! Versioned schema migrations, applied in order at start-up inside one
//! transaction each. The SQL sticks to what SQLite and PostgreSQL share
//! (`ON CONFLICT`, `RETURNING`, integer milliseconds for time) so that the
//! Postgres backend can reuse the shapes.

pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (1, V1),
    (2, V2),
    (3, V3),
    (4, V4),
    (5, V5),
    (6, V6),
    (7, V7),
    (8, V8),
    (9, V9),
    (10, V10),
    (11, V11),
    (12, V12),
    (13, V13),
    (14, V14),
    (15, COMPANIONS),
    (16, SECTIONS),
];

const V1: &str = r#"
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE institutions (
    institution_id TEXT PRIMARY KEY,
    display_name   TEXT NOT NULL,
    created_ms     INTEGER NOT NULL
);

CREATE TABLE admin_keys (
    key_id         TEXT PRIMARY KEY,
    institution_id TEXT NOT NULL REFERENCES institutions (institution_id),
    name           TEXT NOT NULL,
    key_hash       TEXT NOT NULL UNIQUE,
    created_ms     INTEGER NOT NULL,
    revoked_ms     INTEGER
);
CREATE INDEX admin_keys_by_institution ON admin_keys (institution_id, key_id);

CREATE TABLE zoom_configurations (
    configuration_id TEXT PRIMARY KEY,
    institution_id   TEXT NOT NULL REFERENCES institutions (institution_id),
    display_name     TEXT NOT NULL,
    name_key         TEXT NOT NULL,
    view_priority    TEXT NOT NULL,
    token_hash       TEXT NOT NULL UNIQUE,
    created_ms       INTEGER NOT NULL,
    token_issued_ms  INTEGER NOT NULL,
    UNIQUE (institution_id, name_key)
);

CREATE TABLE zoom_accounts (
    zoom_account_id            TEXT PRIMARY KEY,
    institution_id             TEXT NOT NULL REFERENCES institutions (institution_id),
    configuration_id           TEXT NOT NULL,
    plan                       TEXT NOT NULL,
    installed_ms               INTEGER NOT NULL,
    uninstalled_ms             INTEGER,
    oauth_client_id            TEXT,
    oauth_client_secret_sealed BLOB
);
CREATE INDEX zoom_accounts_by_institution ON zoom_accounts (institution_id, zoom_account_id);
CREATE INDEX zoom_accounts_by_configuration ON zoom_accounts (configuration_id);

CREATE TABLE users (
    user_id              TEXT PRIMARY KEY,
    institution_id       TEXT NOT NULL REFERENCES institutions (institution_id),
    external_id          TEXT NOT NULL,
    email                TEXT NOT NULL,
    alternate_zoom_email TEXT,
    display_name         TEXT NOT NULL,
    role                 TEXT NOT NULL,
    active               INTEGER NOT NULL,
    created_ms           INTEGER NOT NULL,
    updated_ms           INTEGER NOT NULL,
    UNIQUE (institution_id, external_id)
);
CREATE INDEX users_by_institution ON users (institution_id, user_id);

-- Every email and alternate email of every active user, one row each. The
-- primary key is the rule "an email belongs to at most one active user of an
-- institution", and the index behind LookupUserByEmail.
CREATE TABLE user_emails (
    institution_id TEXT NOT NULL,
    email          TEXT NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users (user_id),
    PRIMARY KEY (institution_id, email)
);
CREATE INDEX user_emails_by_user ON user_emails (user_id);

CREATE TABLE jobs (
    job_id                 TEXT PRIMARY KEY,
    institution_id         TEXT NOT NULL REFERENCES institutions (institution_id),
    zoom_account_id        TEXT NOT NULL,
    meeting_uuid           TEXT NOT NULL,
    meeting_id             INTEGER NOT NULL,
    topic                  TEXT NOT NULL,
    host_email             TEXT NOT NULL,
    host_email_key         TEXT NOT NULL,
    meeting_start_ms       INTEGER,
    state                  TEXT NOT NULL,
    skip_reason            TEXT,
    message                TEXT NOT NULL,
    owner_user_id          TEXT,
    file_id                TEXT,
    recording_type         TEXT,
    file_type              TEXT,
    file_extension         TEXT,
    file_size              INTEGER,
    recording_start_ms     INTEGER,
    recording_end_ms       INTEGER,
    skipped_file_count     INTEGER NOT NULL,
    skipped_segment_count  INTEGER NOT NULL,
    bytes_transferred      INTEGER NOT NULL DEFAULT 0,
    total_bytes            INTEGER NOT NULL DEFAULT 0,
    attempt_count          INTEGER NOT NULL DEFAULT 0,
    media_id               TEXT,
    created_ms             INTEGER NOT NULL,
    updated_ms             INTEGER NOT NULL,
    finished_ms            INTEGER,
    detected_mid_stream    INTEGER NOT NULL DEFAULT 0,
    download_url_sealed    BLOB,
    download_token_sealed  BLOB,
    download_event_ms      INTEGER,
    recording_sealed       BLOB,
    lease_owner            TEXT,
    lease_expires_ms       INTEGER,
    UNIQUE (zoom_account_id, meeting_uuid)
);
CREATE INDEX jobs_by_institution ON jobs (institution_id, job_id);
CREATE INDEX jobs_by_state ON jobs (state, job_id);
CREATE INDEX jobs_by_host ON jobs (institution_id, host_email_key);

CREATE TABLE media (
    media_id       TEXT PRIMARY KEY,
    institution_id TEXT NOT NULL REFERENCES institutions (institution_id),
    owner_user_id  TEXT NOT NULL REFERENCES users (user_id),
    title          TEXT NOT NULL,
    duration_ms    INTEGER NOT NULL,
    size_bytes     INTEGER NOT NULL,
    checksum       TEXT NOT NULL,
    object_key     TEXT NOT NULL UNIQUE,
    meeting_id     INTEGER NOT NULL,
    meeting_uuid   TEXT NOT NULL,
    recorded_ms    INTEGER,
    job_id         TEXT NOT NULL UNIQUE REFERENCES jobs (job_id),
    created_ms     INTEGER NOT NULL,
    content_type   TEXT NOT NULL
);
CREATE INDEX media_by_institution ON media (institution_id, media_id);
CREATE INDEX media_by_owner ON media (institution_id, owner_user_id, media_id);
"#;

/// Resumable transfers: the multipart upload of a job and its acknowledged
/// parts, so a retry or a restart continues from the first missing byte.
const V2: &str = r#"
CREATE TABLE transfer_uploads (
    job_id            TEXT PRIMARY KEY REFERENCES jobs (job_id),
    upload_id         TEXT NOT NULL,
    object_key        TEXT NOT NULL,
    part_size         INTEGER NOT NULL,
    media_duration_ms INTEGER,
    created_ms        INTEGER NOT NULL
);

CREATE TABLE transfer_parts (
    job_id      TEXT NOT NULL REFERENCES transfer_uploads (job_id),
    part_number INTEGER NOT NULL,
    etag        TEXT NOT NULL,
    crc32c      INTEGER NOT NULL,
    offset_b    INTEGER NOT NULL,
    len_b       INTEGER NOT NULL,
    PRIMARY KEY (job_id, part_number)
);
"#;

/// The MP4 scanner's state stored with each part (a resume scans on from
/// it), and each job's attempts: where each one started and why.
const V3: &str = r#"
ALTER TABLE transfer_parts ADD COLUMN scan_state BLOB;

CREATE TABLE job_attempts (
    job_id         TEXT NOT NULL REFERENCES jobs (job_id),
    attempt        INTEGER NOT NULL,
    worker_id      TEXT NOT NULL,
    started_ms     INTEGER NOT NULL,
    resumed_from_b INTEGER NOT NULL,
    note           TEXT NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
"#;

/// Jobs per state, kept by triggers in the transaction of every insert,
/// state change and delete of a job, so a scrape reads six rows instead of
/// counting the table (and every process sharing the file sees the same
/// numbers). Seeded here from the jobs already stored. The partial index
/// answers "oldest queued job" from its first entry.
const V4: &str = r#"
CREATE TABLE job_state_counts (
    state TEXT PRIMARY KEY,
    jobs  INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO job_state_counts (state, jobs) VALUES
    ('queued', 0), ('transferring', 0), ('completed', 0),
    ('skipped', 0), ('failed', 0), ('cancelled', 0);
UPDATE job_state_counts
   SET jobs = (SELECT COUNT(*) FROM jobs WHERE jobs.state = job_state_counts.state);

CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
    UPDATE job_state_counts SET jobs = jobs + 1 WHERE state = NEW.state;
END;
CREATE TRIGGER jobs_count_state AFTER UPDATE OF state ON jobs
WHEN OLD.state != NEW.state BEGIN
    UPDATE job_state_counts SET jobs = jobs - 1 WHERE state = OLD.state;
    UPDATE job_state_counts SET jobs = jobs + 1 WHERE state = NEW.state;
END;
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_state_counts SET jobs = jobs - 1 WHERE state = OLD.state;
END;

CREATE INDEX jobs_queued_since ON jobs (updated_ms) WHERE state = 'queued';
"#;

/// An index for every `ListJobs` filter, each ending in `job_id` so that a
/// page is read in id order without a sort (see `job_list`). The host index
/// replaces `jobs_by_host`, which was not ordered by id.
const V5: &str = r#"
DROP INDEX jobs_by_host;
CREATE INDEX jobs_by_host_state ON jobs (institution_id, host_email_key, state, job_id);
CREATE INDEX jobs_by_account_state ON jobs (zoom_account_id, state, job_id);
CREATE INDEX jobs_by_institution_state ON jobs (institution_id, state, job_id);
CREATE INDEX jobs_by_institution_reason ON jobs (institution_id, skip_reason, job_id);
"#;

/// Retention: the jobs still holding sealed download details (COMPLETED
/// ones are erased at completion; the rest after `retry_days`), and the
/// final jobs `job_days` may delete, each in order of their finish time so
/// that a sweep reads only what it erases or deletes. (V8 redefines the
/// first.)
const V6: &str = r#"
CREATE INDEX jobs_holding_secrets ON jobs (finished_ms)
    WHERE state IN ('completed', 'skipped', 'failed', 'cancelled')
      AND (download_url_sealed IS NOT NULL OR download_token_sealed IS NOT NULL
           OR recording_sealed IS NOT NULL);
CREATE INDEX jobs_expirable ON jobs (finished_ms)
    WHERE state IN ('skipped', 'failed', 'cancelled');
"#;

/// The daemons sharing the database, when each was last seen alive, and
/// the duties one of them at a time performs.
const V7: &str = r#"
CREATE TABLE replicas (
    replica_id TEXT PRIMARY KEY,
    seen_ms    INTEGER NOT NULL
);

-- Duties one replica at a time performs, each held until it expires.
CREATE TABLE replica_duties (
    duty       TEXT PRIMARY KEY,
    replica_id TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
"#;

/// An erased recording is an empty blob rather than NULL, which tells
/// `RetryJob` the details were erased rather than never kept: the jobs
/// still holding details are those with a non-empty one.
const V8: &str = r#"
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
/// being spent twice.
const V9: &str = r#"
CREATE TABLE web_tickets (
    kind       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, hash)
);
CREATE INDEX web_tickets_by_expiry ON web_tickets (expires_ms);

CREATE TABLE zoom_account_tokens (
    zoom_account_id      TEXT PRIMARY KEY,
    client_id            TEXT NOT NULL,
    access_token_sealed  BLOB NOT NULL,
    access_expires_ms    INTEGER NOT NULL,
    refresh_token_sealed BLOB NOT NULL,
    refresh_token_hash   TEXT NOT NULL,
    refresh_holder       TEXT,
    refresh_claim_ms     INTEGER,
    updated_ms           INTEGER NOT NULL
);
"#;

/// Reconciling with Zoom's recordings list: where each job came from (an
/// index per `ListJobs` source filter), the reconciler's cursor per
/// account, and backfills with their counts and cursors.
const V10: &str = r#"
ALTER TABLE jobs ADD COLUMN source TEXT NOT NULL DEFAULT 'webhook';
CREATE INDEX jobs_by_institution_source ON jobs (institution_id, source, job_id);

CREATE TABLE reconcile_cursors (
    zoom_account_id TEXT PRIMARY KEY,
    from_day        TEXT NOT NULL,
    to_day          TEXT NOT NULL,
    chunk_from_day  TEXT NOT NULL,
    next_page_token TEXT NOT NULL,
    pass_started_ms INTEGER NOT NULL,
    finished_ms     INTEGER
);

CREATE TABLE backfills (
    backfill_id     TEXT PRIMARY KEY,
    institution_id  TEXT NOT NULL REFERENCES institutions (institution_id),
    zoom_account_id TEXT NOT NULL,
    state           TEXT NOT NULL,
    message         TEXT NOT NULL,
    meetings_seen   INTEGER NOT NULL,
    jobs_created    INTEGER NOT NULL,
    duplicates      INTEGER NOT NULL,
    not_ready       INTEGER NOT NULL,
    skipped         TEXT NOT NULL,
    from_day        TEXT NOT NULL,
    to_day          TEXT NOT NULL,
    chunk_from_day  TEXT NOT NULL,
    next_page_token TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    finished_ms     INTEGER
);
CREATE INDEX backfills_by_institution ON backfills (institution_id, backfill_id);
CREATE INDEX backfills_running ON backfills (backfill_id) WHERE state = 'running';
"#;

/// Who decides what is copied and what happens in Zoom afterwards: a
/// configuration's ingest mode and after-copy action, a user's ingest
/// choice, and a completed job's move to Zoom's trash (its state, last
/// message, calls so far and when the next is due; the index is what the
/// trash duty reads).
const V11: &str = r#"
ALTER TABLE zoom_configurations ADD COLUMN ingest_mode TEXT NOT NULL DEFAULT 'all_matching_users';
ALTER TABLE zoom_configurations ADD COLUMN after_copy TEXT NOT NULL DEFAULT 'keep';
ALTER TABLE users ADD COLUMN ingest_choice TEXT NOT NULL DEFAULT 'default';
ALTER TABLE jobs ADD COLUMN zoom_trash_state TEXT;
ALTER TABLE jobs ADD COLUMN zoom_trash_message TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN zoom_trash_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN zoom_trash_next_ms INTEGER;
CREATE INDEX jobs_zoom_trash_due ON jobs (zoom_trash_next_ms, job_id)
    WHERE zoom_trash_state = 'pending';
"#;

/// `user_emails` without a rowid: the row lives in its primary key's
/// B-tree, so `LookupUserByEmail` reads the user id in the same descent that
/// finds the email, instead of a second descent into the rowid table.
const V12: &str = r#"
CREATE TABLE user_emails_keyed (
    institution_id TEXT NOT NULL,
    email          TEXT NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users (user_id),
    PRIMARY KEY (institution_id, email)
) WITHOUT ROWID;
INSERT INTO user_emails_keyed (institution_id, email, user_id)
    SELECT institution_id, email, user_id FROM user_emails;
DROP TABLE user_emails;
ALTER TABLE user_emails_keyed RENAME TO user_emails;
CREATE INDEX user_emails_by_user ON user_emails (user_id);
"#;

/// The source index gains the state, so that a source filter reads one
/// range per state like the host and account filters (a source with a
/// state read every job of the source before: 577 ms at 10 million jobs).
const V13: &str = r#"
DROP INDEX jobs_by_institution_source;
CREATE INDEX jobs_by_institution_source ON jobs (institution_id, source, state, job_id);
"#;

/// Every combination of `ListJobs` filters reads only matching entries
/// (`store::job_plan`): a source or a skip reason, with or without a host
/// or an account, and a host with an account, each get an index whose
/// leading columns are the filter's host and account, then the source, the
/// state and the skip reason key (`job_plan::REASON_KEY`, the same
/// expression the lists write), then the id. The source index gains the
/// reason key and takes over the skip reason's filters, so the reason's own
/// index goes.
const V14: &str = r#"
DROP INDEX jobs_by_institution_reason;
DROP INDEX jobs_by_institution_source;
CREATE INDEX jobs_by_institution_source ON jobs (institution_id, source, state,
    (CASE WHEN state = 'skipped' THEN COALESCE(skip_reason, '') ELSE '' END), job_id);
CREATE INDEX jobs_by_host_source ON jobs (institution_id, host_email_key, source, state,
    (CASE WHEN state = 'skipped' THEN COALESCE(skip_reason, '') ELSE '' END), job_id);
CREATE INDEX jobs_by_account_source ON jobs (institution_id, zoom_account_id, source, state,
    (CASE WHEN state = 'skipped' THEN COALESCE(skip_reason, '') ELSE '' END), job_id);
CREATE INDEX jobs_by_host_account ON jobs (institution_id, host_email_key, zoom_account_id,
    source, state, (CASE WHEN state = 'skipped' THEN COALESCE(skip_reason, '') ELSE '' END), job_id);
"#;

/// Companion files (transcript, captions, chat): one row per job and kind,
/// with the sealed download URL and token kept until the file is copied,
/// the companion's own lease, and the partial index the claim reads.
const COMPANIONS: &str = r#"
CREATE TABLE job_companions (
    job_id                TEXT NOT NULL REFERENCES jobs (job_id),
    kind                  TEXT NOT NULL,
    file_id               TEXT NOT NULL,
    file_size             INTEGER NOT NULL,
    state                 TEXT NOT NULL,
    reason                TEXT NOT NULL DEFAULT '',
    object_key            TEXT NOT NULL DEFAULT '',
    size_bytes            INTEGER NOT NULL DEFAULT 0,
    checksum              TEXT NOT NULL DEFAULT '',
    sealed_download_url   BLOB,
    sealed_download_token BLOB,
    lease_owner           TEXT,
    lease_expires_ms      INTEGER,
    updated_ms            INTEGER NOT NULL,
    PRIMARY KEY (job_id, kind)
) WITHOUT ROWID;
CREATE INDEX job_companions_pending ON job_companions (updated_ms, job_id, kind)
    WHERE state = 'pending';
"#;

/// Course sections: the institution's sections (synced by external id,
/// deactivated rather than deleted), the configurations' mapping rules with
/// their sections (gone with their configuration), and which media are
/// shared with which sections (indexed by section for `ListMedia`).
const SECTIONS: &str = r#"
CREATE TABLE sections (
    section_id     TEXT PRIMARY KEY,
    institution_id TEXT NOT NULL REFERENCES institutions (institution_id),
    external_id    TEXT NOT NULL,
    name           TEXT NOT NULL,
    active         INTEGER NOT NULL,
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    UNIQUE (institution_id, external_id)
);
CREATE INDEX sections_by_institution ON sections (institution_id, section_id);

CREATE TABLE section_mappings (
    mapping_id       TEXT PRIMARY KEY,
    institution_id   TEXT NOT NULL REFERENCES institutions (institution_id),
    configuration_id TEXT NOT NULL
        REFERENCES zoom_configurations (configuration_id) ON DELETE CASCADE,
    meeting_id       INTEGER,
    topic_prefix     TEXT,
    created_ms       INTEGER NOT NULL,
    CHECK ((meeting_id IS NULL) <> (topic_prefix IS NULL))
);
CREATE INDEX section_mappings_by_institution
    ON section_mappings (institution_id, configuration_id, mapping_id);

CREATE TABLE section_mapping_sections (
    mapping_id TEXT NOT NULL REFERENCES section_mappings (mapping_id) ON DELETE CASCADE,
    section_id TEXT NOT NULL REFERENCES sections (section_id),
    PRIMARY KEY (mapping_id, section_id)
) WITHOUT ROWID;

CREATE TABLE media_sections (
    media_id       TEXT NOT NULL REFERENCES media (media_id),
    section_id     TEXT NOT NULL REFERENCES sections (section_id),
    institution_id TEXT NOT NULL,
    shared_ms      INTEGER NOT NULL,
    PRIMARY KEY (media_id, section_id)
) WITHOUT ROWID;
CREATE INDEX media_sections_by_section ON media_sections (institution_id, section_id, media_id);
"#;
