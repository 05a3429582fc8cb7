//! The SQLite backend of `SectionStore`: course sections and their syncs,
//! the configurations' mapping rules, and the media shared with sections —
//! including the step of `complete_job` that shares a new media by the
//! mappings (`share_on_completion`), inside the completion's transaction.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::configurations::get_configuration;
use super::engine::sql_error;
use super::media::{MEDIA_COLUMNS, get_media, media_from_row, with_sections};
use super::tenants::get_institution;
use super::{SqliteStore, page_of};
use crate::error::StoreError;
use crate::model::*;
use crate::rules::mapped_sections;
use crate::store::section_plan::{plan_section_sync, sections_checked};
use crate::store::{Page, PageQuery, SectionStore, StoreResult, new_id};

const SECTION_COLUMNS: &str =
    "section_id, institution_id, external_id, name, active, created_ms, updated_ms";

fn section_from_row(row: &Row<'_>) -> rusqlite::Result<Section> {
    Ok(Section {
        section_id: row.get(0)?,
        institution_id: row.get(1)?,
        external_id: row.get(2)?,
        name: row.get(3)?,
        active: row.get(4)?,
        created_at: Timestamp(row.get(5)?),
        updated_at: Timestamp(row.get(6)?),
    })
}

fn sync_sections(conn: &Connection, sync: SectionSync) -> StoreResult<SectionSyncOutcome> {
    get_institution(conn, &sync.institution_id)?;
    let existing: HashMap<String, Section> = conn
        .prepare_cached(&format!(
            "SELECT {SECTION_COLUMNS} FROM sections WHERE institution_id = ?1"
        ))
        .map_err(sql_error)?
        .query_map(params![sync.institution_id], section_from_row)
        .map_err(sql_error)?
        .map(|s| s.map(|s| (s.external_id.clone(), s)))
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_error)?;
    let (institution_id, now) = (sync.institution_id.clone(), sync.now);
    let plan = plan_section_sync(&existing, sync);
    let mut deactivate = conn
        .prepare_cached("UPDATE sections SET active = 0, updated_ms = ?2 WHERE section_id = ?1")
        .map_err(sql_error)?;
    for section_id in &plan.deactivate {
        deactivate
            .execute(params![section_id, now.0])
            .map_err(sql_error)?;
    }
    let mut update = conn
        .prepare_cached(
            "UPDATE sections SET name = ?2, active = 1, updated_ms = ?3 WHERE section_id = ?1",
        )
        .map_err(sql_error)?;
    for (section_id, record) in &plan.update {
        update
            .execute(params![section_id, record.name, now.0])
            .map_err(sql_error)?;
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO sections (section_id, institution_id, external_id, name, active, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)",
        )
        .map_err(sql_error)?;
    for record in &plan.create {
        insert
            .execute(params![
                new_id("sec"),
                institution_id,
                record.external_id,
                record.name,
                now.0
            ])
            .map_err(sql_error)?;
    }
    Ok(plan.outcome)
}

fn get_section(conn: &Connection, institution_id: &str, section_id: &str) -> StoreResult<Section> {
    conn.prepare_cached(&format!(
        "SELECT {SECTION_COLUMNS} FROM sections WHERE institution_id = ?1 AND section_id = ?2"
    ))
    .map_err(sql_error)?
    .query_row(params![institution_id, section_id], section_from_row)
    .optional()
    .map_err(sql_error)?
    .ok_or_else(|| StoreError::not_found(format!("section {section_id}")))
}

fn list_sections(
    conn: &Connection,
    institution_id: &str,
    include_inactive: bool,
    page: &PageQuery,
) -> StoreResult<Page<Section>> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {SECTION_COLUMNS} FROM sections
             WHERE institution_id = ?1 AND section_id > ?2 AND (?3 OR active = 1)
             ORDER BY section_id LIMIT ?4"
        ))
        .map_err(sql_error)?
        .query_map(
            params![
                institution_id,
                page.after.as_deref().unwrap_or(""),
                include_inactive,
                page.limit() + 1
            ],
            section_from_row,
        )
        .map_err(sql_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_error)?;
    Ok(page_of(rows, page, |s| &s.section_id))
}

/// The sections of `section_ids` that are the institution's, or NotFound
/// naming every one that is not; with `active_only`, FailedPrecondition
/// naming every inactive one.
fn check_sections(
    conn: &Connection,
    institution_id: &str,
    section_ids: &[String],
    active_only: bool,
) -> StoreResult<()> {
    let mut missing = Vec::new();
    let mut inactive = Vec::new();
    for section_id in section_ids {
        match get_section(conn, institution_id, section_id) {
            Ok(section) if !section.active => inactive.push(section_id.as_str()),
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => missing.push(section_id.as_str()),
            Err(e) => return Err(e),
        }
    }
    sections_checked(&missing, &inactive, active_only)
}

const MAPPING_COLUMNS: &str =
    "mapping_id, configuration_id, meeting_id, topic_prefix, institution_id";

/// A mapping row and its sections (read with a second statement).
fn mapping_from_row(conn: &Connection, row: &Row<'_>) -> StoreResult<SectionMapping> {
    let mapping_id: String = row.get(0).map_err(sql_error)?;
    let meeting_id: Option<i64> = row.get(2).map_err(sql_error)?;
    let topic_prefix: Option<String> = row.get(3).map_err(sql_error)?;
    let matcher = match (meeting_id, topic_prefix) {
        (Some(id), None) => SectionMatcher::MeetingId(id as u64),
        (None, Some(prefix)) => SectionMatcher::TopicPrefix(prefix),
        _ => {
            return Err(StoreError::Corrupt(format!(
                "section mapping {mapping_id} has no single matcher"
            )));
        }
    };
    let section_ids = conn
        .prepare_cached(
            "SELECT section_id FROM section_mapping_sections WHERE mapping_id = ?1 ORDER BY section_id",
        )
        .map_err(sql_error)?
        .query_map(params![mapping_id], |row| row.get(0))
        .map_err(sql_error)?
        .collect::<rusqlite::Result<Vec<String>>>()
        .map_err(sql_error)?;
    Ok(SectionMapping {
        mapping_id,
        configuration_id: row.get(1).map_err(sql_error)?,
        matcher,
        section_ids,
    })
}

fn query_mappings(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<SectionMapping>> {
    let mut statement = conn.prepare_cached(sql).map_err(sql_error)?;
    let mut rows = statement.query(params).map_err(sql_error)?;
    let mut mappings = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        mappings.push(mapping_from_row(conn, row)?);
    }
    Ok(mappings)
}

fn get_section_mapping(
    conn: &Connection,
    institution_id: &str,
    mapping_id: &str,
) -> StoreResult<SectionMapping> {
    query_mappings(
        conn,
        &format!(
            "SELECT {MAPPING_COLUMNS} FROM section_mappings WHERE institution_id = ?1 AND mapping_id = ?2"
        ),
        params![institution_id, mapping_id],
    )?
    .pop()
    .ok_or_else(|| StoreError::not_found(format!("section mapping {mapping_id}")))
}

fn list_section_mappings(
    conn: &Connection,
    institution_id: &str,
    configuration_id: Option<&str>,
    page: &PageQuery,
) -> StoreResult<Page<SectionMapping>> {
    let rows = query_mappings(
        conn,
        &format!(
            "SELECT {MAPPING_COLUMNS} FROM section_mappings
             WHERE institution_id = ?1 AND mapping_id > ?2 AND (?3 IS NULL OR configuration_id = ?3)
             ORDER BY mapping_id LIMIT ?4"
        ),
        params![
            institution_id,
            page.after.as_deref().unwrap_or(""),
            configuration_id,
            page.limit() + 1
        ],
    )?;
    Ok(page_of(rows, page, |m| &m.mapping_id))
}

fn create_section_mapping(
    conn: &Connection,
    mapping: NewSectionMapping,
) -> StoreResult<SectionMapping> {
    get_configuration(conn, &mapping.institution_id, &mapping.configuration_id)?;
    check_sections(conn, &mapping.institution_id, &mapping.section_ids, true)?;
    let mapping_id = new_id("smap");
    let (meeting_id, topic_prefix) = match &mapping.matcher {
        SectionMatcher::MeetingId(id) => (Some(*id as i64), None),
        SectionMatcher::TopicPrefix(prefix) => (None, Some(prefix.as_str())),
    };
    conn.execute(
        "INSERT INTO section_mappings (mapping_id, institution_id, configuration_id, meeting_id, topic_prefix, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            mapping_id,
            mapping.institution_id,
            mapping.configuration_id,
            meeting_id,
            topic_prefix,
            mapping.now.0
        ],
    )
    .map_err(sql_error)?;
    let mut insert = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO section_mapping_sections (mapping_id, section_id) VALUES (?1, ?2)",
        )
        .map_err(sql_error)?;
    for section_id in &mapping.section_ids {
        insert
            .execute(params![mapping_id, section_id])
            .map_err(sql_error)?;
    }
    get_section_mapping(conn, &mapping.institution_id, &mapping_id)
}

fn delete_section_mapping(
    conn: &Connection,
    institution_id: &str,
    mapping_id: &str,
) -> StoreResult<SectionMapping> {
    let mapping = get_section_mapping(conn, institution_id, mapping_id)?;
    conn.execute(
        "DELETE FROM section_mappings WHERE mapping_id = ?1",
        params![mapping_id],
    )
    .map_err(sql_error)?;
    Ok(mapping)
}

/// Shares `media_id` with those of `section_ids` that are active; returns
/// how many shares it added (a share already there is kept as it is).
fn add_active_shares(
    conn: &Connection,
    institution_id: &str,
    media_id: &str,
    section_ids: &[String],
    now: Timestamp,
) -> StoreResult<u32> {
    let mut insert = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO media_sections (media_id, section_id, institution_id, shared_ms)
             SELECT ?1, section_id, institution_id, ?4 FROM sections
             WHERE institution_id = ?2 AND section_id = ?3 AND active = 1",
        )
        .map_err(sql_error)?;
    let mut added = 0;
    for section_id in section_ids {
        added += insert
            .execute(params![media_id, institution_id, section_id, now.0])
            .map_err(sql_error)? as u32;
    }
    Ok(added)
}

/// The mappings of `configuration_id`.
fn configuration_mappings(
    conn: &Connection,
    institution_id: &str,
    configuration_id: &str,
) -> StoreResult<Vec<SectionMapping>> {
    query_mappings(
        conn,
        &format!(
            "SELECT {MAPPING_COLUMNS} FROM section_mappings
             WHERE institution_id = ?1 AND configuration_id = ?2 ORDER BY mapping_id"
        ),
        params![institution_id, configuration_id],
    )
}

/// `complete_job`'s sharing step, in its transaction: shares the new media
/// with the active sections the mappings of the job's account's
/// configuration give its meeting; returns the media's sections.
pub(super) fn share_on_completion(
    conn: &Connection,
    job: &Job,
    media_id: &str,
    now: Timestamp,
) -> StoreResult<Vec<String>> {
    let configuration_id: Option<String> = conn
        .prepare_cached(
            "SELECT configuration_id FROM zoom_accounts WHERE zoom_account_id = ?1 AND institution_id = ?2",
        )
        .map_err(sql_error)?
        .query_row(params![job.zoom_account_id, job.institution_id], |row| {
            row.get(0)
        })
        .optional()
        .map_err(sql_error)?;
    let Some(configuration_id) = configuration_id else {
        return Ok(Vec::new());
    };
    let mappings = configuration_mappings(conn, &job.institution_id, &configuration_id)?;
    let sections = mapped_sections(&mappings, &configuration_id, job.meeting_id, &job.topic);
    if sections.is_empty() {
        return Ok(Vec::new());
    }
    add_active_shares(conn, &job.institution_id, media_id, &sections, now)?;
    media_section_ids(conn, media_id)
}

fn apply_section_mapping(
    conn: &Connection,
    institution_id: &str,
    mapping_id: &str,
    now: Timestamp,
) -> StoreResult<MappingApplied> {
    let mapping = get_section_mapping(conn, institution_id, mapping_id)?;
    let media: Vec<(String, u64, String)> = conn
        .prepare_cached(
            "SELECT m.media_id, m.meeting_id, m.title FROM media m
             JOIN jobs j ON j.job_id = m.job_id
             JOIN zoom_accounts a ON a.zoom_account_id = j.zoom_account_id
             WHERE m.institution_id = ?1 AND a.configuration_id = ?2
             ORDER BY m.media_id",
        )
        .map_err(sql_error)?
        .query_map(params![institution_id, mapping.configuration_id], |row| {
            Ok((row.get(0)?, row.get::<_, i64>(1)? as u64, row.get(2)?))
        })
        .map_err(sql_error)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_error)?;
    let mut applied = MappingApplied::default();
    let mappings = std::slice::from_ref(&mapping);
    for (media_id, meeting_id, title) in media {
        let sections = mapped_sections(mappings, &mapping.configuration_id, meeting_id, &title);
        if sections.is_empty() {
            continue;
        }
        applied.media_matched += 1;
        let added = add_active_shares(conn, institution_id, &media_id, &sections, now)?;
        if added > 0 {
            applied.media_shared += 1;
            applied.shares_added += added;
        }
    }
    Ok(applied)
}

/// The sections a media is shared with, sorted.
pub(super) fn media_section_ids(conn: &Connection, media_id: &str) -> StoreResult<Vec<String>> {
    conn.prepare_cached(
        "SELECT section_id FROM media_sections WHERE media_id = ?1 ORDER BY section_id",
    )
    .map_err(sql_error)?
    .query_map(params![media_id], |row| row.get(0))
    .map_err(sql_error)?
    .collect::<rusqlite::Result<Vec<String>>>()
    .map_err(sql_error)
}

fn share_media(conn: &Connection, sharing: &MediaSharing) -> StoreResult<Media> {
    get_media(conn, &sharing.institution_id, &sharing.media_id)?;
    check_sections(conn, &sharing.institution_id, &sharing.section_ids, true)?;
    add_active_shares(
        conn,
        &sharing.institution_id,
        &sharing.media_id,
        &sharing.section_ids,
        sharing.now,
    )?;
    get_media(conn, &sharing.institution_id, &sharing.media_id)
}

fn unshare_media(conn: &Connection, sharing: &MediaSharing) -> StoreResult<Media> {
    get_media(conn, &sharing.institution_id, &sharing.media_id)?;
    check_sections(conn, &sharing.institution_id, &sharing.section_ids, false)?;
    let mut delete = conn
        .prepare_cached("DELETE FROM media_sections WHERE media_id = ?1 AND section_id = ?2")
        .map_err(sql_error)?;
    for section_id in &sharing.section_ids {
        delete
            .execute(params![sharing.media_id, section_id])
            .map_err(sql_error)?;
    }
    get_media(conn, &sharing.institution_id, &sharing.media_id)
}

fn list_section_media(
    conn: &Connection,
    institution_id: &str,
    section_id: &str,
    owner_user_id: Option<&str>,
    page: &PageQuery,
) -> StoreResult<Page<Media>> {
    get_section(conn, institution_id, section_id)?;
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {MEDIA_COLUMNS} FROM media
             WHERE media_id IN (SELECT media_id FROM media_sections
                    WHERE institution_id = ?1 AND section_id = ?2 AND media_id > ?3)
                AND (?4 IS NULL OR owner_user_id = ?4)
             ORDER BY media_id LIMIT ?5"
        ))
        .map_err(sql_error)?
        .query_map(
            params![
                institution_id,
                section_id,
                page.after.as_deref().unwrap_or(""),
                owner_user_id,
                page.limit() + 1
            ],
            media_from_row,
        )
        .map_err(sql_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_error)?
        .into_iter()
        .map(|media| with_sections(conn, media))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(page_of(rows, page, |m| &m.media_id))
}

#[async_trait]
impl SectionStore for SqliteStore {
    async fn sync_sections(&self, sync: SectionSync) -> StoreResult<SectionSyncOutcome> {
        self.engine.write(move |c| sync_sections(c, sync)).await
    }

    async fn get_section(&self, institution_id: &str, section_id: &str) -> StoreResult<Section> {
        self.engine
            .read_point(|c| get_section(c, institution_id, section_id))
    }

    async fn list_sections(
        &self,
        institution_id: &str,
        include_inactive: bool,
        page: &PageQuery,
    ) -> StoreResult<Page<Section>> {
        let (institution_id, page) = (institution_id.to_string(), page.clone());
        self.engine
            .read(move |c| list_sections(c, &institution_id, include_inactive, &page))
            .await
    }

    async fn create_section_mapping(
        &self,
        mapping: NewSectionMapping,
    ) -> StoreResult<SectionMapping> {
        self.engine
            .write(move |c| create_section_mapping(c, mapping))
            .await
    }

    async fn get_section_mapping(
        &self,
        institution_id: &str,
        mapping_id: &str,
    ) -> StoreResult<SectionMapping> {
        self.engine
            .read_point(|c| get_section_mapping(c, institution_id, mapping_id))
    }

    async fn list_section_mappings(
        &self,
        institution_id: &str,
        configuration_id: Option<&str>,
        page: &PageQuery,
    ) -> StoreResult<Page<SectionMapping>> {
        let (institution_id, configuration_id, page) = (
            institution_id.to_string(),
            configuration_id.map(str::to_string),
            page.clone(),
        );
        self.engine
            .read(move |c| {
                list_section_mappings(c, &institution_id, configuration_id.as_deref(), &page)
            })
            .await
    }

    async fn delete_section_mapping(
        &self,
        institution_id: &str,
        mapping_id: &str,
    ) -> StoreResult<SectionMapping> {
        let (institution_id, mapping_id) = (institution_id.to_string(), mapping_id.to_string());
        self.engine
            .write(move |c| delete_section_mapping(c, &institution_id, &mapping_id))
            .await
    }

    async fn apply_section_mapping(
        &self,
        institution_id: &str,
        mapping_id: &str,
        now: Timestamp,
    ) -> StoreResult<MappingApplied> {
        let (institution_id, mapping_id) = (institution_id.to_string(), mapping_id.to_string());
        self.engine
            .write(move |c| apply_section_mapping(c, &institution_id, &mapping_id, now))
            .await
    }

    async fn share_media(&self, sharing: MediaSharing) -> StoreResult<Media> {
        self.engine.write(move |c| share_media(c, &sharing)).await
    }

    async fn unshare_media(&self, sharing: MediaSharing) -> StoreResult<Media> {
        self.engine.write(move |c| unshare_media(c, &sharing)).await
    }

    async fn list_section_media(
        &self,
        institution_id: &str,
        section_id: &str,
        owner_user_id: Option<&str>,
        page: &PageQuery,
    ) -> StoreResult<Page<Media>> {
        let (institution_id, section_id, owner, page) = (
            institution_id.to_string(),
            section_id.to_string(),
            owner_user_id.map(str::to_string),
            page.clone(),
        );
        self.engine
            .read(move |c| {
                list_section_media(c, &institution_id, &section_id, owner.as_deref(), &page)
            })
            .await
    }
}
