//! InstitutionService: institutions and admin keys.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::ControlContext;
use super::convert;
use super::validate::{optional_text, page_query, page_response, required_id, required_text};
use crate::api;
use crate::api::institution_service_server::InstitutionService;
use crate::model::{NewAdminKey, Timestamp};
use crate::secrets::{ADMIN_KEY_PREFIX, generate_token};
use crate::store::Page;

pub struct InstitutionApi {
    context: Arc<ControlContext>,
}

impl InstitutionApi {
    pub(super) fn new(context: Arc<ControlContext>) -> Self {
        InstitutionApi { context }
    }
}

#[tonic::async_trait]
impl InstitutionService for InstitutionApi {
    async fn create_institution(
        &self,
        request: Request<api::CreateInstitutionRequest>,
    ) -> Result<Response<api::Institution>, Status> {
        self.context
            .auth
            .authenticate(&request)
            .await?
            .require_operator()?;
        let display_name = required_text("display_name", &request.get_ref().display_name, 200)?;
        let institution = self
            .context
            .store
            .create_institution(&display_name, Timestamp::now())
            .await?;
        tracing::info!(institution = %institution.institution_id, "institution created");
        Ok(Response::new(convert::institution(institution)))
    }

    async fn get_institution(
        &self,
        request: Request<api::GetInstitutionRequest>,
    ) -> Result<Response<api::Institution>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let institution_id = principal.scope(&request.get_ref().institution_id)?;
        let institution = self.context.store.get_institution(&institution_id).await?;
        Ok(Response::new(convert::institution(institution)))
    }

    async fn list_institutions(
        &self,
        request: Request<api::ListInstitutionsRequest>,
    ) -> Result<Response<api::ListInstitutionsResponse>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let page = page_query("page", request.get_ref().page.as_ref())?;
        let page = match &principal {
            super::Principal::Operator => self.context.store.list_institutions(&page).await?,
            super::Principal::Admin { institution_id, .. } => Page {
                items: vec![self.context.store.get_institution(institution_id).await?],
                next_after: None,
            },
        };
        Ok(Response::new(api::ListInstitutionsResponse {
            page: page_response(&page),
            institutions: page.items.into_iter().map(convert::institution).collect(),
        }))
    }

    async fn create_admin_key(
        &self,
        request: Request<api::CreateAdminKeyRequest>,
    ) -> Result<Response<api::CreateAdminKeyResponse>, Status> {
        self.context
            .auth
            .authenticate(&request)
            .await?
            .require_operator()?;
        let institution_id = required_id("institution_id", &request.get_ref().institution_id)?;
        let name = optional_text("name", &request.get_ref().name, 100)?;
        let (secret, hash) = generate_token(ADMIN_KEY_PREFIX);
        let key = self
            .context
            .store
            .create_admin_key(NewAdminKey {
                institution_id: institution_id.clone(),
                name: name.clone(),
                hash,
                now: Timestamp::now(),
            })
            .await?;
        tracing::info!(institution = %institution_id, key = %key.key_id, "admin key issued");
        Ok(Response::new(api::CreateAdminKeyResponse {
            key: Some(convert::admin_key(key)),
            secret: secret.expose().to_string(),
        }))
    }

    async fn list_admin_keys(
        &self,
        request: Request<api::ListAdminKeysRequest>,
    ) -> Result<Response<api::ListAdminKeysResponse>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let institution_id = principal.scope(&request.get_ref().institution_id)?;
        let page = page_query("page", request.get_ref().page.as_ref())?;
        let page = self
            .context
            .store
            .list_admin_keys(&institution_id, &page)
            .await?;
        Ok(Response::new(api::ListAdminKeysResponse {
            page: page_response(&page),
            keys: page.items.into_iter().map(convert::admin_key).collect(),
        }))
    }

    async fn revoke_admin_key(
        &self,
        request: Request<api::RevokeAdminKeyRequest>,
    ) -> Result<Response<api::AdminKey>, Status> {
        self.context
            .auth
            .authenticate(&request)
            .await?
            .require_operator()?;
        let key_id = required_id("key_id", &request.get_ref().key_id)?;
        let key = self
            .context
            .store
            .revoke_admin_key(&key_id, Timestamp::now())
            .await?;
        self.context.auth.forget_key(&key.key_id);
        tracing::info!(key = %key.key_id, "admin key revoked");
        Ok(Response::new(convert::admin_key(key)))
    }
}
