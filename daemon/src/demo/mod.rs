//! `ferry demo`: the whole pipeline in one command, and a smoke test. It
//! starts a fresh daemon on the embedded defaults (SQLite, local folder) in
//! `data_dir`, sets up the control plane over the daemon's own gRPC API, has
//! the Zoom simulator send one recording per rule while the transfers show
//! live, then checks every outcome against its rule and prints the table;
//! the normal lecture's transcript, captions and chat land beside its video
//! and are checked byte for byte too (`companions`).
//! `ferry demo --replicas N` plays the same on N replicas sharing a
//! throwaway PostgreSQL cluster (`replicas`), and its table says which
//! replica moved each recording.
//!
//! It never touches a running daemon (its ports are ephemeral) nor a folder
//! it did not make, and it fails, naming the recording, whenever an outcome
//! is not the expected one: CI runs it.

mod check;
mod companions;
mod explore;
mod progress;
mod reconcile;
mod replicas;
mod script;
mod sections;
mod setup;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use ferry_control::api;
use ferry_zoomsim::SyntheticMedia;
use ferry_zoomsim::downloads::DownloadServer;
use http_body_util::{BodyExt, Empty};
use serde_json::json;

use crate::cli::output::Output;
use crate::cli::watch::format::bytes;
use check::{Evidence, Row};
use progress::Progress;
use script::Script;
use setup::{PILOT_ACCOUNT, PILOT_MAX_FILE_BYTES, Stage};

const FREE_PLAN_ROW: &str = "Free-plan account";
/// The column that, with replicas, names the replica that moved each recording.
const MOVED_BY: &str = "moved by";
const COLUMNS: [&str; 8] = [
    "check",
    "recording",
    "decision",
    "source",
    "reason",
    "owner",
    "bytes",
    "landed at",
];

/// Waits (at most 30 s) until every completed job whose copy in Zoom is to
/// be trashed has had it moved (or given up); returns the jobs as they are
/// then.
async fn settle_zoom_trash(
    admin: &mut crate::cli::client::Clients,
    jobs: Vec<api::Job>,
) -> anyhow::Result<Vec<api::Job>> {
    let pending = |job: &api::Job| {
        job.zoom_trash
            .as_ref()
            .is_some_and(|t| t.state == api::ZoomTrashState::Pending as i32)
    };
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    let mut settled = Vec::with_capacity(jobs.len());
    for mut job in jobs {
        while pending(&job) && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            job = admin
                .jobs
                .get_job(api::GetJobRequest {
                    job_id: job.job_id.clone(),
                    institution_id: String::new(),
                })
                .await?
                .into_inner();
        }
        settled.push(job);
    }
    Ok(settled)
}

pub async fn run(data_dir: &Path, keep_running: bool, replicas: usize) -> anyhow::Result<()> {
    anyhow::ensure!(replicas >= 1, "--replicas must be at least 1");
    setup::fresh_data_dir(data_dir)?;
    let downloads = DownloadServer::start().await?;
    let mut stage = Stage::start(data_dir, &downloads, replicas).await?;
    let script = Script::new(&stage, &downloads);
    let lecture = script
        .recordings
        .iter()
        .find(|r| r.name == script::NORMAL_LECTURE)
        .context("the script has no normal lecture")?;
    let main_configuration = stage.main_account.configuration_id.clone();
    let lecture_section =
        sections::map_lecture(&mut stage.admin, &main_configuration, &lecture.meeting).await?;
    println!(
        "7. Zoom sends {} recordings, one per rule, in {} signed webhooks; live progress:",
        script.recordings.len() + 1,
        script.num_deliveries()
    );
    let started = Instant::now();
    let progress = Progress::start(&mut stage.admin.jobs).await?;
    let fired = script.fire(&stage.zooms()).await;
    let job_ids: Vec<String> = fired
        .iter()
        .flat_map(|fired| fired.deliveries.iter().flatten())
        .filter_map(|delivery| delivery.job_id().map(str::to_string))
        .collect();
    let jobs = progress
        .until_finished(&mut stage.admin.jobs, &job_ids)
        .await;
    let (fired, jobs) = (fired?, jobs?);
    let jobs = settle_zoom_trash(&mut stage.admin, jobs).await?;
    let found = reconcile::play(&mut stage, &downloads).await?;
    let media = stage
        .admin
        .media
        .list_media(api::ListMediaRequest {
            page: Some(api::PageRequest {
                page_size: 1000,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await?
        .into_inner()
        .media;
    let mut all_job_ids: Vec<String> = jobs.iter().map(|j| j.job_id.clone()).collect();
    all_job_ids.extend(found.iter().map(|f| f.job.job_id.clone()));
    let landed_companions = companions::settle(&mut stage.admin, &all_job_ids, &media).await?;
    let landed: u64 = media.iter().map(|m| m.size_bytes).sum();
    println!(
        "8. every job finished in {:.1} s; {} landed in {}, streamed without staging",
        started.elapsed().as_secs_f64(),
        bytes(landed),
        stage.media_dir.display()
    );
    let companion_problems: Vec<String> = script
        .recordings
        .iter()
        .flat_map(|recording| {
            let job = jobs
                .iter()
                .find(|j| j.meeting_uuid == recording.meeting.uuid);
            companions::show_and_check(recording, job, &landed_companions, &stage.media_dir)
        })
        .collect();

    let (served_sha256, landed_sha256) = hash_files(&script, &stage, &media).await?;
    let metrics = scrape_metrics(stage.app.http_addr).await?;
    let evidence = Evidence {
        stage: &stage,
        downloads: &downloads,
        jobs: &jobs,
        media: &media,
        served_sha256: &served_sha256,
        landed_sha256: &landed_sha256,
        uploaded_bytes: counter_total(&metrics, crate::metrics::UPLOADED_BYTES_TOTAL),
    };
    let mut rows: Vec<Row> = script
        .recordings
        .iter()
        .zip(&fired.deliveries)
        .map(|(recording, delivered)| evidence.recording(recording, delivered))
        .collect();
    let free_files: Vec<String> = script
        .free_meeting
        .files
        .iter()
        .map(|f| f.id.clone())
        .collect();
    rows.push(evidence.free_plan(FREE_PLAN_ROW, &fired.free, &free_files));
    rows.extend(reconcile::rows(&found, &stage, &media));
    let companion_objects = landed_companions.iter().map(|m| m.files.len()).sum();
    let mut overall = evidence.overall(script.recordings.len(), companion_objects);
    overall.extend(companion_problems);
    let shared = sections::check(&lecture_section, &media);
    if let Err(problem) = &shared {
        overall.push(format!("course sections: {problem}"));
    }
    let overall_failed = !overall.is_empty();
    let movers = match &stage.fleet {
        Some(fleet) => {
            let mut movers = Vec::with_capacity(rows.len());
            for delivered in &fired.deliveries {
                movers.push(match delivered.first().and_then(|d| d.job_id()) {
                    Some(job_id) => fleet.movers(&mut stage.admin, job_id).await?,
                    None => "-".into(),
                });
            }
            // The Free-plan account's recording never becomes a job.
            movers.push("-".into());
            for found in &found {
                movers.push(fleet.movers(&mut stage.admin, &found.job.job_id).await?);
            }
            Some(movers)
        }
        None => None,
    };

    println!("11. the outcomes, each checked against its rule:");
    print_table(&rows, movers.as_deref());
    println!(
        "   ({PILOT_ACCOUNT}'s size cap is lowered to {} for this demo; completed files are \
         checked byte for byte against Zoom's by SHA-256)",
        bytes(PILOT_MAX_FILE_BYTES)
    );
    let mismatches: Vec<String> = rows
        .iter()
        .flat_map(|row| row.problems.iter().map(|p| format!("{}: {p}", row.name)))
        .chain(overall)
        .collect();
    if let Ok(line) = &shared {
        println!("12. {line}");
    }
    if mismatches.is_empty() {
        println!("all {} outcomes are the expected ones", rows.len());
    } else {
        for mismatch in &mismatches {
            println!("MISMATCH {mismatch}");
        }
    }

    if keep_running {
        let example = script
            .recordings
            .iter()
            .zip(&fired.deliveries)
            .find(|(r, _)| matches!(r.twist, script::Twist::Understated { .. }))
            .and_then(|(_, delivered)| delivered.first()?.job_id());
        explore::keep_running(&stage, example).await?;
    }
    let replicated = stage.fleet.is_some();
    let stage_media_dir = stage.media_dir.clone();
    stage.shutdown().await;
    if !mismatches.is_empty() {
        let mut failed: Vec<&str> = rows
            .iter()
            .filter(|row| !row.problems.is_empty())
            .map(|row| row.name)
            .collect();
        if overall_failed {
            failed.push("the run as a whole");
        }
        anyhow::bail!(
            "not every outcome was the expected one ({}); see the MISMATCH lines above",
            failed.join(", ")
        );
    }
    if replicated {
        println!(
            "done: the media are in {}; the replicas' database was removed with its cluster",
            stage_media_dir.display()
        );
    } else {
        println!("done: everything above is stored in {}", data_dir.display());
    }
    Ok(())
}

/// The final table; with replicas, `movers[i]` names who moved row `i`.
fn print_table(rows: &[Row], movers: Option<&[String]>) {
    let items = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let check = if row.problems.is_empty() {
                "ok"
            } else {
                "FAIL"
            };
            let mut fields = vec![
                ("check", json!(check)),
                ("recording", json!(row.name)),
                ("decision", json!(row.decision)),
                ("source", json!(row.source)),
                ("reason", json!(row.reason)),
                ("owner", json!(row.owner)),
                ("bytes", json!(row.bytes)),
                ("landed at", json!(row.landed)),
            ];
            if let Some(movers) = movers {
                fields.push((MOVED_BY, json!(movers.get(i).map_or("-", String::as_str))));
            }
            fields
        })
        .collect();
    let mut columns = COLUMNS.to_vec();
    if movers.is_some() {
        // Before the path, which stays last.
        columns.insert(columns.len() - 1, MOVED_BY);
    }
    Output { json: false }.list(items, &columns);
}

type Sha256 = [u8; 32];

/// SHA-256 of each completed recording's file as Zoom served it (by file
/// id) and of each landed object (by media id), off the async threads.
async fn hash_files(
    script: &Script,
    stage: &Stage,
    media: &[api::Media],
) -> anyhow::Result<(
    HashMap<String, Sha256>,
    HashMap<String, std::io::Result<Sha256>>,
)> {
    let served: Vec<(String, SyntheticMedia)> = script
        .recordings
        .iter()
        .filter(|r| r.expected.state == api::JobState::Completed)
        .filter_map(|r| r.chosen())
        .map(|(file, media)| (file.id.clone(), media.clone()))
        .collect();
    let landed: Vec<(String, PathBuf)> = media
        .iter()
        .map(|m| (m.media_id.clone(), stage.media_dir.join(&m.object_key)))
        .collect();
    tokio::task::spawn_blocking(move || {
        let served = served
            .into_iter()
            .map(|(id, media)| (id, media.sha256()))
            .collect();
        let landed = landed
            .into_iter()
            .map(|(id, path)| (id, sha256_of(&path)))
            .collect();
        (served, landed)
    })
    .await
    .context("the hashing task panicked")
}

fn sha256_of(path: &Path) -> std::io::Result<Sha256> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hasher.finalize().into())
}

/// `GET /metrics` from the daemon's HTTP listener, as Prometheus would.
async fn scrape_metrics(http_addr: std::net::SocketAddr) -> anyhow::Result<String> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let url: hyper::Uri = format!("http://{http_addr}/metrics").parse()?;
    let response = client.get(url).await.context("cannot scrape /metrics")?;
    anyhow::ensure!(
        response.status().is_success(),
        "/metrics answered HTTP {}",
        response.status()
    );
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The sum of a counter over all its label sets, from Prometheus text.
fn counter_total(exposition: &str, name: &str) -> Option<u64> {
    let mut total = None;
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value: f64 = rest.rsplit(' ').next()?.parse().ok()?;
        total = Some(total.unwrap_or(0) + value as u64);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_over_their_labels_and_only_theirs() {
        let text = "# TYPE ferry_uploaded_bytes_total counter\n\
                    ferry_uploaded_bytes_total 100\n\
                    ferry_uploaded_bytes_total_other 7\n\
                    ferry_retries_total{stage=\"download\"} 2\n\
                    ferry_retries_total{stage=\"upload part\"} 3\n";
        assert_eq!(counter_total(text, "ferry_uploaded_bytes_total"), Some(100));
        assert_eq!(counter_total(text, "ferry_retries_total"), Some(5));
        assert_eq!(counter_total(text, "ferry_missing_total"), None);
    }
}
