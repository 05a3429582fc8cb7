//! The demo's reconciler and backfill act: one lecture of the main account
//! whose webhook Zoom "loses" (it is only in the account's recordings
//! list), which the reconciler finds and ingests; then the admin's backfill
//! of the account's last days, which ingests two lectures recorded before
//! the install (nothing else does). Each becomes a row of the final table
//! with the job's source, checked like the others: completed, one object of
//! Zoom's size, byte-identical to Zoom's file.

use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_control::api;
use ferry_control::model::{Day, Timestamp};
use ferry_zoomsim::downloads::{DownloadServer, FileBehavior};
use ferry_zoomsim::{FileSpec, MIB, Meeting, Mp4Layout, SyntheticMedia};

use super::check::Row;
use super::setup::{MAIN_ACCOUNT, Stage};
use crate::cli::watch::format::{bytes, state_name};

/// How long the act waits for the reconciler, the backfill and the transfers.
const WAIT_AT_MOST: Duration = Duration::from_secs(90);
/// The Zoom user who hosts the act's lectures (the list names hosts by id).
const HOST_ID: &str = "demo-host-elisa";
const HOST_EMAIL: &str = "Elisa@Example.edu";

/// One lecture of the act and the job it became.
pub struct Found {
    pub name: &'static str,
    pub source: api::JobSource,
    meeting: Meeting,
    media: SyntheticMedia,
    pub job: api::Job,
}

/// A lecture of the main account starting `start`, with one MP4, in
/// Zoom's recordings list; no webhook is ever sent for it.
fn in_zoom_only(
    downloads: &DownloadServer,
    start: Timestamp,
    size: u64,
) -> (Meeting, SyntheticMedia) {
    let media = SyntheticMedia::mp4(size, Duration::from_secs(1), Mp4Layout::FastStart, 0);
    let mut meeting =
        Meeting::lecture(MAIN_ACCOUNT, HOST_EMAIL, start).with_files(vec![FileSpec::mp4(
            "shared_screen_with_speaker_view",
            0,
            1,
            media.len(),
        )]);
    meeting.topic = "Office hours (its webhook got lost)".into();
    meeting.download_base = downloads.zoom_base();
    downloads.add(
        &meeting.files[0].id,
        FileBehavior::new(media.clone(), &meeting.download_token),
    );
    downloads.add_cloud_recording(&meeting, meeting.listed(HOST_ID, false));
    (meeting, media)
}

/// Waits until the meeting has a job, then until that job is final.
async fn final_job(stage: &mut Stage, meeting: &Meeting) -> anyhow::Result<api::Job> {
    let deadline = Instant::now() + WAIT_AT_MOST;
    loop {
        let jobs = stage
            .admin
            .jobs
            .list_jobs(api::ListJobsRequest {
                zoom_account_id: MAIN_ACCOUNT.into(),
                page: Some(api::PageRequest {
                    page_size: 1000,
                    page_token: String::new(),
                }),
                ..api::ListJobsRequest::default()
            })
            .await?
            .into_inner()
            .jobs;
        let open = [
            api::JobState::Queued as i32,
            api::JobState::Transferring as i32,
        ];
        if let Some(job) = jobs.into_iter().find(|j| j.meeting_uuid == meeting.uuid)
            && !open.contains(&job.state)
        {
            return Ok(job);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no finished job for {:?} after {WAIT_AT_MOST:?}",
            meeting.topic
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Plays the act; prints steps 9 and 10.
pub async fn play(stage: &mut Stage, downloads: &DownloadServer) -> anyhow::Result<Vec<Found>> {
    downloads.add_user(HOST_ID, HOST_EMAIL);
    let install_time = stage
        .main_account
        .install_time
        .context("the main account has an install time")?;
    let installed_at = Timestamp::from_unix_seconds(install_time.seconds);
    let (lost, lost_media) = in_zoom_only(
        downloads,
        installed_at.saturating_add_millis(1_000),
        3 * MIB,
    );
    println!(
        "9. Zoom \"loses\" the webhook of one more lecture of {MAIN_ACCOUNT}: it is only in Zoom's \
         recordings list, which the reconciler reads (reconcile.interval_secs) with the account's \
         Server-to-Server OAuth credentials"
    );
    let lost_job = final_job(stage, &lost).await?;
    println!(
        "   the reconciler found it and queued job {} (source reconcile); it is {}",
        lost_job.job_id,
        state_name(lost_job.state)
    );

    let day = 86_400_000;
    let older: Vec<(Meeting, SyntheticMedia)> = [5, 8]
        .into_iter()
        .map(|days| {
            let (mut meeting, media) =
                in_zoom_only(downloads, Timestamp(installed_at.0 - days * day), 2 * MIB);
            meeting.topic = format!("Lecture {days} days before the install");
            (meeting, media)
        })
        .collect();
    let (from, to) = (
        Day::of(installed_at).minus_days(9),
        Day::of(Timestamp::now()),
    );
    let backfill = stage
        .admin
        .accounts
        .backfill_account(api::BackfillAccountRequest {
            institution_id: String::new(),
            zoom_account_id: MAIN_ACCOUNT.into(),
            from: from.to_string(),
            to: to.to_string(),
        })
        .await?
        .into_inner();
    let deadline = Instant::now() + WAIT_AT_MOST;
    let ended = loop {
        let now = stage
            .admin
            .accounts
            .get_backfill(api::GetBackfillRequest {
                institution_id: String::new(),
                backfill_id: backfill.backfill_id.clone(),
            })
            .await?
            .into_inner();
        if now.state != api::BackfillState::Running as i32 {
            break now;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "backfill {} still running",
            backfill.backfill_id
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "10. the admin backfilled {MAIN_ACCOUNT} from {from} to {to} (`ferry accounts backfill`): \
         {} meetings listed, {} jobs created, {} already had one; recordings made before the \
         install are ingested only this way",
        ended.meetings_seen, ended.jobs_created, ended.duplicates
    );
    let mut found = vec![Found {
        name: "webhook lost, found by the reconciler",
        source: api::JobSource::Reconcile,
        meeting: lost,
        media: lost_media,
        job: lost_job,
    }];
    for ((meeting, media), name) in older.into_iter().zip([
        "backfilled, 5 days before the install",
        "backfilled, 8 days before the install",
    ]) {
        let job = final_job(stage, &meeting).await?;
        found.push(Found {
            name,
            source: api::JobSource::Backfill,
            meeting,
            media,
            job,
        });
    }
    Ok(found)
}

/// The act's rows: each job completed from the expected source, with one
/// object of Zoom's size and bytes.
pub fn rows(found: &[Found], stage: &Stage, media: &[api::Media]) -> Vec<Row> {
    found
        .iter()
        .map(|found| {
            let job = &found.job;
            let mut row = Row::new(found.name);
            row.decision = state_name(job.state);
            row.source = super::check::source_name(job.source);
            row.reason = format!(
                "{:?}, recorded {}",
                found.meeting.topic, found.meeting.start
            );
            row.owner = stage
                .owner_email(&job.owner_user_id)
                .unwrap_or("-")
                .to_string();
            if job.state != api::JobState::Completed as i32 {
                row.problems.push(format!(
                    "the job is {}: {}",
                    state_name(job.state),
                    job.message
                ));
            }
            if job.source != found.source as i32 {
                row.problems.push(format!(
                    "the job's source is {}, expected {}",
                    row.source,
                    super::check::source_name(found.source as i32)
                ));
            }
            let landed: Vec<&api::Media> =
                media.iter().filter(|m| m.job_id == job.job_id).collect();
            let [one] = landed[..] else {
                row.problems
                    .push(format!("{} media for one completed job", landed.len()));
                return row;
            };
            row.bytes = bytes(one.size_bytes);
            let path = stage.media_dir.join(&one.object_key);
            row.landed = path.display().to_string();
            if one.size_bytes != found.media.len() {
                row.problems.push(format!(
                    "{} bytes landed, Zoom's file has {}",
                    one.size_bytes,
                    found.media.len()
                ));
            }
            match super::sha256_of(&path) {
                Ok(sha256) if sha256 == found.media.sha256() => {}
                Ok(_) => row
                    .problems
                    .push("the landed file's SHA-256 differs from Zoom's file".into()),
                Err(e) => row
                    .problems
                    .push(format!("cannot read the landed file: {e}")),
            }
            row
        })
        .collect()
}
