//! MediaService: the institution's library (a section's media through the
//! section filter; sharing itself is SectionService's).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::ControlContext;
use super::convert;
use super::validate::{page_query, page_response, required_id};
use crate::api;
use crate::api::media_service_server::MediaService;
use crate::model::OwnershipTransfer;

pub struct MediaApi {
    context: Arc<ControlContext>,
}

impl MediaApi {
    pub(super) fn new(context: Arc<ControlContext>) -> Self {
        MediaApi { context }
    }
}

#[tonic::async_trait]
impl MediaService for MediaApi {
    async fn list_media(
        &self,
        request: Request<api::ListMediaRequest>,
    ) -> Result<Response<api::ListMediaResponse>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let page = page_query("page", body.page.as_ref())?;
        let owner = Some(body.owner_user_id.trim()).filter(|s| !s.is_empty());
        let section = Some(body.section_id.trim()).filter(|s| !s.is_empty());
        let page = match section {
            Some(section_id) => {
                self.context
                    .store
                    .list_section_media(&institution_id, section_id, owner, &page)
                    .await?
            }
            None => {
                self.context
                    .store
                    .list_media(&institution_id, owner, &page)
                    .await?
            }
        };
        Ok(Response::new(api::ListMediaResponse {
            page: page_response(&page),
            media: page.items.into_iter().map(convert::media).collect(),
        }))
    }

    async fn get_media(
        &self,
        request: Request<api::GetMediaRequest>,
    ) -> Result<Response<api::Media>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let media_id = required_id("media_id", &body.media_id)?;
        let media = self
            .context
            .store
            .get_media(&institution_id, &media_id)
            .await?;
        let companions = self.context.store.list_companions(&media.job_id).await?;
        let mut media = convert::media(media);
        media.companions = convert::companion_files(companions);
        Ok(Response::new(media))
    }

    async fn transfer_media_ownership(
        &self,
        request: Request<api::TransferMediaOwnershipRequest>,
    ) -> Result<Response<api::Media>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let media_id = required_id("media_id", &body.media_id)?;
        let new_owner = required_id("new_owner_user_id", &body.new_owner_user_id)?;
        let media = self
            .context
            .store
            .transfer_media_ownership(OwnershipTransfer {
                institution_id: institution_id.clone(),
                media_id: media_id.clone(),
                new_owner_user_id: new_owner.clone(),
            })
            .await?;
        tracing::info!(media = %media_id, owner = %new_owner, "media ownership transferred");
        Ok(Response::new(convert::media(media)))
    }
}
