//! `ferry configurations`: ZoomConfigurationService. Prints a new or rotated
//! configuration token once, as the daemon hands it out; never stores it.

use clap::Subcommand;
use ferry_control::api;
use serde_json::json;

use super::{page, time};
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
        ("installed_account_count", json!(c.installed_account_count)),
        ("create_time", time(&c.create_time)),
        ("token_issue_time", time(&c.token_issue_time)),
    ]
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
        } => {
            let created = client
                .create_zoom_configuration(api::CreateZoomConfigurationRequest {
                    institution_id,
                    display_name,
                    view_priority,
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
