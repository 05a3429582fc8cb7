//! The admin client's commands: each builds one request (or a stream),
//! calls the daemon, and prints the answer.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use ferry_control::api;
use serde_json::{Value, json};

use super::ClientArgs;
use super::client::{Clients, Connection};
use super::output::{Fields, Output};

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
}

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Sync users from a CSV file with the header
    /// email,alternate_zoom_email,display_name,role,external_id
    Sync {
        file: PathBuf,
        /// full deactivates users absent from the file; upsert only adds and updates.
        #[arg(long, default_value = "upsert")]
        mode: String,
    },
    /// Find the active user matching an email or alternate Zoom email.
    Lookup { email: String },
    /// List users.
    List {
        /// Include inactive users.
        #[arg(long)]
        all: bool,
    },
    /// Show one user.
    Get { user_id: String },
}

#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// List jobs.
    List {
        /// queued, transferring, completed, skipped, failed or cancelled (repeatable).
        #[arg(long = "state")]
        states: Vec<String>,
        /// no_matching_user, recorded_before_install, too_long, too_large or no_downloadable_file.
        #[arg(long)]
        skip_reason: Option<String>,
        #[arg(long = "account")]
        zoom_account_id: Option<String>,
        #[arg(long)]
        host_email: Option<String>,
        /// Created at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Created before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
    },
    /// Show one job.
    Get { job_id: String },
    /// Retry a failed or cancelled job.
    Retry { job_id: String },
    /// Cancel a queued or transferring job.
    Cancel { job_id: String },
    /// Follow jobs as they change until interrupted: a progress bar per
    /// transfer on a terminal, plain lines otherwise, one JSON object per
    /// event with --json.
    Watch {
        /// Only this job; the watch ends when the job finishes.
        #[arg(long)]
        job: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum MediaCommand {
    /// List media (with --owner: that user's "My Content").
    List {
        #[arg(long)]
        owner: Option<String>,
    },
    /// Show one media item.
    Get { media_id: String },
    /// Give a media item to another user.
    Transfer {
        media_id: String,
        #[arg(long = "to")]
        new_owner_user_id: String,
    },
}

pub async fn run(command: super::Command, args: ClientArgs) -> anyhow::Result<()> {
    let connection = Connection {
        server: args.server.clone(),
        token: args.token.clone(),
        ca_cert: args.ca_cert.clone(),
    };
    let mut clients = connection.connect().await?;
    let out = Output { json: args.json };
    let institution = args.institution.clone();
    use super::Command as C;
    match command {
        C::Institutions(command) => institutions(&mut clients, out, &institution, command).await,
        C::Keys(command) => keys(&mut clients, out, &institution, command).await,
        C::Configurations(command) => {
            configurations(&mut clients, out, &institution, command).await
        }
        C::Accounts(command) => accounts(&mut clients, out, &institution, command).await,
        C::Users(command) => users(&mut clients, out, &institution, command).await,
        C::Jobs(command) => jobs(&mut clients, out, &institution, command).await,
        C::Media(command) => media(&mut clients, out, &institution, command).await,
        C::Serve { .. } | C::Demo { .. } => unreachable!("handled by main"),
    }
}

fn time(t: &Option<prost_types::Timestamp>) -> Value {
    match t {
        Some(t) => {
            let millis = t.seconds * 1000 + i64::from(t.nanos / 1_000_000);
            json!(ferry_control::model::Timestamp(millis).to_string())
        }
        None => Value::Null,
    }
}

fn page(token: String) -> Option<api::PageRequest> {
    Some(api::PageRequest {
        page_size: 1000,
        page_token: token,
    })
}

/// Follows `next_page_token` until the last page.
macro_rules! collect_pages {
    (|$token:ident| $call:expr, $items:ident) => {{
        let mut all = Vec::new();
        let mut next_token = String::new();
        loop {
            let $token = next_token.clone();
            let response = $call.await?.into_inner();
            all.extend(response.$items);
            match response
                .page
                .map(|p| p.next_page_token)
                .filter(|t| !t.is_empty())
            {
                Some(next) => next_token = next,
                None => break,
            }
        }
        all
    }};
}

fn institution_fields(i: api::Institution) -> Fields {
    vec![
        ("institution_id", json!(i.institution_id)),
        ("display_name", json!(i.display_name)),
        ("create_time", time(&i.create_time)),
    ]
}

async fn institutions(
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

async fn keys(
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

async fn configurations(
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

async fn accounts(
    clients: &mut Clients,
    out: Output,
    institution: &str,
    command: AccountsCommand,
) -> anyhow::Result<()> {
    let client = &mut clients.accounts;
    let institution_id = institution.to_string();
    match command {
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

fn role_name(role: i32) -> String {
    api::UserRole::try_from(role)
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("USER_ROLE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| role.to_string())
}

fn user_fields(u: api::User) -> Fields {
    vec![
        ("user_id", json!(u.user_id)),
        ("external_id", json!(u.external_id)),
        ("email", json!(u.email)),
        ("alternate_zoom_email", json!(u.alternate_zoom_email)),
        ("display_name", json!(u.display_name)),
        ("role", json!(role_name(u.role))),
        ("active", json!(u.active)),
        ("create_time", time(&u.create_time)),
        ("update_time", time(&u.update_time)),
    ]
}

/// Reads the CSV into sync messages. A malformed file fails before anything
/// is sent; invalid field values are left for the server to reject per record.
fn read_users_csv(path: &PathBuf) -> anyhow::Result<Vec<api::UserRecord>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let expected = [
        "email",
        "alternate_zoom_email",
        "display_name",
        "role",
        "external_id",
    ];
    let headers = reader
        .headers()
        .with_context(|| format!("{}: no header line", path.display()))?;
    let column = |name: &str| -> anyhow::Result<usize> {
        headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .with_context(|| {
                format!(
                    "{}: header has no {name} column (expected {})",
                    path.display(),
                    expected.join(",")
                )
            })
    };
    let (email, alternate, display, role, external) = (
        column("email")?,
        column("alternate_zoom_email")?,
        column("display_name")?,
        column("role")?,
        column("external_id")?,
    );
    let mut records = Vec::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{}: line {}", path.display(), line + 2))?;
        let field = |i: usize| row.get(i).unwrap_or_default().to_string();
        records.push(api::UserRecord {
            external_id: field(external),
            email: field(email),
            alternate_zoom_email: field(alternate),
            display_name: field(display),
            role: api::UserRole::from_str_name(&format!(
                "USER_ROLE_{}",
                field(role).to_ascii_uppercase()
            ))
            .map_or(api::UserRole::Unspecified as i32, |r| r as i32),
        });
    }
    Ok(records)
}

async fn users(
    clients: &mut Clients,
    out: Output,
    institution: &str,
    command: UsersCommand,
) -> anyhow::Result<()> {
    let client = &mut clients.users;
    let institution_id = institution.to_string();
    match command {
        UsersCommand::Sync { file, mode } => {
            let mode = match mode.to_ascii_lowercase().as_str() {
                "full" => api::SyncMode::Full,
                "upsert" => api::SyncMode::Upsert,
                other => anyhow::bail!("--mode {other:?}: expected full or upsert"),
            };
            let records = read_users_csv(&file)?;
            let header = api::SyncUsersRequest {
                item: Some(api::sync_users_request::Item::Header(
                    api::SyncUsersHeader {
                        institution_id,
                        mode: mode as i32,
                    },
                )),
            };
            let messages =
                std::iter::once(header).chain(records.into_iter().map(|r| api::SyncUsersRequest {
                    item: Some(api::sync_users_request::Item::User(r)),
                }));
            let summary = client
                .sync_users(tokio_stream::iter(messages))
                .await?
                .into_inner();
            if out.json {
                let rejected: Vec<Value> = summary
                    .rejected
                    .iter()
                    .map(|r| {
                        json!({"record_index": r.record_index, "line": r.record_index + 2,
                        "external_id": r.external_id, "email": r.email, "reason": r.reason})
                    })
                    .collect();
                out.item(vec![
                    ("received", json!(summary.received)),
                    ("applied", json!(summary.applied)),
                    ("created", json!(summary.created)),
                    ("updated", json!(summary.updated)),
                    ("unchanged", json!(summary.unchanged)),
                    ("deactivated", json!(summary.deactivated)),
                    ("rejected", Value::Array(rejected)),
                ]);
            } else {
                println!(
                    "received {}, applied {} (created {}, updated {}, unchanged {}), deactivated {}, rejected {}",
                    summary.received,
                    summary.applied,
                    summary.created,
                    summary.updated,
                    summary.unchanged,
                    summary.deactivated,
                    summary.rejected.len()
                );
                for r in &summary.rejected {
                    println!(
                        "  line {}: {} ({}): {}",
                        r.record_index + 2,
                        r.external_id,
                        r.email,
                        r.reason
                    );
                }
            }
        }
        UsersCommand::Lookup { email } => {
            let user = client
                .lookup_user_by_email(api::LookupUserByEmailRequest {
                    institution_id,
                    email,
                })
                .await?
                .into_inner();
            out.item(user_fields(user));
        }
        UsersCommand::List { all } => {
            let users = collect_pages!(
                |token| client.list_users(api::ListUsersRequest {
                    institution_id: institution_id.clone(),
                    include_inactive: all,
                    page: page(token)
                }),
                users
            );
            out.list(
                users.into_iter().map(user_fields).collect(),
                &[
                    "user_id",
                    "external_id",
                    "email",
                    "alternate_zoom_email",
                    "role",
                    "active",
                ],
            );
        }
        UsersCommand::Get { user_id } => {
            let user = client
                .get_user(api::GetUserRequest {
                    user_id,
                    institution_id,
                })
                .await?
                .into_inner();
            out.item(user_fields(user));
        }
    }
    Ok(())
}

fn enum_name(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_ascii_lowercase()
}

pub(super) fn job_fields(j: api::Job) -> Fields {
    let state = api::JobState::try_from(j.state).map_or(j.state.to_string(), |s| {
        enum_name(s.as_str_name(), "JOB_STATE_")
    });
    let reason = match api::SkipReason::try_from(j.skip_reason) {
        Ok(api::SkipReason::Unspecified) => String::new(),
        Ok(r) => enum_name(r.as_str_name(), "SKIP_REASON_"),
        Err(_) => j.skip_reason.to_string(),
    };
    let file = j.recording_file.unwrap_or_default();
    vec![
        ("job_id", json!(j.job_id)),
        ("state", json!(state)),
        ("skip_reason", json!(reason)),
        ("message", json!(j.message)),
        ("zoom_account_id", json!(j.zoom_account_id)),
        ("meeting_uuid", json!(j.meeting_uuid)),
        ("meeting_id", json!(j.meeting_id)),
        ("topic", json!(j.topic)),
        ("host_email", json!(j.host_email)),
        ("owner_user_id", json!(j.owner_user_id)),
        ("recording_type", json!(file.recording_type)),
        ("file_id", json!(file.file_id)),
        ("file_size", json!(file.file_size)),
        ("bytes_transferred", json!(j.bytes_transferred)),
        ("total_bytes", json!(j.total_bytes)),
        ("attempt_count", json!(j.attempt_count)),
        ("skipped_file_count", json!(j.skipped_file_count)),
        ("skipped_segment_count", json!(j.skipped_segment_count)),
        ("detected_mid_stream", json!(j.detected_mid_stream)),
        ("media_id", json!(j.media_id)),
        ("meeting_start_time", time(&j.meeting_start_time)),
        ("create_time", time(&j.create_time)),
        ("update_time", time(&j.update_time)),
        ("finish_time", time(&j.finish_time)),
    ]
}

const JOB_COLUMNS: &[&str] = &[
    "job_id",
    "state",
    "skip_reason",
    "host_email",
    "topic",
    "bytes_transferred",
    "create_time",
];

fn parse_time(flag: &str, text: &Option<String>) -> anyhow::Result<Option<prost_types::Timestamp>> {
    text.as_deref()
        .map(|t| {
            let parsed = ferry_control::model::Timestamp::parse_rfc3339(t).with_context(|| {
                format!("{flag} {t:?}: expected an RFC 3339 time such as 2026-11-28T09:00:00Z")
            })?;
            Ok(prost_types::Timestamp {
                seconds: parsed.0.div_euclid(1000),
                nanos: (parsed.0.rem_euclid(1000) * 1_000_000) as i32,
            })
        })
        .transpose()
}

async fn jobs(
    clients: &mut Clients,
    out: Output,
    institution: &str,
    command: JobsCommand,
) -> anyhow::Result<()> {
    let client = &mut clients.jobs;
    let institution_id = institution.to_string();
    match command {
        JobsCommand::List {
            states,
            skip_reason,
            zoom_account_id,
            host_email,
            since,
            until,
        } => {
            let states = states
                .iter()
                .map(|s| {
                    api::JobState::from_str_name(&format!("JOB_STATE_{}", s.to_ascii_uppercase()))
                        .map(|s| s as i32)
                        .with_context(|| format!("--state {s:?}: not a job state"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let skip_reason = match skip_reason {
                Some(r) => api::SkipReason::from_str_name(&format!(
                    "SKIP_REASON_{}",
                    r.to_ascii_uppercase()
                ))
                .with_context(|| format!("--skip-reason {r:?}: not a skip reason"))?
                    as i32,
                None => 0,
            };
            let create_time = match (
                parse_time("--since", &since)?,
                parse_time("--until", &until)?,
            ) {
                (None, None) => None,
                (start_time, end_time) => Some(api::TimeRange {
                    start_time,
                    end_time,
                }),
            };
            let jobs = collect_pages!(
                |token| client.list_jobs(api::ListJobsRequest {
                    institution_id: institution_id.clone(),
                    states: states.clone(),
                    skip_reason,
                    zoom_account_id: zoom_account_id.clone().unwrap_or_default(),
                    host_email: host_email.clone().unwrap_or_default(),
                    create_time,
                    page: page(token)
                }),
                jobs
            );
            out.list(jobs.into_iter().map(job_fields).collect(), JOB_COLUMNS);
        }
        JobsCommand::Get { job_id } => {
            let job = client
                .get_job(api::GetJobRequest {
                    job_id,
                    institution_id,
                })
                .await?
                .into_inner();
            out.item(job_fields(job));
        }
        JobsCommand::Retry { job_id } => {
            let job = client
                .retry_job(api::RetryJobRequest {
                    job_id,
                    institution_id,
                })
                .await?
                .into_inner();
            out.item(job_fields(job));
        }
        JobsCommand::Cancel { job_id } => {
            let job = client
                .cancel_job(api::CancelJobRequest {
                    job_id,
                    institution_id,
                })
                .await?
                .into_inner();
            out.item(job_fields(job));
        }
        JobsCommand::Watch { job } => {
            super::watch::run(client, out, institution_id, job).await?;
        }
    }
    Ok(())
}

fn media_fields(m: api::Media) -> Fields {
    vec![
        ("media_id", json!(m.media_id)),
        ("owner_user_id", json!(m.owner_user_id)),
        ("title", json!(m.title)),
        ("duration_ms", json!(m.duration_ms)),
        ("size_bytes", json!(m.size_bytes)),
        ("checksum", json!(m.checksum)),
        ("content_type", json!(m.content_type)),
        ("object_key", json!(m.object_key)),
        ("meeting_id", json!(m.meeting_id)),
        ("meeting_uuid", json!(m.meeting_uuid)),
        ("recorded_time", time(&m.recorded_time)),
        ("job_id", json!(m.job_id)),
        ("create_time", time(&m.create_time)),
    ]
}

async fn media(
    clients: &mut Clients,
    out: Output,
    institution: &str,
    command: MediaCommand,
) -> anyhow::Result<()> {
    let client = &mut clients.media;
    let institution_id = institution.to_string();
    match command {
        MediaCommand::List { owner } => {
            let media = collect_pages!(
                |token| client.list_media(api::ListMediaRequest {
                    institution_id: institution_id.clone(),
                    owner_user_id: owner.clone().unwrap_or_default(),
                    page: page(token)
                }),
                media
            );
            out.list(
                media.into_iter().map(media_fields).collect(),
                &[
                    "media_id",
                    "owner_user_id",
                    "title",
                    "size_bytes",
                    "recorded_time",
                ],
            );
        }
        MediaCommand::Get { media_id } => {
            let media = client
                .get_media(api::GetMediaRequest {
                    media_id,
                    institution_id,
                })
                .await?
                .into_inner();
            out.item(media_fields(media));
        }
        MediaCommand::Transfer {
            media_id,
            new_owner_user_id,
        } => {
            let media = client
                .transfer_media_ownership(api::TransferMediaOwnershipRequest {
                    media_id,
                    new_owner_user_id,
                    institution_id,
                })
                .await?
                .into_inner();
            out.item(media_fields(media));
        }
    }
    Ok(())
}
