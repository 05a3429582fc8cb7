//! `ferry configurations`: ZoomConfigurationService. Prints a new or rotated
//! configuration token once, as the daemon hands it out; never stores it.

use anyhow::Context;
use clap::Subcommand;
use ferry_control::api;
use serde_json::json;

use super::{enum_name, page, time};
use crate::cli::client::Clients;
use crate::cli::output::{Fields, Output};

#[derive(Subcommand, Debug)]
pub enum ConfigurationsCommand {
    /// Create a Zoom configuration. Its token is shown once.
    Create {
        display_name: String,
        /// Recording types in priority order, comma-separated.
        #[arg(long, value_delimiter = ',')]
        view_priority: Vec<String>,
        /// Whose recordings are ingested: all_matching_users (default) or
        /// opted_in_users.
        #[arg(long)]
        ingest_mode: Option<String>,
        /// What happens to Zoom's copy after Ferry's is complete: keep
        /// (default) or trash.
        #[arg(long)]
        after_copy: Option<String>,
    },
    /// Change a configuration's name, ingest mode or after-copy action.
    Update {
        configuration_id: String,
        #[arg(long)]
        display_name: Option<String>,
        /// all_matching_users or opted_in_users.
        #[arg(long)]
        ingest_mode: Option<String>,
        /// keep or trash.
        #[arg(long)]
        after_copy: Option<String>,
    },
    /// List Zoom configurations.
    List,
    /// Show one configuration.
    Get { configuration_id: String },
    /// Replace a configuration's token. The new token is shown once.
    Rotate { configuration_id: String },
    /// Delete a configuration and uninstall its Zoom accounts.
    Delete { configuration_id: String },
}

fn configuration_fields(c: api::ZoomConfiguration) -> Fields {
    vec![
        ("configuration_id", json!(c.configuration_id)),
        ("institution_id", json!(c.institution_id)),
        ("display_name", json!(c.display_name)),
        ("view_priority", json!(c.view_priority)),
        (
            "ingest_mode",
            json!(api::IngestMode::try_from(c.ingest_mode).map_or(
                c.ingest_mode.to_string(),
                |m| enum_name(m.as_str_name(), "INGEST_MODE_")
            )),
        ),
        (
            "after_copy",
            json!(
                api::AfterCopy::try_from(c.after_copy).map_or(c.after_copy.to_string(), |a| {
                    enum_name(a.as_str_name(), "AFTER_COPY_")
                })
            ),
        ),
        ("installed_account_count", json!(c.installed_account_count)),
        ("create_time", time(&c.create_time)),
        ("token_issue_time", time(&c.token_issue_time)),
    ]
}

/// `--ingest-mode`: UNSPECIFIED (0) when not given.
fn ingest_mode_arg(text: Option<&str>) -> anyhow::Result<i32> {
    let Some(text) = text else { return Ok(0) };
    let mode = ferry_control::model::IngestMode::parse(text).with_context(|| {
        format!("--ingest-mode {text:?}: expected all_matching_users or opted_in_users")
    })?;
    Ok(api::IngestMode::from_str_name(&format!(
        "INGEST_MODE_{}",
        mode.as_str().to_ascii_uppercase()
    ))
    .map_or(0, |m| m as i32))
}

/// `--after-copy`: UNSPECIFIED (0) when not given.
fn after_copy_arg(text: Option<&str>) -> anyhow::Result<i32> {
    let Some(text) = text else { return Ok(0) };
    let action = ferry_control::model::AfterCopy::parse(text)
        .with_context(|| format!("--after-copy {text:?}: expected keep or trash"))?;
    Ok(api::AfterCopy::from_str_name(&format!(
        "AFTER_COPY_{}",
        action.as_str().to_ascii_uppercase()
    ))
    .map_or(0, |a| a as i32))
}

pub(super) async fn configurations(
    clients: &mut Clients,
    out: Output,
    institution: &str,
    command: ConfigurationsCommand,
) -> anyhow::Result<()> {
    let client = &mut clients.configurations;
    let institution_id = institution.to_string();
    match command {
        ConfigurationsCommand::Create {
            display_name,
            view_priority,
            ingest_mode,
            after_copy,
        } => {
            let created = client
                .create_zoom_configuration(api::CreateZoomConfigurationRequest {
                    institution_id,
                    display_name,
                    view_priority,
                    ingest_mode: ingest_mode_arg(ingest_mode.as_deref())?,
                    after_copy: after_copy_arg(after_copy.as_deref())?,
                })
                .await?
                .into_inner();
            let mut fields = created
                .configuration
                .map(configuration_fields)
                .unwrap_or_default();
            fields.push(("configuration_token", json!(created.configuration_token)));
            out.item(fields);
        }
        ConfigurationsCommand::Update {
            configuration_id,
            display_name,
            ingest_mode,
            after_copy,
        } => {
            let updated = client
                .update_zoom_configuration(api::UpdateZoomConfigurationRequest {
                    configuration_id,
                    display_name,
                    view_priority: None,
                    institution_id,
                    ingest_mode: ingest_mode_arg(ingest_mode.as_deref())?,
                    after_copy: after_copy_arg(after_copy.as_deref())?,
                })
                .await?
                .into_inner();
            out.item(configuration_fields(updated));
        }
        ConfigurationsCommand::List => {
            let all = collect_pages!(
                |token| client.list_zoom_configurations(api::ListZoomConfigurationsRequest {
                    institution_id: institution_id.clone(),
                    page: page(token)
                }),
                configurations
            );
            out.list(
                all.into_iter().map(configuration_fields).collect(),
                &[
                    "configuration_id",
                    "display_name",
                    "installed_account_count",
                    "ingest_mode",
                    "after_copy",
                    "token_issue_time",
                ],
            );
        }
        ConfigurationsCommand::Get { configuration_id } => {
            let found = client
                .get_zoom_configuration(api::GetZoomConfigurationRequest {
                    configuration_id,
                    institution_id,
                })
                .await?
                .into_inner();
            out.item(configuration_fields(found));
        }
        ConfigurationsCommand::Rotate { configuration_id } => {
            let rotated = client
                .rotate_zoom_configuration_token(api::RotateZoomConfigurationTokenRequest {
                    configuration_id,
                    institution_id,
                })
                .await?
                .into_inner();
            let mut fields = rotated
                .configuration
                .map(configuration_fields)
                .unwrap_or_default();
            fields.push(("configuration_token", json!(rotated.configuration_token)));
            out.item(fields);
        }
        ConfigurationsCommand::Delete { configuration_id } => {
            let deleted = client
                .delete_zoom_configuration(api::DeleteZoomConfigurationRequest {
                    configuration_id: configuration_id.clone(),
                    institution_id,
                })
                .await?
                .into_inner();
            out.item(vec![
                ("deleted_configuration_id", json!(configuration_id)),
                (
                    "uninstalled_zoom_account_ids",
                    json!(deleted.uninstalled_zoom_account_ids),
                ),
            ]);
        }
    }
    Ok(())
}
