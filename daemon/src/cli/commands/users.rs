//! `ferry users`: UserDirectoryService. A sync reads the whole CSV before
//! sending anything, so a malformed file sends nothing.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use ferry_control::api;
use serde_json::json;

use super::{RejectedLine, SyncCounts, enum_name, page, print_sync_summary, sync_mode, time};
use crate::cli::client::Clients;
use crate::cli::output::{Fields, Output};

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Sync users from a CSV file with the header
    /// email,alternate_zoom_email,display_name,role,external_id and an
    /// optional ingest_choice column (default, opted_in or opted_out; blank
    /// is default)
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
        (
            "ingest_choice",
            json!(api::IngestChoice::try_from(u.ingest_choice).map_or(
                u.ingest_choice.to_string(),
                |c| enum_name(c.as_str_name(), "INGEST_CHOICE_")
            )),
        ),
        ("create_time", time(&u.create_time)),
        ("update_time", time(&u.update_time)),
    ]
}

/// Reads the CSV into sync messages. A malformed file fails before anything
/// is sent; invalid field values are left for the server to reject per record.
fn read_users_csv(path: &PathBuf) -> anyhow::Result<Vec<api::UserRecord>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_users_csv(file, &path.display().to_string())
}

/// The users CSV's records (`email,alternate_zoom_email,display_name,role,
/// external_id` and optionally `ingest_choice`, any column order), as
/// `ferry users sync` and the console's
/// directory upload read it; `source` names the file in errors. Record `i`
/// is on line `i + 2`.
pub fn parse_users_csv(
    reader: impl std::io::Read,
    source: &str,
) -> anyhow::Result<Vec<api::UserRecord>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let expected = [
        "email",
        "alternate_zoom_email",
        "display_name",
        "role",
        "external_id",
    ];
    let headers = reader
        .headers()
        .with_context(|| format!("{source}: no header line"))?;
    let column = |name: &str| -> anyhow::Result<usize> {
        headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .with_context(|| {
                format!(
                    "{source}: header has no {name} column (expected {})",
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
    let choice = headers
        .iter()
        .position(|h| h.eq_ignore_ascii_case("ingest_choice"));
    let mut records = Vec::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{source}: line {}", line + 2))?;
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
            ingest_choice: choice.map_or(0, |i| ingest_choice_value(&field(i))),
        });
    }
    Ok(records)
}

/// A CSV cell of the ingest_choice column as the field's value: blank is
/// UNSPECIFIED (DEFAULT), and a word that is no choice is a value the
/// server rejects for that record alone, as it does a bad role.
fn ingest_choice_value(cell: &str) -> i32 {
    match ferry_control::model::IngestChoice::parse(cell) {
        Some(choice) => api::IngestChoice::from_str_name(&format!(
            "INGEST_CHOICE_{}",
            choice.as_str().to_ascii_uppercase()
        ))
        .map_or(-1, |c| c as i32),
        None => -1,
    }
}

pub(super) async fn users(
    clients: &mut Clients,
    out: Output,
    institution: &str,
    command: UsersCommand,
) -> anyhow::Result<()> {
    let client = &mut clients.users;
    let institution_id = institution.to_string();
    match command {
        UsersCommand::Sync { file, mode } => {
            let mode = sync_mode(&mode)?;
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
            print_sync_summary(
                out,
                SyncCounts {
                    received: summary.received,
                    applied: summary.applied,
                    created: summary.created,
                    updated: summary.updated,
                    unchanged: summary.unchanged,
                    deactivated: summary.deactivated,
                },
                summary
                    .rejected
                    .into_iter()
                    .map(|r| RejectedLine {
                        record_index: r.record_index,
                        external_id: r.external_id,
                        email: Some(r.email),
                        reason: r.reason,
                    })
                    .collect(),
            );
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
                    "ingest_choice",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ingest_choice_column_is_optional_and_read_per_record() {
        let without = "email,alternate_zoom_email,display_name,role,external_id\n\
                       a@x.edu,,A,instructor,a\n";
        let records = parse_users_csv(without.as_bytes(), "t").unwrap();
        assert_eq!(
            records[0].ingest_choice, 0,
            "no column: unspecified (default)"
        );

        let with = "external_id,email,alternate_zoom_email,display_name,role,Ingest_Choice\n\
                    a,a@x.edu,,A,instructor,opted_out\n\
                    b,b@x.edu,,B,instructor,\n\
                    c,c@x.edu,,C,instructor,OPTED_IN\n\
                    d,d@x.edu,,D,instructor,maybe\n";
        let choices: Vec<i32> = parse_users_csv(with.as_bytes(), "t")
            .unwrap()
            .into_iter()
            .map(|r| r.ingest_choice)
            .collect();
        assert_eq!(
            choices,
            vec![
                api::IngestChoice::OptedOut as i32,
                api::IngestChoice::Default as i32,
                api::IngestChoice::OptedIn as i32,
                -1,
            ],
            "a word that is no choice goes to the server, which rejects that record"
        );
    }
}
