//! The PostgreSQL backend of `DirectoryStore`: the user directory, its syncs
//! and its indexed email lookups. A sync holds its institution's row lock
//! for the whole transaction, so two replicas syncing one institution take
//! turns and "one active user per email" is decided on what is committed;
//! the `user_emails` primary key backs the rule up.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::tenants::get_institution;
use super::{PostgresStore, get, get_time, page_after, page_limit, page_of, pg_error};
use crate::error::StoreError;
use crate::model::*;
use crate::store::{DirectoryStore, Page, PageQuery, StoreResult, new_id};

const USER_COLUMNS: &str =
    "u.user_id, u.institution_id, u.external_id, u.email, u.alternate_zoom_email,
    u.display_name, u.role, u.active, u.created_ms, u.updated_ms, u.ingest_choice";

fn user_from_row(row: &Row) -> StoreResult<User> {
    user_from_row_at(row, 0)
}

/// A user from `USER_COLUMNS` starting at column `first`.
fn user_from_row_at(row: &Row, first: usize) -> StoreResult<User> {
    let role: String = get(row, first + 6)?;
    Ok(User {
        user_id: get(row, first)?,
        institution_id: get(row, first + 1)?,
        external_id: get(row, first + 2)?,
        email: get(row, first + 3)?,
        alternate_zoom_email: get(row, first + 4)?,
        display_name: get(row, first + 5)?,
        role: UserRole::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown role {role}")))?,
        active: get(row, first + 7)?,
        created_at: get_time(row, first + 8)?,
        updated_at: get_time(row, first + 9)?,
        ingest_choice: {
            let choice: String = get(row, first + 10)?;
            IngestChoice::parse(&choice)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown ingest choice {choice}")))?
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

/// Records that repeat an earlier record's external id or email are rejected
/// (the first wins); returns the accepted ones and every external id named.
fn dedupe(
    records: Vec<UserRecord>,
    outcome: &mut SyncOutcome,
) -> (Vec<UserRecord>, HashSet<String>) {
    let mut in_stream: HashSet<String> = outcome
        .rejected
        .iter()
        .map(|r| r.external_id.clone())
        .collect();
    let mut first_with_external_id: HashMap<String, u32> = HashMap::with_capacity(records.len());
    let mut first_with_email: HashMap<String, u32> = HashMap::with_capacity(records.len());
    let mut accepted = Vec::with_capacity(records.len());
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
    (accepted, in_stream)
}

/// Applies one sync inside the caller's transaction. See `Store::sync_users`.
async fn sync_users(tx: &impl GenericClient, sync: UserSync) -> StoreResult<SyncOutcome> {
    let (institution_id, mode, now) = (sync.institution_id.as_str(), sync.mode, sync.now);
    get_institution(tx, institution_id, true).await?;
    let mut outcome = SyncOutcome {
        rejected: sync.rejected_upfront,
        ..SyncOutcome::default()
    };
    let (mut accepted, in_stream) = dedupe(sync.records, &mut outcome);
    let existing: HashMap<String, User> = tx
        .query(
            &format!("SELECT {USER_COLUMNS} FROM users u WHERE u.institution_id = $1"),
            &[&institution_id],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|row| user_from_row(row).map(|u| (u.external_id.clone(), u)))
        .collect::<StoreResult<_>>()?;
    let email_owner: HashMap<String, String> = tx
        .query(
            "SELECT ue.email, u.external_id FROM user_emails ue JOIN users u ON u.user_id = ue.user_id
             WHERE ue.institution_id = $1",
            &[&institution_id],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|row| Ok((get(row, 0)?, get(row, 1)?)))
        .collect::<StoreResult<_>>()?;
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
    let delete_emails = tx
        .prepare_cached("DELETE FROM user_emails WHERE user_id = $1")
        .await
        .map_err(pg_error)?;
    if mode == SyncMode::Full {
        let deactivate = tx
            .prepare_cached("UPDATE users SET active = FALSE, updated_ms = $2 WHERE user_id = $1")
            .await
            .map_err(pg_error)?;
        for user in existing
            .values()
            .filter(|u| u.active && !in_stream.contains(&u.external_id))
        {
            tx.execute(&deactivate, &[&user.user_id, &now.0])
                .await
                .map_err(pg_error)?;
            tx.execute(&delete_emails, &[&user.user_id])
                .await
                .map_err(pg_error)?;
            outcome.deactivated += 1;
        }
    }
    let mut changes: Vec<(&UserRecord, Option<&User>)> = Vec::with_capacity(accepted.len());
    for record in &accepted {
        match existing.get(&record.external_id) {
            Some(user) if user.is_unchanged_by(record) => outcome.unchanged += 1,
            Some(user) => {
                tx.execute(&delete_emails, &[&user.user_id])
                    .await
                    .map_err(pg_error)?;
                changes.push((record, Some(user)));
            }
            None => changes.push((record, None)),
        }
    }
    // Pass 2: write the changed and new users and their emails. A changed
    // user is updated by itself (a re-sync changes few); new users and every
    // email are inserted INSERT_BATCH rows to a statement, since a statement
    // a row is a round trip a row (a first sync of 100,000 users made 250,000).
    let update_user = tx
        .prepare_cached(
            "UPDATE users SET email = $2, alternate_zoom_email = $3, display_name = $4, role = $5,
                active = TRUE, updated_ms = $6, ingest_choice = $7 WHERE user_id = $1",
        )
        .await
        .map_err(pg_error)?;
    let mut new_users: Vec<(String, &UserRecord)> = Vec::new();
    let mut emails: Vec<(&str, String)> = Vec::new();
    for (record, existing_user) in changes {
        let user_id = match existing_user {
            Some(user) => {
                tx.execute(
                    &update_user,
                    &[
                        &user.user_id,
                        &record.email,
                        &record.alternate_zoom_email,
                        &record.display_name,
                        &record.role.as_str(),
                        &now.0,
                        &record.ingest_choice.as_str(),
                    ],
                )
                .await
                .map_err(pg_error)?;
                outcome.updated += 1;
                user.user_id.clone()
            }
            None => {
                let user_id = new_id("usr");
                new_users.push((user_id.clone(), record));
                outcome.created += 1;
                user_id
            }
        };
        emails.extend(record_emails(record).map(|email| (email.as_str(), user_id.clone())));
    }
    insert_users(tx, institution_id, now, &new_users).await?;
    insert_emails(tx, institution_id, &emails).await?;
    outcome.rejected.sort_by_key(|r| r.record_index);
    Ok(outcome)
}

pub(super) async fn get_user(
    c: &impl GenericClient,
    institution_id: &str,
    user_id: &str,
) -> StoreResult<User> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {USER_COLUMNS} FROM users u WHERE u.institution_id = $1 AND u.user_id = $2"
            ),
            &[&institution_id, &user_id],
        )
        .await
        .map_err(pg_error)?
        .ok_or_else(|| StoreError::not_found(format!("user {user_id}")))?;
    user_from_row(&row)
}

/// Rows a batched INSERT carries, as arrays (`UNNEST`), in one statement.
const INSERT_BATCH: usize = 10_000;

/// Inserts new, active users: `(user_id, record)` each.
async fn insert_users(
    tx: &impl GenericClient,
    institution_id: &str,
    now: Timestamp,
    users: &[(String, &UserRecord)],
) -> StoreResult<()> {
    let insert = tx
        .prepare_cached(
            "INSERT INTO users (user_id, institution_id, external_id, email, alternate_zoom_email,
                display_name, role, active, created_ms, updated_ms, ingest_choice)
             SELECT u.user_id, $1, u.external_id, u.email, u.alternate_zoom_email, u.display_name,
                u.role, TRUE, $2, $2, u.ingest_choice
             FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
                AS u (user_id, external_id, email, alternate_zoom_email, display_name, role, ingest_choice)",
        )
        .await
        .map_err(pg_error)?;
    for batch in users.chunks(INSERT_BATCH) {
        let text = |field: &dyn Fn(&UserRecord) -> &str| -> Vec<&str> {
            batch.iter().map(|(_, record)| field(record)).collect()
        };
        let user_ids: Vec<&str> = batch.iter().map(|(user_id, _)| user_id.as_str()).collect();
        let alternates: Vec<Option<&str>> = batch
            .iter()
            .map(|(_, record)| record.alternate_zoom_email.as_deref())
            .collect();
        tx.execute(
            &insert,
            &[
                &institution_id,
                &now.0,
                &user_ids,
                &text(&|record| &record.external_id),
                &text(&|record| &record.email),
                &alternates,
                &text(&|record| &record.display_name),
                &text(&|record| record.role.as_str()),
                &text(&|record| record.ingest_choice.as_str()),
            ],
        )
        .await
        .map_err(pg_error)?;
    }
    Ok(())
}

/// Inserts `(email, user_id)` rows; pass 1 has made sure no email is taken.
async fn insert_emails(
    tx: &impl GenericClient,
    institution_id: &str,
    emails: &[(&str, String)],
) -> StoreResult<()> {
    let insert = tx
        .prepare_cached(
            "INSERT INTO user_emails (institution_id, email, user_id)
             SELECT $1, e.email, e.user_id FROM UNNEST($2::text[], $3::text[]) AS e (email, user_id)",
        )
        .await
        .map_err(pg_error)?;
    for batch in emails.chunks(INSERT_BATCH) {
        let addresses: Vec<&str> = batch.iter().map(|(email, _)| *email).collect();
        let user_ids: Vec<&str> = batch.iter().map(|(_, user_id)| user_id.as_str()).collect();
        tx.execute(&insert, &[&institution_id, &addresses, &user_ids])
            .await
            .map_err(|e| {
                StoreError::Corrupt(format!(
                    "email uniqueness check missed one of {} emails: {e}",
                    batch.len()
                ))
            })?;
    }
    Ok(())
}

#[async_trait]
impl DirectoryStore for PostgresStore {
    async fn sync_users(&self, sync: UserSync) -> StoreResult<SyncOutcome> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let outcome = sync_users(&tx, sync).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(outcome)
    }

    async fn lookup_user_by_email(
        &self,
        institution_id: &str,
        email: &str,
    ) -> StoreResult<Option<User>> {
        // Every webhook looks its host up: prepared once per connection.
        let client = self.client().await?;
        let select = client
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM user_emails ue JOIN users u ON u.user_id = ue.user_id
                 WHERE ue.institution_id = $1 AND ue.email = $2 AND u.active"
            ))
            .await
            .map_err(pg_error)?;
        let row = client
            .query_opt(&select, &[&institution_id, &email])
            .await
            .map_err(pg_error)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn lookup_users_by_email(
        &self,
        institution_id: &str,
        emails: &[String],
    ) -> StoreResult<Vec<Option<User>>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT ue.email, {USER_COLUMNS} FROM user_emails ue
                     JOIN users u ON u.user_id = ue.user_id
                     WHERE ue.institution_id = $1 AND ue.email = ANY($2) AND u.active"
                ),
                &[&institution_id, &emails],
            )
            .await
            .map_err(pg_error)?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in &rows {
            let email: String = get(row, 0)?;
            found.insert(email, user_from_row_at(row, 1)?);
        }
        Ok(emails
            .iter()
            .map(|email| found.get(email).cloned())
            .collect())
    }

    async fn get_user(&self, institution_id: &str, user_id: &str) -> StoreResult<User> {
        get_user(&self.client().await?, institution_id, user_id).await
    }

    async fn list_users(
        &self,
        institution_id: &str,
        include_inactive: bool,
        page: &PageQuery,
    ) -> StoreResult<Page<User>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {USER_COLUMNS} FROM users u
                     WHERE u.institution_id = $1 AND u.user_id > $2 AND ($3 OR u.active)
                     ORDER BY u.user_id LIMIT $4"
                ),
                &[
                    &institution_id,
                    &page_after(page),
                    &include_inactive,
                    &page_limit(page),
                ],
            )
            .await
            .map_err(pg_error)?;
        let rows = rows
            .iter()
            .map(user_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page_of(rows, page, |u| &u.user_id))
    }
}
