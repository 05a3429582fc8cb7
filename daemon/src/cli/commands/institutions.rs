//! `ferry institutions` and `ferry keys`: InstitutionService, its institutions
//! and their admin API keys. Prints what the daemon answers; never keeps a
//! key's secret beyond printing it once.

use clap::Subcommand;
use ferry_control::api;
use serde_json::json;

use super::{page, time};
use crate::cli::client::Clients;
use crate::cli::output::{Fields, Output};

#[derive(Subcommand, Debug)]
pub enum InstitutionsCommand {
    /// Create an institution (operator only).
    Create { display_name: String },
    /// List institutions.
    List,
    /// Show one institution (default: the key's own).
    Get { institution_id: Option<String> },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Issue an admin API key for --institution (operator only). The secret is shown once.
    Create {
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List an institution's admin keys.
    List,
    /// Revoke an admin key (operator only).
    Revoke { key_id: String },
}

fn institution_fields(i: api::Institution) -> Fields {
    vec![
        ("institution_id", json!(i.institution_id)),
        ("display_name", json!(i.display_name)),
        ("create_time", time(&i.create_time)),
    ]
}

pub(super) async fn institutions(
    clients: &mut Clients,
    out: Output,
    institution: &str,
    command: InstitutionsCommand,
) -> anyhow::Result<()> {
    let client = &mut clients.institutions;
    match command {
        InstitutionsCommand::Create { display_name } => {
            let created = client
                .create_institution(api::CreateInstitutionRequest { display_name })
                .await?
                .into_inner();
            out.item(institution_fields(created));
        }
        InstitutionsCommand::List => {
            let all = collect_pages!(
                |token| client
                    .list_institutions(api::ListInstitutionsRequest { page: page(token) }),
                institutions
            );
            out.list(
                all.into_iter().map(institution_fields).collect(),
                &["institution_id", "display_name", "create_time"],
            );
        }
        InstitutionsCommand::Get { institution_id } => {
            let found = client
                .get_institution(api::GetInstitutionRequest {
                    institution_id: institution_id.unwrap_or_else(|| institution.to_string()),
                })
                .await?
                .into_inner();
            out.item(institution_fields(found));
        }
    }
    Ok(())
}

fn key_fields(k: api::AdminKey) -> Fields {
    vec![
        ("key_id", json!(k.key_id)),
        ("institution_id", json!(k.institution_id)),
        ("name", json!(k.name)),
        ("create_time", time(&k.create_time)),
        ("revoke_time", time(&k.revoke_time)),
    ]
}

pub(super) async fn keys(
    clients: &mut Clients,
    out: Output,
    institution: &str,
    command: KeysCommand,
) -> anyhow::Result<()> {
    let client = &mut clients.institutions;
    match command {
        KeysCommand::Create { name } => {
            let created = client
                .create_admin_key(api::CreateAdminKeyRequest {
                    institution_id: institution.to_string(),
                    name,
                })
                .await?
                .into_inner();
            let mut fields = created.key.map(key_fields).unwrap_or_default();
            fields.push(("secret", json!(created.secret)));
            out.item(fields);
        }
        KeysCommand::List => {
            let all = collect_pages!(
                |token| client.list_admin_keys(api::ListAdminKeysRequest {
                    institution_id: institution.to_string(),
                    page: page(token)
                }),
                keys
            );
            out.list(
                all.into_iter().map(key_fields).collect(),
                &["key_id", "name", "create_time", "revoke_time"],
            );
        }
        KeysCommand::Revoke { key_id } => {
            let revoked = client
                .revoke_admin_key(api::RevokeAdminKeyRequest { key_id })
                .await?
                .into_inner();
            out.item(key_fields(revoked));
        }
    }
    Ok(())
}
