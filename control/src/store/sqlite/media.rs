//! The SQLite backend of `MediaStore`: media records, their owners and
//! (read with them) the sections they are shared with.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::engine::sql_error;
use super::{SqliteStore, page_of};
use crate::error::StoreError;
use crate::model::*;
use crate::store::{MediaStore, Page, PageQuery, StoreResult};

pub(super) const MEDIA_COLUMNS: &str =
    "media_id, institution_id, owner_user_id, title, duration_ms, size_bytes, checksum,
    object_key, meeting_id, meeting_uuid, recorded_ms, job_id, created_ms, content_type";

pub(super) fn media_from_row(row: &Row<'_>) -> rusqlite::Result<Media> {
    Ok(Media {
        media_id: row.get(0)?,
        institution_id: row.get(1)?,
        owner_user_id: row.get(2)?,
        title: row.get(3)?,
        duration_ms: row.get::<_, i64>(4)? as u64,
        size_bytes: row.get::<_, i64>(5)? as u64,
        checksum: row.get(6)?,
        object_key: row.get(7)?,
        meeting_id: row.get::<_, i64>(8)? as u64,
        meeting_uuid: row.get(9)?,
        recorded_at: row.get::<_, Option<i64>>(10)?.map(Timestamp),
        job_id: row.get(11)?,
        created_at: Timestamp(row.get(12)?),
        content_type: row.get(13)?,
        // Filled by the callers that return a media (`with_sections`).
        section_ids: Vec::new(),
    })
}

pub(super) fn get_media(
    conn: &Connection,
    institution_id: &str,
    media_id: &str,
) -> StoreResult<Media> {
    conn.prepare_cached(&format!(
        "SELECT {MEDIA_COLUMNS} FROM media WHERE institution_id = ?1 AND media_id = ?2"
    ))
    .map_err(sql_error)?
    .query_row(params![institution_id, media_id], media_from_row)
    .optional()
    .map_err(sql_error)?
    .ok_or_else(|| StoreError::not_found(format!("media {media_id}")))
    .and_then(|media| with_sections(conn, media))
}

/// `media` with the sections it is shared with.
pub(super) fn with_sections(conn: &Connection, mut media: Media) -> StoreResult<Media> {
    media.section_ids = super::sections::media_section_ids(conn, &media.media_id)?;
    Ok(media)
}

pub(super) fn list_media(
    conn: &Connection,
    institution_id: &str,
    owner_user_id: Option<&str>,
    page: &PageQuery,
) -> StoreResult<Page<Media>> {
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT {MEDIA_COLUMNS} FROM media
             WHERE institution_id = ?1 AND media_id > ?2 AND (?3 IS NULL OR owner_user_id = ?3)
             ORDER BY media_id LIMIT ?4"
        ))
        .map_err(sql_error)?;
    let rows = statement
        .query_map(
            params![
                institution_id,
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

pub(super) fn transfer_media_ownership(
    conn: &Connection,
    institution_id: &str,
    media_id: &str,
    new_owner_user_id: &str,
) -> StoreResult<Media> {
    get_media(conn, institution_id, media_id)?;
    super::directory::get_user(conn, institution_id, new_owner_user_id)?;
    conn.execute(
        "UPDATE media SET owner_user_id = ?3 WHERE institution_id = ?1 AND media_id = ?2",
        params![institution_id, media_id, new_owner_user_id],
    )
    .map_err(sql_error)?;
    get_media(conn, institution_id, media_id)
}

#[async_trait]
impl MediaStore for SqliteStore {
    async fn get_media(&self, institution_id: &str, media_id: &str) -> StoreResult<Media> {
        self.engine
            .read_point(|c| get_media(c, institution_id, media_id))
    }

    async fn list_media(
        &self,
        institution_id: &str,
        owner_user_id: Option<&str>,
        page: &PageQuery,
    ) -> StoreResult<Page<Media>> {
        let (institution_id, owner, page) = (
            institution_id.to_string(),
            owner_user_id.map(str::to_string),
            page.clone(),
        );
        self.engine
            .read(move |c| list_media(c, &institution_id, owner.as_deref(), &page))
            .await
    }

    async fn transfer_media_ownership(&self, transfer: OwnershipTransfer) -> StoreResult<Media> {
        self.engine
            .write(move |c| {
                transfer_media_ownership(
                    c,
                    &transfer.institution_id,
                    &transfer.media_id,
                    &transfer.new_owner_user_id,
                )
            })
            .await
    }
}
