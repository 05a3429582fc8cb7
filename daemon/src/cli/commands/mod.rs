//! The admin client's commands, one file per resource, mirroring
//! `ferry_control::service`: each command builds one request (or a stream),
//! calls the daemon, and prints the answer. Nothing here decides anything the
//! daemon decides; a command only shapes flags into a request and an answer
//! into output.

use ferry_control::api;
use serde_json::{Value, json};

use super::ClientArgs;
use super::client::Connection;
use super::output::Output;

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

mod accounts;
mod backfills;
mod configurations;
mod institutions;
mod jobs;
mod media;
pub(crate) mod sections;
pub(crate) mod users;

pub use accounts::AccountsCommand;
pub use configurations::ConfigurationsCommand;
pub use institutions::{InstitutionsCommand, KeysCommand};
pub use jobs::JobsCommand;
pub(crate) use jobs::job_fields;
pub use media::MediaCommand;
pub use sections::SectionsCommand;
pub use users::UsersCommand;

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
        C::Institutions(command) => {
            institutions::institutions(&mut clients, out, &institution, command).await
        }
        C::Keys(command) => institutions::keys(&mut clients, out, &institution, command).await,
        C::Configurations(command) => {
            configurations::configurations(&mut clients, out, &institution, command).await
        }
        C::Accounts(command) => accounts::accounts(&mut clients, out, &institution, command).await,
        C::Users(command) => users::users(&mut clients, out, &institution, command).await,
        C::Jobs(command) => jobs::jobs(&mut clients, out, &institution, command).await,
        C::Media(command) => media::media(&mut clients, out, &institution, command).await,
        C::Sections(command) => sections::sections(&mut clients, out, &institution, command).await,
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

/// An enum value's proto name without its prefix, lowercased
/// (`INGEST_MODE_OPTED_IN_USERS` → `opted_in_users`).
fn enum_name(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_ascii_lowercase()
}

/// A companion file's kind as people read it: `transcript`, `closed_captions`, `chat`.
fn companion_kind_name(kind: i32) -> String {
    api::CompanionKind::try_from(kind).map_or(kind.to_string(), |k| {
        enum_name(k.as_str_name(), "COMPANION_KIND_")
    })
}

/// A sync's counts, as `SyncUsersSummary` and `SyncSectionsSummary` give them.
struct SyncCounts {
    received: u32,
    applied: u32,
    created: u32,
    updated: u32,
    unchanged: u32,
    deactivated: u32,
}

/// A record a sync rejected; `email` only for users.
struct RejectedLine {
    record_index: u32,
    external_id: String,
    email: Option<String>,
    reason: String,
}

/// Prints a sync's summary: JSON, or a line of counts then one line per
/// rejected record naming its CSV line (record `i` is on line `i + 2`).
fn print_sync_summary(out: Output, counts: SyncCounts, rejected: Vec<RejectedLine>) {
    if out.json {
        let rejected: Vec<Value> = rejected
            .into_iter()
            .map(|r| {
                let mut record = json!({"record_index": r.record_index, "line": r.record_index + 2,
                    "external_id": r.external_id, "reason": r.reason});
                if let Some(email) = r.email {
                    record["email"] = json!(email);
                }
                record
            })
            .collect();
        out.item(vec![
            ("received", json!(counts.received)),
            ("applied", json!(counts.applied)),
            ("created", json!(counts.created)),
            ("updated", json!(counts.updated)),
            ("unchanged", json!(counts.unchanged)),
            ("deactivated", json!(counts.deactivated)),
            ("rejected", Value::Array(rejected)),
        ]);
        return;
    }
    println!(
        "received {}, applied {} (created {}, updated {}, unchanged {}), deactivated {}, rejected {}",
        counts.received,
        counts.applied,
        counts.created,
        counts.updated,
        counts.unchanged,
        counts.deactivated,
        rejected.len()
    );
    for r in rejected {
        let email = r.email.map(|e| format!(" ({e})")).unwrap_or_default();
        println!(
            "  line {}: {}{email}: {}",
            r.record_index + 2,
            r.external_id,
            r.reason
        );
    }
}

/// A sync's `--mode`: full or upsert.
fn sync_mode(mode: &str) -> anyhow::Result<api::SyncMode> {
    match mode.to_ascii_lowercase().as_str() {
        "full" => Ok(api::SyncMode::Full),
        "upsert" => Ok(api::SyncMode::Upsert),
        other => anyhow::bail!("--mode {other:?}: expected full or upsert"),
    }
}

fn page(token: String) -> Option<api::PageRequest> {
    Some(api::PageRequest {
        page_size: 1000,
        page_token: token,
    })
}
