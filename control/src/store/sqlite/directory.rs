//! The SQLite backend of `DirectoryStore`: the user directory, its syncs
//! and its indexed email lookups.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::engine::sql_error;
use super::tenants::get_institution;
use super::{SqliteStore, page_of};
use crate::error::StoreError;
use crate::model::*;
use crate::store::{DirectoryStore, Page, PageQuery, StoreResult, new_id};

const USER_COLUMNS: &str =
    "u.user_id, u.institution_id, u.external_id, u.email, u.alternate_zoom_email,
    u.display_name, u.role, u.active, u.created_ms, u.updated_ms, u.ingest_choice";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    let role: String = row.get(6)?;
    Ok(User {
        user_id: row.get(0)?,
        institution_id: row.get(1)?,
        external_id: row.get(2)?,
        email: row.get(3)?,
        alternate_zoom_email: row.get(4)?,
        display_name: row.get(5)?,
        role: UserRole::parse(&role).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                6,
                rusqlite::types::Type::Text,
                format!("unknown role {role}").into(),
            )
        })?,
        active: row.get(7)?,
        created_at: Timestamp(row.get(8)?),
        updated_at: Timestamp(row.get(9)?),
        ingest_choice: {
            let choice: String = row.get(10)?;
            IngestChoice::parse(&choice).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    10,
                    rusqlite::types::Type::Text,
                    format!("unknown ingest choice {choice}").into(),
                )
            })?
        },
    })
}

fn record_emails(record: &UserRecord) -> impl Iterator<Item = &String> {
    std::iter::once(&record.email).chain(record.alternate_zoom_email.iter())
}

fn reject(record: &UserRecord, reason: String) -> RejectedRecord {
    RejectedRecord {
        record_index: record.record_index,
        external_id: record.external_id.clone(),
        email: record.email.clone(),
        reason,
    }
}

/// Applies one sync inside the caller's transaction. See `Store::sync_users`.
pub(super) fn sync_users(
    conn: &Connection,
    institution_id: &str,
    mode: SyncMode,
    records: Vec<UserRecord>,
    rejected_upfront: Vec<RejectedRecord>,
    now: Timestamp,
) -> StoreResult<SyncOutcome> {
    get_institution(conn, institution_id)?;
    let mut outcome = SyncOutcome {
        rejected: rejected_upfront,
        ..SyncOutcome::default()
    };
    // Every external id named by the stream, valid or not: in FULL mode a user
    // whose record was rejected is left as it is rather than deactivated.
    let mut in_stream: HashSet<String> = outcome
        .rejected
        .iter()
        .map(|r| r.external_id.clone())
        .collect();

    // Duplicates within this sync: the first record wins, later ones are rejected.
    let mut first_with_external_id: HashMap<String, u32> = HashMap::with_capacity(records.len());
    let mut first_with_email: HashMap<String, u32> = HashMap::with_capacity(records.len());
    let mut accepted: Vec<UserRecord> = Vec::with_capacity(records.len());
    for record in records {
        in_stream.insert(record.external_id.clone());
        if let Some(first) = first_with_external_id.get(&record.external_id) {
            let reason = format!("external_id: duplicate of record {first} in this sync");
            outcome.rejected.push(reject(&record, reason));
            continue;
        }
        if let Some((email, first)) =
            record_emails(&record).find_map(|e| first_with_email.get(e).map(|f| (e, f)))
        {
            let reason = format!("email: {email} is already used by record {first} in this sync");
            outcome.rejected.push(reject(&record, reason));
            continue;
        }
        first_with_external_id.insert(record.external_id.clone(), record.record_index);
        for email in record_emails(&record) {
            first_with_email.insert(email.clone(), record.record_index);
        }
        accepted.push(record);
    }

    let existing = load_users(conn, institution_id)?;
    let email_owner = load_email_owners(conn, institution_id)?;

    // Conflicts with active users who keep their emails after this sync. Each
    // rejection can leave another owner's email in place, so repeat until
    // nothing changes (it only ever shrinks `accepted`).
    let owner_keeps_emails = |owner: &str, accepted_ids: &HashSet<String>| {
        !accepted_ids.contains(owner) && (mode == SyncMode::Upsert || in_stream.contains(owner))
    };
    loop {
        let accepted_ids: HashSet<String> =
            accepted.iter().map(|r| r.external_id.clone()).collect();
        let before = accepted.len();
        accepted.retain(|record| {
            let conflict = record_emails(record).find_map(|email| {
                email_owner
                    .get(email)
                    .filter(|owner| {
                        **owner != record.external_id && owner_keeps_emails(owner, &accepted_ids)
                    })
                    .map(|owner| (email, owner))
            });
            match conflict {
                Some((email, owner)) => {
                    let reason =
                        format!("email: {email} belongs to active user with external_id {owner}");
                    outcome.rejected.push(reject(record, reason));
                    false
                }
                None => true,
            }
        });
        if accepted.len() == before {
            break;
        }
    }

    // Pass 1: free the emails of users that change or are deactivated, so
    // that pass 2 may hand them to others (swaps included).
    let mut delete_emails = conn
        .prepare_cached("DELETE FROM user_emails WHERE user_id = ?1")
        .map_err(sql_error)?;
    if mode == SyncMode::Full {
        let mut deactivate = conn
            .prepare_cached("UPDATE users SET active = 0, updated_ms = ?2 WHERE user_id = ?1")
            .map_err(sql_error)?;
        for user in existing
            .values()
            .filter(|u| u.active && !in_stream.contains(&u.external_id))
        {
            deactivate
                .execute(params![user.user_id, now.0])
                .map_err(sql_error)?;
            delete_emails
                .execute(params![user.user_id])
                .map_err(sql_error)?;
            outcome.deactivated += 1;
        }
    }
    let mut changes: Vec<(&UserRecord, Option<&User>)> = Vec::with_capacity(accepted.len());
    for record in &accepted {
        match existing.get(&record.external_id) {
            Some(user) if user.is_unchanged_by(record) => outcome.unchanged += 1,
            Some(user) => {
                delete_emails
                    .execute(params![user.user_id])
                    .map_err(sql_error)?;
                changes.push((record, Some(user)));
            }
            None => changes.push((record, None)),
        }
    }

    // Pass 2: write the changed and new users and their emails.
    let mut insert_user = conn
        .prepare_cached(
            "INSERT INTO users (user_id, institution_id, external_id, email, alternate_zoom_email, display_name,
                role, active, created_ms, updated_ms, ingest_choice)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?8, ?9)",
        )
        .map_err(sql_error)?;
    let mut update_user = conn
        .prepare_cached(
            "UPDATE users SET email = ?2, alternate_zoom_email = ?3, display_name = ?4, role = ?5, active = 1,
                updated_ms = ?6, ingest_choice = ?7 WHERE user_id = ?1",
        )
        .map_err(sql_error)?;
    let mut insert_email = conn
        .prepare_cached(
            "INSERT INTO user_emails (institution_id, email, user_id) VALUES (?1, ?2, ?3)",
        )
        .map_err(sql_error)?;
    for (record, existing_user) in changes {
        let user_id = match existing_user {
            Some(user) => {
                update_user
                    .execute(params![
                        user.user_id,
                        record.email,
                        record.alternate_zoom_email,
                        record.display_name,
                        record.role.as_str(),
                        now.0,
                        record.ingest_choice.as_str()
                    ])
                    .map_err(sql_error)?;
                outcome.updated += 1;
                user.user_id.clone()
            }
            None => {
                let user_id = new_id("usr");
                insert_user
                    .execute(params![
                        user_id,
                        institution_id,
                        record.external_id,
                        record.email,
                        record.alternate_zoom_email,
                        record.display_name,
                        record.role.as_str(),
                        now.0,
                        record.ingest_choice.as_str()
                    ])
                    .map_err(sql_error)?;
                outcome.created += 1;
                user_id
            }
        };
        for email in record_emails(record) {
            insert_email
                .execute(params![institution_id, email, user_id])
                .map_err(|e| {
                    StoreError::Corrupt(format!("email uniqueness check missed {email}: {e}"))
                })?;
        }
    }
    outcome.rejected.sort_by_key(|r| r.record_index);
    Ok(outcome)
}

fn load_users(conn: &Connection, institution_id: &str) -> StoreResult<HashMap<String, User>> {
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.institution_id = ?1"
        ))
        .map_err(sql_error)?;
    let users = statement
        .query_map(params![institution_id], user_from_row)
        .map_err(sql_error)?
        .map(|user| user.map(|u| (u.external_id.clone(), u)))
        .collect::<rusqlite::Result<HashMap<_, _>>>()
        .map_err(sql_error)?;
    Ok(users)
}

/// Email → external id of the active user holding it.
fn load_email_owners(
    conn: &Connection,
    institution_id: &str,
) -> StoreResult<HashMap<String, String>> {
    let mut statement = conn
        .prepare_cached(
            "SELECT ue.email, u.external_id FROM user_emails ue JOIN users u ON u.user_id = ue.user_id
             WHERE ue.institution_id = ?1",
        )
        .map_err(sql_error)?;
    let owners = statement
        .query_map(params![institution_id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .map_err(sql_error)?
        .collect::<rusqlite::Result<HashMap<_, _>>>()
        .map_err(sql_error)?;
    Ok(owners)
}

/// The lookup by email, prepared once per connection (`prepare_cached`).
static LOOKUP_BY_EMAIL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {USER_COLUMNS} FROM user_emails ue JOIN users u ON u.user_id = ue.user_id
         WHERE ue.institution_id = ?1 AND ue.email = ?2 AND u.active = 1"
    )
});

/// Batches up to this many emails are looked up on the async worker, like a
/// single lookup (a few microseconds each); larger ones go to the blocking
/// pool so that a batch of 1,000 never holds a runtime worker for
/// milliseconds.
const POINT_BATCH: usize = 16;

pub(super) fn lookup_user_by_email(
    conn: &Connection,
    institution_id: &str,
    email: &str,
) -> StoreResult<Option<User>> {
    conn.prepare_cached(&LOOKUP_BY_EMAIL)
        .map_err(sql_error)?
        .query_row(params![institution_id, email], user_from_row)
        .optional()
        .map_err(sql_error)
}

/// Each of `emails` looked up in turn on one connection and one statement,
/// inside one read transaction: one snapshot for the whole batch, and the
/// WAL's read lock taken once instead of once per email.
fn lookup_users_by_email(
    conn: &Connection,
    institution_id: &str,
    emails: &[String],
) -> StoreResult<Vec<Option<User>>> {
    // Deferred: a read transaction; dropping it (any path) ends it.
    let _snapshot = conn.unchecked_transaction().map_err(sql_error)?;
    let mut statement = conn.prepare_cached(&LOOKUP_BY_EMAIL).map_err(sql_error)?;
    emails
        .iter()
        .map(|email| {
            statement
                .query_row(params![institution_id, email], user_from_row)
                .optional()
                .map_err(sql_error)
        })
        .collect()
}

pub(super) fn get_user(
    conn: &Connection,
    institution_id: &str,
    user_id: &str,
) -> StoreResult<User> {
    conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.institution_id = ?1 AND u.user_id = ?2"
    ))
    .map_err(sql_error)?
    .query_row(params![institution_id, user_id], user_from_row)
    .optional()
    .map_err(sql_error)?
    .ok_or_else(|| StoreError::not_found(format!("user {user_id}")))
}

pub(super) fn list_users(
    conn: &Connection,
    institution_id: &str,
    include_inactive: bool,
    page: &PageQuery,
) -> StoreResult<Page<User>> {
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users u
             WHERE u.institution_id = ?1 AND u.user_id > ?2 AND (?3 OR u.active = 1)
             ORDER BY u.user_id LIMIT ?4"
        ))
        .map_err(sql_error)?;
    let rows = statement
        .query_map(
            params![
                institution_id,
                page.after.as_deref().unwrap_or(""),
                include_inactive,
                page.limit() + 1
            ],
            user_from_row,
        )
        .map_err(sql_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_error)?;
    Ok(page_of(rows, page, |u| &u.user_id))
}

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn sync_users(&self, sync: UserSync) -> StoreResult<SyncOutcome> {
        self.engine
            .write(move |c| {
                sync_users(
                    c,
                    &sync.institution_id,
                    sync.mode,
                    sync.records,
                    sync.rejected_upfront,
                    sync.now,
                )
            })
            .await
    }

    async fn lookup_user_by_email(
        &self,
        institution_id: &str,
        email: &str,
    ) -> StoreResult<Option<User>> {
        self.engine
            .read_point(|c| lookup_user_by_email(c, institution_id, email))
    }

    async fn lookup_users_by_email(
        &self,
        institution_id: &str,
        emails: &[String],
    ) -> StoreResult<Vec<Option<User>>> {
        if emails.len() <= POINT_BATCH {
            return self
                .engine
                .read_point(|c| lookup_users_by_email(c, institution_id, emails));
        }
        let (institution_id, emails) = (institution_id.to_string(), emails.to_vec());
        self.engine
            .read(move |c| lookup_users_by_email(c, &institution_id, &emails))
            .await
    }

    async fn get_user(&self, institution_id: &str, user_id: &str) -> StoreResult<User> {
        self.engine
            .read_point(|c| get_user(c, institution_id, user_id))
    }

    async fn list_users(
        &self,
        institution_id: &str,
        include_inactive: bool,
        page: &PageQuery,
    ) -> StoreResult<Page<User>> {
        let (institution_id, page) = (institution_id.to_string(), page.clone());
        self.engine
            .read(move |c| list_users(c, &institution_id, include_inactive, &page))
            .await
    }
}
