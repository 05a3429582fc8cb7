//! `ferry accounts`: ZoomAccountService. The OAuth client secret comes only
//! from `FERRY_OAUTH_CLIENT_SECRET`, never from a flag, and is never printed.

use anyhow::Context;
use clap::Subcommand;
use ferry_control::api;
use serde_json::json;

use super::{page, time};
use crate::cli::client::Clients;
use crate::cli::output::{Fields, Output};

#[derive(Subcommand, Debug)]
pub enum AccountsCommand {
    /// Install a Zoom account with a configuration token (what the Zoom Marketplace app does).
    Install {
        #[arg(long)]
        configuration_token: String,
        #[arg(long = "account")]
        zoom_account_id: String,
        /// free, pro, business, education, api or enterprise.
        #[arg(long)]
        plan: String,
        /// Server-to-Server OAuth client id; the secret is read from FERRY_OAUTH_CLIENT_SECRET.
        #[arg(long)]
        oauth_client_id: Option<String>,
    },
    /// List installed Zoom accounts.
    List {
        /// Include uninstalled accounts.
        #[arg(long)]
        all: bool,
    },
    /// Show one Zoom account.
    Get { zoom_account_id: String },
    /// Uninstall a Zoom account: its later recordings are not ingested.
    Uninstall { zoom_account_id: String },
    /// Ingest a Zoom account's recordings of a range of days, those made
    /// before the install included (`get`, `list`, `cancel` for existing
    /// backfills).
    Backfill(super::backfills::BackfillArgs),
}

fn plan_name(plan: i32) -> String {
    api::ZoomPlan::try_from(plan)
        .map(|p| {
            p.as_str_name()
                .trim_start_matches("ZOOM_PLAN_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| plan.to_string())
}

fn account_fields(a: api::ZoomAccount) -> Fields {
    vec![
        ("zoom_account_id", json!(a.zoom_account_id)),
        ("institution_id", json!(a.institution_id)),
        ("configuration_id", json!(a.configuration_id)),
        ("plan", json!(plan_name(a.plan))),
        ("install_time", time(&a.install_time)),
        ("uninstall_time", time(&a.uninstall_time)),
        ("has_oauth_credentials", json!(a.has_oauth_credentials)),
        ("oauth_client_id", json!(a.oauth_client_id)),
    ]
}

pub(super) async fn accounts(
    clients: &mut Clients,
    out: Output,
    institution: &str,
    command: AccountsCommand,
) -> anyhow::Result<()> {
    let client = &mut clients.accounts;
    let institution_id = institution.to_string();
    match command {
        AccountsCommand::Backfill(args) => {
            return super::backfills::backfill(clients, out, institution, args).await;
        }
        AccountsCommand::Install {
            configuration_token,
            zoom_account_id,
            plan,
            oauth_client_id,
        } => {
            let plan_value = api::ZoomPlan::from_str_name(&format!(
                "ZOOM_PLAN_{}",
                plan.trim().to_ascii_uppercase()
            ))
            .with_context(|| {
                format!(
                    "--plan {plan:?}: expected free, pro, business, education, api or enterprise"
                )
            })?;
            let oauth_credentials = match oauth_client_id {
                Some(client_id) => Some(api::ZoomOAuthCredentials {
                    client_id,
                    client_secret: std::env::var("FERRY_OAUTH_CLIENT_SECRET").context(
                        "--oauth-client-id needs the secret in FERRY_OAUTH_CLIENT_SECRET",
                    )?,
                }),
                None => None,
            };
            let installed = client
                .install_zoom_account(api::InstallZoomAccountRequest {
                    configuration_token,
                    zoom_account_id,
                    plan: plan_value as i32,
                    oauth_credentials,
                })
                .await?
                .into_inner();
            out.item(account_fields(installed));
        }
        AccountsCommand::List { all } => {
            let accounts = collect_pages!(
                |token| client.list_zoom_accounts(api::ListZoomAccountsRequest {
                    institution_id: institution_id.clone(),
                    include_uninstalled: all,
                    page: page(token)
                }),
                accounts
            );
            out.list(
                accounts.into_iter().map(account_fields).collect(),
                &[
                    "zoom_account_id",
                    "plan",
                    "configuration_id",
                    "install_time",
                    "uninstall_time",
                ],
            );
        }
        AccountsCommand::Get { zoom_account_id } => {
            let found = client
                .get_zoom_account(api::GetZoomAccountRequest {
                    zoom_account_id,
                    institution_id,
                })
                .await?
                .into_inner();
            out.item(account_fields(found));
        }
        AccountsCommand::Uninstall { zoom_account_id } => {
            let uninstalled = client
                .uninstall_zoom_account(api::UninstallZoomAccountRequest {
                    zoom_account_id,
                    institution_id,
                })
                .await?
                .into_inner();
            out.item(account_fields(uninstalled));
        }
    }
    Ok(())
}
