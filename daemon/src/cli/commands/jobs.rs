//! `ferry jobs`: JobService. Reads, retries and cancels jobs (`get` names
//! each companion file's state; `retry` of a completed job fetches just the
//! missing companions); `watch` is handed to `cli::watch`, which owns the
//! live view.

use anyhow::Context;
use clap::Subcommand;
use ferry_control::api;
use serde_json::{Value, json};

use super::{companion_kind_name, enum_name, page, time};
use crate::cli::client::Clients;
use crate::cli::output::{Fields, Output};

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
        /// webhook, reconcile or backfill: what found the recording.
        #[arg(long)]
        source: Option<String>,
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

/// A job's attempts: objects for scripts; for people, one short phrase
/// each (`#2 from byte 5242880 by ferry-…, 2026-11-30T20:00:00Z: note`),
/// separated by `; `.
fn attempts(attempts: &[api::JobAttempt], out: Output) -> serde_json::Value {
    if out.json {
        let each = attempts.iter().map(|a| {
            json!({
                "attempt": a.attempt,
                "worker_id": a.worker_id,
                "start_time": time(&a.start_time),
                "resumed_from_bytes": a.resumed_from_bytes,
                "note": a.note,
            })
        });
        return serde_json::Value::Array(each.collect());
    }
    let each = attempts.iter().map(|a| {
        let started = time(&a.start_time);
        let mut phrase = format!(
            "#{} from byte {} by {}, {}",
            a.attempt,
            a.resumed_from_bytes,
            a.worker_id,
            started.as_str().unwrap_or("-")
        );
        if !a.note.is_empty() {
            phrase.push_str(&format!(": {}", a.note));
        }
        phrase
    });
    json!(each.collect::<Vec<_>>().join("; "))
}

/// A job's companion files: objects for scripts; for people, one phrase
/// each (`transcript copied`, `chat missing: zoom no longer has …`),
/// separated by `; `, so the gap is named.
fn companions(companions: &[api::CompanionStatus], out: Output) -> Value {
    let state = |c: &api::CompanionStatus| {
        api::CompanionState::try_from(c.state).map_or(c.state.to_string(), |s| {
            enum_name(s.as_str_name(), "COMPANION_STATE_")
        })
    };
    if out.json {
        let each = companions.iter().map(|c| {
            json!({
                "kind": companion_kind_name(c.kind),
                "state": state(c),
                "reason": c.reason,
                "file_id": c.file_id,
                "size_bytes": c.size_bytes,
            })
        });
        return Value::Array(each.collect());
    }
    let each = companions.iter().map(|c| {
        let mut phrase = format!("{} {}", companion_kind_name(c.kind), state(c));
        if !c.reason.is_empty() {
            phrase.push_str(&format!(": {}", c.reason));
        }
        phrase
    });
    json!(each.collect::<Vec<_>>().join("; "))
}

pub(crate) fn job_fields(j: api::Job) -> Fields {
    let state = api::JobState::try_from(j.state).map_or(j.state.to_string(), |s| {
        enum_name(s.as_str_name(), "JOB_STATE_")
    });
    let reason = match api::SkipReason::try_from(j.skip_reason) {
        Ok(api::SkipReason::Unspecified) => String::new(),
        Ok(r) => enum_name(r.as_str_name(), "SKIP_REASON_"),
        Err(_) => j.skip_reason.to_string(),
    };
    let source = match api::JobSource::try_from(j.source) {
        Ok(api::JobSource::Unspecified) => String::new(),
        Ok(s) => enum_name(s.as_str_name(), "JOB_SOURCE_"),
        Err(_) => j.source.to_string(),
    };
    let file = j.recording_file.unwrap_or_default();
    vec![
        ("job_id", json!(j.job_id)),
        ("state", json!(state)),
        ("source", json!(source)),
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
        ("zoom_trash", zoom_trash_text(j.zoom_trash)),
    ]
}

/// A job's move to Zoom's trash in one phrase (`trashed after 2 call(s):
/// …`); empty when the job has none.
fn zoom_trash_text(trash: Option<api::ZoomTrash>) -> Value {
    let Some(trash) = trash else {
        return json!("");
    };
    let state = api::ZoomTrashState::try_from(trash.state).map_or(trash.state.to_string(), |s| {
        enum_name(s.as_str_name(), "ZOOM_TRASH_STATE_")
    });
    json!(format!(
        "{state} after {} call(s): {}",
        trash.attempts, trash.message
    ))
}

const JOB_COLUMNS: &[&str] = &[
    "job_id",
    "state",
    "skip_reason",
    "source",
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

pub(super) async fn jobs(
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
            source,
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
            let source = match source {
                Some(s) => {
                    api::JobSource::from_str_name(&format!("JOB_SOURCE_{}", s.to_ascii_uppercase()))
                        .filter(|s| *s != api::JobSource::Unspecified)
                        .with_context(|| {
                            format!(
                                "--source {s:?}: not a job source (webhook, reconcile or backfill)"
                            )
                        })? as i32
                }
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
                    page: page(token),
                    source,
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
            let history = attempts(&job.attempts, out);
            let companions = companions(&job.companions, out);
            let mut fields = job_fields(job);
            fields.push(("attempts", history));
            fields.push(("companions", companions));
            out.item(fields);
        }
        JobsCommand::Retry { job_id } => {
            let job = client
                .retry_job(api::RetryJobRequest {
                    job_id,
                    institution_id,
                })
                .await?
                .into_inner();
            // A completed job's retry names the companions it sent back.
            let sent_back = (!job.companions.is_empty()).then(|| companions(&job.companions, out));
            let mut fields = job_fields(job);
            fields.extend(sent_back.map(|c| ("companions", c)));
            out.item(fields);
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
            crate::cli::watch::run(client, out, institution_id, job).await?;
        }
    }
    Ok(())
}
