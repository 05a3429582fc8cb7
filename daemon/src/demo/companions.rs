//! The demo's companion files: the normal lecture's transcript, captions and
//! chat, served by the simulator, are copied beside its video once the job
//! has completed. The demo waits for every job's companions to settle,
//! prints where the lecture's landed, and checks each one byte for byte
//! against the file Zoom served (a mismatch is named like any other).

use std::path::Path;
use std::time::{Duration, Instant};

use ferry_control::api;

use super::script::Recording;
use crate::cli::client::Clients;
use crate::cli::watch::format::bytes;

/// Companion files of one media, as GetMedia lists them.
pub struct MediaCompanions {
    pub job_id: String,
    pub files: Vec<api::CompanionFile>,
}

/// Waits (at most 30 s) until no job of `job_ids` has a companion still
/// pending, then returns the copied companions of every media.
pub async fn settle(
    admin: &mut Clients,
    job_ids: &[String],
    media: &[api::Media],
) -> anyhow::Result<Vec<MediaCompanions>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for job_id in job_ids {
        loop {
            let job = admin
                .jobs
                .get_job(api::GetJobRequest {
                    job_id: job_id.clone(),
                    institution_id: String::new(),
                })
                .await?
                .into_inner();
            let pending = job
                .companions
                .iter()
                .any(|c| c.state == api::CompanionState::Pending as i32);
            if !pending || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut all = Vec::with_capacity(media.len());
    for item in media {
        let full = admin
            .media
            .get_media(api::GetMediaRequest {
                media_id: item.media_id.clone(),
                institution_id: String::new(),
            })
            .await?
            .into_inner();
        all.push(MediaCompanions {
            job_id: full.job_id,
            files: full.companions,
        });
    }
    Ok(all)
}

/// The API kind of a simulated file's Zoom `file_type`, for companions.
fn kind_of(file_type: &str) -> Option<api::CompanionKind> {
    match file_type {
        "TRANSCRIPT" => Some(api::CompanionKind::Transcript),
        "CC" => Some(api::CompanionKind::ClosedCaptions),
        "CHAT" => Some(api::CompanionKind::Chat),
        _ => None,
    }
}

/// Prints where `recording`'s companions landed and returns what does not
/// match the files Zoom served (each must be listed on the media and equal
/// Zoom's file by SHA-256).
pub fn show_and_check(
    recording: &Recording,
    job: Option<&api::Job>,
    landed: &[MediaCompanions],
    media_dir: &Path,
) -> Vec<String> {
    let mut served: Vec<_> = recording
        .meeting
        .files
        .iter()
        .filter_map(|file| Some((kind_of(&file.file_type)?, file)))
        .filter_map(|(kind, file)| {
            let media = recording.served.iter().find(|(id, _)| *id == file.id)?;
            Some((kind, &media.1))
        })
        .collect();
    if served.is_empty() {
        return Vec::new();
    }
    // In kind order (transcript, captions, chat), whatever Zoom's file order.
    served.sort_by_key(|(kind, _)| *kind as i32);
    let Some(job) = job else {
        return vec![format!(
            "{}: no job to carry its companion files",
            recording.name
        )];
    };
    let files = landed
        .iter()
        .find(|m| m.job_id == job.job_id)
        .map_or(&[][..], |m| m.files.as_slice());
    println!(
        "   {}'s companion files landed beside its video:",
        recording.name
    );
    let mut problems = Vec::new();
    for (kind, media) in served {
        let name = kind
            .as_str_name()
            .trim_start_matches("COMPANION_KIND_")
            .to_ascii_lowercase();
        let Some(file) = files.iter().find(|f| f.kind == kind as i32) else {
            problems.push(format!("{}: its {name} file did not land", recording.name));
            continue;
        };
        println!(
            "     {name:<15} {} ({})",
            media_dir.join(&file.object_key).display(),
            bytes(file.size_bytes)
        );
        match super::sha256_of(&media_dir.join(&file.object_key)) {
            Ok(sha) if sha == media.sha256() => {}
            Ok(_) => problems.push(format!(
                "{}: the landed {name} file's SHA-256 differs from Zoom's",
                recording.name
            )),
            Err(e) => problems.push(format!(
                "{}: cannot read the landed {name} file: {e}",
                recording.name
            )),
        }
    }
    problems
}
