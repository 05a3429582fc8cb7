//! The PostgreSQL backend of `SectionStore`: course sections and their
//! syncs, the configurations' mapping rules, and the media shared with
//! sections — including the step of `complete_job` that shares a new media
//! by the mappings (`share_on_completion`), inside the completion's
//! transaction. A sync holds its institution's row lock, so two replicas
//! syncing one institution take turns; writes that check sections lock
//! them (`FOR SHARE`), so a concurrent FULL sync cannot deactivate a
//! section between the check and the write.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::configurations::get_configuration;
use super::media::{MEDIA_COLUMNS, get_media, media_from_row, with_sections};
use super::tenants::get_institution;
use super::{PostgresStore, get, get_time, page_after, page_limit, page_of, pg_error};
use crate::error::StoreError;
use crate::model::*;
use crate::rules::mapped_sections;
use crate::store::section_plan::{plan_section_sync, sections_checked};
use crate::store::{Page, PageQuery, SectionStore, StoreResult, new_id};

const SECTION_COLUMNS: &str =
    "section_id, institution_id, external_id, name, active, created_ms, updated_ms";

fn section_from_row(row: &Row) -> StoreResult<Section> {
    Ok(Section {
        section_id: get(row, 0)?,
        institution_id: get(row, 1)?,
        external_id: get(row, 2)?,
        name: get(row, 3)?,
        active: get(row, 4)?,
        created_at: get_time(row, 5)?,
        updated_at: get_time(row, 6)?,
    })
}

async fn sync_sections(
    tx: &impl GenericClient,
    sync: SectionSync,
) -> StoreResult<SectionSyncOutcome> {
    get_institution(tx, &sync.institution_id, true).await?;
    let existing: HashMap<String, Section> = tx
        .query(
            &format!("SELECT {SECTION_COLUMNS} FROM sections WHERE institution_id = $1"),
            &[&sync.institution_id],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|row| section_from_row(row).map(|s| (s.external_id.clone(), s)))
        .collect::<StoreResult<_>>()?;
    let (institution_id, now) = (sync.institution_id.clone(), sync.now);
    let plan = plan_section_sync(&existing, sync);
    if !plan.deactivate.is_empty() {
        tx.execute(
            "UPDATE sections SET active = FALSE, updated_ms = $2 WHERE section_id = ANY($1)",
            &[&plan.deactivate, &now.0],
        )
        .await
        .map_err(pg_error)?;
    }
    for (section_id, record) in &plan.update {
        tx.execute(
            "UPDATE sections SET name = $2, active = TRUE, updated_ms = $3 WHERE section_id = $1",
            &[section_id, &record.name, &now.0],
        )
        .await
        .map_err(pg_error)?;
    }
    if !plan.create.is_empty() {
        let ids: Vec<String> = plan.create.iter().map(|_| new_id("sec")).collect();
        let external_ids: Vec<&str> = plan.create.iter().map(|r| r.external_id.as_str()).collect();
        let names: Vec<&str> = plan.create.iter().map(|r| r.name.as_str()).collect();
        tx.execute(
            "INSERT INTO sections (section_id, institution_id, external_id, name, active, created_ms, updated_ms)
             SELECT id, $2, external_id, name, TRUE, $5, $5
             FROM UNNEST($1::text[], $3::text[], $4::text[]) AS r (id, external_id, name)",
            &[&ids, &institution_id, &external_ids, &names, &now.0],
        )
        .await
        .map_err(pg_error)?;
    }
    Ok(plan.outcome)
}

async fn get_section(
    c: &impl GenericClient,
    institution_id: &str,
    section_id: &str,
) -> StoreResult<Section> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {SECTION_COLUMNS} FROM sections WHERE institution_id = $1 AND section_id = $2"
            ),
            &[&institution_id, &section_id],
        )
        .await
        .map_err(pg_error)?
        .ok_or_else(|| StoreError::not_found(format!("section {section_id}")))?;
    section_from_row(&row)
}

/// Checks that every one of `section_ids` is the institution's (and active,
/// with `active_only`), locking them until the transaction ends.
async fn check_sections(
    c: &impl GenericClient,
    institution_id: &str,
    section_ids: &[String],
    active_only: bool,
) -> StoreResult<()> {
    let found: HashMap<String, bool> = c
        .query(
            "SELECT section_id, active FROM sections
             WHERE institution_id = $1 AND section_id = ANY($2) FOR SHARE",
            &[&institution_id, &section_ids],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|row| Ok((get(row, 0)?, get(row, 1)?)))
        .collect::<StoreResult<_>>()?;
    let missing: Vec<&str> = section_ids
        .iter()
        .filter(|id| !found.contains_key(*id))
        .map(String::as_str)
        .collect();
    let inactive: Vec<&str> = section_ids
        .iter()
        .filter(|id| found.get(*id) == Some(&false))
        .map(String::as_str)
        .collect();
    sections_checked(&missing, &inactive, active_only)
}

const MAPPING_COLUMNS: &str = "m.mapping_id, m.configuration_id, m.meeting_id, m.topic_prefix,
    COALESCE((SELECT array_agg(s.section_id ORDER BY s.section_id) FROM section_mapping_sections s
              WHERE s.mapping_id = m.mapping_id), '{}')";

fn mapping_from_row(row: &Row) -> StoreResult<SectionMapping> {
    let mapping_id: String = get(row, 0)?;
    let meeting_id: Option<i64> = get(row, 2)?;
    let topic_prefix: Option<String> = get(row, 3)?;
    let matcher = match (meeting_id, topic_prefix) {
        (Some(id), None) => SectionMatcher::MeetingId(id as u64),
        (None, Some(prefix)) => SectionMatcher::TopicPrefix(prefix),
        _ => {
            return Err(StoreError::Corrupt(format!(
                "section mapping {mapping_id} has no single matcher"
            )));
        }
    };
    Ok(SectionMapping {
        mapping_id,
        configuration_id: get(row, 1)?,
        matcher,
        section_ids: get(row, 4)?,
    })
}

async fn get_section_mapping(
    c: &impl GenericClient,
    institution_id: &str,
    mapping_id: &str,
) -> StoreResult<SectionMapping> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {MAPPING_COLUMNS} FROM section_mappings m
                 WHERE m.institution_id = $1 AND m.mapping_id = $2"
            ),
            &[&institution_id, &mapping_id],
        )
        .await
        .map_err(pg_error)?
        .ok_or_else(|| StoreError::not_found(format!("section mapping {mapping_id}")))?;
    mapping_from_row(&row)
}

async fn configuration_mappings(
    c: &impl GenericClient,
    institution_id: &str,
    configuration_id: &str,
) -> StoreResult<Vec<SectionMapping>> {
    c.query(
        &format!(
            "SELECT {MAPPING_COLUMNS} FROM section_mappings m
             WHERE m.institution_id = $1 AND m.configuration_id = $2"
        ),
        &[&institution_id, &configuration_id],
    )
    .await
    .map_err(pg_error)?
    .iter()
    .map(mapping_from_row)
    .collect()
}

/// Shares `media_id` with those of `section_ids` that are active; returns
/// how many shares it added (a share already there is kept as it is).
async fn add_active_shares(
    c: &impl GenericClient,
    institution_id: &str,
    media_id: &str,
    section_ids: &[String],
    now: Timestamp,
) -> StoreResult<u32> {
    let added = c
        .execute(
            "INSERT INTO media_sections (media_id, section_id, institution_id, shared_ms)
             SELECT $1, section_id, institution_id, $4 FROM sections
             WHERE institution_id = $2 AND section_id = ANY($3) AND active
             ON CONFLICT (media_id, section_id) DO NOTHING",
            &[&media_id, &institution_id, &section_ids, &now.0],
        )
        .await
        .map_err(pg_error)?;
    Ok(added as u32)
}

/// `complete_job`'s sharing step, in its transaction: shares the new media
/// with the active sections the mappings of the job's account's
/// configuration give its meeting; returns the media's sections.
pub(super) async fn share_on_completion(
    c: &impl GenericClient,
    job: &Job,
    media_id: &str,
    now: Timestamp,
) -> StoreResult<Vec<String>> {
    let Some(row) = c
        .query_opt(
            "SELECT configuration_id FROM zoom_accounts
             WHERE zoom_account_id = $1 AND institution_id = $2",
            &[&job.zoom_account_id, &job.institution_id],
        )
        .await
        .map_err(pg_error)?
    else {
        return Ok(Vec::new());
    };
    let configuration_id: String = get(&row, 0)?;
    let mappings = configuration_mappings(c, &job.institution_id, &configuration_id).await?;
    let sections = mapped_sections(&mappings, &configuration_id, job.meeting_id, &job.topic);
    if sections.is_empty() {
        return Ok(Vec::new());
    }
    add_active_shares(c, &job.institution_id, media_id, &sections, now).await?;
    media_section_ids(c, media_id).await
}

/// The sections a media is shared with, sorted.
pub(super) async fn media_section_ids(
    c: &impl GenericClient,
    media_id: &str,
) -> StoreResult<Vec<String>> {
    c.query(
        "SELECT section_id FROM media_sections WHERE media_id = $1 ORDER BY section_id",
        &[&media_id],
    )
    .await
    .map_err(pg_error)?
    .iter()
    .map(|row| get(row, 0))
    .collect()
}

async fn apply_section_mapping(
    tx: &impl GenericClient,
    institution_id: &str,
    mapping_id: &str,
    now: Timestamp,
) -> StoreResult<MappingApplied> {
    let mapping = get_section_mapping(tx, institution_id, mapping_id).await?;
    check_sections(tx, institution_id, &mapping.section_ids, false).await?;
    let media = tx
        .query(
            "SELECT m.media_id, m.meeting_id, m.title FROM media m
             JOIN jobs j ON j.job_id = m.job_id
             JOIN zoom_accounts a ON a.zoom_account_id = j.zoom_account_id
             WHERE m.institution_id = $1 AND a.configuration_id = $2
             ORDER BY m.media_id",
            &[&institution_id, &mapping.configuration_id],
        )
        .await
        .map_err(pg_error)?;
    let mut applied = MappingApplied::default();
    let mappings = std::slice::from_ref(&mapping);
    for row in &media {
        let media_id: String = get(row, 0)?;
        let meeting_id: i64 = get(row, 1)?;
        let title: String = get(row, 2)?;
        let sections = mapped_sections(
            mappings,
            &mapping.configuration_id,
            meeting_id as u64,
            &title,
        );
        if sections.is_empty() {
            continue;
        }
        applied.media_matched += 1;
        let added = add_active_shares(tx, institution_id, &media_id, &sections, now).await?;
        if added > 0 {
            applied.media_shared += 1;
            applied.shares_added += added;
        }
    }
    Ok(applied)
}

#[async_trait]
impl SectionStore for PostgresStore {
    async fn sync_sections(&self, sync: SectionSync) -> StoreResult<SectionSyncOutcome> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let outcome = sync_sections(&tx, sync).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(outcome)
    }

    async fn get_section(&self, institution_id: &str, section_id: &str) -> StoreResult<Section> {
        get_section(&self.client().await?, institution_id, section_id).await
    }

    async fn list_sections(
        &self,
        institution_id: &str,
        include_inactive: bool,
        page: &PageQuery,
    ) -> StoreResult<Page<Section>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {SECTION_COLUMNS} FROM sections
                     WHERE institution_id = $1 AND section_id > $2 AND ($3 OR active)
                     ORDER BY section_id LIMIT $4"
                ),
                &[
                    &institution_id,
                    &page_after(page),
                    &include_inactive,
                    &page_limit(page),
                ],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(section_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page_of(rows, page, |s| &s.section_id))
    }

    async fn create_section_mapping(
        &self,
        mapping: NewSectionMapping,
    ) -> StoreResult<SectionMapping> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        // Locked, so that a concurrent delete of the configuration waits.
        get_configuration(
            &tx,
            &mapping.institution_id,
            &mapping.configuration_id,
            true,
        )
        .await?;
        check_sections(&tx, &mapping.institution_id, &mapping.section_ids, true).await?;
        let mapping_id = new_id("smap");
        let (meeting_id, topic_prefix) = match &mapping.matcher {
            SectionMatcher::MeetingId(id) => (Some(*id as i64), None),
            SectionMatcher::TopicPrefix(prefix) => (None, Some(prefix.as_str())),
        };
        tx.execute(
            "INSERT INTO section_mappings (mapping_id, institution_id, configuration_id, meeting_id, topic_prefix, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &mapping_id,
                &mapping.institution_id,
                &mapping.configuration_id,
                &meeting_id,
                &topic_prefix,
                &mapping.now.0,
            ],
        )
        .await
        .map_err(pg_error)?;
        tx.execute(
            "INSERT INTO section_mapping_sections (mapping_id, section_id)
             SELECT $1, UNNEST($2::text[]) ON CONFLICT DO NOTHING",
            &[&mapping_id, &mapping.section_ids],
        )
        .await
        .map_err(pg_error)?;
        let created = get_section_mapping(&tx, &mapping.institution_id, &mapping_id).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(created)
    }

    async fn get_section_mapping(
        &self,
        institution_id: &str,
        mapping_id: &str,
    ) -> StoreResult<SectionMapping> {
        get_section_mapping(&self.client().await?, institution_id, mapping_id).await
    }

    async fn list_section_mappings(
        &self,
        institution_id: &str,
        configuration_id: Option<&str>,
        page: &PageQuery,
    ) -> StoreResult<Page<SectionMapping>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {MAPPING_COLUMNS} FROM section_mappings m
                     WHERE m.institution_id = $1 AND m.mapping_id > $2
                        AND ($3::text IS NULL OR m.configuration_id = $3)
                     ORDER BY m.mapping_id LIMIT $4"
                ),
                &[
                    &institution_id,
                    &page_after(page),
                    &configuration_id,
                    &page_limit(page),
                ],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(mapping_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page_of(rows, page, |m| &m.mapping_id))
    }

    async fn delete_section_mapping(
        &self,
        institution_id: &str,
        mapping_id: &str,
    ) -> StoreResult<SectionMapping> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let mapping = get_section_mapping(&tx, institution_id, mapping_id).await?;
        tx.execute(
            "DELETE FROM section_mappings WHERE mapping_id = $1",
            &[&mapping_id],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        Ok(mapping)
    }

    async fn apply_section_mapping(
        &self,
        institution_id: &str,
        mapping_id: &str,
        now: Timestamp,
    ) -> StoreResult<MappingApplied> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let applied = apply_section_mapping(&tx, institution_id, mapping_id, now).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(applied)
    }

    async fn share_media(&self, sharing: MediaSharing) -> StoreResult<Media> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let (institution_id, media_id) = (&sharing.institution_id, &sharing.media_id);
        get_media(&tx, institution_id, media_id, true).await?;
        check_sections(&tx, institution_id, &sharing.section_ids, true).await?;
        add_active_shares(
            &tx,
            institution_id,
            media_id,
            &sharing.section_ids,
            sharing.now,
        )
        .await?;
        let media = get_media(&tx, institution_id, media_id, false).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(media)
    }

    async fn unshare_media(&self, sharing: MediaSharing) -> StoreResult<Media> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let (institution_id, media_id) = (&sharing.institution_id, &sharing.media_id);
        get_media(&tx, institution_id, media_id, true).await?;
        check_sections(&tx, institution_id, &sharing.section_ids, false).await?;
        tx.execute(
            "DELETE FROM media_sections WHERE media_id = $1 AND section_id = ANY($2)",
            &[media_id, &sharing.section_ids],
        )
        .await
        .map_err(pg_error)?;
        let media = get_media(&tx, institution_id, media_id, false).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(media)
    }

    async fn list_section_media(
        &self,
        institution_id: &str,
        section_id: &str,
        owner_user_id: Option<&str>,
        page: &PageQuery,
    ) -> StoreResult<Page<Media>> {
        let client = self.client().await?;
        get_section(&client, institution_id, section_id).await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {MEDIA_COLUMNS} FROM media
                     WHERE media_id IN (SELECT media_id FROM media_sections
                            WHERE institution_id = $1 AND section_id = $2 AND media_id > $3)
                        AND ($4::text IS NULL OR owner_user_id = $4)
                     ORDER BY media_id LIMIT $5"
                ),
                &[
                    &institution_id,
                    &section_id,
                    &page_after(page),
                    &owner_user_id,
                    &page_limit(page),
                ],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(media_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let rows = with_sections(&client, rows).await?;
        Ok(page_of(rows, page, |m| &m.media_id))
    }
}
