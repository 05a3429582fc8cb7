//! The PostgreSQL backend of `MediaStore`: media records, their owners and
//! (read with them) the sections they are shared with.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::directory::get_user;
use super::{
    PostgresStore, get, get_opt_time, get_time, get_u64, page_after, page_limit, page_of, pg_error,
};
use crate::error::StoreError;
use crate::model::*;
use crate::store::{MediaStore, Page, PageQuery, StoreResult};

pub(super) const MEDIA_COLUMNS: &str =
    "media_id, institution_id, owner_user_id, title, duration_ms, size_bytes, checksum,
    object_key, meeting_id, meeting_uuid, recorded_ms, job_id, created_ms, content_type";

pub(super) fn media_from_row(row: &Row) -> StoreResult<Media> {
    Ok(Media {
        media_id: get(row, 0)?,
        institution_id: get(row, 1)?,
        owner_user_id: get(row, 2)?,
        title: get(row, 3)?,
        duration_ms: get_u64(row, 4)?,
        size_bytes: get_u64(row, 5)?,
        checksum: get(row, 6)?,
        object_key: get(row, 7)?,
        meeting_id: get_u64(row, 8)?,
        meeting_uuid: get(row, 9)?,
        recorded_at: get_opt_time(row, 10)?,
        job_id: get(row, 11)?,
        created_at: get_time(row, 12)?,
        content_type: get(row, 13)?,
        // Filled by the callers that return a media (`with_sections`).
        section_ids: Vec::new(),
    })
}

/// `media` with the sections each is shared with, read in one query.
pub(super) async fn with_sections(
    c: &impl GenericClient,
    mut media: Vec<Media>,
) -> StoreResult<Vec<Media>> {
    if media.is_empty() {
        return Ok(media);
    }
    let ids: Vec<&str> = media.iter().map(|m| m.media_id.as_str()).collect();
    let rows = c
        .query(
            "SELECT media_id, section_id FROM media_sections WHERE media_id = ANY($1)
             ORDER BY media_id, section_id",
            &[&ids],
        )
        .await
        .map_err(pg_error)?;
    let mut shares: HashMap<String, Vec<String>> = HashMap::new();
    for row in &rows {
        shares.entry(get(row, 0)?).or_default().push(get(row, 1)?);
    }
    for item in &mut media {
        item.section_ids = shares.remove(&item.media_id).unwrap_or_default();
    }
    Ok(media)
}

pub(super) async fn get_media(
    c: &impl GenericClient,
    institution_id: &str,
    media_id: &str,
    lock: bool,
) -> StoreResult<Media> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row = c
        .query_opt(
            &format!(
                "SELECT {MEDIA_COLUMNS} FROM media WHERE institution_id = $1 AND media_id = $2{lock}"
            ),
            &[&institution_id, &media_id],
        )
        .await
        .map_err(pg_error)?
        .ok_or_else(|| StoreError::not_found(format!("media {media_id}")))?;
    let media = media_from_row(&row)?;
    let mut media = with_sections(c, vec![media]).await?;
    media
        .pop()
        .ok_or_else(|| StoreError::Corrupt(format!("media {media_id} vanished")))
}

#[async_trait]
impl MediaStore for PostgresStore {
    async fn get_media(&self, institution_id: &str, media_id: &str) -> StoreResult<Media> {
        get_media(&self.client().await?, institution_id, media_id, false).await
    }

    async fn list_media(
        &self,
        institution_id: &str,
        owner_user_id: Option<&str>,
        page: &PageQuery,
    ) -> StoreResult<Page<Media>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {MEDIA_COLUMNS} FROM media
                     WHERE institution_id = $1 AND media_id > $2
                        AND ($3::text IS NULL OR owner_user_id = $3)
                     ORDER BY media_id LIMIT $4"
                ),
                &[
                    &institution_id,
                    &page_after(page),
                    &owner_user_id,
                    &page_limit(page),
                ],
            )
            .await
            .map_err(pg_error)?;
        let rows = rows
            .iter()
            .map(media_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let rows = with_sections(&client, rows).await?;
        Ok(page_of(rows, page, |m| &m.media_id))
    }

    async fn transfer_media_ownership(&self, transfer: OwnershipTransfer) -> StoreResult<Media> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        get_media(&tx, &transfer.institution_id, &transfer.media_id, true).await?;
        get_user(&tx, &transfer.institution_id, &transfer.new_owner_user_id).await?;
        tx.execute(
            "UPDATE media SET owner_user_id = $3 WHERE institution_id = $1 AND media_id = $2",
            &[
                &transfer.institution_id,
                &transfer.media_id,
                &transfer.new_owner_user_id,
            ],
        )
        .await
        .map_err(pg_error)?;
        let media = get_media(&tx, &transfer.institution_id, &transfer.media_id, false).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(media)
    }
}
