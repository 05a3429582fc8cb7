//! ZoomConfigurationService and ZoomAccountService. An install is refused by
//! `rules::check_plan_can_install` (never restated here) and answered only
//! after the configuration token matched; tokens are shown once, never logged.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::ControlContext;
use super::convert;
use super::validate::{page_query, page_response, required_id, required_text};
use crate::api;
use crate::api::zoom_account_service_server::ZoomAccountService;
use crate::api::zoom_configuration_service_server::ZoomConfigurationService;
use crate::model::{
    AccountInstall, AccountUninstall, ConfigurationPolicy, ConfigurationUpdate, Day, NewBackfill,
    NewConfiguration, SealedOAuthCredentials, Timestamp, TokenRotation,
};
use crate::rules;
use crate::secrets::{CONFIGURATION_TOKEN_PREFIX, TokenHash, generate_token};

/// Recording types may be named in a view priority list: lowercase words and
/// underscores, as Zoom spells them.
fn view_priority(field: &str, types: &[String]) -> Result<Vec<String>, Status> {
    let mut seen = std::collections::HashSet::new();
    types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let t = t.trim().to_ascii_lowercase();
            if t.is_empty()
                || t.len() > 64
                || !t.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            {
                return Err(Status::invalid_argument(format!(
                    "{field}[{i}]: not a zoom recording type (lowercase letters and underscores)"
                )));
            }
            if !seen.insert(t.clone()) {
                return Err(Status::invalid_argument(format!(
                    "{field}[{i}]: {t} is listed twice"
                )));
            }
            Ok(t)
        })
        .collect()
}

pub struct ZoomConfigurationApi {
    context: Arc<ControlContext>,
}

impl ZoomConfigurationApi {
    pub(super) fn new(context: Arc<ControlContext>) -> Self {
        ZoomConfigurationApi { context }
    }
}

#[tonic::async_trait]
impl ZoomConfigurationService for ZoomConfigurationApi {
    async fn create_zoom_configuration(
        &self,
        request: Request<api::CreateZoomConfigurationRequest>,
    ) -> Result<Response<api::CreateZoomConfigurationResponse>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let display_name = required_text("display_name", &body.display_name, 100)?;
        let priority = view_priority("view_priority", &body.view_priority)?;
        let policy = ConfigurationPolicy {
            ingest_mode: convert::ingest_mode_from_api(body.ingest_mode)?.unwrap_or_default(),
            after_copy: convert::after_copy_from_api(body.after_copy)?.unwrap_or_default(),
        };
        let (token, hash) = generate_token(CONFIGURATION_TOKEN_PREFIX);
        let configuration = self
            .context
            .store
            .create_configuration(NewConfiguration {
                institution_id: institution_id.clone(),
                display_name: display_name.clone(),
                view_priority: priority.clone(),
                policy,
                token_hash: hash,
                now: Timestamp::now(),
            })
            .await?;
        tracing::info!(institution = %institution_id, configuration = %configuration.configuration_id,
            "zoom configuration created");
        Ok(Response::new(api::CreateZoomConfigurationResponse {
            configuration: Some(convert::configuration(configuration)),
            configuration_token: token.expose().to_string(),
        }))
    }

    async fn get_zoom_configuration(
        &self,
        request: Request<api::GetZoomConfigurationRequest>,
    ) -> Result<Response<api::ZoomConfiguration>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let configuration_id = required_id("configuration_id", &body.configuration_id)?;
        let configuration = self
            .context
            .store
            .get_configuration(&institution_id, &configuration_id)
            .await?;
        Ok(Response::new(convert::configuration(configuration)))
    }

    async fn list_zoom_configurations(
        &self,
        request: Request<api::ListZoomConfigurationsRequest>,
    ) -> Result<Response<api::ListZoomConfigurationsResponse>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let page = page_query("page", body.page.as_ref())?;
        let page = self
            .context
            .store
            .list_configurations(&institution_id, &page)
            .await?;
        Ok(Response::new(api::ListZoomConfigurationsResponse {
            page: page_response(&page),
            configurations: page.items.into_iter().map(convert::configuration).collect(),
        }))
    }

    async fn update_zoom_configuration(
        &self,
        request: Request<api::UpdateZoomConfigurationRequest>,
    ) -> Result<Response<api::ZoomConfiguration>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let configuration_id = required_id("configuration_id", &body.configuration_id)?;
        let update = ConfigurationUpdate {
            display_name: body
                .display_name
                .as_deref()
                .map(|name| required_text("display_name", name, 100))
                .transpose()?,
            view_priority: body
                .view_priority
                .as_ref()
                .map(|p| view_priority("view_priority.recording_types", &p.recording_types))
                .transpose()?,
            ingest_mode: convert::ingest_mode_from_api(body.ingest_mode)?,
            after_copy: convert::after_copy_from_api(body.after_copy)?,
        };
        let configuration = self
            .context
            .store
            .update_configuration(&institution_id, &configuration_id, update)
            .await?;
        Ok(Response::new(convert::configuration(configuration)))
    }

    async fn rotate_zoom_configuration_token(
        &self,
        request: Request<api::RotateZoomConfigurationTokenRequest>,
    ) -> Result<Response<api::RotateZoomConfigurationTokenResponse>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let configuration_id = required_id("configuration_id", &body.configuration_id)?;
        let (token, hash) = generate_token(CONFIGURATION_TOKEN_PREFIX);
        let configuration = self
            .context
            .store
            .rotate_configuration_token(TokenRotation {
                institution_id: institution_id.clone(),
                configuration_id: configuration_id.clone(),
                token_hash: hash,
                now: Timestamp::now(),
            })
            .await?;
        tracing::info!(configuration = %configuration_id, "zoom configuration token rotated");
        Ok(Response::new(api::RotateZoomConfigurationTokenResponse {
            configuration: Some(convert::configuration(configuration)),
            configuration_token: token.expose().to_string(),
        }))
    }

    async fn delete_zoom_configuration(
        &self,
        request: Request<api::DeleteZoomConfigurationRequest>,
    ) -> Result<Response<api::DeleteZoomConfigurationResponse>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let configuration_id = required_id("configuration_id", &body.configuration_id)?;
        let uninstalled = self
            .context
            .store
            .delete_configuration(&institution_id, &configuration_id, Timestamp::now())
            .await?;
        tracing::info!(configuration = %configuration_id, uninstalled = uninstalled.len(),
            "zoom configuration deleted");
        Ok(Response::new(api::DeleteZoomConfigurationResponse {
            uninstalled_zoom_account_ids: uninstalled,
        }))
    }
}

pub struct ZoomAccountApi {
    context: Arc<ControlContext>,
}

impl ZoomAccountApi {
    pub(super) fn new(context: Arc<ControlContext>) -> Self {
        ZoomAccountApi { context }
    }
}

#[tonic::async_trait]
impl ZoomAccountService for ZoomAccountApi {
    async fn install_zoom_account(
        &self,
        request: Request<api::InstallZoomAccountRequest>,
    ) -> Result<Response<api::ZoomAccount>, Status> {
        let body = request.into_inner();
        let token = body.configuration_token.trim();
        if token.is_empty() {
            return Err(Status::invalid_argument("configuration_token: required"));
        }
        let zoom_account_id = required_id("zoom_account_id", &body.zoom_account_id)?;
        let plan = convert::plan_from_api(body.plan)?;
        let oauth = match &body.oauth_credentials {
            Some(credentials) => {
                let client_id =
                    required_text("oauth_credentials.client_id", &credentials.client_id, 200)?;
                if credentials.client_secret.trim().is_empty() {
                    return Err(Status::invalid_argument(
                        "oauth_credentials.client_secret: required",
                    ));
                }
                Some(SealedOAuthCredentials {
                    client_id,
                    sealed_client_secret: self
                        .context
                        .secret_box
                        .seal_str(credentials.client_secret.trim()),
                })
            }
            None => None,
        };
        let configuration = self
            .context
            .store
            .find_configuration_by_token(&TokenHash::of(token))
            .await?
            .ok_or_else(|| {
                Status::unauthenticated("configuration_token: not a valid configuration token")
            })?;
        rules::check_plan_can_install(plan)
            .map_err(|refusal| Status::failed_precondition(refusal.to_string()))?;
        let account = self
            .context
            .store
            .install_account(AccountInstall {
                configuration_id: configuration.configuration_id.clone(),
                zoom_account_id,
                plan,
                oauth,
                now: Timestamp::now(),
            })
            .await?;
        tracing::info!(account = %account.zoom_account_id, institution = %account.institution_id,
            configuration = %account.configuration_id, "zoom account installed");
        Ok(Response::new(convert::account(account)))
    }

    async fn get_zoom_account(
        &self,
        request: Request<api::GetZoomAccountRequest>,
    ) -> Result<Response<api::ZoomAccount>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let zoom_account_id = required_id("zoom_account_id", &body.zoom_account_id)?;
        let account = self
            .context
            .store
            .get_account(&institution_id, &zoom_account_id)
            .await?;
        Ok(Response::new(convert::account(account)))
    }

    async fn list_zoom_accounts(
        &self,
        request: Request<api::ListZoomAccountsRequest>,
    ) -> Result<Response<api::ListZoomAccountsResponse>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let page = page_query("page", body.page.as_ref())?;
        let page = self
            .context
            .store
            .list_accounts(&institution_id, body.include_uninstalled, &page)
            .await?;
        Ok(Response::new(api::ListZoomAccountsResponse {
            page: page_response(&page),
            accounts: page.items.into_iter().map(convert::account).collect(),
        }))
    }

    async fn uninstall_zoom_account(
        &self,
        request: Request<api::UninstallZoomAccountRequest>,
    ) -> Result<Response<api::ZoomAccount>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let zoom_account_id = required_id("zoom_account_id", &body.zoom_account_id)?;
        let account = self
            .context
            .store
            .uninstall_account(AccountUninstall {
                institution_id: Some(institution_id.clone()),
                zoom_account_id: zoom_account_id.clone(),
                now: Timestamp::now(),
            })
            .await?;
        tracing::info!(account = %zoom_account_id, "zoom account uninstalled");
        Ok(Response::new(convert::account(account)))
    }

    async fn backfill_account(
        &self,
        request: Request<api::BackfillAccountRequest>,
    ) -> Result<Response<api::Backfill>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let zoom_account_id = required_id("zoom_account_id", &body.zoom_account_id)?;
        let (from, to) = backfill_range(&body.from, &body.to, Day::of(Timestamp::now()))?;
        let account = self
            .context
            .store
            .get_account(&institution_id, &zoom_account_id)
            .await?;
        if !account.is_installed() {
            return Err(Status::failed_precondition(format!(
                "zoom account {zoom_account_id} is uninstalled; install it again to backfill it"
            )));
        }
        let marketplace_tokens = self.context.store.account_tokens(&zoom_account_id).await?;
        if account.oauth.is_none() && marketplace_tokens.is_none() {
            return Err(Status::failed_precondition(format!(
                "zoom account {zoom_account_id} has no API credentials, which a backfill needs to list its \
                 recordings: install it through the Marketplace app, or again with --oauth-client-id (a \
                 Server-to-Server OAuth app with the cloud_recording:read:list_account_recordings:admin and \
                 user:read:user:admin scopes)"
            )));
        }
        let backfill = self
            .context
            .store
            .create_backfill(NewBackfill {
                institution_id,
                zoom_account_id: zoom_account_id.clone(),
                from,
                to,
                now: Timestamp::now(),
            })
            .await?;
        tracing::info!(account = %zoom_account_id, backfill = %backfill.backfill_id, %from, %to,
            "backfill requested");
        Ok(Response::new(convert::backfill(backfill)))
    }

    async fn get_backfill(
        &self,
        request: Request<api::GetBackfillRequest>,
    ) -> Result<Response<api::Backfill>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let backfill_id = required_id("backfill_id", &body.backfill_id)?;
        let backfill = self
            .context
            .store
            .get_backfill(&institution_id, &backfill_id)
            .await?;
        Ok(Response::new(convert::backfill(backfill)))
    }

    async fn list_backfills(
        &self,
        request: Request<api::ListBackfillsRequest>,
    ) -> Result<Response<api::ListBackfillsResponse>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let page = page_query("page", body.page.as_ref())?;
        let account = body.zoom_account_id.trim();
        let page = self
            .context
            .store
            .list_backfills(
                &institution_id,
                Some(account).filter(|a| !a.is_empty()),
                &page,
            )
            .await?;
        Ok(Response::new(api::ListBackfillsResponse {
            page: page_response(&page),
            backfills: page.items.into_iter().map(convert::backfill).collect(),
        }))
    }

    async fn cancel_backfill(
        &self,
        request: Request<api::CancelBackfillRequest>,
    ) -> Result<Response<api::Backfill>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let backfill_id = required_id("backfill_id", &body.backfill_id)?;
        let backfill = self
            .context
            .store
            .cancel_backfill(&institution_id, &backfill_id, Timestamp::now())
            .await?;
        tracing::info!(backfill = %backfill_id, "backfill cancelled");
        Ok(Response::new(convert::backfill(backfill)))
    }
}

/// A backfill's days: both given as `YYYY-MM-DD`, `from` not after `to`,
/// `to` not after today (UTC).
fn backfill_range(from: &str, to: &str, today: Day) -> Result<(Day, Day), Status> {
    let day = |field: &str, text: &str| {
        Day::parse(text).ok_or_else(|| {
            Status::invalid_argument(format!(
                "{field}: not a day (YYYY-MM-DD): {:?}",
                text.trim()
            ))
        })
    };
    let (from, to) = (day("from", from)?, day("to", to)?);
    if from > to {
        return Err(Status::invalid_argument(format!(
            "from: {from} is after to ({to})"
        )));
    }
    if to > today {
        return Err(Status::invalid_argument(format!(
            "to: {to} is in the future (today is {today} UTC)"
        )));
    }
    Ok((from, to))
}

#[cfg(test)]
mod backfill_tests {
    use super::*;

    #[test]
    fn backfill_ranges_are_days_in_order_and_not_in_the_future() {
        let today = Day::parse("2026-11-30").unwrap();
        let (from, to) = backfill_range("2026-09-01", " 2026-11-01 ", today).unwrap();
        assert_eq!(
            (from.to_string(), to.to_string()),
            ("2026-09-01".into(), "2026-11-01".into())
        );
        assert!(backfill_range("2026-11-30", "2026-11-30", today).is_ok());
        for (from, to, needle) in [
            ("2026-9-1", "2026-11-01", "from: not a day"),
            ("2026-09-01", "yesterday", "to: not a day"),
            ("2026-11-02", "2026-11-01", "is after to"),
            ("2026-11-01", "2026-12-01", "in the future"),
        ] {
            let error = backfill_range(from, to, today).unwrap_err();
            assert_eq!(error.code(), tonic::Code::InvalidArgument);
            assert!(error.message().contains(needle), "{}", error.message());
        }
    }
}
