//! `ferry accounts backfill`: asks the daemon to ingest an account's older
//! recordings (`BackfillAccount`), shows one (`get`), an institution's
//! (`list`), or stops one (`cancel`). `--watch` follows a backfill until it
//! ends by polling `GetBackfill`: a progress bar over the range's days on a
//! terminal, a line per change in a pipe, and the final backfill with
//! `--json`. A watch only reads; Ctrl-C leaves the backfill running.

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, Subcommand};
use ferry_control::api;
use ferry_control::api::zoom_account_service_client::ZoomAccountServiceClient;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::{page, time};
use crate::cli::client::{AuthChannel, Clients};
use crate::cli::output::{Fields, Output};

/// How often a watch asks for the backfill.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// `ferry accounts backfill ZOOM_ACCOUNT --from DAY --to DAY`, or one of
/// the subcommands.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BackfillArgs {
    #[command(subcommand)]
    command: Option<BackfillCommand>,
    /// The installed Zoom account whose recordings to ingest; those made
    /// before the install too, which nothing else ingests.
    #[arg(required = true)]
    zoom_account_id: Option<String>,
    /// The first day, YYYY-MM-DD (UTC).
    #[arg(long, required = true)]
    from: Option<String>,
    /// The last day, YYYY-MM-DD (UTC).
    #[arg(long, required = true)]
    to: Option<String>,
    /// Follow the backfill until it ends, with a progress bar.
    #[arg(long)]
    watch: bool,
}

#[derive(Subcommand, Debug)]
enum BackfillCommand {
    /// Show one backfill.
    Get {
        backfill_id: String,
        /// Follow it until it ends, with a progress bar.
        #[arg(long)]
        watch: bool,
    },
    /// List the institution's backfills, oldest first.
    List {
        /// Only this Zoom account's.
        #[arg(long = "account")]
        zoom_account_id: Option<String>,
    },
    /// Stop a running backfill; the jobs it made stay.
    Cancel { backfill_id: String },
}

fn state_name(state: i32) -> String {
    api::BackfillState::try_from(state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("BACKFILL_STATE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| state.to_string())
}

fn skipped_total(b: &api::Backfill) -> u64 {
    b.skipped.iter().map(|s| s.count).sum()
}

fn backfill_fields(b: api::Backfill) -> Fields {
    let skipped: serde_json::Map<String, serde_json::Value> = b
        .skipped
        .iter()
        .map(|s| {
            let reason = api::SkipReason::try_from(s.reason)
                .map(|r| {
                    r.as_str_name()
                        .trim_start_matches("SKIP_REASON_")
                        .to_ascii_lowercase()
                })
                .unwrap_or_else(|_| s.reason.to_string());
            (reason, json!(s.count))
        })
        .collect();
    vec![
        ("backfill_id", json!(b.backfill_id)),
        ("zoom_account_id", json!(b.zoom_account_id)),
        ("from", json!(b.from)),
        ("to", json!(b.to)),
        ("state", json!(state_name(b.state))),
        ("message", json!(b.message)),
        ("days", json!(format!("{}/{}", b.days_done, b.total_days))),
        ("meetings_seen", json!(b.meetings_seen)),
        ("jobs_created", json!(b.jobs_created)),
        ("duplicates", json!(b.duplicates)),
        ("not_ready", json!(b.not_ready)),
        ("skipped", json!(skipped_total(&b))),
        ("skipped_by_reason", serde_json::Value::Object(skipped)),
        ("create_time", time(&b.create_time)),
        ("finish_time", time(&b.finish_time)),
    ]
}

/// The counts a watch shows beside its bar.
fn progress_line(b: &api::Backfill) -> String {
    format!(
        "{} meetings seen, {} jobs created, {} duplicates, {} skipped, {} not ready",
        b.meetings_seen,
        b.jobs_created,
        b.duplicates,
        skipped_total(b),
        b.not_ready
    )
}

pub(super) async fn backfill(
    clients: &mut Clients,
    out: Output,
    institution: &str,
    args: BackfillArgs,
) -> anyhow::Result<()> {
    let client = &mut clients.accounts;
    let institution_id = institution.to_string();
    let (shown, watch) = match args.command {
        None => {
            let (Some(zoom_account_id), Some(from), Some(to)) =
                (args.zoom_account_id, args.from, args.to)
            else {
                anyhow::bail!("a backfill needs ZOOM_ACCOUNT, --from and --to");
            };
            let created = client
                .backfill_account(api::BackfillAccountRequest {
                    institution_id: institution_id.clone(),
                    zoom_account_id,
                    from,
                    to,
                })
                .await?
                .into_inner();
            (created, args.watch)
        }
        Some(BackfillCommand::Get { backfill_id, watch }) => {
            let found = client
                .get_backfill(api::GetBackfillRequest {
                    institution_id: institution_id.clone(),
                    backfill_id,
                })
                .await?
                .into_inner();
            (found, watch)
        }
        Some(BackfillCommand::Cancel { backfill_id }) => {
            let cancelled = client
                .cancel_backfill(api::CancelBackfillRequest {
                    institution_id: institution_id.clone(),
                    backfill_id,
                })
                .await?
                .into_inner();
            (cancelled, false)
        }
        Some(BackfillCommand::List { zoom_account_id }) => {
            let backfills = collect_pages!(
                |token| client.list_backfills(api::ListBackfillsRequest {
                    institution_id: institution_id.clone(),
                    zoom_account_id: zoom_account_id.clone().unwrap_or_default(),
                    page: page(token)
                }),
                backfills
            );
            out.list(
                backfills.into_iter().map(backfill_fields).collect(),
                &[
                    "backfill_id",
                    "zoom_account_id",
                    "from",
                    "to",
                    "state",
                    "days",
                    "jobs_created",
                    "duplicates",
                    "skipped",
                ],
            );
            return Ok(());
        }
    };
    let shown = if watch {
        follow(client, out, institution_id, shown).await?
    } else {
        shown
    };
    let failed = (shown.state == api::BackfillState::Failed as i32)
        .then(|| format!("backfill {} failed: {}", shown.backfill_id, shown.message));
    out.item(backfill_fields(shown));
    match failed {
        Some(message) if watch => anyhow::bail!(message),
        _ => Ok(()),
    }
}

/// Polls the backfill until it is no longer running; shows its progress
/// meanwhile (nothing with `--json`). Returns it as it ended.
async fn follow(
    client: &mut ZoomAccountServiceClient<AuthChannel>,
    out: Output,
    institution_id: String,
    mut backfill: api::Backfill,
) -> anyhow::Result<api::Backfill> {
    let bar = (!out.json && std::io::stdout().is_terminal()).then(|| {
        let bar = ProgressBar::with_draw_target(
            Some(u64::from(backfill.total_days)),
            ProgressDrawTarget::stdout(),
        );
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} days  {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(backfill.backfill_id.clone());
        bar
    });
    let mut last_line = String::new();
    loop {
        let line = progress_line(&backfill);
        match &bar {
            Some(bar) => {
                bar.set_position(u64::from(backfill.days_done));
                bar.set_message(line);
            }
            // A pipe or a file: a line when something changed.
            None if !out.json && line != last_line => {
                println!(
                    "{}: {} days {}/{}, {line}",
                    backfill.backfill_id,
                    state_name(backfill.state),
                    backfill.days_done,
                    backfill.total_days
                );
                last_line = line;
            }
            None => {}
        }
        if backfill.state != api::BackfillState::Running as i32 {
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            return Ok(backfill);
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                eprintln!("stopped watching; backfill {} keeps running", backfill.backfill_id);
                return Ok(backfill);
            }
            _ = tokio::time::sleep(POLL_EVERY) => {}
        }
        backfill = client
            .get_backfill(api::GetBackfillRequest {
                institution_id: institution_id.clone(),
                backfill_id: backfill.backfill_id.clone(),
            })
            .await?
            .into_inner();
    }
}
