//! UserDirectoryService: directory syncs and email lookups.

use std::sync::Arc;

use tonic::{Request, Response, Status, Streaming};

use super::ControlContext;
use super::convert;
use super::sync_stream::{SyncRecords, read_header, read_records};
use super::validate::{page_query, page_response, required_id};
use crate::api;
use crate::api::user_directory_service_server::UserDirectoryService;
use crate::email;
use crate::model::{RejectedRecord, Timestamp, UserRecord, UserSync};

/// The most emails one `LookupUsersByEmail` call may ask about.
const MAX_EMAILS_PER_LOOKUP: usize = 1000;

pub struct UserDirectoryApi {
    context: Arc<ControlContext>,
}

impl UserDirectoryApi {
    pub(super) fn new(context: Arc<ControlContext>) -> Self {
        UserDirectoryApi { context }
    }
}

/// Checks one record's fields; the error names the field and says why.
fn validate_record(record_index: u32, record: &api::UserRecord) -> Result<UserRecord, String> {
    let external_id = record.external_id.trim();
    if external_id.is_empty() {
        return Err("external_id: required".into());
    }
    if external_id.chars().count() > 200 || external_id.chars().any(char::is_control) {
        return Err(
            "external_id: longer than 200 characters or contains control characters".into(),
        );
    }
    let primary = email::normalize(&record.email);
    email::validate(&primary).map_err(|why| format!("email: {why}"))?;
    let alternate = match email::normalize(&record.alternate_zoom_email) {
        alternate if alternate.is_empty() => None,
        alternate => {
            email::validate(&alternate).map_err(|why| format!("alternate_zoom_email: {why}"))?;
            // The same address twice is one address, not a conflict.
            (alternate != primary).then_some(alternate)
        }
    };
    let display_name = record.display_name.trim();
    if display_name.chars().count() > 200 || display_name.chars().any(char::is_control) {
        return Err(
            "display_name: longer than 200 characters or contains control characters".into(),
        );
    }
    let role = convert::role_from_api(record.role)?;
    let ingest_choice = convert::ingest_choice_from_api(record.ingest_choice)?;
    Ok(UserRecord {
        record_index,
        external_id: external_id.to_string(),
        email: primary,
        alternate_zoom_email: alternate,
        display_name: display_name.to_string(),
        role,
        ingest_choice,
    })
}

impl UserDirectoryApi {
    /// `SyncUsers` on any stream of messages: the gRPC handler's, or an
    /// in-process caller's (the console's CSV upload), with the same
    /// authentication, scoping, validation and atomic apply.
    pub async fn sync_users_from<S>(
        &self,
        request: Request<S>,
    ) -> Result<Response<api::SyncUsersSummary>, Status>
    where
        S: futures::Stream<Item = Result<api::SyncUsersRequest, Status>> + Unpin + Send,
    {
        let principal = self.context.auth.authenticate(&request).await?;
        let mut stream = request.into_inner();
        let header = read_header(&mut stream).await?;
        let institution_id = principal.scope(&header.institution_id)?;
        let mode = convert::sync_mode_from_api(header.mode)?;
        let SyncRecords {
            received,
            valid: records,
            rejected,
        } = read_records(
            &mut stream,
            self.context.max_sync_records,
            mode,
            |index, record: api::UserRecord| {
                validate_record(index, &record).map_err(|reason| RejectedRecord {
                    record_index: index,
                    external_id: record.external_id,
                    email: record.email,
                    reason,
                })
            },
        )
        .await?;
        let outcome = self
            .context
            .store
            .sync_users(UserSync {
                institution_id: institution_id.clone(),
                mode,
                records,
                rejected_upfront: rejected,
                now: Timestamp::now(),
            })
            .await?;
        let applied = outcome.created + outcome.updated + outcome.unchanged;
        tracing::info!(institution = %institution_id, received, applied, created = outcome.created,
            updated = outcome.updated, deactivated = outcome.deactivated,
            rejected = outcome.rejected.len(), "user directory synced");
        Ok(Response::new(api::SyncUsersSummary {
            mode: convert::sync_mode_to_api(mode) as i32,
            received,
            applied,
            created: outcome.created,
            updated: outcome.updated,
            unchanged: outcome.unchanged,
            deactivated: outcome.deactivated,
            rejected: outcome
                .rejected
                .into_iter()
                .map(|r| api::RejectedUserRecord {
                    record_index: r.record_index,
                    external_id: r.external_id,
                    email: r.email,
                    reason: r.reason,
                })
                .collect(),
        }))
    }
}

#[tonic::async_trait]
impl UserDirectoryService for UserDirectoryApi {
    async fn sync_users(
        &self,
        request: Request<Streaming<api::SyncUsersRequest>>,
    ) -> Result<Response<api::SyncUsersSummary>, Status> {
        self.sync_users_from(request).await
    }

    async fn lookup_user_by_email(
        &self,
        request: Request<api::LookupUserByEmailRequest>,
    ) -> Result<Response<api::User>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let address = crate::rules::host_match_key(&body.email);
        if address.is_empty() {
            return Err(Status::invalid_argument("email: required"));
        }
        let user = self
            .context
            .store
            .lookup_user_by_email(&institution_id, &address)
            .await?
            .ok_or_else(|| {
                Status::not_found("no active user has this email or alternate zoom email")
            })?;
        Ok(Response::new(convert::user(user)))
    }

    async fn lookup_users_by_email(
        &self,
        request: Request<api::LookupUsersByEmailRequest>,
    ) -> Result<Response<api::LookupUsersByEmailResponse>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.into_inner();
        let institution_id = principal.scope(&body.institution_id)?;
        if body.emails.is_empty() || body.emails.len() > MAX_EMAILS_PER_LOOKUP {
            return Err(Status::invalid_argument(format!(
                "emails: between 1 and {MAX_EMAILS_PER_LOOKUP} required, got {}",
                body.emails.len()
            )));
        }
        let mut addresses = Vec::with_capacity(body.emails.len());
        for (index, email) in body.emails.iter().enumerate() {
            let address = crate::rules::host_match_key(email);
            if address.is_empty() {
                return Err(Status::invalid_argument(format!("emails[{index}]: empty")));
            }
            addresses.push(address);
        }
        let users = self
            .context
            .store
            .lookup_users_by_email(&institution_id, &addresses)
            .await?;
        let results = body
            .emails
            .into_iter()
            .zip(users)
            .map(|(email, user)| api::EmailLookup {
                email,
                user: user.map(convert::user),
            })
            .collect();
        Ok(Response::new(api::LookupUsersByEmailResponse { results }))
    }

    async fn get_user(
        &self,
        request: Request<api::GetUserRequest>,
    ) -> Result<Response<api::User>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let user_id = required_id("user_id", &body.user_id)?;
        let user = self
            .context
            .store
            .get_user(&institution_id, &user_id)
            .await?;
        Ok(Response::new(convert::user(user)))
    }

    async fn list_users(
        &self,
        request: Request<api::ListUsersRequest>,
    ) -> Result<Response<api::ListUsersResponse>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let page = page_query("page", body.page.as_ref())?;
        let page = self
            .context
            .store
            .list_users(&institution_id, body.include_inactive, &page)
            .await?;
        Ok(Response::new(api::ListUsersResponse {
            page: page_response(&page),
            users: page.items.into_iter().map(convert::user).collect(),
        }))
    }
}
